"""``MachineChain``: audio through a plugin chain whose parameters follow the model's updates.

A streaming stage (``process``/``reset``). Parameters change only at control-block boundaries
counted from the start of the stream, so the result does not depend on how the caller cuts the
audio into blocks. Each lane goes through the same mapping as MIDI lanes (interpolation over a
hop, attack/release smoothing, curve, output range, rate limit), then a short glide in the
parameter's own units that spreads every change over ``chain.glide_s``: no zipper noise, and no
jump when the first update arrives during playback (parameters glide from their fixed values;
an update pushed for time 0 sets them before the first sample).

Speed: ``ParameterAutomation`` computes the values of every control block of a ``process`` call
at once (numpy, whole arrays per lane), and the audio then runs stage by stage over the whole
call: a plugin is called once per run of control blocks whose parameters it sees unchanged (once
per call for a plugin no lane moves), and gains are ramped with one array expression. Python does
a few operations per control block and plugin, not the whole chain's bookkeeping.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from dawemo.machine.chain import Chain
from dawemo.machine.plugins import VELOCITY
from dawemo.outputs.mapping import DEFAULT_HOP_S, DEFAULT_SHAPE, LaneMapper, lane_targets

_TIME_EPS_S = 1e-9  # as the mapping engine: float slack when comparing times built from different sums
_SMOOTH_SETTLE = 1e-12  # the mapping engine's smoother settles exactly this close to its target
_GLIDE_SETTLE = 1e-9  # the glide settles exactly this close (relative) to its target
_POLE_ROWS = 64  # one-pole filters run as (n / 64, 64) @ (64, 64): exact to rounding, no Python per tick
_SMOOTH_WINDOW = 512  # ticks the smoother runs ahead before it looks for a change of direction
_FEW_TICKS = 24  # up to this many control blocks per call (a live period), plain floats beat array set-up


class ParameterMapper(LaneMapper):
    """Lane values in parameter units; events are ``(time_s, lane index, value)``.

    The per-tick reference for ``ParameterAutomation`` (and what the app's lane display uses).
    """

    def _unchanged(self, index: int, output: float, last_sent: float) -> bool:
        return abs(output - last_sent) <= 1e-9 * max(1.0, abs(last_sent))

    def _emit(self, tick_s: float, index: int, output: float, mapped: float, events: list) -> None:
        events.append((tick_s, index, output))


def _pole_kernel(alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(64, 64) matrix K with ``x_row @ K`` the zero-state response of one row, and decay^(1..64)."""
    decay = 1.0 - alpha
    lag = np.arange(_POLE_ROWS)[None, :] - np.arange(_POLE_ROWS)[:, None]  # output index - input index
    kernel = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0)
    return kernel, decay ** np.arange(1, _POLE_ROWS + 1)


def one_pole(x: np.ndarray, alpha: float, start: float, kernels: dict) -> np.ndarray:
    """``y[n] = y[n-1] + alpha * (x[n] - y[n-1])`` with ``y[-1] = start``, over a whole array.

    Args:
        x: (n,) float64 input.
        alpha: coefficient in (0, 1]; 1 follows the input at once.
        kernels: cache {alpha: _pole_kernel(alpha)}.
    """
    n = len(x)
    if alpha >= 1.0 or n == 0:
        return np.array(x, dtype=np.float64)
    if alpha not in kernels:
        kernels[alpha] = _pole_kernel(alpha)
    kernel, decays = kernels[alpha]
    rows = -(-n // _POLE_ROWS)
    padded = np.zeros(rows * _POLE_ROWS)
    padded[:n] = x
    y = padded.reshape(rows, _POLE_ROWS) @ kernel
    carry = start
    for row in y:  # n / 64 rows: the state carried from row to row
        row += decays * carry
        carry = row[-1]
    return y.reshape(-1)[:n]


def map_normalized(lane, u: np.ndarray) -> np.ndarray:
    """``lane.map_normalized`` over an array: curve (``mapping.apply_curve``), then the output range."""
    u = np.clip(u, 0.0, 1.0)
    curve = lane.curve
    if curve == "linear":
        y = u
    else:
        k = DEFAULT_SHAPE[curve] if lane.shape is None else lane.shape
        with np.errstate(divide="ignore", invalid="ignore"):
            if curve == "exponential":
                y = np.expm1(k * u) / math.expm1(k)
            elif curve == "logarithmic":
                y = np.log1p(u * math.expm1(k)) / k
            elif curve == "s-curve":
                a, b = u**k, (1.0 - u) ** k
                y = a / (a + b)
            else:
                raise ValueError(f"unknown curve {curve!r}")
        y = np.clip(np.where(u <= 0.0, 0.0, np.where(u >= 1.0, 1.0, y)), 0.0, 1.0)
    return lane.out_min + y * (lane.out_max - lane.out_min)


class _Lane:
    """One lane's mapping state: the hop ramp and the smoother (normalised units), what was sent."""

    __slots__ = ("has_value", "ramp_from", "ramp_to", "ramp_start_s", "smoothed", "last_sent", "last_send_s")

    def __init__(self) -> None:
        self.has_value = False
        self.ramp_from = self.ramp_to = self.smoothed = 0.0
        self.ramp_start_s = 0.0
        self.last_sent: float | None = None
        self.last_send_s = -math.inf


class ParameterAutomation:
    """Model updates -> the parameter value applied in each control block, computed in bulk.

    A streaming stage: ``push`` updates, ``process(ticks)`` returns the values of the next
    ``ticks`` control blocks; how the blocks are grouped into calls does not change them. The
    values are those of ``ParameterMapper`` ticked at every control block (updates applied at the
    first mapper tick at or after their time, hop ramp, attack/release smoother, curve, send on
    change, rate limit) followed by the glide, equal to them up to float rounding (tests compare
    the two), computed with numpy over whole arrays per lane.

    Args:
        lanes: the chain's parameter lanes.
        initial: each lane's value before any update, in its units.
        sample_rate: Hz of the audio.
        control_block: samples per control block (one tick).
        hop_s: time between model updates (each new value is ramped in over it).
        glide_s: time constant of the glide.
    """

    def __init__(self, lanes: Sequence, initial: Sequence[float], sample_rate: float, control_block: int,
                 hop_s: float, glide_s: float) -> None:
        self.lanes = list(lanes)
        self.sample_rate = float(sample_rate)
        self.control_block = int(control_block)
        self.tick_s = 1.0 / (self.sample_rate / self.control_block)  # the mapper's tick, as LaneMapper has it
        self.ramp_s = float(hop_s)
        alpha = lambda time_s: 1.0 if time_s <= 0 else -math.expm1(-self.tick_s / time_s)  # noqa: E731
        self._attack = [alpha(lane.attack_s) for lane in self.lanes]
        self._release = [alpha(lane.release_s) for lane in self.lanes]
        self._rising_sign = [1.0 if lane.in_max > lane.in_min else -1.0 for lane in self.lanes]
        self._min_gap_s = [1.0 / lane.max_rate_hz - _TIME_EPS_S for lane in self.lanes]
        self.glide_alpha = -math.expm1(-self.control_block / self.sample_rate / glide_s)
        self._kernels: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._incoming: deque[tuple[float | None, Mapping[str, float]]] = deque()  # filled by any thread
        self.reset(initial)

    def reset(self, initial: Sequence[float]) -> None:
        """Forget updates and state; lanes start at ``initial``."""
        self._incoming.clear()
        self._states = [_Lane() for _ in self.lanes]
        self._pending: deque[tuple[float, dict[int, float]]] = deque()
        self._origin_s: float | None = None
        self._next_tick = 0  # mapper ticks done
        self._last_tick_s = -math.inf
        self.ticks_done = 0  # control blocks done
        self.applied = np.array(initial, dtype=np.float64)
        self.targets = self.applied.copy()

    def push(self, values: Mapping[str, float], time_s: float | None = None) -> None:
        """A model update ({source: value}) at ``time_s`` (None: at the next control block).

        Safe to call from another thread than ``process``.
        """
        self._incoming.append((time_s, values))

    def _accept(self, time_s: float, values: Mapping[str, float]) -> None:
        """``LaneMapper.push``: normalise, and never earlier than what is already scheduled or done."""
        targets = lane_targets(self.lanes, values)
        if self._origin_s is None:
            self._origin_s = float(time_s)
        time_s = max(float(time_s), self._origin_s, self._last_tick_s,
                     self._pending[-1][0] if self._pending else -math.inf)
        if targets:
            self._pending.append((time_s, targets))

    def process(self, ticks: int) -> np.ndarray:
        """The applied values of the next ``ticks`` control blocks: (ticks, lanes) float64."""
        if ticks <= 0:
            return np.zeros((0, len(self.lanes)))
        first = self.ticks_done
        now_s = np.arange(first, first + ticks) * self.control_block / self.sample_rate
        while self._incoming:  # updates pushed since the last call arrive at this call's first block
            time_s, values = self._incoming.popleft()
            self._accept(float(now_s[0]) if time_s is None else time_s, values)
        if ticks <= _FEW_TICKS:
            return self._process_few(now_s.tolist())
        targets = np.repeat(self.targets[None, :], ticks, axis=0)
        if self._origin_s is not None:
            self._map(now_s, targets)
        self.targets = targets[-1].copy()
        applied = np.empty_like(targets)
        start = 0
        if first == 0:  # nothing has sounded yet: start at the first values, no glide
            applied[0] = targets[0]
            start = 1
        previous = applied[0] if start else self.applied
        for k in range(len(self.lanes)):
            target = targets[start:, k]
            if target.size:
                glided = one_pole(target, self.glide_alpha, float(previous[k]), self._kernels)
                settled = np.abs(target - glided) <= _GLIDE_SETTLE * np.maximum(1.0, np.abs(target))
                applied[start:, k] = np.where(settled, target, glided)
        self.applied = applied[-1].copy()
        self.ticks_done += ticks
        return applied

    def _process_few(self, now_s: list[float]) -> np.ndarray:
        """``process`` for a few control blocks: the same steps, block by block in plain floats."""
        targets, applied = self.targets.tolist(), self.applied.tolist()
        alpha, rows = self.glide_alpha, []
        for now in now_s:
            while self._origin_s is not None:
                tick = self._origin_s + self._next_tick * self.tick_s  # from the index: no drift
                if tick > now + _TIME_EPS_S:
                    break
                while self._pending and self._pending[0][0] <= tick + _TIME_EPS_S:
                    time_s, update = self._pending.popleft()
                    for index, u in update.items():
                        self._apply(self._states[index], time_s, u)
                for index, state in enumerate(self._states):
                    if state.has_value:
                        value = self._step(index, state, tick)
                        if value is not None:
                            targets[index] = value
                self._next_tick += 1
                self._last_tick_s = tick
            if self.ticks_done == 0:  # nothing has sounded yet: start at the first values, no glide
                applied[:] = targets
            else:
                for k, target in enumerate(targets):
                    value = applied[k]
                    if value != target:
                        value += alpha * (target - value)
                        if abs(target - value) <= _GLIDE_SETTLE * max(1.0, abs(target)):
                            value = target  # settle exactly instead of creeping forever
                        applied[k] = value
            rows.append(list(applied))
            self.ticks_done += 1
        self.targets, self.applied = np.array(targets), np.array(applied)
        return np.array(rows)

    def _apply(self, state: _Lane, time_s: float, u: float) -> None:
        """An update reaches a lane (``LaneMapper._apply``)."""
        if not state.has_value:  # first value: start there rather than ramping from an arbitrary 0
            state.has_value = True
            state.ramp_from = state.ramp_to = state.smoothed = u
        else:  # ramp from where the target is now, so an early update bends the ramp without a jump
            state.ramp_from = self._ramp_at(state, time_s)
            state.ramp_to = u
        state.ramp_start_s = time_s

    def _ramp_at(self, state: _Lane, time_s: float) -> float:
        if self.ramp_s <= 0.0 or time_s >= state.ramp_start_s + self.ramp_s:
            return state.ramp_to
        fraction = max(0.0, (time_s - state.ramp_start_s) / self.ramp_s)
        return state.ramp_from + (state.ramp_to - state.ramp_from) * fraction

    def _step(self, index: int, state: _Lane, tick_s: float) -> float | None:
        """One mapper tick of one lane (``LaneMapper._step``): the value it sends, or None."""
        target = self._ramp_at(state, tick_s)
        gap = target - state.smoothed
        if gap != 0.0:
            rising = gap * self._rising_sign[index] > 0
            state.smoothed += (self._attack[index] if rising else self._release[index]) * gap
            if abs(target - state.smoothed) < _SMOOTH_SETTLE:
                state.smoothed = target
        value = self.lanes[index].map_normalized(state.smoothed)
        last = state.last_sent
        if last is not None and abs(value - last) <= 1e-9 * max(1.0, abs(last)):
            return None  # send on change only
        if tick_s - state.last_send_s < self._min_gap_s[index]:
            return None  # rate limit: the change stays pending and goes out at the next allowed tick
        state.last_sent, state.last_send_s = value, tick_s
        return value

    def _map(self, now_s: np.ndarray, targets: np.ndarray) -> None:
        """Run the mapper's ticks up to ``now_s[-1]``; fill ``targets`` (ticks, lanes) with what they send."""
        # Mapper ticks lie on their own grid from the first update's time; each control block
        # takes what the ticks at or before it sent.
        last = int(math.floor((now_s[-1] + _TIME_EPS_S - self._origin_s) / self.tick_s)) + 2
        n = np.arange(self._next_tick, max(self._next_tick, last))
        tick_s = self._origin_s + n * self.tick_s
        tick_s = tick_s[tick_s <= now_s[-1] + _TIME_EPS_S]
        count = len(tick_s)
        if count == 0:
            return
        done_by = np.searchsorted(tick_s, now_s + _TIME_EPS_S, side="right")  # mapper ticks done per block
        # The pending updates that these ticks apply, and the tick at which each applies.
        applies_at = []
        reach = tick_s[-1] + _TIME_EPS_S
        while self._pending and self._pending[0][0] <= reach:
            time_s, update = self._pending.popleft()
            applies_at.append((int(np.searchsorted(tick_s + _TIME_EPS_S, time_s, side="left")), time_s, update))
        for index, state in enumerate(self._states):
            sent = self._lane_ticks(index, state, tick_s, applies_at)
            if sent is None:
                continue
            # Each block takes the last value its mapper ticks (this call's, up to its time) sent.
            last_send = np.where(np.isnan(sent), -1, np.arange(count))
            np.maximum.accumulate(last_send, out=last_send)
            source = np.where(done_by > 0, last_send[np.maximum(done_by - 1, 0)], -1)
            has = source >= 0
            targets[has, index] = sent[source[has]]
        self._next_tick += count
        self._last_tick_s = float(tick_s[-1])

    def _lane_ticks(self, index: int, state: _Lane, tick_s: np.ndarray, applies_at: list) -> np.ndarray | None:
        """One lane over the mapper ticks ``tick_s``: the value sent at each (NaN: none), or None if nothing."""
        count = len(tick_s)
        target = np.full(count, np.nan)
        begin = count if not state.has_value else 0  # first tick with a value
        done = 0
        for at, time_s, update in applies_at + [(count, None, None)]:
            if at > done and state.has_value:
                target[done:at] = self._ramp(state, tick_s[done:at])
            done = max(done, at)
            if update is None or index not in update:
                continue
            if not state.has_value:
                begin = at
            self._apply(state, time_s, update[index])
        if begin >= count:
            return None
        smoothed = self._smooth(index, target[begin:], state.smoothed)
        state.smoothed = float(smoothed[-1])
        mapped = map_normalized(self.lanes[index], smoothed)
        sent = np.full(count, np.nan)
        if self._min_gap_s[index] < self.tick_s - 1e-10:  # no rate limit at this tick rate: every tick sends
            sent[begin:] = mapped
            state.last_sent, state.last_send_s = float(mapped[-1]), float(tick_s[-1])
            return sent
        for offset, value in enumerate(mapped.tolist()):  # a rate limit: which ticks may send is sequential
            tick = float(tick_s[begin + offset])
            last = state.last_sent
            if last is not None and abs(value - last) <= 1e-9 * max(1.0, abs(last)):
                continue
            if tick - state.last_send_s < self._min_gap_s[index]:
                continue
            state.last_sent, state.last_send_s = value, tick
            sent[begin + offset] = value
        return sent

    def _ramp(self, state: _Lane, time_s: np.ndarray) -> np.ndarray:
        """``LaneMapper._ramp_at`` over an array of times."""
        if self.ramp_s <= 0.0:
            return np.full(len(time_s), state.ramp_to)
        fraction = np.maximum(0.0, (time_s - state.ramp_start_s) / self.ramp_s)
        ramp = state.ramp_from + (state.ramp_to - state.ramp_from) * fraction
        return np.where(time_s >= state.ramp_start_s + self.ramp_s, state.ramp_to, ramp)

    def _smooth(self, index: int, target: np.ndarray, smoothed: float) -> np.ndarray:
        """The attack/release one-pole over ``target``: attack while the gap rises, release while it falls.

        Runs the filter with the coefficient of the current direction, then keeps the values up
        to the first tick whose gap points the other way and continues from there: the direction
        changes at most once per hop ramp, so this stays a handful of array operations.
        """
        attack, release, sign = self._attack[index], self._release[index], self._rising_sign[index]
        out = np.empty_like(target)
        position, count = 0, len(target)
        while position < count:
            gap = target[position] - smoothed
            if gap == 0.0:  # at the target: nothing moves until the target does
                moving = np.flatnonzero(target[position:] != smoothed)
                stop = count if not moving.size else position + int(moving[0])
                out[position:stop] = smoothed
                position = stop
                continue
            rising = gap * sign > 0
            alpha = attack if rising else release
            stop = min(count, position + _SMOOTH_WINDOW)
            piece = target[position:stop]
            y = one_pole(piece, alpha, smoothed, self._kernels)
            y = np.where(np.abs(piece - y) < _SMOOTH_SETTLE, piece, y)  # settle exactly, as the mapper does
            if attack != release:
                gaps = piece[1:] - y[:-1]
                turned = np.flatnonzero((gaps != 0.0) & ((gaps * sign > 0) != rising))
                if turned.size:
                    y = y[: int(turned[0]) + 1]
            out[position:position + len(y)] = y
            smoothed = float(y[-1])
            position += len(y)
        return out


class _RampedGain:
    """Gain (and Distortion: gain then tanh) done here, with the gain ramped linearly per sample.

    pedalboard's Gain and Distortion apply a new gain at once, so any change between blocks is a
    step in the waveform (a click); ramping across each control block removes the step. The
    result equals pedalboard's for a constant setting (Distortion is tanh(gain * x)).
    """

    def __init__(self, plugin_index: int, parameter: str, column: int | None, saturate: bool, gain_db: float,
                 block: int) -> None:
        self.plugin_index, self.parameter, self.column = plugin_index, parameter, column
        self.saturate, self.block = saturate, block
        self.start_gain = self.end_gain = 10.0 ** (float(np.float32(gain_db)) / 20.0)
        self._position = np.arange(block, dtype=np.float64) / block  # where each sample lies in its block

    def process(self, audio: np.ndarray, span: "_Span") -> np.ndarray:
        """The gain of each control block ramps from the previous block's value to its own."""
        if self.column is None:  # a fixed gain
            out = audio * np.float32(self.end_gain)
            return np.tanh(out) if self.saturate else out
        # The plugin keeps its parameter as float32: ramp between the values it would hold.
        ends = 10.0 ** (span.rows[:, self.column].astype(np.float32).astype(np.float64) / 20.0)
        starts = np.empty_like(ends)
        starts[1:] = ends[:-1]
        if span.leading:  # the block under way keeps its ramp
            starts[0], ends[0] = self.start_gain, self.end_gain
        else:  # a new block: from the last one's value, or from its own at the start of the stream
            starts[0] = ends[0] if span.first_sample == 0 else self.end_gain
        self.start_gain, self.end_gain = float(starts[-1]), float(ends[-1])
        if np.array_equal(starts, ends) and np.all(ends == ends[0]):
            out = audio * np.float32(ends[0])
        else:
            gains = (starts[:, None] + (ends - starts)[:, None] * self._position[None, :]).astype(np.float32)
            offset = span.first_sample % self.block
            out = audio * gains.reshape(-1)[offset:offset + audio.shape[1]]
        return np.tanh(out) if self.saturate else out


RAMPED_PLUGINS = {"Gain": ("gain_db", False), "Distortion": ("drive_db", True)}


class _Span:
    """One ``process`` call cut at control blocks: pieces of audio, each with its parameter row.

    Attributes:
        first_sample: stream position of the first sample.
        starts: (pieces,) first sample of each piece, relative to the call.
        ends: (pieces,) one past the last sample of each piece.
        rows: (pieces, lanes) the applied parameter values in each piece.
        leading: the first piece continues a control block begun in an earlier call.
    """

    def __init__(self, first_sample: int, frames: int, block: int, values: np.ndarray, previous: np.ndarray) -> None:
        self.first_sample = first_sample
        first_tick = (block - first_sample % block) % block
        self.leading = first_tick > 0
        self.starts = ([0] if self.leading else []) + list(range(first_tick, frames, block))
        self.ends = self.starts[1:] + [frames]
        self.rows = np.concatenate((previous[None, :], values)) if self.leading else values
        self.pieces = len(self.starts)


class _PluginStage:
    """A run of pedalboard plugins (one Pedalboard) and the lanes that move them."""

    def __init__(self) -> None:
        import pedalboard

        self.board = pedalboard.Pedalboard([])
        self.columns: list[int] = []
        self.setters: list[tuple[object, str]] = []  # (plugin, parameter) per column

    def add(self, plugin, columns: list[int], parameters: list[str]) -> None:
        self.board.append(plugin)
        self.columns += columns
        self.setters += [(plugin, name) for name in parameters]

    def process(self, audio: np.ndarray, span: _Span, sample_rate: float) -> np.ndarray:
        """One plugin call per run of control blocks in which no parameter of this stage changes."""
        process = self.board.process
        if not self.columns:  # nothing moves: one call for the whole span
            return process(audio, sample_rate, reset=False)
        rows = span.rows[:, self.columns].tolist()
        if not span.leading:  # a new block starts the span: its values first (the block under way has its own)
            self._set(rows[0])
        out, run = None, 0
        for piece in range(1, span.pieces):
            if rows[piece] != rows[piece - 1]:
                out = np.empty_like(audio) if out is None else out
                a, b = span.starts[run], span.starts[piece]
                out[:, a:b] = process(audio[:, a:b], sample_rate, reset=False)
                self._set(rows[piece])
                run = piece
        if out is None:
            return process(audio, sample_rate, reset=False)
        out[:, span.starts[run]:] = process(audio[:, span.starts[run]:], sample_rate, reset=False)
        return out

    def _set(self, row: list[float]) -> None:
        for (plugin, name), value in zip(self.setters, row):
            setattr(plugin, name, value)


class MachineChain:
    """Runs (channels, n) float32 audio at ``sample_rate`` through ``chain``.

    Args:
        chain: a loaded chain (plugins are instantiated here, fresh on every ``reset``).
        sample_rate: of the audio passed to ``process``.
        hop_s: time between model updates (each new value is ramped in over it).
        record_curves: keep the applied parameter values for ``curves()``, one row every
            ``curve_interval_s`` rounded up to whole control blocks (every block for 0).
    """

    def __init__(self, chain: Chain, sample_rate: float, hop_s: float = DEFAULT_HOP_S,
                 record_curves: bool = False, curve_interval_s: float = 0.01) -> None:
        self.chain = chain
        self.sample_rate = float(sample_rate)
        self.control_block = chain.control_block
        self.hop_s = hop_s
        self.lane_targets = chain.lanes  # (plugin index, lane)
        self.lane_names = [lane.name for _, lane in self.lane_targets]
        self.record_curves = record_curves
        self.curve_interval_s = curve_interval_s
        self._curve_every = max(1, math.ceil(curve_interval_s * self.sample_rate / self.control_block - 1e-9))
        self.automation: ParameterAutomation | None = None
        self.reset()

    def reset(self) -> None:
        self.plugins = self.chain.instantiate()
        self._velocity_lane = next((k for k, (p, lane) in enumerate(self.lane_targets)
                                    if p == 0 and self.chain.is_instrument and lane.parameter == VELOCITY), None)
        columns: dict[int, list[int]] = {}  # plugin index -> its lanes' columns (not the velocity)
        for k, (p, _) in enumerate(self.lane_targets):
            if k != self._velocity_lane:
                columns.setdefault(p, []).append(k)
        # Stages: runs of pedalboard plugins (one Pedalboard each, with the lanes of its plugins)
        # and sample-ramped gains. An instrument is not a stage: process_midi plays it and feeds
        # its output to the stages.
        self._stages: list = []
        for index, (slot, plugin) in enumerate(zip(self.chain.plugins, self.plugins)):
            if slot.is_instrument:
                continue
            if slot.spec in RAMPED_PLUGINS:
                parameter, saturate = RAMPED_PLUGINS[slot.spec]
                column = next((k for k in columns.get(index, []) if self.lane_targets[k][1].parameter == parameter),
                              None)
                self._stages.append(_RampedGain(index, parameter, column, saturate, float(getattr(plugin, parameter)),
                                                self.control_block))
                continue
            if not self._stages or not isinstance(self._stages[-1], _PluginStage):
                self._stages.append(_PluginStage())
            own = columns.get(index, [])
            self._stages[-1].add(plugin, own, [self.lane_targets[k][1].parameter for k in own])
        self._instrument_columns = columns.get(0, []) if self.chain.is_instrument else []
        # Start where the plugins are (fixed value or default), glide from there to the first update.
        initial = [100.0 if k == self._velocity_lane else float(getattr(self.plugins[p], lane.parameter))
                   for k, (p, lane) in enumerate(self.lane_targets)]
        if self.automation is None:
            self.automation = ParameterAutomation([lane for _, lane in self.lane_targets], initial,
                                                  self.sample_rate, self.control_block, self.hop_s,
                                                  self.chain.glide_s)
        else:
            self.automation.reset(initial)
        self.samples_done = 0
        self._curve_chunks: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def time_s(self) -> float:
        """Seconds of audio processed since ``reset``."""
        return self.samples_done / self.sample_rate

    @property
    def applied(self) -> list[float]:
        """Each lane's value in the current control block, in its units."""
        return self.automation.applied.tolist()

    @property
    def targets(self) -> list[float]:
        """Each lane's value before the glide (what the mapping last sent)."""
        return self.automation.targets.tolist()

    def push(self, values: Mapping[str, float], time_s: float | None = None) -> None:
        """A model update ({source: value}) at stream time ``time_s`` (None: when the next block starts).

        Safe to call from another thread than ``process``.
        """
        self.automation.push(values, time_s)

    def process_midi(self, events: list, frames: int, channels: int = 2) -> np.ndarray:
        """Play the chain's instrument for ``frames`` samples, then run its effects: (channels, frames).

        Args:
            events: ``(time_s, message)`` pairs (mido messages) on the stream clock, at or after
                ``time_s`` and before the end of this span; note-ons take the velocity lane's value.
        """
        if not self.chain.is_instrument:
            raise ValueError(f"chain '{self.chain.name}' has no instrument: use process(audio)")
        if frames <= 0:
            return np.zeros((channels, 0), np.float32)
        instrument = self.plugins[0]
        events = sorted(events, key=lambda event: event[0])
        span = self._span(frames)
        out = np.empty((channels, frames), np.float32)
        next_event, velocity = 0, self._velocity_lane
        for piece in range(span.pieces):  # the instrument plays control block by control block
            position, end = int(span.starts[piece]), int(span.ends[piece])
            chunk, row = end - position, span.rows[piece]
            if piece or not span.leading:
                for k in self._instrument_columns:
                    setattr(instrument, self.lane_targets[k][1].parameter, float(row[k]))
            start_s = (span.first_sample + position) / self.sample_rate
            end_s = (span.first_sample + end) / self.sample_rate
            messages = []
            while next_event < len(events) and events[next_event][0] < end_s - 1e-12:
                time_s, message = events[next_event]
                if message.type == "note_on" and message.velocity > 0 and velocity is not None:
                    message = message.copy(velocity=int(min(127, max(1, round(float(row[velocity]))))))
                # pedalboard rounds times down after a float32 cast: half a sample in, they land exactly.
                offset_samples = min(chunk - 1, max(0, int(round((time_s - start_s) * self.sample_rate))))
                messages.append((message.bytes(), (offset_samples + 0.5) / self.sample_rate))
                next_event += 1
            block = instrument.process(messages, (chunk + 0.5) / self.sample_rate, self.sample_rate,
                                       num_channels=channels, buffer_size=self.control_block, reset=False)
            block = np.asarray(block[:, :chunk], dtype=np.float32)
            out[:, position:position + block.shape[1]] = block
            out[:, position + block.shape[1]:end] = 0.0
        return self._run_stages(out, span)

    def process(self, audio: np.ndarray) -> np.ndarray:
        """(channels, n) float32 -> (channels, n) float32 through the chain."""
        if self.chain.is_instrument:
            raise ValueError(f"chain '{self.chain.name}' starts with an instrument: use process_midi")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.shape[1] == 0:
            return audio.copy()
        return self._run_stages(audio, self._span(audio.shape[1]))

    def _span(self, frames: int) -> _Span:
        """Parameter values for the control blocks that start within the next ``frames`` samples."""
        first_tick = (self.control_block - self.samples_done % self.control_block) % self.control_block
        ticks = 0 if first_tick >= frames else 1 + (frames - 1 - first_tick) // self.control_block
        previous = self.automation.applied
        values = self.automation.process(ticks)
        span = _Span(self.samples_done, frames, self.control_block, values, previous)
        if self.record_curves and ticks:
            first = self.automation.ticks_done - ticks
            keep = np.flatnonzero((np.arange(first, first + ticks) % self._curve_every) == 0)
            if keep.size:
                times = (first + keep) * self.control_block / self.sample_rate
                self._curve_chunks.append((times, values[keep]))
        self.samples_done += frames
        return span

    def _run_stages(self, audio: np.ndarray, span: _Span) -> np.ndarray:
        """Stage after stage over the whole span: each sees its parameters change at the control blocks."""
        block = audio
        for stage in self._stages:
            block = stage.process(block, span) if isinstance(stage, _RampedGain) else \
                stage.process(block, span, self.sample_rate)
        applied = self.automation.applied
        for stage in self._stages:  # the ramped plugins' own attributes follow too (nothing reads them while playing)
            if isinstance(stage, _RampedGain) and stage.column is not None:
                setattr(self.plugins[stage.plugin_index], stage.parameter, float(applied[stage.column]))
        return block

    def curves(self) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, values (n, lanes)) of the applied parameters recorded and not yet taken."""
        if not self._curve_chunks:
            return np.zeros(0), np.zeros((0, len(self.lane_targets)))
        times = np.concatenate([chunk[0] for chunk in self._curve_chunks])
        values = np.concatenate([chunk[1] for chunk in self._curve_chunks])
        self._curve_chunks = [(times, values)]
        return times, values

    def take_curves(self) -> tuple[np.ndarray, np.ndarray]:
        """``curves()``, then forget them: a long render writes them out as it goes."""
        times, values = self.curves()
        self._curve_chunks = []
        return times, values
