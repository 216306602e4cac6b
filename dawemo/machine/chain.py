"""Chain files: a list of plugins with fixed settings and parameter lanes that follow the model.

    [chain]
    format = 1
    name = "Tension bites"
    control_block = 128        # samples between parameter updates
    glide_s = 0.03             # every parameter change is spread over at least this (no zipper noise)

    [[plugin]]
    plugin = "LadderFilter"    # a built-in pedalboard effect, or the path of a .vst3 plugin
    [plugin.set]               # fixed values, in the parameter's own units
    mode = "LPF24"
    [[plugin.lane]]            # the same mapping as MIDI lanes, in the parameter's units
    parameter = "cutoff_hz"
    source = "tension"
    out_min = 300.0
    out_max = 6000.0
    curve = "exponential"

Every error names the file and line (``ChainError``). See docs/machine-sounds.md.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dawemo import constants as C
from dawemo.machine.plugins import (LADDER_MODES, ParameterInfo, PluginError, is_external, load_plugin,
                                    parameters_of)
from dawemo.outputs.mapping import (SOURCES, PresetError, RangeMapping, _Locator, _check_keys, _fail, _need_number,
                            _need_string, _suggest, _type_name, check_curve, check_smoothing, read_shipped_or_file,
                            read_toml, shipped_names)

FORMAT_VERSION = 1
CHAIN_KEYS = ("format", "name", "description", "control_block", "glide_s")
PLUGIN_KEYS = ("plugin", "set", "lane")
PARAMETER_LANE_KEYS = ("name", "parameter", "source", "in_min", "in_max", "out_min", "out_max", "curve", "shape",
                       "attack_s", "release_s", "max_rate_hz")
DEFAULT_CONTROL_BLOCK = 128  # 2.9 ms at 44.1 kHz: parameter steps far below audibility after the glide
DEFAULT_GLIDE_S = 0.03


class ChainError(PresetError):
    """An unusable chain file; ``str()`` is one line with file:line where known."""


@dataclass
class ParameterLane(RangeMapping):
    """A model output mapped onto one plugin parameter, in that parameter's units.

    ``None`` output range takes the parameter's full range; out_min > out_max inverts.
    """

    source: str
    parameter: str
    in_min: float | None = None
    in_max: float | None = None
    out_min: float | None = None
    out_max: float | None = None
    curve: str = "linear"
    shape: float | None = None
    attack_s: float = 0.3
    release_s: float = 0.8
    max_rate_hz: float = 1000.0  # parameter updates per second; the control block is the real limit
    name: str = ""

    def check(self, info: ParameterInfo, plugin_name: str) -> None:
        """Validate against the parameter it moves; raises PresetError naming the key."""
        if not isinstance(self.source, str) or self.source not in SOURCES:
            shown = self.source if isinstance(self.source, str) else _type_name(self.source)
            raise _fail("source", f"unknown source {shown!r}{_suggest(str(self.source), SOURCES)}; "
                                  f"one of: {', '.join(SOURCES)}")
        if not info.automatable:
            raise _fail("parameter", f"{plugin_name} parameter {info.name!r} cannot follow a lane: {info.note}")
        scale = C.EMOTION_SCALE if self.source in C.EMOTION_NAMES else C.MIDLEVEL_SCALE
        self.name = f"{plugin_name}.{self.parameter}" if self.name == "" else _need_string("name", self.name)
        self.in_min = _need_number("in_min", scale[0] if self.in_min is None else self.in_min)
        self.in_max = _need_number("in_max", scale[1] if self.in_max is None else self.in_max)
        if self.in_min == self.in_max:
            raise _fail("in_max", f"must differ from in_min (both {self.in_min:g})")
        for key, default in (("out_min", info.min_value), ("out_max", info.max_value)):
            value = _need_number(key, default if getattr(self, key) is None else getattr(self, key))
            if not info.min_value <= value <= info.max_value:
                raise _fail(key, f"{value:g} is outside {plugin_name} {info.name}'s range {info.describe_range()}")
            setattr(self, key, value)
        self.curve, self.shape = check_curve(self.curve, self.shape)
        self.attack_s, self.release_s, self.max_rate_hz = check_smoothing(self.attack_s, self.release_s,
                                                                          self.max_rate_hz)


@dataclass
class PluginSlot:
    """One plugin of a chain: what to load, its fixed settings and its lanes."""

    spec: str  # built-in class name or plugin path
    settings: dict[str, object]
    lanes: list[ParameterLane]
    parameters: dict[str, ParameterInfo]
    is_instrument: bool = False  # played by MIDI; only the first plugin of a chain

    @property
    def display_name(self) -> str:
        return self.spec if not is_external(self.spec) else Path(self.spec).stem


@dataclass
class Chain:
    """A validated chain; ``instantiate()`` makes fresh plugin objects for one stream."""

    name: str
    plugins: list[PluginSlot]
    description: str = ""
    control_block: int = DEFAULT_CONTROL_BLOCK
    glide_s: float = DEFAULT_GLIDE_S
    path: Path | None = field(default=None, compare=False)

    @property
    def is_instrument(self) -> bool:
        """True when the chain starts with an instrument, played by MIDI instead of processing audio."""
        return bool(self.plugins) and self.plugins[0].is_instrument

    @property
    def lanes(self) -> list[tuple[int, ParameterLane]]:
        """(plugin index, lane) for every lane, in file order."""
        return [(index, lane) for index, slot in enumerate(self.plugins) for lane in slot.lanes]

    def instantiate(self) -> list:
        """New pedalboard plugin objects with the fixed settings applied."""
        plugins = []
        for slot in self.plugins:
            plugin = load_plugin(slot.spec)
            for key, value in slot.settings.items():
                _apply_setting(plugin, key, value)
            plugins.append(plugin)
        return plugins


def _apply_setting(plugin, key: str, value: object) -> None:
    if key == "mode" and hasattr(plugin, "Mode"):
        value = getattr(plugin.Mode, value)
    setattr(plugin, key, value)


def _check_setting(slot_name: str, plugin, info: ParameterInfo | None, key: str, value: object,
                   names: list[str]) -> object:
    if info is None:
        raise _fail(key, f"{slot_name} has no parameter {key!r}{_suggest(key, names)}; "
                         f"it has: {', '.join(names) or 'none'}")
    if key == "mode" and hasattr(plugin, "Mode"):
        if value not in LADDER_MODES:
            raise _fail(key, f"must be one of {', '.join(LADDER_MODES)}, got {value!r}")
    elif info.min_value is not None:
        number = _need_number(key, value)
        if not info.min_value <= number <= info.max_value:
            raise _fail(key, f"{number:g} is outside {slot_name} {key}'s range {info.describe_range()}")
        value = number
    try:
        _apply_setting(plugin, key, value)
    except Exception as error:  # noqa: BLE001 - the plugin's own check, reported as a setting error
        raise _fail(key, f"{slot_name} refused {value!r}: {str(error).splitlines()[0] if str(error) else error}")
    return value


class _ChainLocator(_Locator):
    """Line numbers inside the nth [[plugin]] (up to the next [[plugin]]) and the nth [[plugin.lane]]."""

    def plugin_line(self, nth: int, key: str | None) -> int | None:
        starts = [first for first, name, is_array in self.headers if name == "plugin" and is_array]
        if nth >= len(starts):
            return None
        end = starts[nth + 1] if nth + 1 < len(starts) else len(self.lines)
        if key is not None:
            pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=")
            for number in range(starts[nth], end):
                if pattern.match(self.lines[number]):
                    return number + 1
        return starts[nth] + 1

    def located(self, error: PresetError, line: int | None, where: str) -> ChainError:
        location = f"{self.label}:{line}" if line else self.label
        key = f", key {error.key!r}" if error.key else ""
        return ChainError(f"{location}: {where}{key}: {error.reason}", key=error.key, reason=error.reason)


def parse_chain(text: str, label: str = "<chain>", path: Path | None = None) -> Chain:
    """Parse and validate chain TOML (plugins are loaded to check their parameters)."""
    data = read_toml(text, label, ChainError)
    where = _ChainLocator(text, label)
    header = data.get("chain", {})
    raw_plugins = data.get("plugin", [])
    try:
        _check_keys(data, ("chain", "plugin"), "the top level (tables: [chain], [[plugin]])")
        if not isinstance(header, dict):
            raise _fail("chain", "must be a table: [chain]")
        if not isinstance(raw_plugins, list) or not all(isinstance(t, dict) for t in raw_plugins):
            raise _fail("plugin", "must be an array of tables: [[plugin]]")
        if not raw_plugins:
            raise _fail("plugin", "a chain needs at least one [[plugin]]")
    except PresetError as exc:
        raise where.located(exc, where.line(None, None, exc.key), "chain file") from None
    try:
        _check_keys(header, CHAIN_KEYS, "[chain]")
        if "format" in header and header["format"] != FORMAT_VERSION:
            raise _fail("format", f"this dawemo reads format {FORMAT_VERSION}, the file is format {header['format']!r}")
        control_block = header.get("control_block", DEFAULT_CONTROL_BLOCK)
        if not isinstance(control_block, int) or isinstance(control_block, bool) or not 16 <= control_block <= 4096:
            raise _fail("control_block", f"must be an integer number of samples, 16-4096, got {control_block!r}")
        glide_s = _need_number("glide_s", header.get("glide_s", DEFAULT_GLIDE_S))
        if not 0.005 <= glide_s <= 10:
            raise _fail("glide_s", f"must be 0.005-10 seconds (shorter glides click), got {glide_s:g}")
        name = _need_string("name", header.get("name", Path(label).stem if path else "untitled"))
        description = _need_string("description", header.get("description", ""))
    except PresetError as exc:
        raise where.located(exc, where.line("chain", None, exc.key), "[chain]") from None

    slots: list[PluginSlot] = []
    lane_counter = 0
    for index, raw in enumerate(raw_plugins):
        label_here = f"plugin {index + 1}"
        try:
            _check_keys(raw, PLUGIN_KEYS, "[[plugin]] (plugin, [plugin.set], [[plugin.lane]])")
            if "plugin" not in raw:
                raise _fail("plugin", "missing: a built-in effect name (e.g. \"Reverb\") or a .vst3 path")
            spec = _need_string("plugin", raw["plugin"])
            if is_external(spec) and path is not None and not os.path.isabs(os.path.expanduser(spec)):
                spec = str((path.parent / spec).resolve())  # relative to the chain file
            try:
                plugin = load_plugin(spec)
            except PluginError as error:
                raise _fail("plugin", str(error)) from None
            parameters = parameters_of(plugin, spec)
            slot_name = spec if not is_external(spec) else Path(spec).stem
            label_here = f"plugin {index + 1} ({slot_name})"
            is_instrument = bool(getattr(plugin, "is_instrument", False))
            if is_instrument and index > 0:
                raise _fail("plugin", f"{slot_name} is an instrument: it must be the first plugin of the chain")

            settings_raw = raw.get("set", {})
            if not isinstance(settings_raw, dict):
                raise _fail("set", "must be a table: [plugin.set]")
            settings = {}
            for key, value in settings_raw.items():
                settings[key] = _check_setting(slot_name, plugin, parameters.get(key), key, value, list(parameters))
        except PresetError as exc:
            raise where.located(exc, where.plugin_line(index, exc.key), label_here) from None
        raw_lanes = raw.get("lane", [])
        lanes = []
        if not isinstance(raw_lanes, list):
            raise where.located(_fail("lane", "must be an array of tables: [[plugin.lane]]"),
                                where.plugin_line(index, None), label_here)
        for lane_raw in raw_lanes:
            lane_label = f"{label_here} lane {len(lanes) + 1}"
            try:
                _check_keys(lane_raw, PARAMETER_LANE_KEYS, "[[plugin.lane]]")
                for key in ("parameter", "source"):
                    if key not in lane_raw:
                        raise _fail(key, "missing" + (f": one of {', '.join(SOURCES)}" if key == "source" else ""))
                parameter = _need_string("parameter", lane_raw["parameter"])
                if parameter not in parameters:
                    raise _fail("parameter", f"{slot_name} has no parameter {parameter!r}"
                                             f"{_suggest(parameter, list(parameters))}; it has: {', '.join(parameters)}")
                if any(lane.parameter == parameter for lane in lanes):
                    raise _fail("parameter", f"{parameter!r} already follows another lane of this plugin")
                if parameter in settings:
                    raise _fail("parameter", f"{parameter!r} is also fixed in [plugin.set]; keep one")
                lane = ParameterLane(**{key: lane_raw[key] for key in PARAMETER_LANE_KEYS if key in lane_raw})
                lane.check(parameters[parameter], slot_name)
                lanes.append(lane)
            except PresetError as exc:
                raise where.located(exc, where.line("plugin.lane", lane_counter, exc.key), lane_label) from None
            except TypeError as exc:  # a key given twice or of a wrong shape
                raise ChainError(f"{label}: {lane_label}: {exc}") from None
            finally:
                lane_counter += 1
        slots.append(PluginSlot(spec, settings, lanes, parameters, is_instrument))
    return Chain(name, slots, description, control_block, glide_s, path)


def shipped_chains() -> list[str]:
    """Names of the example chains in ``dawemo/chains``."""
    return shipped_names("dawemo.chains")


def load_chain(path_or_name: str | os.PathLike) -> Chain:
    """Load a chain file, or a shipped example by bare name (``"tension-bites"``); raises ChainError."""
    return parse_chain(*read_shipped_or_file(path_or_name, "dawemo.chains", "chain", ChainError))
