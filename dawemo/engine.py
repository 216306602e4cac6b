"""The live engine: audio source -> emotion model (worker thread) -> CC mapping -> MIDI and recorder.

The analysis thread drains the source (whose audio callback only fills a ring buffer), runs the
same ``EmotionTracker`` as ``dawemo analyze``, and pushes each update to the mapper; a control
thread ticks the mapper so CC values ramp smoothly between updates. Nothing here blocks the audio
callback, and nothing here touches a GUI.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dawemo import constants as C
from dawemo.emotion.tracker import EmotionTracker, EmotionUpdate
from dawemo.outputs.mapping import CcEvent, CcMapper, Preset, update_values
from dawemo.emotion.model import EmotionModel
from dawemo.inputs.sources import AudioSource, AudioSourceError

WALL_CLOCK = "wall"  # live: updates and CC ticks on time.monotonic()
STREAM_CLOCK = "stream"  # offline: on the audio's own time, as fast as the source delivers


@dataclass
class EngineStats:
    """What a live view shows; read with ``EmotionEngine.stats()``."""

    state: str  # "idle", "running", "finished", "error"
    stream_time_s: float  # audio analysed so far
    updates: int
    update_rate_hz: float
    dropped_frames: int
    cpu_percent: float  # of one core, whole process, since the last stats() call
    latency_ms_p50: float  # audio block arrival -> its update's CC events handed to the MIDI port
    latency_ms_p99: float
    level_dbfs: float
    cc_events: int
    last_error: str | None
    midlevel: dict | None
    emotions: dict | None


class EmotionEngine:
    """Runs the live path in two threads; a context manager (start on enter, stop and flush on exit).

    Args:
        source: an opened ``AudioSource`` delivering audio at the model's rate.
        model: the ONNX model.
        window_s, hop_s: analysis window and update interval (as for ``dawemo analyze``).
        preset: CC mapping; None analyses without sending anything.
        midi: an opened ``MidiOutput`` (or anything with ``send(events)``), or None.
        recorder: an entered ``AutomationRecorder``, or None.
        clock: ``"wall"`` for live use, ``"stream"`` to run on audio time (offline files).
        on_update: called from the analysis thread as ``on_update(update, values)``.
        on_events: called with each batch of CC events (analysis or control thread).
    """

    def __init__(self, source: AudioSource, model: EmotionModel, window_s: float = C.DEFAULT_WINDOW_S,
                 hop_s: float = C.DEFAULT_HOP_S, preset: Preset | None = None, midi=None, recorder=None,
                 clock: str = WALL_CLOCK,
                 on_update: Callable[[EmotionUpdate, dict], None] | None = None,
                 on_events: Callable[[list[CcEvent]], None] | None = None) -> None:
        if clock not in (WALL_CLOCK, STREAM_CLOCK):
            raise ValueError(f"clock must be {WALL_CLOCK!r} or {STREAM_CLOCK!r}, got {clock!r}")
        self.source = source
        self.model = model
        self.tracker = EmotionTracker(model, window_s, hop_s)
        # The mapper ramps between updates over exactly one hop of the tracker.
        self.preset = dataclasses.replace(preset, hop_s=self.tracker.hop_s) if preset is not None else None
        self.mapper = CcMapper(self.preset) if self.preset is not None else None
        self.midi = midi
        self.recorder = recorder
        self.clock = clock
        self.on_update = on_update
        self.on_events = on_events
        self._lock = threading.Lock()  # the mapper is used by both threads
        self._recorder_lock = threading.Lock()  # lets set_recorder swap it while both threads record
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.state = "idle"
        self.last_error: str | None = None
        self.updates = 0
        self.cc_events = 0
        self._update_times: deque[float] = deque(maxlen=64)
        self._latencies_s: deque[float] = deque(maxlen=2000)
        self._awaiting_arrival_s: float | None = None  # block arrival of the newest update not yet sent
        self._last_update: tuple[np.ndarray, np.ndarray] | None = None
        self._stream_samples = 0
        self._cpu_mark = (time.process_time(), time.monotonic())
        self.finished = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "EmotionEngine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self.state = "running"
        self._threads = [threading.Thread(target=self._analyse, name="dawemo-analysis", daemon=True)]
        if self.mapper is not None and self.clock == WALL_CLOCK:
            self._threads.append(threading.Thread(target=self._control, name="dawemo-control", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads; the last CC values are sent, recordings flushed by their owner."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self.state == "running":
            self.state = "idle"

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the source is exhausted (files) or ``timeout_s`` passes; True when finished."""
        return self.finished.wait(timeout_s)

    # -- threads --------------------------------------------------------------------------------

    def _now(self, stream_time_s: float) -> float:
        return time.monotonic() if self.clock == WALL_CLOCK else stream_time_s

    def _analyse(self) -> None:
        while not self._stop.is_set():
            try:
                block = self.source.read(timeout_s=0.05)
            except AudioSourceError as error:
                self._fail(str(error))
                self._stop.wait(1.0)  # the source keeps trying to recover; do not spin
                continue
            if block is None:
                if self.source.finished:
                    self.state = "finished"
                    self.finished.set()
                    return
                continue
            arrival_s = time.monotonic()
            self._stream_samples += len(block)
            for update in self.tracker.process(block):
                self._publish(update, arrival_s)

    def _publish(self, update: EmotionUpdate, arrival_s: float) -> None:
        values = update_values(update.midlevel, update.emotions)
        now = self._now(update.time_s)
        self.updates += 1
        self._update_times.append(time.monotonic())
        self._last_update = (update.midlevel, update.emotions)
        with self._recorder_lock:
            if self.recorder is not None:
                self.recorder.record_update(now, values)
        if self.mapper is not None:
            with self._lock:
                self.mapper.push(now, values)
                self._awaiting_arrival_s = arrival_s
                events = self.mapper.tick(now) if self.clock == STREAM_CLOCK else []
            self._deliver(events)
        if self.on_update is not None:
            self.on_update(update, values)

    def _control(self) -> None:
        tick_s = 1.0 / self.preset.tick_hz
        next_s = time.monotonic()
        while not self._stop.is_set():
            next_s += tick_s
            delay = next_s - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_s = time.monotonic()  # fell behind (machine busy): do not burst to catch up
            with self._lock:
                events = self.mapper.tick(time.monotonic(), max_backlog_s=0.1)
            self._deliver(events)

    def _deliver(self, events: list[CcEvent]) -> None:
        if not events:
            return
        if self.midi is not None:
            self.midi.send(events)
        with self._recorder_lock:
            if self.recorder is not None:
                self.recorder.record_ccs(events)
        self.cc_events += len(events)
        if self._awaiting_arrival_s is not None:
            self._latencies_s.append(time.monotonic() - self._awaiting_arrival_s)
            self._awaiting_arrival_s = None
        if self.on_events is not None:
            self.on_events(events)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.state = "error"

    # -- control and inspection -----------------------------------------------------------------

    def learn(self, lane_index: int) -> None:
        """Send one lane alone (a short sweep) so a DAW's MIDI-learn can bind it."""
        if self.mapper is None or self.midi is None:
            raise RuntimeError("learn needs a preset and a MIDI output")
        with self._lock:
            events = self.mapper.learn_events(lane_index, time.monotonic())
        self.midi.send(events)

    def set_recorder(self, recorder):
        """Start recording into ``recorder`` (None stops) while running; returns the previous one.

        Once this returns, no engine thread touches the previous recorder: it can be closed.
        """
        with self._recorder_lock:
            previous, self.recorder = self.recorder, recorder
        return previous

    def set_preset(self, preset: Preset) -> None:
        """Swap the CC mapping while running (e.g. from a mapping editor).

        The new lanes start from the latest model update at once. Needs an engine started with a preset.
        """
        if self.mapper is None:
            raise RuntimeError("set_preset needs an engine started with a preset")
        preset = dataclasses.replace(preset, hop_s=self.tracker.hop_s)
        with self._lock:
            self.preset = preset
            self.mapper = CcMapper(preset)
            if self._last_update is not None:
                self.mapper.push(self._now(self.stream_time_s), update_values(*self._last_update))

    def stats(self) -> EngineStats:
        """Current values; ``cpu_percent`` covers the time since the previous call."""
        cpu_now, wall_now = time.process_time(), time.monotonic()
        cpu_then, wall_then = self._cpu_mark
        self._cpu_mark = (cpu_now, wall_now)
        cpu_percent = 100.0 * (cpu_now - cpu_then) / max(1e-6, wall_now - wall_then)
        recent = [t for t in self._update_times if wall_now - t <= 5.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        latencies = np.array(self._latencies_s) * 1000.0
        midlevel = emotions = None
        if self._last_update is not None:
            midlevel = dict(zip(self.model.midlevel_names, map(float, self._last_update[0])))
            emotions = dict(zip(self.model.emotion_names, map(float, self._last_update[1])))
        return EngineStats(
            state=self.state, stream_time_s=self.stream_time_s, updates=self.updates,
            update_rate_hz=rate, dropped_frames=int(self.source.dropped_frames), cpu_percent=cpu_percent,
            latency_ms_p50=float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
            latency_ms_p99=float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
            level_dbfs=float(self.source.level_dbfs), cc_events=self.cc_events, last_error=self.last_error,
            midlevel=midlevel, emotions=emotions)

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio analysed so far (cheap; unlike ``stats()`` it starts no new CPU interval)."""
        return self._stream_samples / self.model.sample_rate

    def latencies_ms(self) -> np.ndarray:
        return np.array(self._latencies_s) * 1000.0
