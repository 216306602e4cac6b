"""Mapping presets shipped with dawemo (TOML files; read them with ``dawemo.outputs.mapping.load_preset``)."""
