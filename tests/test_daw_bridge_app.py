"""The app's input list offers the running DAW bridges and uses one as source and MIDI destination
(the VST3 build hosted by pedalboard in this process; the GUI offscreen)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install -e .)")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt (pip install -e .[dev])")
pedalboard = pytest.importorskip("pedalboard")

from bridge_helpers import build_bridge, unique_name  # noqa: E402
from dawemo.bridge_shm import list_bridges  # noqa: E402
from dawemo.inputs.bridge import BridgeSource  # noqa: E402
from dawemo.outputs.bridge_midi import BridgeMidiOut  # noqa: E402
from dawemo.ui.main_window import MainWindow  # noqa: E402
from dawemo.ui.settings import AppSettings  # noqa: E402


def test_bridge_is_an_input_and_the_cc_go_back_through_it(qtbot, tmp_path, monkeypatch):
    build = build_bridge()
    prefix = unique_name("app")
    monkeypatch.setenv("DAWEMO_BRIDGE_NAME", prefix)
    host = pedalboard.load_plugin(str(build / "vst3" / "DawemoBridge.vst3"))
    host.process(np.zeros((2, 512), np.float32), 48000, buffer_size=512, reset=False)
    name = next(info.name for info in list_bridges() if info.name.startswith(prefix) and info.active)
    window = MainWindow(AppSettings(midi_mode="none"), tmp_path / "config")
    qtbot.addWidget(window)
    try:
        window.source_kind.setCurrentIndex(window.source_kind.findData("bridge"))
        assert name in window.source_value.toolTip()
        window.source_value.setText(name)
        assert window.start_engine(), window.error_banner.text()
        assert isinstance(window.controller.source, BridgeSource)
        assert isinstance(window.controller.midi, BridgeMidiOut)
        host.process(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 48000)).astype(np.float32), 48000,
                     buffer_size=512, reset=False)
        qtbot.waitUntil(lambda: window.controller.source.bridge_name == name and window.controller.source.position > 0,
                        timeout=5000)
    finally:
        window.stop_engine()
        del host
