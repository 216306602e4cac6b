"""Mapping engine: model updates -> smooth, rate-limited MIDI CC automation, configured by TOML presets.

Pure logic: no MIDI I/O, no threads, no clock reads. The caller passes every time (seconds on any
monotonic clock), so the live engine drives it with ``time.monotonic()`` and tests or offline
rendering with synthetic times.

Per lane the chain is::

    source value -> normalise to [0, 1] over in_min..in_max (clamped)
      -> ramp from the current target to the new value over one hop (interpolation)
      -> one-pole smoother on the control tick (attack while the source rises, release while it falls)
      -> curve -> out_min..out_max (float, "mapped value")          <- reusable for plugin parameters
      -> round -> send-on-change, deadband, max_rate_hz -> 7-bit CC or 14-bit MSB/LSB pair

``CcMapper(preset)``: ``push(update_time_s, values)`` on each model update, ``tick(now_s)`` as often
as convenient; it returns the ``CcEvent`` list for all control ticks up to ``now_s``. Presets are
TOML files, read and written by ``preset_file`` (``load_preset``, ``parse_preset``, ``save_preset``);
the checks of their values are here, shared with show control and machine chains.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from dawemo import constants as C

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the backport is optional, asked for when a preset is read
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

SOURCES = C.EMOTION_NAMES + C.MIDLEVEL_NAMES
CURVES = ("linear", "exponential", "logarithmic", "s-curve")
# Shape when a curve's ``shape`` is left out: exponential/logarithmic k (steepness), s-curve exponent.
DEFAULT_SHAPE = {"exponential": 3.0, "logarithmic": 3.0, "s-curve": 2.0}
MAX_SHAPE = 20.0  # beyond this the curves are a step; also keeps expm1(k) far from overflow
INTERPOLATIONS = ("linear", "none")
CC7_FULL = 127
CC14_FULL = 16383
MAX_CC7_CONTROL = 119  # 120-127 are channel mode messages (all sound off, reset, all notes off...)
MAX_CC14_MSB = 31  # MIDI 1.0 pairs MSB controller n with LSB controller n + 32 for n in 0-31
MAX_TICK_HZ = 1000.0
DEFAULT_TICK_HZ = 120.0  # a multiple of 30: the default 30 Hz lane limit is then exactly every 4th tick
DEFAULT_HOP_S = C.SEGMENT_STRIDE_FRAMES * C.HOP_SIZE / C.SAMPLE_RATE  # 0.48 s: the tracker's default hop
_TIME_EPS_S = 1e-9  # float slack when comparing times built from different sums
_IDLE_CHECK_S = 2.0  # a tick() backlog longer than this first checks whether it can skip idle ticks



class PresetError(ValueError):
    """An unusable preset; ``str()`` is one line naming the file, lane and key where known.

    Attributes: ``reason`` (the message without location) and ``key`` (offending key or None).
    """

    def __init__(self, message: str, key: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.reason = message if reason is None else reason


# ----------------------------------------------------------------------------------------------
# Value mapping (no MIDI here: usable for plugin parameters in any float units)


def apply_curve(curve: str, shape: float | None, u: float) -> float:
    """Shape a normalised value ``u`` in [0, 1]; monotonic rising, 0 -> 0 and 1 -> 1."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    if curve == "linear":
        return u
    k = DEFAULT_SHAPE[curve] if shape is None else shape
    if curve == "exponential":  # slow start, fast end
        y = math.expm1(k * u) / math.expm1(k)
    elif curve == "logarithmic":  # the inverse of exponential: fast start, slow end
        y = math.log1p(u * math.expm1(k)) / k
    elif curve == "s-curve":  # k > 1 flattens both ends, k < 1 the middle; k = 1 is linear
        a, b = u**k, (1.0 - u) ** k
        y = a / (a + b)
    else:
        raise ValueError(f"unknown curve {curve!r}")
    return min(1.0, max(0.0, y))  # rounding must not leave [0, 1]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _suggest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fail(key: str, reason: str) -> PresetError:
    return PresetError(f"key {key!r}: {reason}", key=key, reason=reason)


def _need_int(key: str, value: object, low: int, high: int) -> int:
    if not _is_int(value):
        raise _fail(key, f"must be an integer, got {_type_name(value)} {value!r}")
    if not low <= value <= high:
        raise _fail(key, f"must be {low}-{high}, got {value}")
    return value


def _need_number(key: str, value: object) -> float:
    if not _is_number(value):
        what = "a non-finite number" if isinstance(value, float) else _type_name(value)
        raise _fail(key, f"must be a number, got {what} {value!r}")
    return float(value)


def _need_string(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, got {_type_name(value)} {value!r}")
    return value


class RangeMapping:
    """Source range -> curve -> output range; shared by CC lanes and plugin-parameter lanes.

    Needs attributes ``in_min``, ``in_max``, ``out_min``, ``out_max``, ``curve``, ``shape``.
    """

    in_min: float
    in_max: float
    out_min: float
    out_max: float
    curve: str
    shape: float | None

    def normalize(self, value: float) -> float:
        """Source value -> [0, 1] over in_min..in_max, clamped (in_min > in_max reverses)."""
        u = (value - self.in_min) / (self.in_max - self.in_min)
        return min(1.0, max(0.0, u))

    def map_normalized(self, u: float) -> float:
        """Normalised value in [0, 1] -> output units (curve, then out_min..out_max)."""
        return self.out_min + apply_curve(self.curve, self.shape, u) * (self.out_max - self.out_min)

    def map_value(self, value: float) -> float:
        """Source value -> output units, without smoothing (the lane's static transfer function)."""
        return self.map_normalized(self.normalize(value))


def check_curve(curve: object, shape: object) -> tuple[str, float | None]:
    """Validate a curve name and its optional shape; raises PresetError naming the key."""
    curve = _need_string("curve", curve)
    if curve not in CURVES:
        raise _fail("curve", f"unknown curve {curve!r}{_suggest(curve, CURVES)}; one of: {', '.join(CURVES)}")
    if shape is not None:
        if curve == "linear":
            raise _fail("shape", "the linear curve takes no shape")
        shape = _need_number("shape", shape)
        if not 0 < shape <= MAX_SHAPE:
            raise _fail("shape", f"must be > 0 and <= {MAX_SHAPE:g}, got {shape:g}")
    return curve, shape


def check_safe(safe: object, out_min: float, out_max: float) -> float | None:
    """Validate a lane's safe value: None, or a number within its output range; raises PresetError."""
    if safe is None:
        return None
    safe = _need_number("safe", safe)
    low, high = min(out_min, out_max), max(out_min, out_max)
    if not low <= safe <= high:
        raise _fail("safe", f"must be within the lane's output range {low:g}-{high:g}, got {safe:g}")
    return safe


def check_smoothing(attack_s: object, release_s: object, max_rate_hz: object) -> tuple[float, float, float]:
    """Validate attack/release times (>= 0 s) and a rate limit (> 0 Hz); raises PresetError."""
    times = []
    for key, value in (("attack_s", attack_s), ("release_s", release_s)):
        value = _need_number(key, value)
        if value < 0:
            raise _fail(key, f"must be >= 0 seconds, got {value:g}")
        times.append(value)
    rate = _need_number("max_rate_hz", max_rate_hz)
    if rate <= 0:
        raise _fail("max_rate_hz", f"must be > 0, got {rate:g}")
    return times[0], times[1], rate


@dataclass
class Lane(RangeMapping):
    """One automation lane: a model output mapped to a 7-bit CC or a 14-bit CC pair.

    ``channel`` is 0-15 here (1-16 in preset files). ``None`` ranges take the defaults: in 1-9 for
    emotions and 0-1 for mid-level features, out 0-127 (``cc``) or 0-16383 (``cc14``); out_min >
    out_max inverts. Times in seconds; ``deadband`` in output steps. Raises PresetError when invalid.
    """

    source: str
    channel: int = 0
    cc: int | None = None
    cc14: int | None = None  # MSB controller; the LSB goes to cc14 + 32
    in_min: float | None = None
    in_max: float | None = None
    out_min: float | None = None
    out_max: float | None = None
    curve: str = "linear"
    shape: float | None = None  # None: DEFAULT_SHAPE[curve]; linear takes none
    attack_s: float = 0.3  # smoothing time constant while the source rises
    release_s: float = 0.8  # ... while it falls
    deadband: int = 1  # send only when the output moved at least this many steps (0 acts as 1)
    max_rate_hz: float = 30.0  # hard limit on value updates per second (a 14-bit pair counts once)
    name: str = ""  # track name for recording; "" -> the source name
    safe: float | None = None  # value on panic and mute (output units); None: the lowest output

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or self.source not in SOURCES:
            shown = self.source if isinstance(self.source, str) else _type_name(self.source)
            raise _fail("source", f"unknown source {shown!r}{_suggest(str(self.source), SOURCES)}; "
                                  f"one of: {', '.join(SOURCES)}")
        scale = C.EMOTION_SCALE if self.source in C.EMOTION_NAMES else C.MIDLEVEL_SCALE
        self.name = self.source if self.name == "" else _need_string("name", self.name)
        self.channel = _need_int("channel", self.channel, 0, 15)
        if self.cc is not None and self.cc14 is not None:
            raise _fail("cc14", "set either cc (7-bit) or cc14 (14-bit pair), not both")
        if self.cc is None and self.cc14 is None:
            raise _fail("cc", f"missing: set cc (7-bit, 0-{MAX_CC7_CONTROL}) or cc14 "
                              f"(14-bit pair MSB, 0-{MAX_CC14_MSB})")
        if self.cc is not None:
            self.cc = _need_int("cc", self.cc, 0, MAX_CC7_CONTROL)
        else:
            self.cc14 = _need_int("cc14", self.cc14, 0, MAX_CC14_MSB)
        self.in_min = _need_number("in_min", scale[0] if self.in_min is None else self.in_min)
        self.in_max = _need_number("in_max", scale[1] if self.in_max is None else self.in_max)
        if self.in_min == self.in_max:
            raise _fail("in_max", f"must differ from in_min (both {self.in_min:g})")
        full = self.full_scale
        for key in ("out_min", "out_max"):
            value = getattr(self, key)
            value = _need_number(key, (0 if key == "out_min" else full) if value is None else value)
            if not 0 <= value <= full:
                raise _fail(key, f"must be within 0-{full} for a {self.bits}-bit CC, got {value:g}")
            setattr(self, key, value)
        self.curve, self.shape = check_curve(self.curve, self.shape)
        self.attack_s, self.release_s, self.max_rate_hz = check_smoothing(self.attack_s, self.release_s,
                                                                          self.max_rate_hz)
        self.deadband = _need_int("deadband", self.deadband, 0, full)
        self.safe = check_safe(self.safe, self.out_min, self.out_max)

    @property
    def safe_value(self) -> float:
        """The value panic and mute send: ``safe``, else the lowest output value."""
        return min(self.out_min, self.out_max) if self.safe is None else self.safe

    @property
    def bits(self) -> int:
        """7 or 14."""
        return 7 if self.cc is not None else 14

    @property
    def full_scale(self) -> int:
        """Largest CC value: 127 or 16383."""
        return CC7_FULL if self.cc is not None else CC14_FULL

    @property
    def controls(self) -> tuple[int, ...]:
        """Controller numbers this lane sends, in sending order (MSB before LSB)."""
        return (self.cc,) if self.cc is not None else (self.cc14, self.cc14 + 32)



def cc_value(lane: Lane, mapped: float) -> int:
    """Mapped value -> integer CC value (rounded half up, clamped to 0..full scale)."""
    return min(lane.full_scale, max(0, math.floor(mapped + 0.5)))


def encode_cc(lane: Lane, value: int) -> list[tuple[int, int]]:
    """Integer CC value -> [(controller, data byte)], MSB before LSB for 14-bit lanes."""
    if lane.cc is not None:
        return [(lane.cc, value)]
    return [(lane.cc14, value >> 7), (lane.cc14 + 32, value & 0x7F)]


# ----------------------------------------------------------------------------------------------
# Presets


@dataclass
class Preset:
    """A named set of lanes plus the control-tick rate and hop interpolation; raises PresetError."""

    name: str
    lanes: list[Lane]
    description: str = ""
    tick_hz: float = DEFAULT_TICK_HZ  # smoother/control rate
    hop_s: float = DEFAULT_HOP_S  # ramp length after each update: set it to the model's hop
    interpolation: str = "linear"  # "linear": ramp over hop_s; "none": step at each update
    path: Path | None = field(default=None, compare=False)  # where it was loaded from, if anywhere
    # Show control (dawemo.outputs.show): OSC and DMX destinations by name, the lanes that go to
    # them, and the glide after release/unmute (dawemo.outputs.stage).
    destinations: dict = field(default_factory=dict)
    show_lanes: list = field(default_factory=list)
    glide_s: float = 2.0
    midi_delay_ms: float = 0.0  # the MIDI output's delay, like a destination's delay_ms

    def __post_init__(self) -> None:
        self.name = _need_string("name", self.name)
        self.description = _need_string("description", self.description)
        self.tick_hz = _need_number("tick_hz", self.tick_hz)
        if not 0 < self.tick_hz <= MAX_TICK_HZ:
            raise _fail("tick_hz", f"must be > 0 and <= {MAX_TICK_HZ:g}, got {self.tick_hz:g}")
        self.hop_s = _need_number("hop_s", self.hop_s)
        if self.hop_s <= 0:
            raise _fail("hop_s", f"must be > 0 seconds, got {self.hop_s:g}")
        interpolation = _need_string("interpolation", self.interpolation)
        if interpolation not in INTERPOLATIONS:
            raise _fail("interpolation", f"unknown interpolation {interpolation!r}; one of: "
                                         f"{', '.join(INTERPOLATIONS)}")
        if not self.lanes and not self.show_lanes:
            raise _fail("lane", "a preset needs at least one [[lane]]")
        self.lanes = list(self.lanes)
        _check_conflicts(self.lanes)


def _lane_label(index: int, lane_name: object) -> str:
    """``lane 3 ('Energy')``: 1-based, as a user counts [[lane]] tables."""
    return f"lane {index + 1}" + (f" ({lane_name!r})" if isinstance(lane_name, str) and lane_name else "")


class _ConflictError(PresetError):
    """Two lanes send the same controller; ``lane_index`` is the later one."""

    def __init__(self, message: str, lane_index: int, key: str) -> None:
        super().__init__(message, key=key, reason=message)
        self.lane_index = lane_index


def _check_conflicts(lanes: Sequence[Lane]) -> None:
    """Two lanes on one channel and controller would fight: refuse (14-bit lanes use two)."""
    owner: dict[tuple[int, int], int] = {}
    for index, lane in enumerate(lanes):
        for control in lane.controls:
            other = owner.setdefault((lane.channel, control), index)
            if other != index:
                raise _ConflictError(
                    f"channel {lane.channel + 1} CC {control} is already used by "
                    f"{_lane_label(other, lanes[other].name)}", index, "cc" if lane.cc is not None else "cc14")


class _Locator:
    """Finds line numbers in the raw text cheaply (by header and key patterns) for error messages."""

    _HEADER = re.compile(r"^[ \t]*(\[\[?)[ \t]*([^\]\n]*?)[ \t]*\]", re.MULTILINE)

    def __init__(self, text: str, label: str) -> None:
        self.label = label
        self.lines = text.splitlines()
        # (first line index, table name, is array) per table header
        self.headers = [(text.count("\n", 0, m.start()), m.group(2).strip("\"' "), m.group(1) == "[[")
                        for m in self._HEADER.finditer(text)]

    def _span(self, table: str, nth: int | None) -> tuple[int, int] | None:
        """Line range (start, end) of table ``[table]`` or the nth ``[[table]]``."""
        matches = [i for i, (_, name, is_array) in enumerate(self.headers)
                   if name == table and is_array == (nth is not None)]
        pick = nth or 0
        if pick >= len(matches):
            return None
        i = matches[pick]
        end = self.headers[i + 1][0] if i + 1 < len(self.headers) else len(self.lines)
        return self.headers[i][0], end

    def line(self, table: str | None, nth: int | None, key: str | None) -> int | None:
        """1-based line of ``key`` inside the table (or of its header; top level when table is None)."""
        if table is None:
            for first, name, _ in self.headers:  # a misspelt table name is a top-level key too
                if name == key:
                    return first + 1
            span = (0, self.headers[0][0] if self.headers else len(self.lines))
        else:
            span = self._span(table, nth)
        if span is None:
            return None
        if key is not None:
            pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=")
            for number in range(*span):
                if pattern.match(self.lines[number]):
                    return number + 1
        return span[0] + 1 if table is not None else None

    def error(self, where: str, error: PresetError, table: str | None, nth: int | None) -> PresetError:
        """Re-raise ``error`` with ``file:line: where, key 'k': reason``."""
        line = self.line(table, nth, error.key)
        location = f"{self.label}:{line}" if line else self.label
        key = f", key {error.key!r}" if error.key else ""
        where = f" {where}{key}:" if where else (f" key {error.key!r}:" if error.key else "")
        return PresetError(f"{location}:{where} {error.reason}", key=error.key, reason=error.reason)


def _check_keys(table: Mapping[str, object], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(key, f"unknown key in {where}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")


def read_toml(text: str, label: str, error: type[PresetError] = PresetError) -> dict:
    """TOML text -> dict; a syntax error becomes ``error`` with ``label:line``."""
    if tomllib is None:
        raise error(f"{label}: reading TOML on Python 3.10 needs tomli: pip install tomli")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        location = f"{label}:{found.group(1)}" if found else label
        raise error(f"{location}: TOML syntax error: {exc}", reason=str(exc)) from None


def shipped_names(package: str) -> list[str]:
    """Names of the ``.toml`` files shipped in ``package`` (e.g. ``dawemo.presets``)."""
    folder = resources.files(package)
    return sorted(entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml"))


def read_shipped_or_file(path_or_name: str | os.PathLike, package: str, kind: str,
                         error: type[PresetError] = PresetError) -> tuple[str, str, Path]:
    """(text, label, path) of a shipped ``kind`` by bare name, or of a file; raises ``error``."""
    text_name = os.fspath(path_or_name)
    bare = (isinstance(path_or_name, str) and not text_name.endswith(".toml")
            and "/" not in text_name and os.sep not in text_name)
    if bare:
        resource = resources.files(package) / f"{text_name}.toml"
        if not resource.is_file():
            raise error(f"no shipped {kind} named {text_name!r} (shipped: {', '.join(shipped_names(package))}); "
                        f"give a path ending in .toml for a {kind} file")
        return resource.read_text(encoding="utf-8"), str(resource), Path(str(resource))
    path = Path(text_name)
    try:
        return path.read_text(encoding="utf-8"), str(path), path
    except FileNotFoundError:
        raise error(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {kind}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# The processor


@dataclass(frozen=True)
class CcEvent:
    """One CC message to send at ``time_s``; ``mapped`` is the lane's value in output units."""

    time_s: float
    lane: int  # index into preset.lanes
    channel: int  # 0-15
    control: int  # 0-127
    value: int  # data byte 0-127 (one half of the pair for 14-bit lanes)
    mapped: float  # smoothed value in out_min..out_max units, before rounding

    def __iter__(self) -> Iterator[float | int]:
        """As the tuple ``(time_s, lane, channel, control, value)`` that ``MidiOutput.send`` takes."""
        return iter((self.time_s, self.lane, self.channel, self.control, self.value))


def update_values(midlevel: Sequence[float], emotions: Sequence[float]) -> dict[str, float]:
    """Model output arrays (7 mid-level, 8 emotions, constants order) -> the dict ``push`` takes."""
    return {**dict(zip(C.MIDLEVEL_NAMES, map(float, midlevel))),
            **dict(zip(C.EMOTION_NAMES, map(float, emotions)))}


class _LaneState:
    """Per-lane state: the ramp (normalised units), the smoother and what was last sent."""

    __slots__ = ("has_value", "ramp_from", "ramp_to", "ramp_start_s", "smoothed", "last_sent", "last_send_s")

    def __init__(self) -> None:
        self.has_value = False  # nothing is sent before the first update that has this lane's source
        self.ramp_from = self.ramp_to = self.smoothed = 0.0
        self.ramp_start_s = 0.0
        self.last_sent: int | None = None
        self.last_send_s = -math.inf


def lane_targets(lanes: Sequence, values: Mapping[str, float]) -> dict[int, float]:
    """{lane index: normalised target} for the lanes whose source is in ``values`` and finite;
    the others hold their value."""
    targets = {}
    for index, lane in enumerate(lanes):
        value = values.get(lane.source)
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            targets[index] = lane.normalize(value)
    return targets


class LaneMapper:
    """Model updates -> smoothed lane values on a control-tick grid; subclasses decide what to emit.

    Per lane: hop interpolation (a ramp to each new value), then a one-pole smoother (attack while
    the source rises, release while it falls), then send-on-change and the lane's rate limit.
    Deterministic: the result depends only on the push times/values and the lanes, not on how
    often ``tick`` is called. Control ticks lie on a grid ``first_push_s + n / tick_hz``. Not
    thread-safe: call from one thread.

    Lanes need ``source``, ``normalize``, ``map_normalized``, ``in_min``/``in_max``, ``attack_s``,
    ``release_s``, ``max_rate_hz``, ``name`` and ``safe_value``.

    ``stage`` (a ``dawemo.outputs.stage.StageControl``, None for none) applies hold, release with
    a glide, panic and mute to the mapped values before send-on-change; ``stage_events`` sends
    what a stage command changed at once, past the rate limit.
    """

    stage = None

    def __init__(self, lanes: Sequence, tick_hz: float, hop_s: float, interpolation: str = "linear") -> None:
        self.lanes = list(lanes)
        self.tick_s = 1.0 / tick_hz
        self.ramp_s = hop_s if interpolation == "linear" else 0.0
        # Exact one-pole step for a fixed tick: after t seconds the remaining gap is exp(-t / tau).
        self._attack_alpha = [_alpha(lane.attack_s, self.tick_s) for lane in self.lanes]
        self._release_alpha = [_alpha(lane.release_s, self.tick_s) for lane in self.lanes]
        self._min_gap_s = [1.0 / lane.max_rate_hz - _TIME_EPS_S for lane in self.lanes]
        # A source rising means the normalised value falling when in_min > in_max.
        self._rising_sign = [1.0 if lane.in_max > lane.in_min else -1.0 for lane in self.lanes]
        self.reset()

    # What to send, for subclasses: ``_output`` turns a smoothed value into what is compared and
    # sent, ``_unchanged`` says whether that is close enough to the last one sent to skip it,
    # ``_emit`` appends the events.
    def _output(self, index: int, mapped: float):
        return mapped

    def _unchanged(self, index: int, output, last_sent) -> bool:
        return output == last_sent

    def _emit(self, tick_s: float, index: int, output, mapped: float, events: list) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all updates and sent values; the next push starts a new tick grid."""
        self._states = [_LaneState() for _ in self.lanes]
        self._pending: deque[tuple[float, dict[int, float]]] = deque()
        self._origin_s: float | None = None
        self._next_tick = 0
        self._last_tick_s = -math.inf
        from dawemo.outputs.stage import LaneStage

        self._lane_stage = LaneStage(len(self.lanes))

    def push(self, update_time_s: float, values: Mapping[str, float]) -> None:
        """A model update at ``update_time_s``: {source name: value}; missing or non-finite sources hold.

        Updates apply at the first control tick at or after their time; one older than the
        previous update or than the last processed tick counts as arriving at that time.
        """
        targets = lane_targets(self.lanes, values)
        if self._origin_s is None:
            self._origin_s = float(update_time_s)
        time_s = max(float(update_time_s), self._origin_s, self._last_tick_s,
                     self._pending[-1][0] if self._pending else -math.inf)
        if targets:
            self._pending.append((time_s, targets))

    def tick(self, now_s: float, max_backlog_s: float | None = None) -> list[CcEvent]:
        """Run all control ticks up to ``now_s``; return their events in time order.

        Args:
            now_s: current time (same clock as push).
            max_backlog_s: ticks older than ``now_s - max_backlog_s`` update the smoothers but send
                nothing, so a stalled live loop resumes without a burst; None sends everything.
        """
        events: list[CcEvent] = []
        if self._origin_s is None:
            return events
        quiet_before_s = -math.inf if max_backlog_s is None else now_s - max_backlog_s
        while True:
            tick_s = self._origin_s + self._next_tick * self.tick_s  # from the index: no drift
            if tick_s > now_s + _TIME_EPS_S:
                break
            if now_s - tick_s > _IDLE_CHECK_S and self._idle(tick_s) and self._skip_idle_ticks(now_s):
                continue
            while self._pending and self._pending[0][0] <= tick_s + _TIME_EPS_S:
                self._apply(*self._pending.popleft())
            self._step(tick_s, tick_s >= quiet_before_s - _TIME_EPS_S, events)
            self._next_tick += 1
            self._last_tick_s = tick_s
        return events

    def _idle(self, tick_s: float) -> bool:
        """True when ticks from ``tick_s`` on change nothing and send nothing until the next push."""
        if self.stage is not None and not self._lane_stage.quiet(self.stage, tick_s):
            return False
        for index, state in enumerate(self._states):
            if not state.has_value:
                continue
            if state.smoothed != state.ramp_to or self._ramp_at(state, tick_s) != state.ramp_to:
                return False
            output = self._output(index, self.lanes[index].map_normalized(state.smoothed))
            if state.last_sent is None or not self._unchanged(index, output, state.last_sent):
                return False  # a send is due (perhaps held back by the rate limit)
        return True

    def _skip_idle_ticks(self, now_s: float) -> bool:
        """Jump over no-op ticks up to ``now_s`` or the tick before the next push; False if none.

        Exact (the skipped ticks would change and send nothing), only faster.
        """
        until_s = now_s if not self._pending else min(now_s, self._pending[0][0])
        last = math.floor((until_s - self._origin_s) / self.tick_s) - 1  # keep the next push's tick
        if last < self._next_tick:
            return False
        self._next_tick = last + 1
        self._last_tick_s = self._origin_s + last * self.tick_s
        return True

    def _apply(self, time_s: float, targets: dict[int, float]) -> None:
        for index, u in targets.items():
            state = self._states[index]
            if not state.has_value:  # first value: start there rather than ramping from an arbitrary 0
                state.has_value = True
                state.ramp_from = state.ramp_to = state.smoothed = u
            else:
                # Ramp from where the target is now, so an early update bends the ramp without a jump.
                state.ramp_from = self._ramp_at(state, time_s)
                state.ramp_to = u
            state.ramp_start_s = time_s

    def _ramp_at(self, state: _LaneState, time_s: float) -> float:
        if self.ramp_s <= 0.0 or time_s >= state.ramp_start_s + self.ramp_s:
            return state.ramp_to
        fraction = max(0.0, (time_s - state.ramp_start_s) / self.ramp_s)
        return state.ramp_from + (state.ramp_to - state.ramp_from) * fraction

    def _step(self, tick_s: float, emit: bool, events: list[CcEvent]) -> None:
        snapshot = self.stage.snapshot() if self.stage is not None else None
        for index, state in enumerate(self._states):
            if not state.has_value:
                continue
            target = self._ramp_at(state, tick_s)
            gap = target - state.smoothed
            if gap != 0.0:
                rising = gap * self._rising_sign[index] > 0
                state.smoothed += (self._attack_alpha[index] if rising else self._release_alpha[index]) * gap
                if abs(target - state.smoothed) < 1e-12:  # settle exactly instead of creeping forever
                    state.smoothed = target
            if not emit:
                continue
            mapped = self.lanes[index].map_normalized(state.smoothed)
            if snapshot is not None:
                lane = self.lanes[index]
                mapped = self._lane_stage.value(self.stage, snapshot, index, lane.name, mapped, lane.safe_value,
                                                tick_s)
            output = self._output(index, mapped)
            if state.last_sent is not None and self._unchanged(index, output, state.last_sent):
                continue  # send on change only (CC lanes: changes of at least the deadband)
            if tick_s - state.last_send_s < self._min_gap_s[index]:
                continue  # rate limit: the change stays pending and goes out at the next allowed tick
            state.last_sent, state.last_send_s = output, tick_s
            self._emit(tick_s, index, output, mapped, events)

    def stage_events(self, now_s: float) -> list:
        """After a stage command: each lane whose value it changed, sent now (past the rate limit).

        Lanes that have no music value yet send their safe value on panic or mute.
        """
        if self.stage is None:
            return []
        snapshot = self.stage.snapshot()
        events: list = []
        for index, (lane, state) in enumerate(zip(self.lanes, self._states)):
            music = lane.map_normalized(state.smoothed) if state.has_value else None
            mapped = self._lane_stage.value(self.stage, snapshot, index, lane.name, music, lane.safe_value, now_s)
            if mapped is None:
                continue
            output = self._output(index, mapped)
            if state.last_sent is not None and self._unchanged(index, output, state.last_sent):
                continue
            state.last_sent, state.last_send_s = output, now_s
            self._emit(now_s, index, output, mapped, events)
        return events

    def sent_values(self) -> list:
        """Each lane's last value sent (as sent: CC value, OSC number, DMX level; None before the first)."""
        return [state.last_sent for state in self._states]

    def mapped_values(self) -> list[float | None]:
        """Each lane's current smoothed value in output units (None before its first update)."""
        return [lane.map_normalized(state.smoothed) if state.has_value else None
                for lane, state in zip(self.lanes, self._states)]


class CcMapper(LaneMapper):
    """Model updates -> CC events: hop interpolation, attack/release smoothing, deadband, rate limit.

    ``push(update_time_s, values)`` on each model update, ``tick(now_s)`` as often as convenient.
    """

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        super().__init__(preset.lanes, preset.tick_hz, preset.hop_s, preset.interpolation)

    def _output(self, index: int, mapped: float) -> int:
        return cc_value(self.lanes[index], mapped)

    def _unchanged(self, index: int, output: int, last_sent: int) -> bool:
        return abs(output - last_sent) < max(1, self.lanes[index].deadband)

    def _emit(self, tick_s: float, index: int, output: int, mapped: float, events: list) -> None:
        events += self._encode(tick_s, index, output, mapped)

    def _encode(self, time_s: float, index: int, value: int, mapped: float) -> list[CcEvent]:
        lane = self.lanes[index]
        return [CcEvent(time_s, index, lane.channel, control, data, mapped)
                for control, data in encode_cc(lane, value)]

    def learn_events(self, lane_index: int, start_s: float, steps: int = 9) -> list[CcEvent]:
        """A sweep over one lane's output range for a DAW's MIDI learn; nothing on other lanes.

        Steps are spaced by the lane's rate limit from ``start_s`` (or from when the limit next
        allows a message). Afterwards the next tick re-sends the lane's current value, if it has one.
        """
        if not 0 <= lane_index < len(self.lanes):
            raise IndexError(f"lane_index {lane_index} out of range (the preset has {len(self.lanes)} lanes)")
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        lane, state = self.lanes[lane_index], self._states[lane_index]
        gap_s = 1.0 / lane.max_rate_hz
        first_s = max(start_s, state.last_send_s + gap_s)
        events: list[CcEvent] = []
        for step in range(steps):
            mapped = lane.out_min + (lane.out_max - lane.out_min) * step / (steps - 1)
            time_s = first_s + step * gap_s
            events += self._encode(time_s, lane_index, cc_value(lane, mapped), mapped)
        state.last_sent, state.last_send_s = None, time_s  # the receiver now holds the sweep's end
        return events

    def neutral_events(self, time_s: float) -> list[CcEvent]:
        """Every lane at the middle of its input range (through its curve), then ``reset()``.

        For stop/panic: the receivers rest at a neutral setting. Respects each lane's rate limit.
        """
        events: list[CcEvent] = []
        for index, (lane, state) in enumerate(zip(self.lanes, self._states)):
            mapped = lane.map_normalized(0.5)
            send_s = max(time_s, state.last_send_s + 1.0 / lane.max_rate_hz)
            events += self._encode(send_s, index, cc_value(lane, mapped), mapped)
        events.sort(key=lambda event: event.time_s)  # stable: MSB stays before LSB
        self.reset()
        return events


def _alpha(time_constant_s: float, tick_s: float) -> float:
    """One-pole coefficient per tick for a time constant (0: follow the target at once)."""
    return 1.0 if time_constant_s <= 0 else -math.expm1(-tick_s / time_constant_s)
