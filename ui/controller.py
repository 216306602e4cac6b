"""The bridge between the engine's threads and the GUI thread.

The engine calls back from its analysis, control and watch threads; those callbacks only put the
data into Qt signals, which Qt queues to the GUI thread. The GUI never waits for the model.

Faults (``dawemo.faults``): the engine's watch thread reports every change of a part's health
(input, MIDI, recording, machine sound, analysis, CPU) through ``fault`` as it sees it, ten times
a second; ``current_faults()`` says which parts are not ok now. A part's fault never stops the
session: a full disk pauses the recording while the CC go on, a lost MIDI port re-opens by itself.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from dawemo import constants as C
from dawemo import faults
from dawemo.faults import Fault, Health

HISTORY_S = 60.0


@dataclass
class SessionConfig:
    """What to start: the choices of the source/output panel."""

    source_kind: str  # file, jack, device, bridge
    source_value: str  # path, comma-separated ports, device name, or bridge name (empty: the only one)
    file_loop: bool = True
    midi_mode: str = "virtual"  # virtual, existing, none
    midi_name: str = "dawemo"
    preset: object = None  # a dawemo.outputs.mapping.Preset
    model_path: str = ""
    chain: object = None  # a dawemo.machine.chain.Chain, or None
    machine_input: str = ""
    machine_output: str = ""
    steady_s: float = C.DEFAULT_STEADY_S  # change-aware averaging; 0: each window on its own


class History:
    """The last ``HISTORY_S`` seconds of updates, for the timelines (GUI thread only)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.times = np.full(capacity, np.nan)
        self.values = np.full((capacity, len(C.EMOTION_NAMES) + len(C.MIDLEVEL_NAMES)), np.nan)
        self.count = 0

    def append(self, time_s: float, values: dict[str, float]) -> None:
        row = self.count % len(self.times)
        self.times[row] = time_s
        self.values[row] = [values[name] for name in C.EMOTION_NAMES + C.MIDLEVEL_NAMES]
        self.count += 1

    def recent(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) in time order, the last HISTORY_S seconds."""
        n = min(self.count, len(self.times))
        order = (np.arange(n) + (self.count - n)) % len(self.times)
        times, values = self.times[order], self.values[order]
        if n:
            keep = times >= times[-1] - HISTORY_S
            times, values = times[keep], values[keep]
        return times, values


class EngineController(QObject):
    """Starts and stops one live session (source, model, MIDI, machine sound, recording)."""

    updated = pyqtSignal(float, dict)  # stream time, {source: value}
    cc_sent = pyqtSignal(list)  # [CcEvent]
    fault = pyqtSignal(object)  # a dawemo.faults.Fault: a part's health changed (its "back" too)
    failed = pyqtSignal(str)  # one line for the user

    def __init__(self) -> None:
        super().__init__()
        self.engine = None
        self.model = None
        self.midi = None
        self.source = None
        self.machine = None
        self.recorder = None
        self.show = None  # dawemo.outputs.show.ShowOutputs when the preset has OSC or DMX lanes
        self._stack: contextlib.ExitStack | None = None
        self.record_started_s: float | None = None
        self.recording_fault: Fault | None = None  # a recording that ended badly (no longer watched)

    @property
    def running(self) -> bool:
        return self.engine is not None

    def start(self, config: SessionConfig) -> None:
        """Open everything or nothing; raises ValueError with one line for the user."""
        from dawemo.engine import WALL_CLOCK, EmotionEngine
        from dawemo.outputs.midi import MidiOutput, MidiPortError
        from dawemo.emotion.model import EmotionModel, ModelError
        from dawemo.inputs.sources import AudioSourceError, DeviceSource, FileSource, JackSource

        if self.running:
            return
        stack = contextlib.ExitStack()
        try:
            self.model = EmotionModel(config.model_path or None)
            # MIDI before any JACK audio client: python-rtmidi holds the GIL while it opens.
            if config.midi_mode != "none":
                self.midi = stack.enter_context(MidiOutput(config.midi_name,
                                                           virtual=config.midi_mode == "virtual"))
            if config.source_kind == "file":
                if not config.source_value:
                    raise ValueError("choose an audio file to play")
                self.source = FileSource(config.source_value, realtime=True, loop=config.file_loop)
            elif config.source_kind == "jack":
                ports = [p.strip() for p in config.source_value.split(",") if p.strip()]
                self.source = JackSource(connect=ports or None)
            elif config.source_kind == "bridge":
                from dawemo.inputs.bridge import BridgeSource

                self.source = BridgeSource(config.source_value or None)
            else:
                self.source = DeviceSource(config.source_value or None)
            stack.enter_context(self.source)
            if config.source_kind == "bridge":  # CC back out of the bridge's MIDI output (and the port)
                from dawemo.outputs.bridge_midi import BridgeMidiOut, MidiFanout

                bridge_midi = stack.enter_context(BridgeMidiOut(source=self.source))
                self.midi = bridge_midi if self.midi is None else MidiFanout([bridge_midi, self.midi])
            if config.chain is not None and (config.machine_input or config.machine_output):
                from dawemo.machine.live import JackMachine

                split = lambda text: [p.strip() for p in text.split(",") if p.strip()]  # noqa: E731
                ports = split(config.machine_input)  # MIDI ports when the chain starts with an instrument
                instrument = config.chain.is_instrument
                self.machine = stack.enter_context(JackMachine(
                    config.chain, [] if instrument else ports, split(config.machine_output),
                    midi_inputs=ports if instrument else None))
            if config.preset is not None and config.preset.show_lanes:
                from dawemo.outputs.show import ShowOutputs

                self.show = stack.enter_context(ShowOutputs(config.preset))
            # on_fault runs on the engine's watch thread: emitting queues the Fault to the GUI thread.
            self.engine = EmotionEngine(self.source, self.model, preset=config.preset, midi=self.midi,
                                        clock=WALL_CLOCK, on_update=self._on_update, on_events=self.cc_sent.emit,
                                        on_fault=self.fault.emit,
                                        parts={"machine": self.machine} if self.machine is not None else None,
                                        show=self.show, steady_s=config.steady_s)
            self.engine.start()
            stack.callback(self.engine.stop)
        except (AudioSourceError, MidiPortError, ModelError, OSError, ValueError, RuntimeError) as error:
            stack.close()
            self._clear()
            raise ValueError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        self._stack = stack

    def _on_update(self, update, values: dict) -> None:
        """Analysis thread: hand over to the GUI thread (queued signal) and the machine sound."""
        if self.machine is not None:
            self.machine.push(values)
        self.updated.emit(float(update.time_s), values)

    def stop(self) -> None:
        """Stop the engine, flush recordings, close ports (safe to call twice)."""
        self.stop_recording()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()
        self._clear()

    def _clear(self) -> None:
        self.engine = self.midi = self.source = self.machine = self.show = None

    # -- stage controls -------------------------------------------------------------------------

    def stage_command(self, name: str) -> None:
        """"hold", "release" or "panic" on every lane; ignored when stopped."""
        if self.engine is not None:
            {"hold": self.engine.hold, "release": self.engine.release, "panic": self.engine.panic}[name]()

    def set_muted(self, lane_name: str, muted: bool) -> None:
        if self.engine is not None:
            self.engine.set_muted(lane_name, muted)

    def set_delay_ms(self, destination: str, delay_ms: float) -> None:
        """A destination's output delay ("midi": the MIDI port's), from now on (values already
        queued keep theirs)."""
        if destination == "midi" and self.engine is not None:
            self.engine.midi_delay_s = delay_ms / 1000.0
        elif self.show is not None and destination in self.show.delays_s:
            self.show.delays_s[destination] = delay_ms / 1000.0

    def current_faults(self) -> list[Fault]:
        """The parts not ok now (GUI thread; reads the parts' health, never waits).

        The running engine's faults, and a recording that closed without saving everything.
        """
        current = self.engine.current_faults() if self.engine is not None else []
        if self.recording_fault is not None and all(fault.part != "recording" for fault in current):
            current.append(self.recording_fault)
        return current

    # -- recording ------------------------------------------------------------------------------

    def start_recording(self, midi_path: str, timeline_path: str, tempo_bpm: float = 120.0) -> None:
        from dawemo.outputs.recorder import AutomationRecorder

        if not self.running:
            raise ValueError("start the engine before recording")
        if not midi_path and not timeline_path:
            raise ValueError("choose a MIDI file and/or a timeline file to record to")
        timing = {"tempo_bpm": tempo_bpm}
        if hasattr(self.source, "recorder_timing"):  # a DAW bridge: on the host's timeline
            timing = self.source.recorder_timing(tempo_bpm, timeout_s=0.5) or timing
            timing.pop("position_s", None)
        recorder = AutomationRecorder(midi_path or None, timeline_path or None,
                                      lanes=self.engine.preset.lanes if self.engine.preset else (),
                                      columns=list(C.EMOTION_NAMES + C.MIDLEVEL_NAMES), **timing)
        try:
            # A full disk does not raise here: the recorder starts "recovering", keeps the take in
            # memory and the engine's watch reports it like any other fault.
            recorder.__enter__()
        except OSError as error:
            raise ValueError(f"cannot record: {error}") from None
        self.recorder = recorder
        self.recording_fault = None
        self.record_started_s = time.monotonic()
        self.engine.set_recorder(recorder)

    def stop_recording(self) -> None:
        """Stop and close the recording; never raises. If it could not save everything, the
        recorder's ``failed`` health stays in ``current_faults()`` and goes out on ``fault``."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        if self.engine is not None:
            self.engine.set_recorder(None)  # from here on no engine thread writes to it
        self.record_started_s = None
        try:
            recorder.__exit__(None, None, None)
            health = recorder.health if isinstance(getattr(recorder, "health", None), Health) else Health()
        except OSError as error:  # a recorder that still raises on a disk fault
            where = str(recorder.midi_path or recorder.timeline_path or "")
            health = Health(faults.FAILED, f"cannot finish the recording: {error}", where, time.monotonic())
        if not health.ok:
            self.recording_fault = Fault("recording", health, time.monotonic())
            self.fault.emit(self.recording_fault)
