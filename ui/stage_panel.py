"""Stage controls in the app: hold, release, blackout, per-lane mute and per-destination delay.

Large buttons with their shortcuts on them and one large state word (FOLLOWING, HOLD, BLACKOUT,
in colour on black) so the state reads from a few metres away on a dark stage. The panel only
calls the controller; the engine applies each command on its next control tick (a blackout goes
out at once).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from dawemo.outputs.stage import FOLLOW, HOLD, PANIC

SHORTCUTS = {"hold": "F9", "release": "F10", "panic": "F12"}
STATE_STYLES = {  # (word, text colour, background): high contrast on black
    FOLLOW: ("FOLLOWING", "#7CFC00", "#000000"),
    HOLD: ("HOLD", "#ffb300", "#000000"),
    PANIC: ("BLACKOUT", "#ffffff", "#c62828"),
    "stopped": ("STOPPED", "#9e9e9e", "#000000"),
}
BIG_FONT_PX = 22


class StagePanel(QWidget):
    """Hold / release / blackout buttons, the stage state, a mute toggle per lane and a delay per destination.

    Signals carry the performer's commands: ``command`` ("hold", "release", "panic"),
    ``mute`` (lane name, muted), ``delay`` (destination name, ms).
    """

    command = pyqtSignal(str)
    mute = pyqtSignal(str, bool)
    delay = pyqtSignal(str, int)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("stagePanel")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 2, 0, 2)
        top = QHBoxLayout()
        self.state_label = QLabel()
        self.state_label.setMinimumWidth(190)
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        top.addWidget(self.state_label)
        self.buttons: dict[str, QPushButton] = {}
        for name, text in (("hold", "HOLD"), ("release", "RELEASE"), ("panic", "BLACKOUT")):
            button = QPushButton(f"{text}  {SHORTCUTS[name]}")
            button.setMinimumHeight(44)
            colour = {"hold": "#ffb300", "release": "#7CFC00", "panic": "#ff5252"}[name]
            button.setStyleSheet(f"QPushButton {{ font-size: {BIG_FONT_PX - 4}px; font-weight: bold; color: {colour}; "
                                 f"background: #121212; border: 2px solid {colour}; border-radius: 6px; "
                                 f"padding: 4px 14px; }} QPushButton:disabled {{ color: #555; border-color: #555; }}")
            button.clicked.connect(lambda _=False, name=name: self.command.emit(name))
            self.buttons[name] = button
            top.addWidget(button)
        self.delays_row = QHBoxLayout()
        top.addLayout(self.delays_row)
        top.addStretch(1)
        outer.addLayout(top)
        mutes = QWidget()
        self.mutes_row = QHBoxLayout(mutes)
        self.mutes_row.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidget(mutes)
        scroll.setWidgetResizable(True)
        scroll.setFixedHeight(46)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer.addWidget(scroll)
        self.mute_buttons: dict[str, QPushButton] = {}
        self.delay_boxes: dict[str, QSpinBox] = {}
        self._shown = None
        self.set_state("stopped", frozenset())

    def set_preset(self, preset) -> None:
        """One mute toggle per lane name, one delay box per destination (kept when names stay)."""
        names = list(dict.fromkeys(lane.name for lane in list(preset.lanes) + list(preset.show_lanes)))
        if names != list(self.mute_buttons):
            _clear(self.mutes_row)
            self.mute_buttons = {}
            self.mutes_row.addWidget(QLabel("mute"))
            for name in names:
                button = QPushButton(name)
                button.setCheckable(True)
                button.setStyleSheet("QPushButton { font-size: 14px; padding: 3px 8px; } "
                                     "QPushButton:checked { background: #c62828; color: white; font-weight: bold; }")
                button.toggled.connect(lambda on, name=name: self.mute.emit(name, on))
                self.mute_buttons[name] = button
                self.mutes_row.addWidget(button)
            self.mutes_row.addStretch(1)
        _clear(self.delays_row)
        self.delay_boxes = {}
        delays = [("midi", "MIDI", preset.midi_delay_ms, "output delay of the MIDI port")]
        delays += [(name, name, d.delay_ms, f"output delay of {d.protocol} '{name}' ({d.host}:{d.port})")
                   for name, d in preset.destinations.items()]
        for name, label, delay_ms, tip in delays:
            box = QSpinBox()
            box.setRange(0, 5000)
            box.setSuffix(" ms")
            box.setValue(int(round(delay_ms)))
            box.setToolTip(tip)
            box.valueChanged.connect(lambda value, name=name: self.delay.emit(name, value))
            self.delays_row.addWidget(QLabel(f"{label} delay"))
            self.delays_row.addWidget(box)
            self.delay_boxes[name] = box

    def set_running(self, running: bool) -> None:
        for button in list(self.buttons.values()) + list(self.mute_buttons.values()):
            button.setEnabled(running)
        if not running:
            for button in self.mute_buttons.values():
                button.blockSignals(True)
                button.setChecked(False)
                button.blockSignals(False)
            self.set_state("stopped", frozenset())

    def set_state(self, mode: str, muted: frozenset) -> None:
        """Show the stage state (cheap when unchanged: called by the redraw timer)."""
        shown = (mode, muted)
        if shown == self._shown:
            return
        self._shown = shown
        word, colour, background = STATE_STYLES.get(mode, STATE_STYLES[FOLLOW])
        if muted and mode == FOLLOW:
            word = f"FOLLOWING, {len(muted)} MUTED"
        self.state_label.setText(word)
        self.state_label.setStyleSheet(f"QLabel {{ font-size: {BIG_FONT_PX + 4}px; font-weight: bold; color: {colour}; "
                                       f"background: {background}; border: 3px solid {colour}; border-radius: 6px; "
                                       f"padding: 4px 12px; }}")
        for name, button in self.mute_buttons.items():
            if button.isChecked() != (name in muted):
                button.blockSignals(True)
                button.setChecked(name in muted)
                button.blockSignals(False)

    @property
    def state_text(self) -> str:
        return self.state_label.text()


def _clear(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().deleteLater()


class ShowLanesView(QWidget):
    """The preset's OSC and DMX lanes: name, target, what was last sent (read-only; edit the file)."""

    def __init__(self) -> None:
        from PyQt6.QtWidgets import QTableWidget

        super().__init__()
        layout = QVBoxLayout(self)
        self.note = QLabel()
        layout.addWidget(self.note)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["lane", "target", "value"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)

    def set_preset(self, preset) -> None:
        from PyQt6.QtWidgets import QTableWidgetItem

        lanes = list(preset.show_lanes)
        self.note.setText(
            f"{len(lanes)} OSC/DMX lanes to {len(preset.destinations)} destinations; edit them in the preset "
            "file (docs/show-control.md)" if lanes else
            "this preset sends MIDI only; presets with OSC or DMX lanes: osc-visuals, lights (docs/show-control.md)")
        self.table.setRowCount(len(lanes))
        for row, lane in enumerate(lanes):
            for column, text in enumerate((lane.name, lane.target_url, "-")):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def show_values(self, values: list) -> None:
        """Each lane's last value (None: nothing sent yet), on the redraw timer."""
        if not self.isVisible():
            return
        for row, value in enumerate(values[: self.table.rowCount()]):
            text = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
            item = self.table.item(row, 2)
            if item is not None and item.text() != text:
                item.setText(text)
