"""What a plugin offers: its parameters, their ranges and units, and which ones lanes may move.

pedalboard's built-in effects do not describe their parameters, so their ranges are listed here
(as pedalboard enforces them, or the musically useful span where it accepts anything). External
VST3/AU plugins describe themselves through ``plugin.parameters``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

EXTERNAL_SUFFIXES = (".vst3", ".component")  # VST3 everywhere, Audio Units on macOS
VELOCITY = "velocity"  # lane target on an instrument: the note-on velocity (1-127), not a plugin parameter


class PluginError(ValueError):
    """A plugin that cannot be loaded, or a parameter it does not have; one line."""


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter: range in its own units; ``automatable`` False for switches and choices."""

    name: str
    min_value: float | None
    max_value: float | None
    unit: str = ""
    automatable: bool = True
    default: object = None
    note: str = ""  # why it is not automatable, or what the values mean

    def describe_range(self) -> str:
        if self.min_value is None:
            return "-"
        return f"{self.min_value:g} .. {self.max_value:g}" + (f" {self.unit}" if self.unit else "")


def _p(name, low, high, unit="", automatable=True, note=""):
    return ParameterInfo(name, low, high, unit, automatable, note=note)


# Built-in effects that make sense in a machine-sound chain. Ranges are pedalboard's own limits
# where it has them; open-ended ones (gain, cutoff) are capped at musically useful values.
BUILTIN_PARAMETERS: dict[str, tuple[ParameterInfo, ...]] = {
    "Gain": (_p("gain_db", -60.0, 24.0, "dB"),),
    "Reverb": (_p("room_size", 0.0, 1.0), _p("damping", 0.0, 1.0), _p("wet_level", 0.0, 1.0),
               _p("dry_level", 0.0, 1.0), _p("width", 0.0, 1.0),
               _p("freeze_mode", 0.0, 1.0, automatable=False, note="a switch (0 or 1)")),
    "Delay": (_p("delay_seconds", 0.0, 5.0, "s", automatable=False,
                 note="moving the delay time pitch-bends and clicks; set it fixed"),
              _p("feedback", 0.0, 1.0), _p("mix", 0.0, 1.0)),
    "Chorus": (_p("rate_hz", 0.0, 99.0, "Hz"), _p("depth", 0.0, 1.0), _p("centre_delay_ms", 1.0, 100.0, "ms"),
               _p("feedback", -0.95, 0.95), _p("mix", 0.0, 1.0)),
    "Phaser": (_p("rate_hz", 0.0, 99.0, "Hz"), _p("depth", 0.0, 1.0), _p("centre_frequency_hz", 20.0, 18000.0, "Hz"),
               _p("feedback", -0.95, 0.95), _p("mix", 0.0, 1.0)),
    "Distortion": (_p("drive_db", 0.0, 60.0, "dB"),),
    "Clipping": (_p("threshold_db", -60.0, 0.0, "dB"),),
    "Bitcrush": (_p("bit_depth", 1.0, 32.0, "bits"),),
    "LadderFilter": (_p("mode", None, None, automatable=False,
                        note="a choice: LPF12, HPF12, BPF12, LPF24, HPF24, BPF24"),
                     _p("cutoff_hz", 20.0, 18000.0, "Hz"), _p("resonance", 0.0, 1.0), _p("drive", 1.0, 10.0)),
    "LowpassFilter": (_p("cutoff_frequency_hz", 20.0, 18000.0, "Hz"),),
    "HighpassFilter": (_p("cutoff_frequency_hz", 20.0, 18000.0, "Hz"),),
    "LowShelfFilter": (_p("cutoff_frequency_hz", 20.0, 18000.0, "Hz"), _p("gain_db", -24.0, 24.0, "dB"),
                       _p("q", 0.1, 10.0)),
    "HighShelfFilter": (_p("cutoff_frequency_hz", 20.0, 18000.0, "Hz"), _p("gain_db", -24.0, 24.0, "dB"),
                        _p("q", 0.1, 10.0)),
    "PeakFilter": (_p("cutoff_frequency_hz", 20.0, 18000.0, "Hz"), _p("gain_db", -24.0, 24.0, "dB"),
                   _p("q", 0.1, 10.0)),
    "Compressor": (_p("threshold_db", -60.0, 0.0, "dB"), _p("ratio", 1.0, 20.0), _p("attack_ms", 0.1, 200.0, "ms"),
                   _p("release_ms", 1.0, 2000.0, "ms")),
    "Limiter": (_p("threshold_db", -60.0, 0.0, "dB"), _p("release_ms", 1.0, 2000.0, "ms")),
    "NoiseGate": (_p("threshold_db", -100.0, 0.0, "dB"), _p("ratio", 1.0, 100.0), _p("attack_ms", 0.1, 200.0, "ms"),
                  _p("release_ms", 1.0, 2000.0, "ms")),
    "PitchShift": (_p("semitones", -24.0, 24.0, "semitones", automatable=False,
                      note="re-pitching per block is not click-free; set it fixed"),),
}
LADDER_MODES = ("LPF12", "HPF12", "BPF12", "LPF24", "HPF24", "BPF24")


def is_external(spec: str) -> bool:
    """True when ``spec`` names a plugin file (a path) rather than a built-in effect."""
    return os.sep in spec or "/" in spec or spec.lower().endswith(EXTERNAL_SUFFIXES)


def load_plugin(spec: str):
    """A pedalboard plugin instance: a built-in by class name or an external plugin by path."""
    import pedalboard

    if not is_external(spec):
        if spec not in BUILTIN_PARAMETERS:
            import difflib

            close = difflib.get_close_matches(spec, list(BUILTIN_PARAMETERS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(f"unknown built-in plugin {spec!r}{hint}; built-ins: {', '.join(BUILTIN_PARAMETERS)}; "
                              f"or give the path of a .vst3 plugin")
        return getattr(pedalboard, spec)()
    path = Path(spec).expanduser()
    if not path.exists():
        raise PluginError(f"{spec}: no such plugin file or bundle")
    try:
        plugin = pedalboard.load_plugin(str(path))
    except ImportError as error:  # pedalboard raises ImportError for files it cannot load as plugins
        raise PluginError(f"{spec}: cannot load as a VST3/AU plugin: {_first_line(error)}") from None
    except Exception as error:  # noqa: BLE001 - plugin loaders raise many kinds; report them in one line
        raise PluginError(f"{spec}: cannot load plugin: {_first_line(error)}") from None
    return plugin


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def parameters_of(plugin, spec: str) -> dict[str, ParameterInfo]:
    """{python name: ParameterInfo} for a loaded plugin (``spec`` as given to ``load_plugin``)."""
    if not is_external(spec):
        infos = {}
        for info in BUILTIN_PARAMETERS[spec]:
            current = getattr(plugin, info.name)
            default = current.name if info.name == "mode" else float(current)
            infos[info.name] = ParameterInfo(info.name, info.min_value, info.max_value, info.unit,
                                             info.automatable, default, info.note)
        return infos
    infos = {}
    for name, parameter in getattr(plugin, "parameters", {}).items():
        infos[name] = _external_parameter(name, parameter, getattr(plugin, name, None))
    if getattr(plugin, "is_instrument", False):  # dawemo's own lane target: the velocity of every note played
        infos[VELOCITY] = ParameterInfo(VELOCITY, 1.0, 127.0, "", True, 100.0, "note-on velocity set by dawemo")
    return infos


def _external_parameter(name: str, parameter, current) -> ParameterInfo:
    """Describe a VST3/AU parameter as pedalboard exposes it (values in the plugin's own units)."""
    low, high = getattr(parameter, "min_value", None), getattr(parameter, "max_value", None)
    numeric = isinstance(low, (int, float)) and isinstance(high, (int, float)) and not isinstance(low, bool)
    boolean = bool(getattr(parameter, "is_boolean", False)) or getattr(parameter, "type", None) is bool
    choices = getattr(parameter, "valid_values", None) if not numeric else None
    automatable = numeric and not boolean and bool(getattr(parameter, "is_automatable", True))
    note = ""
    if boolean:
        note = "a switch"
    elif not numeric:
        shown = ", ".join(map(str, list(choices)[:8])) if choices else "text values"
        note = f"a choice: {shown}"
    elif not getattr(parameter, "is_automatable", True):
        note = "the plugin marks it as not automatable"
    unit = str(getattr(parameter, "label", "") or getattr(parameter, "units", "") or "")
    default = float(current) if isinstance(current, (int, float)) and not isinstance(current, bool) else current
    return ParameterInfo(name, float(low) if numeric else None, float(high) if numeric else None, unit,
                         automatable, default, note)


def describe_plugin(spec: str) -> tuple[str, list[ParameterInfo]]:
    """(display name, parameters) for ``dawemo plugins``; raises PluginError."""
    plugin = load_plugin(spec)
    name = spec if not is_external(spec) else str(getattr(plugin, "name", Path(spec).stem))
    return name, list(parameters_of(plugin, spec).values())


def format_parameters(name: str, parameters: list[ParameterInfo]) -> str:
    """A table for the terminal: name, range and unit, automatable, current value."""
    rows = [("parameter", "range", "lanes", "value")]
    for info in parameters:
        value = info.default
        shown = f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)
        lanes = "yes" if info.automatable else f"no ({info.note})" if info.note else "no"
        rows.append((info.name, info.describe_range(), lanes, shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{name}: {len(parameters)} parameters"]
    lines += ["  " + "  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
    return "\n".join(lines)
