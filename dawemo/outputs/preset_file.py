"""Preset files: TOML text to a ``Preset`` and back, and the presets shipped with dawemo.

A preset's MIDI lanes are ``mapping.Lane``; its show-control lanes, destinations and [stage] keys
come from ``show``. This module reads and writes both, so neither of those needs the other's
file format. See docs/presets.md.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

from dawemo.outputs import show
from dawemo.outputs.mapping import (DEFAULT_HOP_S, DEFAULT_TICK_HZ, SOURCES, Lane, Preset, PresetError, _check_keys,
                                    _ConflictError, _fail, _lane_label, _Locator, _need_int, _type_name,
                                    read_shipped_or_file, read_toml, shipped_names)

FORMAT_VERSION = 1
LANE_KEYS = ("name", "source", "channel", "cc", "cc14", "in_min", "in_max", "out_min", "out_max",
             "curve", "shape", "attack_s", "release_s", "deadband", "max_rate_hz", "safe")
# Keys a [defaults] table may set for every lane (the rest depend on the lane's source or CC kind).
DEFAULTS_KEYS = ("channel", "curve", "attack_s", "release_s", "deadband", "max_rate_hz")
PRESET_KEYS = ("format", "name", "description", "tick_hz", "hop_s", "interpolation")
TOP_LEVEL_KEYS = ("preset", "defaults", "lane", "stage", "destination")


def _raw_label(index: int, raw: Mapping[str, object]) -> str:
    """Label a lane from its raw table: by name if that is a usable string, else by source."""
    name = raw.get("name")
    return _lane_label(index, name if isinstance(name, str) and name else raw.get("source"))


def parse_preset(text: str, label: str = "<preset>", path: Path | None = None) -> Preset:
    """Parse preset TOML ``text``; ``label`` names it (usually the file path) in error messages."""
    data = read_toml(text, label)
    where = _Locator(text, label)
    try:
        for key in data:
            if key in PRESET_KEYS or key in LANE_KEYS:  # written above the first table header
                table = "[preset]" if key in PRESET_KEYS else "a [[lane]] (or [defaults])"
                raise _fail(key, f"belongs under {table}, not at the top level of the file")
        _check_keys(data, TOP_LEVEL_KEYS, "the top level (tables: [preset], [defaults], [[lane]])")
    except PresetError as exc:
        raise where.error("", exc, None, None) from None

    header = data.get("preset", {})
    defaults = data.get("defaults", {})
    raw_lanes = data.get("lane", [])
    if not isinstance(header, dict):
        raise where.error("", _fail("preset", "must be a table: [preset]"), None, None)
    if not isinstance(defaults, dict):
        raise where.error("", _fail("defaults", "must be a table: [defaults]"), None, None)
    if not isinstance(raw_lanes, list) or not all(isinstance(t, dict) for t in raw_lanes):
        raise where.error("", _fail("lane", "must be an array of tables: [[lane]]"), None, None)

    try:
        _check_keys(header, PRESET_KEYS, "[preset]")
        if "format" in header and _need_int("format", header["format"], 0, 2**31) != FORMAT_VERSION:
            raise _fail("format", f"this dawemo reads format {FORMAT_VERSION}, the file is format "
                                  f"{header['format']}")
    except PresetError as exc:
        raise where.error("[preset]", exc, "preset", None) from None
    try:
        _check_keys(defaults, DEFAULTS_KEYS, "[defaults] (per-lane keys that can have a default)")
        if "channel" in defaults:
            _need_int("channel", defaults["channel"], 1, 16)
    except PresetError as exc:
        raise where.error("[defaults]", exc, "defaults", None) from None

    destinations = show.parse_destinations(data.get("destination", {}), where)
    stage = data.get("stage", {})
    try:
        if not isinstance(stage, dict):
            raise _fail("stage", "must be a table: [stage]")
        _check_keys(stage, show.STAGE_KEYS, "[stage]")
        glide_s = show.check_glide(stage.get("glide_s", show.DEFAULT_GLIDE_S))
        midi_delay_ms = show.check_delay_ms("midi_delay_ms", stage.get("midi_delay_ms", 0.0))
    except PresetError as exc:
        raise where.error("[stage]", exc, "stage", None) from None

    lanes = []
    show_lanes = []
    for index, raw in enumerate(raw_lanes):
        values = {**defaults, **raw}
        if show.is_show_lane(raw):
            try:
                show_lanes.append(show.make_show_lane(raw, defaults, destinations))
            except PresetError as exc:
                raise where.error(_raw_label(index, raw), exc, "lane", index) from None
            continue
        try:
            _check_keys(raw, LANE_KEYS + show.SHOW_LANE_KEYS, "[[lane]]")
            if "source" not in raw:
                raise _fail("source", f"missing: the model output to follow, one of: {', '.join(SOURCES)}")
            if "name" in values and not isinstance(values["name"], str):
                raise _fail("name", f"must be a string, got {_type_name(values['name'])} {values['name']!r}")
            if "name" in values and values["name"] == "":
                raise _fail("name", "must not be empty (leave it out to use the source name)")
            # Files count channels 1-16 like a DAW does; Lane holds the 0-15 status-byte nibble.
            channel = _need_int("channel", values.get("channel", 1), 1, 16) - 1
            lane_args = {key: values[key] for key in LANE_KEYS if key in values and key != "channel"}
            lanes.append(Lane(channel=channel, **lane_args))
        except PresetError as exc:
            if exc.key in defaults and exc.key not in raw:  # the bad value came from [defaults]
                lane_where = f"[defaults] (used by {_raw_label(index, raw)})"
                raise where.error(lane_where, exc, "defaults", None) from None
            raise where.error(_raw_label(index, raw), exc, "lane", index) from None

    name = header.get("name", Path(label).stem if path is not None else "untitled")
    try:
        preset = Preset(name=name, lanes=lanes, description=header.get("description", ""),
                        tick_hz=header.get("tick_hz", DEFAULT_TICK_HZ), hop_s=header.get("hop_s", DEFAULT_HOP_S),
                        interpolation=header.get("interpolation", "linear"), path=path,
                        destinations=destinations, show_lanes=show_lanes, glide_s=glide_s,
                        midi_delay_ms=midi_delay_ms)
    except _ConflictError as exc:
        # Conflicts count MIDI lanes only: find the raw [[lane]] of MIDI lane exc.lane_index.
        raw_index = [i for i, raw in enumerate(raw_lanes) if not show.is_show_lane(raw)][exc.lane_index]
        lane = lanes[exc.lane_index]
        raise where.error(_lane_label(raw_index, lane.name), exc, "lane", raw_index) from None
    except PresetError as exc:
        if exc.key == "lane":
            raise where.error("", exc, None, None) from None
        raise where.error("[preset]", exc, "preset", None) from None
    try:
        show.check_show_conflicts(show_lanes)
    except show.ShowConflict as exc:
        raw_index = [i for i, raw in enumerate(raw_lanes) if show.is_show_lane(raw)][exc.lane_index]
        raise where.error(_lane_label(raw_index, show_lanes[exc.lane_index].name), exc, "lane", raw_index) from None
    return preset


def shipped_presets() -> list[str]:
    """Names of the presets shipped in ``dawemo/presets`` (for ``load_preset(name)``)."""
    return shipped_names("dawemo.presets")


def load_preset(path_or_name: str | os.PathLike) -> Preset:
    """Load a preset file, or a shipped preset by bare name (``"default"``); raises PresetError."""
    return parse_preset(*read_shipped_or_file(path_or_name, "dawemo.presets", "preset"))


def _toml_string(text: str) -> str:
    """A TOML basic string; control characters escaped (TOML forbids them raw)."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite number {value} to a preset")
        text = repr(value)  # shortest round-tripping form; TOML accepts 1e-05 and 1e+20
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return _toml_string(value)
    raise TypeError(f"cannot write {type(value).__name__} to a preset")


def dump_preset(preset: Preset) -> str:
    """The preset as TOML text (every lane key written out; channels 1-16)."""
    lines = ["# dawemo mapping preset (docs/presets.md)", "", "[preset]"]
    lines += [f"format = {FORMAT_VERSION}", f"name = {_toml_value(preset.name)}",
              f"description = {_toml_value(preset.description)}", f"tick_hz = {_toml_value(preset.tick_hz)}",
              f"hop_s = {_toml_value(preset.hop_s)}", f"interpolation = {_toml_value(preset.interpolation)}"]
    for lane in preset.lanes:
        lines += ["", "[[lane]]"]
        for key in LANE_KEYS:
            value = lane.channel + 1 if key == "channel" else getattr(lane, key)
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    lines += show.dump_show(preset, _toml_value)  # nothing for a MIDI-only preset with default stage keys
    return "\n".join(lines) + "\n"


def save_preset(preset: Preset, path: str | os.PathLike) -> Path:
    """Write the preset as TOML (via a temporary file, so a failed write keeps the old file)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(dump_preset(preset), encoding="utf-8")
    os.replace(temporary, path)
    return path
