"""``MachineChain``: audio through a plugin chain whose parameters follow the model's updates.

A streaming stage (``process``/``reset``). Parameters change only at control-block boundaries
counted from the start of the stream, so the result does not depend on how the caller cuts the
audio into blocks. Each lane goes through the same mapping as MIDI lanes (interpolation over a
hop, attack/release smoothing, curve, output range, rate limit), then a short glide in the
parameter's own units that spreads every change over ``chain.glide_s``: no zipper noise, and no
jump when the first update arrives during playback (parameters glide from their fixed values;
an update pushed for time 0 sets them before the first sample).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np

from dawemo.machine.chain import Chain
from dawemo.machine.plugins import VELOCITY
from dawemo.outputs.mapping import DEFAULT_HOP_S, LaneMapper


class ParameterMapper(LaneMapper):
    """Lane values in parameter units; events are ``(time_s, lane index, value)``."""

    def _unchanged(self, index: int, output: float, last_sent: float) -> bool:
        return abs(output - last_sent) <= 1e-9 * max(1.0, abs(last_sent))

    def _emit(self, tick_s: float, index: int, output: float, mapped: float, events: list) -> None:
        events.append((tick_s, index, output))


class _RampedGain:
    """Gain (and Distortion: gain then tanh) done here, with the gain ramped linearly per sample.

    pedalboard's Gain and Distortion apply a new gain at once, so any change between blocks is a
    step in the waveform (a click); ramping across each control block removes the step. The
    result equals pedalboard's for a constant setting (Distortion is tanh(gain * x)).
    """

    def __init__(self, plugin_index: int, parameter: str, saturate: bool, gain_db: float, block: int) -> None:
        self.plugin_index, self.parameter, self.saturate, self.block = plugin_index, parameter, saturate, block
        self.start_gain = self.end_gain = 10.0 ** (gain_db / 20.0)

    def next_target(self, gain_db: float, jump: bool = False) -> None:
        """The gain at the end of the next control block; ``jump`` starts there (nothing played yet)."""
        gain = 10.0 ** (gain_db / 20.0)
        self.start_gain, self.end_gain = (gain if jump else self.end_gain), gain

    def process(self, audio: np.ndarray, offset: int) -> np.ndarray:
        if self.start_gain == self.end_gain:
            gain = np.float32(self.end_gain)
        else:
            position = (offset + np.arange(audio.shape[1], dtype=np.float64)) / self.block
            gain = (self.start_gain + (self.end_gain - self.start_gain) * position).astype(np.float32)
        out = audio * gain
        return np.tanh(out) if self.saturate else out


RAMPED_PLUGINS = {"Gain": ("gain_db", False), "Distortion": ("drive_db", True)}


class MachineChain:
    """Runs (channels, n) float32 audio at ``sample_rate`` through ``chain``.

    Args:
        chain: a loaded chain (plugins are instantiated here, fresh on every ``reset``).
        sample_rate: of the audio passed to ``process``.
        hop_s: time between model updates (each new value is ramped in over it).
        record_curves: keep the applied parameter values for ``curves()``, one row per
            ``curve_interval_s`` (rounded up to control blocks).
    """

    def __init__(self, chain: Chain, sample_rate: float, hop_s: float = DEFAULT_HOP_S,
                 record_curves: bool = False, curve_interval_s: float = 0.01) -> None:
        self.chain = chain
        self.sample_rate = float(sample_rate)
        self.control_block = chain.control_block
        self.lane_targets = chain.lanes  # (plugin index, lane)
        self.lane_names = [lane.name for _, lane in self.lane_targets]
        self.mapper = ParameterMapper([lane for _, lane in self.lane_targets],
                                      tick_hz=self.sample_rate / self.control_block, hop_s=hop_s)
        self._glide_alpha = -math.expm1(-self.control_block / self.sample_rate / chain.glide_s)
        self.record_curves = record_curves
        self.curve_interval_s = curve_interval_s
        self._incoming: deque[tuple[float | None, Mapping[str, float]]] = deque()  # filled by any thread
        self.reset()

    def reset(self) -> None:
        import pedalboard

        self.plugins = self.chain.instantiate()
        # Stages: runs of pedalboard plugins (one Pedalboard each) and sample-ramped gains. An
        # instrument is not a stage: process_midi plays it and feeds its output to the stages.
        self._stages: list = []
        for index, (slot, plugin) in enumerate(zip(self.chain.plugins, self.plugins)):
            if slot.is_instrument:
                continue
            if slot.spec in RAMPED_PLUGINS:
                parameter, saturate = RAMPED_PLUGINS[slot.spec]
                self._stages.append(_RampedGain(index, parameter, saturate, float(getattr(plugin, parameter)),
                                                self.control_block))
            elif self._stages and isinstance(self._stages[-1], pedalboard.Pedalboard):
                self._stages[-1].append(plugin)
            else:
                self._stages.append(pedalboard.Pedalboard([plugin]))
        self._ramps = [stage for stage in self._stages if isinstance(stage, _RampedGain)]
        self.mapper.reset()
        self._incoming.clear()
        # Start where the plugins are (fixed value or default), glide from there to the first update.
        self._velocity_lane = next((k for k, (p, lane) in enumerate(self.lane_targets)
                                    if p == 0 and self.chain.is_instrument and lane.parameter == VELOCITY), None)
        self.applied = [100.0 if k == self._velocity_lane else float(getattr(self.plugins[p], lane.parameter))
                        for k, (p, lane) in enumerate(self.lane_targets)]
        self.targets = list(self.applied)
        self.samples_done = 0
        self._curve_times: list[float] = []
        self._curve_values: list[list[float]] = []
        self._next_curve_s = 0.0

    @property
    def time_s(self) -> float:
        """Seconds of audio processed since ``reset``."""
        return self.samples_done / self.sample_rate

    def push(self, values: Mapping[str, float], time_s: float | None = None) -> None:
        """A model update ({source: value}) at stream time ``time_s`` (None: when the next block starts).

        Safe to call from another thread than ``process``.
        """
        self._incoming.append((time_s, values))

    def process_midi(self, events: list, frames: int, channels: int = 2) -> np.ndarray:
        """Play the chain's instrument for ``frames`` samples, then run its effects: (channels, frames).

        Args:
            events: ``(time_s, message)`` pairs (mido messages) on the stream clock, at or after
                ``time_s`` and before the end of this span; note-ons take the velocity lane's value.
        """
        if not self.chain.is_instrument:
            raise ValueError(f"chain '{self.chain.name}' has no instrument: use process(audio)")
        instrument = self.plugins[0]
        events = sorted(events, key=lambda event: event[0])
        next_event = 0

        def play(position: int, chunk: int) -> np.ndarray:
            nonlocal next_event
            start_s, end_s = self.time_s, (self.samples_done + chunk) / self.sample_rate
            messages = []
            while next_event < len(events) and events[next_event][0] < end_s - 1e-12:
                time_s, message = events[next_event]
                if message.type == "note_on" and message.velocity > 0 and self._velocity_lane is not None:
                    message = message.copy(velocity=int(min(127, max(1, round(self.applied[self._velocity_lane])))))
                # pedalboard rounds times down after a float32 cast: half a sample in, they land exactly.
                offset_samples = min(chunk - 1, max(0, int(round((time_s - start_s) * self.sample_rate))))
                messages.append((message.bytes(), (offset_samples + 0.5) / self.sample_rate))
                next_event += 1
            block = instrument.process(messages, (chunk + 0.5) / self.sample_rate, self.sample_rate,
                                       num_channels=channels, buffer_size=self.control_block, reset=False)
            block = np.ascontiguousarray(block[:, :chunk], dtype=np.float32)
            return block if block.shape[1] == chunk else np.pad(block, ((0, 0), (0, chunk - block.shape[1])))

        return self._stream(channels, frames, play)

    def process(self, audio: np.ndarray) -> np.ndarray:
        """(channels, n) float32 -> (channels, n) float32 through the chain."""
        if self.chain.is_instrument:
            raise ValueError(f"chain '{self.chain.name}' starts with an instrument: use process_midi")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        return self._stream(audio.shape[0], audio.shape[1], lambda position, chunk: audio[:, position:position + chunk])

    def _stream(self, channels: int, frames: int, source) -> np.ndarray:
        """Cut ``frames`` at control-block boundaries; ``source(position, chunk)`` gives each piece's input."""
        out = np.empty((channels, frames), np.float32)
        position = 0
        while position < frames:
            offset = self.samples_done % self.control_block
            if offset == 0:
                self._control_tick()
            chunk = min(frames - position, self.control_block - offset)
            block = source(position, chunk)
            for stage in self._stages:
                if isinstance(stage, _RampedGain):
                    block = stage.process(block, offset)
                else:
                    block = stage.process(block, self.sample_rate, reset=False)
            out[:, position:position + chunk] = block
            position += chunk
            self.samples_done += chunk
        return out

    def _control_tick(self) -> None:
        # Plain floats, not numpy: a handful of lanes, ~350 ticks per second of audio.
        now_s = self.time_s
        while self._incoming:
            time_s, values = self._incoming.popleft()
            self.mapper.push(now_s if time_s is None else time_s, values)
        targets, applied = self.targets, self.applied
        for _, index, value in self.mapper.tick(now_s):
            targets[index] = value
        if self.samples_done == 0:  # nothing has sounded yet: start at the first values, no glide
            applied[:] = targets
        alpha = self._glide_alpha
        for k, target in enumerate(targets):
            value = applied[k]
            if value == target and self.samples_done:
                continue
            value += alpha * (target - value)
            if abs(target - value) <= 1e-9 * max(1.0, abs(target)):
                value = target  # settle exactly instead of creeping forever
            applied[k] = value
            if k != self._velocity_lane:
                plugin_index, lane = self.lane_targets[k]
                setattr(self.plugins[plugin_index], lane.parameter, value)
        for ramp in self._ramps:  # the ramp runs from the last tick's value to this one's
            ramp.next_target(float(getattr(self.plugins[ramp.plugin_index], ramp.parameter)), self.samples_done == 0)
        if self.record_curves and now_s >= self._next_curve_s - 1e-9:
            self._curve_times.append(now_s)
            self._curve_values.append(list(applied))
            self._next_curve_s = now_s + self.curve_interval_s

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, values (n, lanes)) of the applied parameters, when recorded."""
        if not self._curve_times:
            return np.zeros(0), np.zeros((0, len(self.lane_targets)))
        return np.array(self._curve_times), np.array(self._curve_values)
