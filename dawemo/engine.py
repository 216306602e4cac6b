"""The live engine: audio source -> emotion model (worker thread) -> CC mapping -> MIDI and recorder.

The analysis thread drains the source (whose audio callback only fills a ring buffer), runs the
same ``EmotionTracker`` as ``dawemo analyze``, and pushes each update to the mapper; a control
thread ticks the mapper so CC values ramp smoothly between updates. Nothing here blocks the audio
callback, and nothing here touches a GUI.

Faults (``dawemo.faults``): a watch thread polls every part's ``health`` ten times a second,
and the CPU; each change becomes a ``Fault`` in ``faults()``, in ``stats().faults`` while it
lasts, in the timeline (a marked row), and goes to ``on_fault``. A part that fails never stops
the others: a recording fault leaves the CC flowing, a MIDI fault leaves the recording going.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dawemo import constants as C
from dawemo import faults
from dawemo.emotion.tracker import EmotionTracker, EmotionUpdate
from dawemo.outputs.mapping import CcEvent, CcMapper, Preset, update_values
from dawemo.outputs.stage import StageControl
from dawemo.emotion.model import EmotionModel
from dawemo.faults import Fault, Health, HealthReport, health_of
from dawemo.inputs.sources import AudioSource, AudioSourceError

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.1  # how often the watch thread polls the parts' health (detection <= 1 s)
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
    faults: list[Fault] = dataclasses.field(default_factory=list)  # parts not ok now, oldest first
    stage: str = ""  # stage controls in force ("HOLD", "BLACKOUT", "muted: ..."); "" when following
    show_values: int = 0  # values sent to OSC and DMX targets


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
        on_fault: called from the watch thread with each ``Fault`` (a part's health changed).
        parts: more parts whose ``health`` to watch, by name (e.g. ``{"machine": jack_machine}``);
            the source, ``midi`` and ``recorder`` are watched as "input", "midi" and "recording".
        show: an entered ``dawemo.outputs.show.ShowOutputs`` (OSC and DMX destinations of the
            preset's show lanes), or None; each destination is watched as e.g. "osc visuals".
        steady_s: change-aware averaging's time constant on one piece (0: off), as for ``EmotionTracker``.

    Stage controls (``hold``, ``release``, ``panic``, ``set_muted``) act on every lane, MIDI,
    OSC and DMX alike, through ``stage`` (``dawemo.outputs.stage.StageControl``).
    """

    def __init__(self, source: AudioSource, model: EmotionModel, window_s: float = C.DEFAULT_WINDOW_S,
                 hop_s: float = C.DEFAULT_HOP_S, preset: Preset | None = None, midi=None, recorder=None,
                 clock: str = WALL_CLOCK,
                 on_update: Callable[[EmotionUpdate, dict], None] | None = None,
                 on_events: Callable[[list[CcEvent]], None] | None = None,
                 on_fault: Callable[[Fault], None] | None = None, parts: dict | None = None,
                 show=None, steady_s: float = C.DEFAULT_STEADY_S) -> None:
        if clock not in (WALL_CLOCK, STREAM_CLOCK):
            raise ValueError(f"clock must be {WALL_CLOCK!r} or {STREAM_CLOCK!r}, got {clock!r}")
        self.source = source
        self.model = model
        self.tracker = EmotionTracker(model, window_s, hop_s, steady_s)
        # The mapper ramps between updates over exactly one hop of the tracker.
        self.preset = dataclasses.replace(preset, hop_s=self.tracker.hop_s) if preset is not None else None
        self.mapper = CcMapper(self.preset) if self.preset is not None else None
        self.stage = StageControl(self.preset.glide_s if self.preset is not None else 2.0)
        if self.mapper is not None:
            self.mapper.stage = self.stage
        self.show = show
        # MIDI's output delay (s): CC events go to the port (and the recording) this much later.
        self.midi_delay_s = self.preset.midi_delay_ms / 1000.0 if self.preset is not None else 0.0
        self.show_mapper = (show.mapper(self.stage, hop_s=self.tracker.hop_s)
                            if show is not None and self.preset is not None else None)
        self.midi = midi
        self.recorder = recorder
        self.clock = clock
        self.on_update = on_update
        self.on_events = on_events
        self.on_fault = on_fault
        self.extra_parts = dict(parts or {})
        self.analysis_report = HealthReport(where="analysis")  # this engine's own faults (source errors)
        self.cpu = CpuWatch()
        self._fault_log: deque[Fault] = deque(maxlen=500)
        self._health_seen: dict[str, Health] = {}
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
        if self.clock == WALL_CLOCK:
            self._threads.append(threading.Thread(target=self._watch, name="dawemo-watch", daemon=True))
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
            if self.state == "error" and self.last_error is not None:
                self._recovered()
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
                show_events = []
                if self.show_mapper is not None:
                    self.show_mapper.push(now, values)
                    show_events = self.show_mapper.tick(now) if self.clock == STREAM_CLOCK else []
            self._deliver(events, show_events)
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
                now_s = time.monotonic()
                events = self.mapper.tick(now_s, max_backlog_s=0.1)
                show_events = (self.show_mapper.tick(now_s, max_backlog_s=0.1)
                               if self.show_mapper is not None else [])
            self._deliver(events, show_events)

    def _deliver(self, events: list[CcEvent], show_events: list = ()) -> None:
        if show_events:
            self._deliver_show(show_events)
        if not events:
            return
        if self.midi_delay_s:
            delay_s = self.midi_delay_s
            events = [dataclasses.replace(event, time_s=event.time_s + delay_s) for event in events]
        # Each output on its own: one that raises must not keep the events from the others.
        if self.midi is not None:
            try:
                self.midi.send(events)
            except Exception as error:
                self._part_error("midi", error)
        with self._recorder_lock:
            if self.recorder is not None:
                try:
                    self.recorder.record_ccs(events)
                except Exception as error:
                    self._part_error("recording", error)
        self.cc_events += len(events)
        if self._awaiting_arrival_s is not None:
            self._latencies_s.append(time.monotonic() - self._awaiting_arrival_s)
            self._awaiting_arrival_s = None
        if self.on_events is not None:
            self.on_events(events)

    def _deliver_show(self, events: list) -> None:
        """Show events to their senders (queues only) and to the timeline."""
        try:
            self.show.send(events)
        except Exception as error:
            self._part_error("show", error)
        with self._recorder_lock:
            if self.recorder is not None and hasattr(self.recorder, "record_sent"):
                try:
                    self.show.record(self.recorder, events)
                except Exception as error:
                    self._part_error("recording", error)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.state = "error"
        self.analysis_report.set(faults.RECOVERING, message)

    def _recovered(self) -> None:
        self.state = "running"
        self.analysis_report.ok()

    def _part_error(self, part: str, error: Exception) -> None:
        """An output raised (a bug or an unexpected fault): note it once per message, go on."""
        message = f"{part} output failed: {error}"
        if message != self.last_error:
            self.last_error = message
            self.analysis_report.set(faults.DEGRADED, message)

    def _watch(self) -> None:
        """Poll every part's health and the CPU; turn each change into a Fault."""
        while not self._stop.wait(WATCH_INTERVAL_S):
            self.check_health()

    def parts(self) -> dict[str, object]:
        """The watched parts by name: input, midi, recording, the extra parts, analysis, cpu."""
        named = {"input": self.source, "midi": self.midi, "recording": self.recorder, **self.extra_parts,
                 **(self.show.parts() if self.show is not None else {}),
                 "analysis": self.analysis_report, "cpu": self.cpu}
        return {name: part for name, part in named.items() if part is not None}

    def check_health(self) -> list[Fault]:
        """Compare every part's health with the last seen; report and return the changes."""
        self.cpu.sample()
        now = time.monotonic()
        changes = []
        for name, part in self.parts().items():
            health = health_of(part)
            seen = self._health_seen.get(name)
            if seen is None and health.ok:
                self._health_seen[name] = health
                continue
            if seen is not None and seen.state == health.state:
                continue  # a new message in the same state (a retry's count) is no new fault
            self._health_seen[name] = health
            changes.append(Fault(name, health, now))
        for fault in changes:
            self._fault_log.append(fault)
            with self._recorder_lock:
                recorder = self.recorder
                if recorder is not None and hasattr(recorder, "record_fault"):
                    try:
                        recorder.record_fault(fault.time_s, fault.line)
                    except Exception as error:
                        log.warning("cannot mark the fault in the timeline: %s", error)
            if self.on_fault is not None:
                try:
                    self.on_fault(fault)
                except Exception:
                    log.exception("on_fault callback failed")
        return changes

    def faults(self) -> list[Fault]:
        """Every health change seen so far (the last 500), oldest first."""
        return list(self._fault_log)

    def current_faults(self) -> list[Fault]:
        """The parts that are not ok now, each with the time its state began."""
        out = []
        for name, part in self.parts().items():
            health = health_of(part)
            if not health.ok:
                out.append(Fault(name, health, health.since_s))
        return sorted(out, key=lambda fault: fault.time_s)

    # -- control and inspection -----------------------------------------------------------------

    def learn(self, lane_index: int) -> None:
        """Send one lane alone (a short sweep) so a DAW's MIDI-learn can bind it."""
        if self.mapper is None or self.midi is None:
            raise RuntimeError("learn needs a preset and a MIDI output")
        with self._lock:
            events = self.mapper.learn_events(lane_index, time.monotonic())
        self.midi.send(events)

    def hold(self) -> None:
        """Freeze every lane (MIDI, OSC, DMX) at its current value."""
        self._stage_command(self.stage.hold)

    def release(self) -> None:
        """Back to following the music from hold or panic, gliding over the preset's glide_s."""
        self._stage_command(self.stage.release)

    def panic(self) -> None:
        """Every lane to its safe value at once (blackout), until ``release``."""
        self._stage_command(self.stage.panic)

    def set_muted(self, lane_name: str, muted: bool = True) -> None:
        """Mute (safe value) or unmute (glide back) the lanes named ``lane_name``."""
        self._stage_command(lambda: self.stage.set_muted(lane_name, muted))

    def lane_names(self) -> list[str]:
        """Names of every lane, MIDI then show lanes (what ``set_muted`` takes)."""
        if self.preset is None:
            return []
        return list(dict.fromkeys([lane.name for lane in self.preset.lanes]
                                  + [lane.name for lane in (self.show.lanes if self.show is not None else [])]))

    def _stage_command(self, command) -> None:
        with self._lock:
            command()
            now_s = time.monotonic()
            events = self.mapper.stage_events(now_s) if self.mapper is not None else []
            show_events = self.show_mapper.stage_events(now_s) if self.show_mapper is not None else []
        self._deliver(events, show_events)

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
            self.mapper.stage = self.stage
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
            midlevel=midlevel, emotions=emotions, faults=self.current_faults(), stage=self.stage.describe(),
            show_values=self.show.values_sent if self.show is not None else 0)

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio analysed so far (cheap; unlike ``stats()`` it starts no new CPU interval)."""
        return self._stream_samples / self.model.sample_rate

    def latencies_ms(self) -> np.ndarray:
        return np.array(self._latencies_s) * 1000.0


class CpuWatch:
    """Says when other programs leave dawemo short of CPU: a part for the fault model.

    Every ``sample`` (about ten a second) it reads the machine's CPU time (Linux ``/proc/stat``)
    and this process's own; over the last ``window_s``, when the others keep the cores more than
    ``busy_fraction`` busy, it reports ``degraded`` with the numbers, and ok again when they stop.
    Elsewhere (no /proc/stat) it stays ok.
    """

    def __init__(self, window_s: float = 0.5, busy_fraction: float = 0.9) -> None:
        self.window_s = window_s
        self.busy_fraction = busy_fraction
        self.report = HealthReport(where="CPU")
        self.others_fraction = 0.0  # of all cores, over the last window
        self._mark: tuple[float, float, float, float] | None = None  # (wall, busy, idle, own) seconds
        self._ticks_s = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
        self._cores = os.cpu_count() or 1

    @property
    def health(self) -> Health:
        return self.report.health

    def _read(self) -> tuple[float, float, float, float] | None:
        try:
            with open("/proc/stat", "rb") as stat:
                fields = stat.readline().split()[1:]
        except OSError:
            return None
        ticks = [int(field) for field in fields[:8]]
        idle = (ticks[3] + ticks[4]) * self._ticks_s  # idle + iowait
        busy = (sum(ticks) - ticks[3] - ticks[4]) * self._ticks_s
        own = sum(os.times()[:2])
        return time.monotonic(), busy, idle, own

    def sample(self) -> None:
        now = self._read()
        if now is None:
            return
        if self._mark is None:
            self._mark = now
            return
        wall_s = now[0] - self._mark[0]
        if wall_s < self.window_s:
            return
        busy_s, idle_s, own_s = (now[i] - self._mark[i] for i in (1, 2, 3))
        self._mark = now
        total_s = busy_s + idle_s
        if total_s <= 0:
            return
        self.others_fraction = max(0.0, busy_s - own_s) / total_s
        if self.others_fraction > self.busy_fraction:
            if self.report.health.state == faults.DEGRADED:
                return  # keep the first message: a fault's line should not flicker
            self.report.set(faults.DEGRADED, f"other programs keep the {self._cores} CPU cores "
                            f"{100 * self.others_fraction:.0f}% busy; dawemo may fall behind")
        elif self.others_fraction < self.busy_fraction - 0.1:
            self.report.ok()
