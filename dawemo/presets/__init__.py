"""Mapping presets shipped with dawemo (TOML files; read them with ``dawemo.mapping.load_preset``)."""
