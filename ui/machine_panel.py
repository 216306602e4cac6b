"""Machine sound: choose or edit a plugin chain (TOML), and watch each moving parameter."""

from __future__ import annotations

import time

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                             QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from dawemo.machine.chain import ChainError, parse_chain, shipped_chains
from dawemo.machine.processor import ParameterMapper
from dawemo.outputs.mapping import DEFAULT_HOP_S


class MachinePanel(QWidget):
    """Emits ``chain_changed(Chain)`` when a valid chain is applied."""

    chain_changed = pyqtSignal(object)

    def __init__(self, chain_name: str = "tension-bites") -> None:
        super().__init__()
        self.chain = None
        self.preview: ParameterMapper | None = None
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.choice = QComboBox()
        self.choice.addItems(shipped_chains())
        self.open_button = QPushButton("Open chain file...")
        self.apply_button = QPushButton("Apply edits")
        top.addWidget(QLabel("example chain:"))
        top.addWidget(self.choice)
        top.addWidget(self.open_button)
        top.addWidget(self.apply_button)
        top.addStretch(1)
        layout.addLayout(top)
        ports = QFormLayout()
        self.machine_input = QLineEdit()
        self.machine_input.setPlaceholderText("JACK ports with the machine sound, e.g. synth:out_1,synth:out_2")
        self.machine_output = QLineEdit()
        self.machine_output.setPlaceholderText("JACK ports to play to, e.g. system:playback_*")
        ports.addRow("machine input", self.machine_input)
        ports.addRow("machine output", self.machine_output)
        layout.addLayout(ports)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #a40000")
        self.error_label.setWordWrap(True)
        layout.addWidget(self.error_label)
        self.editor = QPlainTextEdit()
        self.editor.setMinimumHeight(120)
        layout.addWidget(self.editor, 2)
        self.lanes = QTableWidget(0, 5)
        self.lanes.setHorizontalHeaderLabels(["parameter", "follows", "range", "value now", "position in range"])
        self.lanes.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.lanes, 1)
        self.choice.currentTextChanged.connect(self.load_shipped)
        self.open_button.clicked.connect(self._ask_open)
        self.apply_button.clicked.connect(self.apply_text)
        if chain_name in shipped_chains():
            self.choice.setCurrentText(chain_name)
        self.load_shipped(self.choice.currentText())

    def load_shipped(self, name: str) -> None:
        from importlib import resources

        resource = resources.files("dawemo.chains") / f"{name}.toml"
        if resource.is_file():
            self.editor.setPlainText(resource.read_text(encoding="utf-8"))
            self.apply_text(label=f"{name}.toml")

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open chain", "", "Chains (*.toml)")
        if path:
            self.open_file(path)

    def open_file(self, path: str) -> bool:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError as error:
            self.error_label.setText(f"cannot read {path}: {error}")
            return False
        self.editor.setPlainText(text)
        return self.apply_text(label=path)

    def apply_text(self, *_, label: str = "chain") -> bool:
        try:
            chain = parse_chain(self.editor.toPlainText(), label if isinstance(label, str) else "chain")
        except ChainError as error:
            self.error_label.setText(str(error))
            return False
        self.error_label.setText("")
        self.chain = chain
        self.preview = ParameterMapper([lane for _, lane in chain.lanes], tick_hz=30.0, hop_s=DEFAULT_HOP_S)
        self.lanes.setRowCount(0)
        for _, lane in chain.lanes:
            row = self.lanes.rowCount()
            self.lanes.insertRow(row)
            for column, text in enumerate((lane.name, lane.source, f"{lane.out_min:g} .. {lane.out_max:g}", "-")):
                self.lanes.setItem(row, column, QTableWidgetItem(text))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            self.lanes.setCellWidget(row, 4, bar)
        self.lanes.resizeColumnsToContents()
        self.chain_changed.emit(chain)
        return True

    def push(self, values: dict) -> None:
        if self.preview is not None:
            self.preview.push(time.monotonic(), values)

    def refresh(self, applied=None) -> None:
        """Show the parameters: the live chain's applied values when it runs, else the preview's."""
        if self.preview is None:
            return
        self.preview.tick(time.monotonic())
        if not self.isVisible():
            return
        values = list(applied) if applied is not None else self.preview.mapped_values()
        lanes = [lane for _, lane in self.chain.lanes]
        for row, value in enumerate(values[: self.lanes.rowCount()]):
            self.lanes.item(row, 3).setText("-" if value is None else f"{value:.4g}")
            if value is not None:
                lane = lanes[row]
                low, high = min(lane.out_min, lane.out_max), max(lane.out_min, lane.out_max)
                self.lanes.cellWidget(row, 4).setValue(int(1000 * (value - low) / (high - low or 1.0)))
