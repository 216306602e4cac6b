"""Show control: preset lanes sent to OSC addresses and DMX channels (Art-Net, sACN), with stage controls.

A preset names its destinations in ``[destination.NAME]`` tables and a ``[[lane]]`` sends to one
of them with ``osc = "/address"`` or ``dmx = channel`` / ``dmx16 = coarse channel`` (instead of
``cc``/``cc14``); see docs/show-control.md. Those lanes go through the same mapping core as CC
lanes (``LaneMapper``: ranges, curves, attack/release, dead-band, rate limit, stage controls) in
``ShowMapper``, whose events ``ShowOutputs`` hands to one sender thread per destination
(``OscSender``, ``DmxSender``), delayed by the destination's ``delay_ms``.

Every value sent can be recorded (``AutomationRecorder.record_sent``) with the lane's name and its
target as a URL (``target_url``), which is all ``dawemo replay`` needs to send a show again.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

from dawemo.outputs.dmx import (ARTNET_PORT, DEFAULT_REFRESH_HZ, DMX_CHANNELS, MAX_ARTNET_UNIVERSE,
                                MAX_REFRESH_HZ, MAX_SACN_UNIVERSE, SACN_PORT, DmxSender)
from dawemo.outputs.mapping import (SOURCES, LaneMapper, PresetError, RangeMapping, _check_keys, _fail,
                                    _need_int, _need_number, _need_string, _suggest, _type_name,
                                    check_curve, check_safe, check_smoothing)
from dawemo.outputs.osc import OscSender
from dawemo.outputs.stage import DEFAULT_GLIDE_S, MAX_GLIDE_S
from dawemo import constants as C

PROTOCOLS = ("osc", "artnet", "sacn")
OSC_TYPES = ("float", "int")
MAX_DELAY_MS = 5000.0
SWITCH_INTERVAL_S = 0.001  # while show outputs run (see ShowOutputs.__enter__)
DESTINATION_KEYS = ("protocol", "host", "port", "delay_ms", "bundle", "universe", "refresh_hz", "priority")
# Lane keys that make a [[lane]] a show lane (rather than a MIDI CC lane).
SHOW_TARGET_KEYS = ("to", "osc", "osc_type", "dmx", "dmx16")
SHOW_LANE_KEYS = SHOW_TARGET_KEYS
SHOW_LANE_ALLOWED = ("name", "source", *SHOW_TARGET_KEYS, "in_min", "in_max", "out_min", "out_max", "curve",
                     "shape", "attack_s", "release_s", "deadband", "max_rate_hz", "safe")
# [defaults] keys show lanes take (channel and deadband count MIDI channels and CC steps).
SHOW_DEFAULTS = ("curve", "attack_s", "release_s", "max_rate_hz")
STAGE_KEYS = ("glide_s", "midi_delay_ms")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class ShowConflict(PresetError):
    """Two show lanes send to the same OSC address or DMX channel; ``lane_index`` is the later one."""

    def __init__(self, message: str, lane_index: int, key: str) -> None:
        super().__init__(message, key=key, reason=message)
        self.lane_index = lane_index


# ----------------------------------------------------------------------------------------------
# Destinations


@dataclass
class Destination:
    """Where show lanes go: an OSC receiver or one DMX universe (Art-Net or sACN) on one host.

    ``delay_ms`` shifts everything sent there (to line visuals and lights up with the PA).
    OSC: ``bundle`` (one bundle per tick, else one message per lane). DMX: ``universe``,
    ``refresh_hz`` (frames per second, sent whether or not anything changed), ``priority`` (sACN).
    """

    name: str
    protocol: str
    host: str = "127.0.0.1"
    port: int | None = None  # None: 6454 (Art-Net), 5568 (sACN); OSC needs one
    delay_ms: float = 0.0
    bundle: bool = True
    universe: int | None = None  # None: 0 (Art-Net), 1 (sACN)
    refresh_hz: float = DEFAULT_REFRESH_HZ
    priority: int = 100

    def __post_init__(self) -> None:
        protocol = _need_string("protocol", self.protocol)
        if protocol not in PROTOCOLS:
            raise _fail("protocol", f"unknown protocol {protocol!r}{_suggest(protocol, PROTOCOLS)}; "
                                    f"one of: {', '.join(PROTOCOLS)}")
        self.host = check_host(self.host)
        if self.port is None:
            if protocol == "osc":
                raise _fail("port", "missing: the UDP port the OSC receiver listens on (1-65535)")
            self.port = ARTNET_PORT if protocol == "artnet" else SACN_PORT
        self.port = _need_int("port", self.port, 1, 65535)
        self.delay_ms = check_delay_ms("delay_ms", self.delay_ms)
        if not isinstance(self.bundle, bool):
            raise _fail("bundle", f"must be true or false, got {_type_name(self.bundle)} {self.bundle!r}")
        if protocol == "osc":
            return
        low, high = (0, MAX_ARTNET_UNIVERSE) if protocol == "artnet" else (1, MAX_SACN_UNIVERSE)
        self.universe = _need_int("universe", low if self.universe is None else self.universe, low, high)
        self.refresh_hz = _need_number("refresh_hz", self.refresh_hz)
        if not 1.0 <= self.refresh_hz <= MAX_REFRESH_HZ:
            raise _fail("refresh_hz", f"must be 1-{MAX_REFRESH_HZ:g} frames per second, got {self.refresh_hz:g}")
        self.priority = _need_int("priority", self.priority, 0, 200)

    @property
    def is_dmx(self) -> bool:
        return self.protocol != "osc"

    @property
    def delay_s(self) -> float:
        return self.delay_ms / 1000.0

    @property
    def label(self) -> str:
        """``osc visuals`` / ``artnet rig``: the part name in faults and the live view."""
        return f"{self.protocol} {self.name}"


def check_host(host: object) -> str:
    """An IPv4 address or a host name (syntax only: names are resolved when sending)."""
    host = _need_string("host", host)
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _fail("host", f"{host!r} is not an IPv4 address (four numbers 0-255)") from None
        return host
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise _fail("host", f"{host!r} is neither an IPv4 address nor a host name")
    return host


def parse_destinations(raw: object, where) -> dict[str, Destination]:
    """``[destination.NAME]`` tables -> {name: Destination}; errors carry file and line (``where``)."""
    if not isinstance(raw, dict):
        raise where.error("", _fail("destination", "must be tables: [destination.NAME]"), None, None)
    out = {}
    for name, table in raw.items():
        label = f"[destination.{name}]"
        try:
            if not isinstance(table, dict):
                raise _fail(name, f"must be a table: {label}")
            if name == "midi":
                raise _fail(name, "'midi' names the MIDI output (its delay: [stage] midi_delay_ms); "
                                  "choose another destination name")
            _check_keys(table, DESTINATION_KEYS, label)
            if "protocol" not in table:
                raise _fail("protocol", f"missing: one of {', '.join(PROTOCOLS)}")
            out[name] = Destination(name=name, **table)
        except PresetError as exc:
            raise where.error(label, exc, f"destination.{name}", None) from None
    return out


def check_delay_ms(key: str, delay_ms: object) -> float:
    delay_ms = _need_number(key, delay_ms)
    if not 0 <= delay_ms <= MAX_DELAY_MS:
        raise _fail(key, f"must be 0-{MAX_DELAY_MS:g} ms, got {delay_ms:g}")
    return delay_ms


def check_glide(glide_s: object) -> float:
    glide_s = _need_number("glide_s", glide_s)
    if not 0 <= glide_s <= MAX_GLIDE_S:
        raise _fail("glide_s", f"must be 0-{MAX_GLIDE_S:g} seconds, got {glide_s:g}")
    return glide_s


# ----------------------------------------------------------------------------------------------
# Lanes


@dataclass
class ShowLane(RangeMapping):
    """A lane that sends to an OSC address or a DMX channel of ``destination``.

    Output ranges default to 0-1 (OSC float), 0-127 (OSC int), 0-255 (``dmx``) and 0-65535
    (``dmx16``: coarse on the channel, fine on the next). ``deadband`` is in output units
    (default 0.001 for OSC floats, 1 step otherwise). Other keys as for CC lanes.
    """

    source: str
    destination: Destination
    osc: str | None = None
    osc_type: str = "float"
    dmx: int | None = None
    dmx16: int | None = None
    in_min: float | None = None
    in_max: float | None = None
    out_min: float | None = None
    out_max: float | None = None
    curve: str = "linear"
    shape: float | None = None
    attack_s: float = 0.3
    release_s: float = 0.8
    deadband: float | None = None
    max_rate_hz: float = 30.0
    name: str = ""
    safe: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or self.source not in SOURCES:
            shown = self.source if isinstance(self.source, str) else _type_name(self.source)
            raise _fail("source", f"unknown source {shown!r}{_suggest(str(self.source), SOURCES)}; "
                                  f"one of: {', '.join(SOURCES)}")
        scale = C.EMOTION_SCALE if self.source in C.EMOTION_NAMES else C.MIDLEVEL_SCALE
        self.name = self.source if self.name == "" else _need_string("name", self.name)
        destination = self.destination
        targets = [key for key in ("osc", "dmx", "dmx16") if getattr(self, key) is not None]
        if len(targets) != 1:
            raise _fail("osc" if not targets else targets[1],
                        "set exactly one target: osc (address), dmx (channel) or dmx16 (coarse channel)")
        if self.osc is not None:
            if destination.is_dmx:
                raise _fail("osc", f"destination {destination.name!r} is {destination.protocol}, not OSC")
            self.osc = _need_string("osc", self.osc)
            if not self.osc.startswith("/") or any(c in self.osc for c in " #*,?[]{}"):
                raise _fail("osc", f"{self.osc!r} is not an OSC address (starts with '/', no spaces or "
                                   "any of #*,?[]{})")
            self.osc_type = _need_string("osc_type", self.osc_type)
            if self.osc_type not in OSC_TYPES:
                raise _fail("osc_type", f"must be one of: {', '.join(OSC_TYPES)}, got {self.osc_type!r}")
            low, high = (0.0, 1.0) if self.osc_type == "float" else (0, 127)
            limits = (-2.0**31, 2.0**31 - 1) if self.osc_type == "int" else (-1e30, 1e30)
        else:
            key = targets[0]
            if not destination.is_dmx:
                raise _fail(key, f"destination {destination.name!r} is OSC, not Art-Net or sACN")
            last = DMX_CHANNELS if key == "dmx" else DMX_CHANNELS - 1
            setattr(self, key, _need_int(key, getattr(self, key), 1, last))
            low, high = 0, (255 if key == "dmx" else 65535)
            limits = (low, high)
        self.in_min = _need_number("in_min", scale[0] if self.in_min is None else self.in_min)
        self.in_max = _need_number("in_max", scale[1] if self.in_max is None else self.in_max)
        if self.in_min == self.in_max:
            raise _fail("in_max", f"must differ from in_min (both {self.in_min:g})")
        for key, default in (("out_min", low), ("out_max", high)):
            value = _need_number(key, default if getattr(self, key) is None else getattr(self, key))
            if not limits[0] <= value <= limits[1]:
                raise _fail(key, f"must be within {limits[0]:g}-{limits[1]:g} for this target, got {value:g}")
            setattr(self, key, value)
        self.curve, self.shape = check_curve(self.curve, self.shape)
        self.attack_s, self.release_s, self.max_rate_hz = check_smoothing(self.attack_s, self.release_s,
                                                                          self.max_rate_hz)
        if self.deadband is None:
            self.deadband = 0.001 if self.is_float else 1
        self.deadband = _need_number("deadband", self.deadband)
        if self.deadband < 0:
            raise _fail("deadband", f"must be >= 0, got {self.deadband:g}")
        self.safe = check_safe(self.safe, self.out_min, self.out_max)

    @property
    def is_float(self) -> bool:
        return self.osc is not None and self.osc_type == "float"

    @property
    def safe_value(self) -> float:
        return min(self.out_min, self.out_max) if self.safe is None else self.safe

    @property
    def bits(self) -> int:
        """DMX lanes: 8 or 16."""
        return 16 if self.dmx16 is not None else 8

    def output(self, mapped: float) -> float | int:
        """A mapped value as sent: float for OSC floats, else a rounded, clamped integer."""
        if self.is_float:
            return float(mapped)
        value = math.floor(mapped + 0.5)
        if self.osc is None:
            value = min(255 if self.dmx is not None else 65535, max(0, value))
        return int(value)

    @property
    def target_url(self) -> str:
        """Where the lane's values go, e.g. ``osc://127.0.0.1:7000/dawemo/energy``,
        ``artnet://10.0.0.5:6454/0/1`` or ``sacn://10.0.0.5:5568/1/3?bits=16``."""
        d = self.destination
        if self.osc is not None:
            return f"osc://{d.host}:{d.port}{self.osc}" + ("?type=int" if self.osc_type == "int" else "")
        channel = self.dmx if self.dmx is not None else self.dmx16
        query = "?bits=16" if self.dmx16 is not None else ""
        return f"{d.protocol}://{d.host}:{d.port}/{d.universe}/{channel}{query}"


def is_show_lane(raw: Mapping[str, object]) -> bool:
    """True for a raw [[lane]] table that sends to OSC or DMX."""
    return any(key in raw for key in SHOW_TARGET_KEYS)


def make_show_lane(raw: Mapping[str, object], defaults: Mapping[str, object],
                   destinations: Mapping[str, Destination]) -> ShowLane:
    """A raw [[lane]] table (with osc/dmx keys) -> ShowLane; raises PresetError naming the key."""
    for key in ("cc", "cc14", "channel"):
        if key in raw:
            raise _fail(key, "a lane sends to one target: MIDI (cc/cc14 on a channel) or osc/dmx/dmx16, not both")
    _check_keys(raw, SHOW_LANE_ALLOWED, "[[lane]] (show lane)")
    if "source" not in raw:
        raise _fail("source", f"missing: the model output to follow, one of: {', '.join(SOURCES)}")
    if "name" in raw and raw["name"] == "":
        raise _fail("name", "must not be empty (leave it out to use the source name)")
    kind_dmx = "dmx" in raw or "dmx16" in raw
    to = raw.get("to")
    if to is None:
        fitting = [d for d in destinations.values() if d.is_dmx == kind_dmx]
        if len(fitting) != 1:
            what = "DMX (artnet/sacn)" if kind_dmx else "OSC"
            raise _fail("to", f"missing: the [destination.NAME] to send to ({len(fitting)} {what} destinations "
                              f"in the preset{': ' + ', '.join(d.name for d in fitting) if fitting else ''})")
        destination = fitting[0]
    else:
        to = _need_string("to", to)
        if to not in destinations:
            names = list(destinations)
            raise _fail("to", f"no [destination.{to}] in the preset{_suggest(to, names)}"
                              f"{'; destinations: ' + ', '.join(names) if names else ''}")
        destination = destinations[to]
    values = {key: defaults[key] for key in SHOW_DEFAULTS if key in defaults}
    values.update({key: value for key, value in raw.items() if key != "to"})
    return ShowLane(destination=destination, **values)


def check_show_conflicts(lanes: Sequence[ShowLane]) -> None:
    """Two lanes on one OSC address or overlapping DMX channels of one destination would fight."""
    owner: dict[tuple, int] = {}
    for index, lane in enumerate(lanes):
        d = lane.destination.name
        if lane.osc is not None:
            keys, key_name = [(d, lane.osc)], "osc"
        else:
            first = lane.dmx if lane.dmx is not None else lane.dmx16
            keys = [(d, first)] + ([(d, first + 1)] if lane.dmx16 is not None else [])
            key_name = "dmx" if lane.dmx is not None else "dmx16"
        for key in keys:
            other = owner.setdefault(key, index)
            if other != index:
                what = f"OSC address {key[1]}" if lane.osc is not None else f"DMX channel {key[1]}"
                raise ShowConflict(f"{what} of destination {d!r} is already used by lane "
                                   f"{lanes[other].name!r}", index, key_name)


def dump_show(preset, toml_value) -> list[str]:
    """TOML lines for a preset's [stage], destinations and show lanes (``dump_preset``)."""
    lines = []
    if preset.glide_s != DEFAULT_GLIDE_S or preset.midi_delay_ms:
        lines += ["", "[stage]", f"glide_s = {toml_value(preset.glide_s)}",
                  f"midi_delay_ms = {toml_value(preset.midi_delay_ms)}"]
    for name, d in preset.destinations.items():
        lines += ["", f"[destination.{name}]", f"protocol = {toml_value(d.protocol)}",
                  f"host = {toml_value(d.host)}", f"port = {d.port}", f"delay_ms = {toml_value(d.delay_ms)}"]
        if d.is_dmx:
            lines += [f"universe = {d.universe}", f"refresh_hz = {toml_value(d.refresh_hz)}",
                      f"priority = {d.priority}"]
        else:
            lines.append(f"bundle = {toml_value(d.bundle)}")
    for lane in preset.show_lanes:
        lines += ["", "[[lane]]", f"to = {toml_value(lane.destination.name)}"]
        for key in SHOW_LANE_ALLOWED:
            if key in ("to", "osc_type") and lane.osc is None:
                continue
            value = getattr(lane, key, None)
            if value is not None and key != "to":
                lines.append(f"{key} = {toml_value(value)}")
    return lines


# ----------------------------------------------------------------------------------------------
# Mapping and sending


@dataclass(frozen=True)
class ShowEvent:
    """One value for a show lane at ``time_s`` (before the destination's delay)."""

    time_s: float
    lane: int  # index into preset.show_lanes
    value: float | int  # as sent (OSC float/int, DMX 0-255 or 0-65535)
    mapped: float


class ShowMapper(LaneMapper):
    """Model updates -> ShowEvents for OSC and DMX lanes: the CC mapping core with per-target values."""

    def __init__(self, lanes: Sequence[ShowLane], tick_hz: float, hop_s: float, interpolation: str = "linear",
                 stage=None) -> None:
        super().__init__(lanes, tick_hz, hop_s, interpolation)
        self.stage = stage

    def _output(self, index: int, mapped: float):
        return self.lanes[index].output(mapped)

    def _unchanged(self, index: int, output, last_sent) -> bool:
        deadband = self.lanes[index].deadband
        if self.lanes[index].is_float:
            return output == last_sent or abs(output - last_sent) < deadband
        return abs(output - last_sent) < max(1, deadband)

    def _emit(self, tick_s: float, index: int, output, mapped: float, events: list) -> None:
        events.append(ShowEvent(tick_s, index, output, mapped))


class ShowOutputs:
    """The preset's show destinations with their sender threads; a context manager.

    ``send(events)`` hands ShowEvents to the senders (queues only; never blocks on the network);
    ``parts()`` gives each sender by its label for the engine's fault watch.

    Args:
        preset: a Preset with destinations and show lanes.
        delays_ms: per destination name, a delay that replaces the preset's (e.g. from the CLI).
    """

    def __init__(self, preset, delays_ms: Mapping[str, float] | None = None) -> None:
        self.preset = preset
        self.lanes: list[ShowLane] = list(preset.show_lanes)
        self.delays_s = {name: d.delay_s for name, d in preset.destinations.items()}
        for name, delay_ms in (delays_ms or {}).items():
            if name not in self.delays_s:
                raise ValueError(f"no destination {name!r} in preset '{preset.name}' "
                                 f"(destinations: {', '.join(self.delays_s) or 'none'})")
            if not 0 <= delay_ms <= MAX_DELAY_MS:
                raise ValueError(f"delay for {name!r} must be 0-{MAX_DELAY_MS:g} ms, got {delay_ms:g}")
            self.delays_s[name] = delay_ms / 1000.0
        self.senders: dict[str, OscSender | DmxSender] = {}
        for name, d in preset.destinations.items():
            if not any(lane.destination.name == name for lane in self.lanes):
                continue  # nothing to send there
            if d.is_dmx:
                self.senders[name] = DmxSender(name, d.protocol, d.host, d.port, d.universe, d.refresh_hz,
                                               d.priority)
            else:
                self.senders[name] = OscSender(name, d.host, d.port, d.bundle)
        self.values_sent = 0

    def __enter__(self) -> "ShowOutputs":
        # Python hands its lock (GIL) to a waiting thread every 5 ms by default: a sender waking at
        # its due time could wait that long behind the analysis thread, which would spoil a
        # delay accurate to 2 ms. 1 ms costs a few more thread switches; restored on exit.
        self._switch_interval_s = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval_s, SWITCH_INTERVAL_S))
        entered = []
        try:
            for sender in self.senders.values():
                sender.__enter__()
                entered.append(sender)
        except BaseException:
            for sender in entered:
                sender.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for sender in self.senders.values():
            sender.close()
        previous = getattr(self, "_switch_interval_s", None)
        if previous is not None:
            sys.setswitchinterval(previous)
            self._switch_interval_s = None

    def parts(self) -> dict[str, object]:
        """Senders by label (``osc visuals``, ``artnet rig``) for the fault watch."""
        return {self.preset.destinations[name].label: sender for name, sender in self.senders.items()}

    def mapper(self, stage=None, hop_s: float | None = None) -> ShowMapper:
        p = self.preset
        return ShowMapper(self.lanes, p.tick_hz, p.hop_s if hop_s is None else hop_s, p.interpolation, stage)

    def send_time_s(self, event: ShowEvent) -> float:
        """When ``event`` goes out: its time plus its destination's delay."""
        return event.time_s + self.delays_s[self.lanes[event.lane].destination.name]

    def send(self, events: Sequence[ShowEvent]) -> None:
        """Queue events to their destinations, grouped per tick (one bundle / frame update each)."""
        groups: dict[tuple[str, float], list] = {}
        for event in events:
            lane = self.lanes[event.lane]
            name = lane.destination.name
            if name not in self.senders:
                continue
            item = ((lane.osc, event.value, lane.osc_type) if lane.osc is not None
                    else (lane.dmx if lane.dmx is not None else lane.dmx16, lane.bits, event.value))
            groups.setdefault((name, event.time_s), []).append(item)
        for (name, time_s), items in groups.items():
            sender = self.senders[name]
            due_s = time_s + self.delays_s[name]
            if isinstance(sender, DmxSender):
                sender.set(due_s, items)
            else:
                sender.send(due_s, items)
        self.values_sent += len(events)

    def record(self, recorder, events: Sequence[ShowEvent]) -> None:
        """Record each event at its send time with its lane name and target URL."""
        for event in events:
            lane = self.lanes[event.lane]
            recorder.record_sent(self.send_time_s(event), lane.name, lane.target_url, event.value)


# ----------------------------------------------------------------------------------------------
# Target URLs (recorded timelines, replay)


@dataclass(frozen=True)
class Target:
    """A parsed target URL: ``protocol``, ``host``, ``port``, and ``address`` (OSC) or
    ``universe``/``channel``/``bits`` (DMX), ``osc_type`` (OSC)."""

    protocol: str
    host: str
    port: int
    address: str | None = None
    osc_type: str = "float"
    universe: int | None = None
    channel: int | None = None
    bits: int = 8

    @property
    def destination_key(self) -> tuple:
        return (self.protocol, self.host, self.port, self.universe)


def parse_target_url(url: str) -> Target:
    """``target_url`` text -> Target; raises ValueError with the URL for anything else."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        if parts.scheme not in PROTOCOLS or not parts.hostname or parts.port is None:
            raise ValueError
        if parts.scheme == "osc":
            osc_type = query.get("type", ["float"])[0]
            if osc_type not in OSC_TYPES or not parts.path.startswith("/"):
                raise ValueError
            return Target("osc", parts.hostname, parts.port, address=parts.path, osc_type=osc_type)
        universe, channel = (int(p) for p in parts.path.strip("/").split("/"))
        bits = int(query.get("bits", ["8"])[0])
        if bits not in (8, 16) or not 1 <= channel <= DMX_CHANNELS - (bits == 16):
            raise ValueError
        return Target(parts.scheme, parts.hostname, parts.port, universe=universe, channel=channel, bits=bits)
    except ValueError:
        raise ValueError(f"not a dawemo target: {url!r} (osc://host:port/address, "
                         "artnet://host:port/universe/channel or sacn://...)") from None

