"""The main window: session controls on top, the fault banner, the live view / explanation /
mapping / machine tabs, recording, and a status bar. Only dawemo's public API is used; the model
runs in the engine's threads, results arrive through queued signals, and a timer redraws what is
visible.

Faults: every part that is not ok has one line in the banner, worst first, named with what failed
and where, and since when; the status bar counts them ("⚠ 2 faults") and says when a part is
back. A fault reaches the banner through the controller's queued ``fault`` signal as soon as the
engine's watch thread sees it (within 0.1 s), not on the slower status timer.
"""

from __future__ import annotations

import math
import time

import numpy as np
from PyQt6.QtCore import QElapsedTimer, Qt, QTimer
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                             QLineEdit, QMainWindow, QProgressBar, QPushButton, QSplitter, QTabWidget, QVBoxLayout,
                             QWidget)

from dawemo import constants as C
from dawemo.outputs.mapping import PresetError
from dawemo.outputs.preset_file import load_preset
from dawemo.ui.controller import EngineController, History, SessionConfig
from dawemo.ui.machine_panel import MachinePanel
from dawemo.ui.mapping_editor import MappingEditor
from dawemo.ui.settings import AppSettings
from dawemo.ui.stage_panel import SHORTCUTS as STAGE_SHORTCUTS
from dawemo.ui.stage_panel import ShowLanesView, StagePanel
from dawemo.ui.widgets import (BANNER_COLOURS, EMOTION_COLOURS, MIDLEVEL_COLOURS, ExplanationView, FaultBanner,
                              MeterBank, TimelinePlot, part_label)

REDRAW_HZ = 30
FAULT_REFRESH_MS = 250  # how often the banner re-reads the parts' health (its "for 3 s" ages)
BACK_NOTE_MS = 6000  # how long "input is back" stays in the status bar
SOURCE_KINDS = {"file": "Audio file (real time)", "jack": "JACK ports", "device": "Audio device",
                "bridge": "DAW bridge (plugin)"}
MIDI_MODES = {"virtual": "Virtual MIDI port", "existing": "Existing MIDI port", "none": "No MIDI"}


class StallMeter:
    """Measures event-loop stalls: a 10 ms timer that records how late each tick ran."""

    def __init__(self, parent) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last_ms = None
        self.late_ms: list[float] = []
        self.timer = QTimer(parent)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(10)

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        if self.last_ms is not None:
            self.late_ms.append(max(0.0, now - self.last_ms - 10.0))
        self.last_ms = now

    def reset(self) -> None:
        self.late_ms.clear()
        self.last_ms = None


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, config_folder=None) -> None:
        super().__init__()
        self.settings = settings or AppSettings.load(config_folder)
        self.config_folder = config_folder
        self.setWindowTitle("dawemo - explainable music emotion, live")
        self.resize(1280, 720)
        self.controller = EngineController()
        self.history = History()
        self.latest: dict[str, float] | None = None
        self.updates_received = 0
        self.errors: list[str] = []
        self._dirty, self._drawn_tab = True, -1
        self._redraw_jobs: list = []
        try:
            preset = load_preset(self.settings.preset or "default")
        except PresetError as error:
            self.errors.append(str(error))
            preset = load_preset("default")
        self._build(preset)
        self.controller.updated.connect(self._on_update)
        self.controller.fault.connect(self._on_fault)
        self.redraw = QTimer(self)
        self.redraw.timeout.connect(self._redraw)
        self.redraw.start(int(1000 / REDRAW_HZ))
        self.stalls = StallMeter(self)
        self.fault_ages = QTimer(self)
        self.fault_ages.timeout.connect(self._show_faults)
        self.fault_ages.start(FAULT_REFRESH_MS)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.toggle_engine)
        QShortcut(QKeySequence("F5"), self, activated=self.toggle_engine)
        QShortcut(QKeySequence("Ctrl+R"), self, activated=self.toggle_recording)
        for command, key in STAGE_SHORTCUTS.items():
            QShortcut(QKeySequence(key), self, activated=lambda command=command: self.controller.stage_command(command))
        if self.errors:
            self.show_error("; ".join(self.errors))  # a broken preset and a broken model both show

    # -- layout ---------------------------------------------------------------------------------

    def _build(self, preset) -> None:
        from dawemo.emotion.model import EmotionModel

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 2)
        controls = QHBoxLayout()
        self.source_kind = QComboBox()
        for key, label in SOURCE_KINDS.items():
            self.source_kind.addItem(label, key)
        self.source_kind.setCurrentIndex(list(SOURCE_KINDS).index(self.settings.source_kind)
                                         if self.settings.source_kind in SOURCE_KINDS else 0)
        self.source_value = QLineEdit()
        self.source_value.setMinimumWidth(260)
        self.browse_button = QPushButton("...")
        self.browse_button.setFixedWidth(30)
        self.loop_box = QCheckBox("loop")
        self.loop_box.setChecked(self.settings.file_loop)
        self.midi_mode = QComboBox()
        for key, label in MIDI_MODES.items():
            self.midi_mode.addItem(label, key)
        self.midi_mode.setCurrentIndex(list(MIDI_MODES).index(self.settings.midi_mode)
                                       if self.settings.midi_mode in MIDI_MODES else 0)
        self.midi_name = QLineEdit(self.settings.midi_name)
        self.midi_name.setMaximumWidth(150)
        self.start_button = QPushButton("Start (Ctrl+Enter)")
        self.record_button = QPushButton("Record (Ctrl+R)")
        self.record_button.setCheckable(True)
        self.record_time = QLabel("not recording")
        for widget in (QLabel("input"), self.source_kind, self.source_value, self.browse_button, self.loop_box,
                       QLabel("MIDI"), self.midi_mode, self.midi_name, self.start_button, self.record_button,
                       self.record_time):
            controls.addWidget(widget)
        controls.addStretch(1)
        outer.addLayout(controls)
        self.stage = StagePanel()  # hold / release / blackout, mutes, delays: readable from a distance
        self.stage.set_preset(preset)
        self.stage.set_running(False)
        self.stage.command.connect(self.controller.stage_command)
        self.stage.mute.connect(self.controller.set_muted)
        self.stage.delay.connect(self._set_delay)
        outer.addWidget(self.stage)
        self.error_banner = FaultBanner()  # current faults, worst first, then the latest message
        outer.addWidget(self.error_banner)

        self.tabs = QTabWidget()
        outer.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # Live view: meters | timelines | explanation
        live = QSplitter()
        meters = QWidget()
        meter_layout = QVBoxLayout(meters)
        meter_layout.setContentsMargins(0, 0, 0, 0)
        self.emotion_meters = MeterBank(C.EMOTION_NAMES, C.EMOTION_SCALE, "Emotions (1-9)")
        self.midlevel_meters = MeterBank(C.MIDLEVEL_NAMES, C.MIDLEVEL_SCALE, "Mid-level features (0-1)",
                                         tooltips=C.MIDLEVEL_QUESTIONS)
        self.level_meter = QProgressBar()
        self.level_meter.setRange(-60, 0)
        self.level_meter.setFormat("input %v dBFS")
        self.level_meter.setValue(-60)
        meter_layout.addWidget(self.emotion_meters)
        meter_layout.addWidget(self.midlevel_meters)
        meter_layout.addWidget(self.level_meter)
        meter_layout.addStretch(1)
        plots = QWidget()
        plot_layout = QVBoxLayout(plots)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        self.emotion_plot = TimelinePlot(C.EMOTION_NAMES, EMOTION_COLOURS, C.EMOTION_SCALE, "emotions, last 60 s")
        self.midlevel_plot = TimelinePlot(C.MIDLEVEL_NAMES, MIDLEVEL_COLOURS, C.MIDLEVEL_SCALE,
                                          "mid-level features, last 60 s")
        plot_layout.addWidget(self.emotion_plot)
        plot_layout.addWidget(self.midlevel_plot)
        try:
            model = EmotionModel(self.settings.model_path or None)
            weights, bias = model.emotion_weights, model.emotion_bias
            self.model_label = f"{model.name} v{model.version}"
        except Exception as error:  # noqa: BLE001 - shown in the window; the app still opens
            self.errors.append(f"model: {error}")
            weights, bias = np.zeros((8, 7)), np.zeros(8)
            self.model_label = "no model"
        self.explanation = ExplanationView(weights, bias)
        self.explanation.choice.currentTextChanged.connect(lambda _: setattr(self, "_dirty", True))
        live.addWidget(meters)
        live.addWidget(plots)
        live.addWidget(self.explanation)
        live.setSizes([270, 640, 360])
        self.tabs.addTab(live, "Live")

        self.mapping = MappingEditor(preset)
        self.mapping.preset_changed.connect(self._preset_changed)
        self.mapping.learn_requested.connect(self._learn)
        self.mapping.message.connect(self.show_error)
        self.tabs.addTab(self.mapping, "Mapping (MIDI CC)")

        self.machine = MachinePanel(self.settings.chain)
        self.tabs.addTab(self.machine, "Machine sound")
        self.show_lanes = ShowLanesView()
        self.show_lanes.set_preset(preset)
        self.tabs.addTab(self.show_lanes, "Show (OSC, DMX)")

        record = QWidget()
        form = QFormLayout(record)
        self.record_midi = QLineEdit(self.settings.record_midi_path)
        self.record_midi.setPlaceholderText("automation.mid")
        self.record_timeline = QLineEdit(self.settings.record_timeline_path)
        self.record_timeline.setPlaceholderText("timeline.csv")
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(20, 400)
        self.tempo.setValue(self.settings.tempo_bpm)
        self.model_path = QLineEdit(self.settings.model_path)
        self.model_path.setPlaceholderText("shipped model")
        self.steady = QDoubleSpinBox()
        self.steady.setRange(0, 120)
        self.steady.setSuffix(" s")
        self.steady.setSpecialValueText("off: follow every 2 s window")
        self.steady.setValue(self.settings.steady_s)
        self.steady.setToolTip("Values hold steady while the music stays the same (this time constant) and "
                               "jump when it changes; takes effect at the next start")
        form.addRow("MIDI file (type 1, one track per lane)", self.record_midi)
        form.addRow("timeline (CSV or JSONL)", self.record_timeline)
        form.addRow("tempo (BPM)", self.tempo)
        form.addRow("model (ONNX)", self.model_path)
        form.addRow("hold steady on one piece", self.steady)
        self.tabs.addTab(record, "Record and model")

        self.status_engine = QLabel("stopped")
        self.status_details = QLabel("")
        self.status_faults = QLabel("")  # "⚠ 2 faults"; permanent, so status messages never hide it
        self.status_faults.hide()
        self.statusBar().addWidget(self.status_engine)
        self.statusBar().addPermanentWidget(self.status_faults)
        self.statusBar().addPermanentWidget(self.status_details)
        self.source_value.setText(self._source_text(self.settings.source_kind))
        self.source_kind.currentIndexChanged.connect(
            lambda: self.source_value.setText(self._source_text(self.source_kind.currentData())))
        self.browse_button.clicked.connect(self._browse)
        self.start_button.clicked.connect(self.toggle_engine)
        self.record_button.clicked.connect(self.toggle_recording)

    def _source_text(self, kind: str) -> str:
        if kind == "bridge":  # the running bridges, for the performer to pick (empty: the only one)
            from dawemo.bridge_shm import list_bridges

            bridges = list_bridges()
            self.source_value.setToolTip("running: " + ("; ".join(info.label for info in bridges) or "none"))
            return bridges[0].name if len(bridges) == 1 else ""
        self.source_value.setToolTip("")
        return {"file": self.settings.file_path, "jack": self.settings.jack_ports,
                "device": self.settings.device_name}.get(kind, "")

    def _browse(self) -> None:
        if self.source_kind.currentData() == "file":
            path, _ = QFileDialog.getOpenFileName(self, "Audio file", "", "Audio (*.wav *.flac *.mp3 *.ogg *.aiff)")
            if path:
                self.source_value.setText(path)

    # -- engine ---------------------------------------------------------------------------------

    def toggle_engine(self) -> None:
        if self.controller.running:
            self.stop_engine()
        else:
            self.start_engine()

    def start_engine(self) -> bool:
        self.remember()
        config = SessionConfig(
            source_kind=self.source_kind.currentData(), source_value=self.source_value.text().strip(),
            file_loop=self.loop_box.isChecked(), midi_mode=self.midi_mode.currentData(),
            midi_name=self.midi_name.text().strip() or "dawemo", preset=self.mapping.preset,
            model_path=self.model_path.text().strip(), chain=self.machine.chain,
            machine_input=self.machine.machine_input.text().strip(),
            machine_output=self.machine.machine_output.text().strip(), steady_s=float(self.steady.value()))
        self.status_engine.setText("starting...")
        try:
            self.controller.start(config)
        except ValueError as error:
            self.status_engine.setText("stopped")
            self.show_error(f"cannot start: {error}")
            return False
        self.clear_error()
        self.start_button.setText("Stop (Ctrl+Enter)")
        self.stage.set_running(True)
        return True

    def stop_engine(self) -> None:
        if self.record_button.isChecked():
            self.record_button.setChecked(False)
        recording = self.controller.recorder is not None
        self.controller.stop()
        self.stage.set_running(False)
        self.start_button.setText("Start (Ctrl+Enter)")
        self.record_time.setText(self._recording_end_text() if recording else "not recording")
        self.status_engine.setText("stopped")
        self._show_faults()

    def toggle_recording(self) -> None:
        if self.controller.recorder is not None:
            self.controller.stop_recording()
            self.record_button.setChecked(False)
            self.record_time.setText(self._recording_end_text())
            self._show_faults()
            return
        try:
            self.controller.start_recording(self.record_midi.text().strip(), self.record_timeline.text().strip(),
                                            self.tempo.value())
        except ValueError as error:
            self.record_button.setChecked(False)
            self.show_error(str(error))
            return
        self.record_button.setChecked(True)
        self._show_faults()  # a failed take's line goes with the new take

    def _recording_end_text(self) -> str:
        return "recording saved" if self.controller.recording_fault is None else "recording incomplete (see above)"

    def _set_delay(self, destination: str, delay_ms: int) -> None:
        """A destination's delay: at once when running, and in the preset for the next start."""
        if destination == "midi":
            self.mapping.preset.midi_delay_ms = float(delay_ms)
        elif destination in self.mapping.preset.destinations:
            self.mapping.preset.destinations[destination].delay_ms = float(delay_ms)
        self.controller.set_delay_ms(destination, delay_ms)

    def _preset_changed(self, preset) -> None:
        self.stage.set_preset(preset)
        self.show_lanes.set_preset(preset)
        if self.controller.engine is not None:
            self.controller.engine.set_preset(preset)

    def _learn(self, lane_index: int) -> None:
        engine = self.controller.engine
        if engine is None or self.controller.midi is None:
            self.show_error("learn needs a running engine with a MIDI output")
            return
        try:
            engine.learn(lane_index)
        except (IndexError, RuntimeError) as error:
            self.show_error(str(error))

    # -- data from the engine (GUI thread, queued) ----------------------------------------------

    def _on_update(self, time_s: float, values: dict) -> None:
        self.latest = values
        self._dirty = True
        self.updates_received += 1
        self.history.append(time_s, values)
        self.emotion_meters.set_values(values)
        self.midlevel_meters.set_values(values)
        self.explanation.set_midlevel(values)
        self.machine.push(values)

    def _on_fault(self, fault) -> None:
        """A part's health changed (queued from the engine's watch thread, or a recording's end)."""
        if fault.health.ok:
            self.statusBar().showMessage(f"{part_label(fault.part)} is back", BACK_NOTE_MS)
        self._show_faults()

    def _show_faults(self) -> None:
        """The banner and the status bar's count from the parts' health now (never waits)."""
        current = self.controller.current_faults()
        self.error_banner.set_faults(current, time.monotonic())
        if current:
            worst = self.error_banner.lines[0][0]
            text, background = BANNER_COLOURS[worst]
            self.status_faults.setStyleSheet(f"color: {text}; background: {background}; font-weight: bold; "
                                             "padding: 1px 8px; border-radius: 3px")
            self.status_faults.setText(f"⚠ {len(current)} fault{'s' if len(current) > 1 else ''}")
            self.status_faults.setToolTip(self.error_banner.text())
        self.status_faults.setVisible(bool(current))

    def show_error(self, message: str) -> None:
        """A one-off message (cannot start, a broken file): the banner's last line and the status bar."""
        self.error_banner.set_message(message)
        self.statusBar().showMessage(message, 10000)

    def clear_error(self) -> None:
        """Clear the message; the faults' lines stay until their parts are back."""
        self.error_banner.set_message("")

    # -- redraw (timer) -------------------------------------------------------------------------

    def _redraw(self) -> None:
        # Meters, timelines and the explanation change only with a model update (about 2 per
        # second): redraw them then, not on every tick of the timer.
        # One part per tick, so a redraw never holds the event loop for all of them at once.
        if self._dirty or self.tabs.currentIndex() != self._drawn_tab:
            self._dirty, self._drawn_tab = False, self.tabs.currentIndex()
            times, values = self.history.recent()
            self._redraw_jobs = [
                lambda: (self.emotion_meters.refresh(), self.midlevel_meters.refresh()),
                lambda: self.emotion_plot.show_history(times, values, 0),
                lambda: self.midlevel_plot.show_history(times, values, len(C.EMOTION_NAMES)),
                self.explanation.refresh,
            ]
        if self._redraw_jobs:
            self._redraw_jobs.pop(0)()
        engine = self.controller.engine
        machine = self.controller.machine
        self.machine.refresh(machine.processor.applied if machine is not None and machine.processor else None)
        if engine is None:
            return
        if engine.mapper is not None:
            self.mapping.show_values(engine.mapper.mapped_values())
        self.stage.set_state(engine.stage.mode, engine.stage.muted)
        if engine.show_mapper is not None:
            self.show_lanes.show_values(engine.show_mapper.sent_values())
        if self.controller.record_started_s is not None:
            elapsed = time.monotonic() - self.controller.record_started_s
            self.record_time.setText(f"recording {int(elapsed // 60):02d}:{elapsed % 60:04.1f}")
        now = time.monotonic()
        if now - getattr(self, "_last_status_s", 0.0) >= 0.5:
            self._last_status_s = now
            self._show_status(engine)

    def _show_status(self, engine) -> None:
        stats = engine.stats()  # its faults reach the banner through the fault signal
        level = stats.level_dbfs if math.isfinite(stats.level_dbfs) else -60
        self.level_meter.setValue(int(max(-60, min(0, level))))
        midi = self.controller.midi
        port = midi.port_name if midi is not None and midi.port_name else "no MIDI"
        latency = ("-" if math.isnan(stats.latency_ms_p50)
                   else f"{stats.latency_ms_p50:.0f}/{stats.latency_ms_p99:.0f} ms")
        source = self.controller.source
        rate = f"{source.sample_rate:g} Hz" if source is not None and source.sample_rate else "-"
        self.status_engine.setText(f"engine {stats.state}, {stats.stream_time_s:.0f} s")
        self.status_details.setText(
            f"model {self.model_label} | MIDI {port} | {rate} | latency p50/p99 {latency} | "
            f"{stats.update_rate_hz:.1f} updates/s | dropped {stats.dropped_frames} | CPU {stats.cpu_percent:.0f}%")

    # -- lifetime -------------------------------------------------------------------------------

    def remember(self) -> None:
        s = self.settings
        s.source_kind = self.source_kind.currentData()
        value = self.source_value.text().strip()
        if s.source_kind == "file":
            s.file_path = value
        elif s.source_kind == "jack":
            s.jack_ports = value
        elif s.source_kind == "device":
            s.device_name = value
        s.file_loop = self.loop_box.isChecked()
        s.midi_mode, s.midi_name = self.midi_mode.currentData(), self.midi_name.text().strip()
        if self.mapping.preset.path is not None:
            s.preset = str(self.mapping.preset.path)
        s.chain = self.machine.choice.currentText()
        s.record_midi_path, s.record_timeline_path = self.record_midi.text().strip(), self.record_timeline.text().strip()
        s.tempo_bpm, s.model_path = float(self.tempo.value()), self.model_path.text().strip()
        s.steady_s = float(self.steady.value())
        try:
            s.save(self.config_folder)
        except OSError as error:
            self.show_error(f"cannot save settings: {error}")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.remember()
        self.stop_engine()
        super().closeEvent(event)
