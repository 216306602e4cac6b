"""The app's remembered choices: a small JSON file in the per-user config directory (no pickle)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dawemo import constants as C


def config_dir() -> Path:
    """``$DAWEMO_CONFIG_DIR``, else the platform's per-user config folder + ``dawemo``."""
    override = os.environ.get("DAWEMO_CONFIG_DIR")
    if override:
        return Path(override)
    from PyQt6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(base or Path.home() / ".config") / "dawemo"


@dataclass
class AppSettings:
    source_kind: str = "file"  # file, jack, device
    file_path: str = ""
    file_loop: bool = True
    jack_ports: str = ""
    device_name: str = ""
    midi_mode: str = "virtual"  # virtual, existing, none
    midi_name: str = "dawemo"
    preset: str = "default"
    model_path: str = ""
    chain: str = "tension-bites"
    record_midi_path: str = ""
    record_timeline_path: str = ""
    tempo_bpm: float = 120.0
    steady_s: float = C.DEFAULT_STEADY_S  # change-aware averaging; 0: off

    @classmethod
    def load(cls, folder: Path | None = None) -> "AppSettings":
        path = (folder or config_dir()) / "app.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()  # first launch or an unreadable file: defaults, never a crash
        known = {f.name: f.type for f in fields(cls)}
        defaults = cls()
        values = {}
        for key, value in data.items() if isinstance(data, dict) else ():
            if key in known and isinstance(value, type(getattr(defaults, key))):
                values[key] = value
        return cls(**values)

    def save(self, folder: Path | None = None) -> Path:
        folder = folder or config_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "app.json"
        temporary = path.with_name("app.json.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        temporary.replace(path)
        return path
