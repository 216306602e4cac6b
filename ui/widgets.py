"""The live view's widgets: meters, timelines, the explanation bars, the level meter, the fault banner.

All draw from data handed to them on the GUI thread; ``refresh()`` is called by the window's
redraw timer and returns at once when the widget is hidden.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from dawemo import constants as C
from dawemo import faults
from dawemo.faults import Fault

pg.setConfigOptions(antialias=True, background="w", foreground="k")
EMOTION_COLOURS = ["#1f77b4", "#d62728", "#ff7f0e", "#8c1c13", "#6a3d9a", "#2ca02c", "#17becf", "#e377c2"]
MIDLEVEL_COLOURS = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"]


class MeterBank(QWidget):
    """One labelled bar per value, scaled to its range (1-9 for emotions, 0-1 for features)."""

    def __init__(self, names: tuple[str, ...], scale: tuple[float, float], title: str,
                 tooltips: dict[str, str] | None = None) -> None:
        super().__init__()
        self.names, self.scale = names, scale
        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setVerticalSpacing(2)
        heading = QLabel(f"<b>{title}</b>")
        layout.addWidget(heading, 0, 0, 1, 3)
        self.bars: dict[str, QProgressBar] = {}
        self.labels: dict[str, QLabel] = {}
        self.values: dict[str, float] = {}
        for row, name in enumerate(names, start=1):
            label = QLabel(name.replace("_", " "))
            if tooltips and name in tooltips:
                label.setToolTip(tooltips[name])
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            bar.setFixedHeight(14)
            value = QLabel("-")
            value.setMinimumWidth(36)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            layout.addWidget(label, row, 0)
            layout.addWidget(bar, row, 1)
            layout.addWidget(value, row, 2)
            self.bars[name], self.labels[name] = bar, value

    def set_values(self, values: dict[str, float]) -> None:
        self.values.update({name: values[name] for name in self.names if name in values})

    def refresh(self) -> None:
        if not self.isVisible():
            return
        low, high = self.scale
        for name, value in self.values.items():
            self.bars[name].setValue(int(np.clip((value - low) / (high - low), 0, 1) * 1000))
            self.labels[name].setText(f"{value:.2f}" if high <= 1 else f"{value:.1f}")


class TimelinePlot(pg.PlotWidget):
    """Scrolling curves of the last 60 s (one per name)."""

    def __init__(self, names: tuple[str, ...], colours: list[str], y_range: tuple[float, float], title: str) -> None:
        super().__init__()
        self.setTitle(title, size="9pt")
        # Headroom above the scale for the legend, so it does not cover the curves.
        low, high = y_range
        self.setYRange(low, high + 0.32 * (high - low), padding=0.02)
        step = 0.2 if high <= 1 else 2.0
        ticks = [(round(v, 1), f"{v:g}") for v in np.arange(low if high > 1 else 0.0, high + 1e-9, step)]
        self.getAxis("left").setTicks([ticks])
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("bottom", "time", units="s")
        legend = self.addLegend(offset=(5, 2), labelTextSize="7pt", colCount=4)
        legend.setBrush(pg.mkBrush(255, 255, 255, 180))
        # Width-1 pens: antialiased wider pens cost ~20x more to draw in Qt's raster engine.
        self.curves = {name: self.plot([], [], pen=pg.mkPen(colour, width=1), name=name.replace("_", " "))
                       for name, colour in zip(names, colours)}
        self.columns = names
        self.points = 0  # how many points the curves show (for tests and the status)

    def show_history(self, times: np.ndarray, values: np.ndarray, column_offset: int) -> None:
        if not self.isVisible():
            return
        for k, name in enumerate(self.columns):
            self.curves[name].setData(times, values[:, column_offset + k])
        self.points = len(times)


class ExplanationView(QWidget):
    """For one emotion: weight x feature for the 7 features (signed bars) and the bias."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.weights, self.bias = weights, bias
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.choice = QComboBox()
        self.choice.addItems(C.EMOTION_NAMES)
        self.choice.setCurrentText("happy")
        self.choice.setToolTip("the emotion to explain")
        layout.addWidget(self.choice)
        self.summary = QLabel("waiting for the first update")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.plot = pg.PlotWidget()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.setTitle("contribution = weight x feature", size="9pt")
        self.bars = pg.BarGraphItem(x0=np.zeros(7), y=np.arange(7), height=0.7, width=np.zeros(7), brush="#888")
        self.plot.addItem(self.bars)
        self.plot.addLine(x=0, pen=pg.mkPen("k", width=1))
        axis = self.plot.getAxis("left")
        axis.setTicks([[(k, name.replace("_", " ")) for k, name in enumerate(C.MIDLEVEL_NAMES)]])
        self.plot.getPlotItem().invertY(True)
        layout.addWidget(self.plot)
        # The rater question that defines each feature, where people look for it: on the axis labels.
        self.plot.setToolTip("\n".join(f"{name.replace('_', ' ')}: {C.MIDLEVEL_QUESTIONS[name]}"
                                       for name in C.MIDLEVEL_NAMES))
        self.midlevel: np.ndarray | None = None
        self.contributions = np.zeros(7)

    def set_midlevel(self, values: dict[str, float]) -> None:
        self.midlevel = np.array([values[name] for name in C.MIDLEVEL_NAMES])

    def refresh(self) -> None:
        if not self.isVisible() or self.midlevel is None:
            return
        k = C.EMOTION_NAMES.index(self.choice.currentText())
        self.contributions = self.weights[k] * self.midlevel
        colours = ["#2ca02c" if c >= 0 else "#d62728" for c in self.contributions]
        self.bars.setOpts(x0=np.minimum(self.contributions, 0), width=np.abs(self.contributions), brushes=colours)
        limit = max(0.5, float(np.abs(self.contributions).max()) * 1.15)
        self.plot.setXRange(-limit, limit, padding=0)
        total = self.bias[k] + self.contributions.sum()
        order = np.argsort(-np.abs(self.contributions))
        top = ", ".join(f"{C.MIDLEVEL_NAMES[i].replace('_', ' ')} {self.contributions[i]:+.2f}" for i in order[:2])
        self.summary.setText(f"<b>{self.choice.currentText()} = {total:.2f}</b> = bias {self.bias[k]:.2f} + "
                             f"sum of contributions ({self.contributions.sum():+.2f}); strongest: {top}")


# -- faults ------------------------------------------------------------------------------------

ERROR = "error"  # a one-off message (cannot start, a broken preset): shown like a failed part
SEVERITY_ORDER = {faults.FAILED: 0, faults.RECOVERING: 1, faults.DEGRADED: 2}
# (text, background): at least 6:1 contrast, readable from a distance on a dark stage.
BANNER_COLOURS = {
    faults.FAILED: ("#ffffff", "#c00000"),  # white on strong red
    ERROR: ("#ffffff", "#c00000"),
    faults.RECOVERING: ("#ffb300", "#121212"),  # amber on near-black
    faults.DEGRADED: ("#ffe066", "#121212"),  # yellow on near-black
}
PART_LABELS = {"midi": "MIDI", "cpu": "CPU", "machine": "machine sound"}
BANNER_FONT_PX = 17


def part_label(part: str) -> str:
    """How the app names a part of the live path ("MIDI", "input", "recording"...)."""
    return PART_LABELS.get(part, part)


def format_age(seconds: float) -> str:
    """``<1 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "<1 s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def fault_headline(fault: Fault, now_s: float) -> str:
    """``input recovering for 3 s`` or ``recording failed 2 min 05 s ago``."""
    health = fault.health
    age = format_age(now_s - health.since_s)
    if health.state == faults.FAILED:
        return f"{part_label(fault.part)} failed {age} ago"
    return f"{part_label(fault.part)} {health.state} for {age}"


def fault_detail(fault: Fault) -> str:
    """What failed and where: the message, then the file/port/server unless the message names it."""
    health = fault.health
    where = f" [{health.where}]" if health.where and health.where not in health.message else ""
    return f"{health.message}{where}"


def worst_first(current: list[Fault]) -> list[Fault]:
    """Failed, then recovering, then degraded; the oldest first within each."""
    return sorted(current, key=lambda fault: (SEVERITY_ORDER.get(fault.health.state, 3), fault.health.since_s))


class FaultBanner(QWidget):
    """Every current fault, one line each, worst first, coloured by severity; then one message.

    ``set_faults`` replaces the fault lines (the window calls it on every fault signal and once a
    second for the ages); ``set_message`` shows or clears the one-off message line. Hidden when
    there is nothing to show. ``text()`` is the plain text of all lines, one per line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("faultBanner")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._labels: list[QLabel] = []
        self.lines: list[tuple[str, str]] = []  # (state, plain text), as shown
        self._fault_lines: list[tuple[str, str, str]] = []  # (state, headline, detail)
        self._message = ""
        self.hide()

    def set_faults(self, current: list[Fault], now_s: float) -> None:
        self._fault_lines = [(fault.health.state, fault_headline(fault, now_s), fault_detail(fault))
                             for fault in worst_first(current)]
        self._show()

    def set_message(self, message: str) -> None:
        self._message = message
        self._show()

    @property
    def message(self) -> str:
        return self._message

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines)

    def _show(self) -> None:
        rows = list(self._fault_lines)
        if self._message:
            rows.append((ERROR, "", self._message))
        self.lines = [(state, f"{headline}: {detail}" if headline else detail) for state, headline, detail in rows]
        while len(self._labels) < len(rows):
            label = QLabel()
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._layout.addWidget(label)
            self._labels.append(label)
        for label, (state, headline, detail) in zip(self._labels, rows):
            if label.property("state") != state:
                text, background = BANNER_COLOURS.get(state, BANNER_COLOURS[faults.RECOVERING])
                label.setStyleSheet(f"QLabel {{ color: {text}; background: {background}; border: 2px solid {text}; "
                                    f"border-radius: 4px; padding: 6px 10px; font-size: {BANNER_FONT_PX}px; }}")
                label.setProperty("state", state)
            shown = f"<b>{html.escape(headline)}</b>: {html.escape(detail)}" if headline else html.escape(detail)
            if label.text() != shown:
                label.setText(shown)
            label.show()
        for label in self._labels[len(rows):]:
            label.hide()
        self.setVisible(bool(rows))
