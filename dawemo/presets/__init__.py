"""Mapping presets shipped with dawemo (TOML files; read them with ``dawemo.outputs.preset_file.load_preset``)."""
