"""The mapping editor: a table of CC lanes, edited in place, checked cell by cell.

An invalid cell is marked red with the reason as its tooltip and the last valid preset stays
in use; nothing raises into the event loop.
"""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                             QVBoxLayout, QWidget)

from dawemo.outputs.mapping import Lane, Preset, PresetError
from dawemo.outputs.preset_file import load_preset, save_preset

COLUMNS = ("name", "source", "channel", "cc", "cc14", "in_min", "in_max", "out_min", "out_max", "curve",
           "attack_s", "release_s", "max_rate_hz", "safe", "value")  # safe: what blackout and mute send
INTEGER_KEYS = ("channel", "cc", "cc14")
TEXT_KEYS = ("name", "source", "curve")
BAD = QColor("#f4b6b6")


def lane_cells(lane: Lane) -> list[str]:
    cells = []
    for key in COLUMNS[:-1]:
        value = lane.channel + 1 if key == "channel" else getattr(lane, key)
        cells.append("" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
    return cells


def parse_row(cells: dict[str, str]) -> Lane:
    """Table texts -> Lane; raises PresetError (with ``key``) on the first bad cell."""
    arguments: dict[str, object] = {}
    for key, text in cells.items():
        text = text.strip()
        if key in TEXT_KEYS:
            if text or key != "name":
                arguments[key] = text
            continue
        if text == "":
            continue
        try:
            arguments[key] = int(text) if key in INTEGER_KEYS else float(text)
        except ValueError:
            kind = "an integer" if key in INTEGER_KEYS else "a number"
            raise PresetError(f"{key}: must be {kind}, got {text!r}", key=key, reason=f"must be {kind}") from None
    channel = arguments.pop("channel", 1)
    if not isinstance(channel, int) or not 1 <= channel <= 16:
        raise PresetError("channel must be 1-16", key="channel", reason="must be 1-16")
    return Lane(channel=channel - 1, **arguments)


class MappingEditor(QWidget):
    """Emits ``preset_changed(Preset)`` whenever the table holds a valid preset again."""

    preset_changed = pyqtSignal(object)
    learn_requested = pyqtSignal(int)
    message = pyqtSignal(str)

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        layout = QVBoxLayout(self)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add lane")
        self.duplicate_button = QPushButton("Duplicate")
        self.remove_button = QPushButton("Remove")
        self.learn_button = QPushButton("Learn (send this lane only)")
        self.learn_button.setToolTip("sends a short sweep on the selected lane only, for your DAW's MIDI learn")
        self.load_button = QPushButton("Load preset...")
        self.save_button = QPushButton("Save preset...")
        for button in (self.add_button, self.duplicate_button, self.remove_button, self.learn_button,
                       self.load_button, self.save_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #a40000")
        self.error_label.setWordWrap(True)
        layout.addWidget(self.error_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.replace("_", " ") for c in COLUMNS])
        self.table.verticalHeader().setDefaultSectionSize(22)
        layout.addWidget(self.table)
        self.add_button.clicked.connect(self.add_lane)
        self.duplicate_button.clicked.connect(self.duplicate_lane)
        self.remove_button.clicked.connect(self.remove_lane)
        self.learn_button.clicked.connect(lambda: self.learn_requested.emit(max(0, self.table.currentRow())))
        self.load_button.clicked.connect(self._ask_load)
        self.save_button.clicked.connect(self._ask_save)
        self.table.itemChanged.connect(self._edited)
        self.show_preset(preset)

    # -- table <-> preset -----------------------------------------------------------------------

    def show_preset(self, preset: Preset) -> None:
        self.preset = preset
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for lane in preset.lanes:
            self._append_row(lane_cells(lane))
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        self.error_label.setText("")

    def _append_row(self, cells: list[str]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column, text in enumerate(cells + ["-"]):
            item = QTableWidgetItem(text)
            if COLUMNS[column] == "value":
                item.setFlags(item.flags() & ~item.flags().ItemIsEditable)
            self.table.setItem(row, column, item)

    def _row_cells(self, row: int) -> dict[str, str]:
        return {key: (self.table.item(row, c).text() if self.table.item(row, c) else "")
                for c, key in enumerate(COLUMNS[:-1])}

    def _edited(self, item: QTableWidgetItem) -> None:
        if COLUMNS[item.column()] != "value":
            self.rebuild()

    def rebuild(self) -> bool:
        """Re-read every row; mark bad cells; emit the preset when all are valid."""
        self.table.blockSignals(True)
        try:
            lanes, problems = [], []
            for row in range(self.table.rowCount()):
                for column in range(len(COLUMNS) - 1):
                    cell = self.table.item(row, column)
                    if cell is not None:
                        cell.setBackground(QColor("white"))
                        cell.setToolTip("")
                try:
                    lanes.append(parse_row(self._row_cells(row)))
                except PresetError as error:
                    self._mark(row, error.key, error.reason)
                    problems.append(f"lane {row + 1}: {error.key}: {error.reason}")
            if not problems:
                try:
                    preset = Preset(name=self.preset.name, lanes=lanes, description=self.preset.description,
                                    tick_hz=self.preset.tick_hz, hop_s=self.preset.hop_s,
                                    interpolation=self.preset.interpolation,
                                    destinations=self.preset.destinations, show_lanes=self.preset.show_lanes,
                                    glide_s=self.preset.glide_s, midi_delay_ms=self.preset.midi_delay_ms)  # OSC/DMX lanes: edited in the file
                except PresetError as error:
                    index = getattr(error, "lane_index", None)
                    if index is not None:
                        self._mark(index, error.key, error.reason)
                    problems.append(str(error))
        finally:
            self.table.blockSignals(False)
        if problems:
            self.error_label.setText("not applied, the last valid mapping stays in use: " + "; ".join(problems))
            return False
        self.error_label.setText("")
        self.preset = preset
        self.preset_changed.emit(preset)
        return True

    def _mark(self, row: int, key: str | None, reason: str) -> None:
        column = COLUMNS.index(key) if key in COLUMNS else 0
        cell = self.table.item(row, column)
        if cell is not None:
            cell.setBackground(BAD)
            cell.setToolTip(reason)

    # -- buttons --------------------------------------------------------------------------------

    def add_lane(self) -> None:
        used = {lane.cc for lane in self.preset.lanes if lane.cc is not None}
        free = next(cc for cc in range(20, 120) if cc not in used)
        self._append_row(lane_cells(Lane(source="valence", cc=free)))
        self.rebuild()

    def duplicate_lane(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        cells = self._row_cells(row)
        self._append_row([cells[key] for key in COLUMNS[:-1]])
        self.rebuild()  # the copy sends on the same CC: marked until its CC is changed

    def remove_lane(self) -> None:
        row = self.table.currentRow()
        if row >= 0 and self.table.rowCount() > 1:
            self.table.removeRow(row)
            self.rebuild()

    def show_values(self, values: list[float | None]) -> None:
        if not self.isVisible():
            return
        self.table.blockSignals(True)
        for row, value in enumerate(values[: self.table.rowCount()]):
            item = self.table.item(row, len(COLUMNS) - 1)
            if item is not None:
                item.setText("-" if value is None else f"{value:.0f}")
        self.table.blockSignals(False)

    def load(self, path: str) -> bool:
        try:
            preset = load_preset(path)
        except PresetError as error:
            self.message.emit(str(error))
            return False
        self.show_preset(preset)
        self.preset_changed.emit(preset)
        return True

    def save(self, path: str) -> bool:
        if not self.rebuild():
            self.message.emit("fix the marked cells before saving")
            return False
        try:
            save_preset(self.preset, path)
        except OSError as error:
            self.message.emit(f"cannot save preset: {error}")
            return False
        return True

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", "", "Presets (*.toml)")
        if path:
            self.load(path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", "", "Presets (*.toml)")
        if path:
            self.save(path if path.endswith(".toml") else path + ".toml")
