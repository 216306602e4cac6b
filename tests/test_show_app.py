"""Stage controls in the app (offscreen): shortcuts and buttons drive a real OSC receiver, the state
reads in words, an unreachable destination shows in the fault banner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install -e .)")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt (pip install -e .[dev])")

from PyQt6.QtCore import Qt  # noqa: E402

from tests.conftest import chord_progression, write_audio  # noqa: E402
from dawemo.ui.main_window import MainWindow  # noqa: E402
from dawemo.ui.settings import AppSettings  # noqa: E402
from show_helpers import OscReceiver, free_udp_port  # noqa: E402

PRESET = """
[preset]
name = "app-show"
[stage]
glide_s = 0.2
[destination.visuals]
protocol = "osc"
port = {port}
[destination.nowhere]
protocol = "osc"
port = {dead_port}
[[lane]]
name = "Energy"
source = "energy"
to = "visuals"
osc = "/e"
safe = 0.25
attack_s = 0.05
[[lane]]
name = "Dead"
source = "energy"
to = "nowhere"
osc = "/d"
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("app") / "clip.wav", chord_progression(12.0, 22050, seed=3), 22050)


def test_stage_buttons_shortcuts_state_and_faults(qtbot, clip, tmp_path):
    with OscReceiver() as receiver:
        preset = tmp_path / "show.toml"
        preset.write_text(PRESET.format(port=receiver.port, dead_port=free_udp_port()))
        window = MainWindow(AppSettings(source_kind="file", file_path=str(clip), midi_mode="none",
                                        preset=str(preset)), tmp_path / "config")
        qtbot.addWidget(window)
        window.show()
        try:
            assert window.stage.state_text == "STOPPED" and not window.stage.buttons["hold"].isEnabled()
            assert set(window.stage.delay_boxes) == {"midi", "visuals", "nowhere"}
            assert window.start_engine(), window.error_banner.text()
            qtbot.waitUntil(lambda: receiver.last("/e") is not None, timeout=20000)
            qtbot.waitUntil(lambda: window.stage.state_text == "FOLLOWING", timeout=2000)
            qtbot.waitUntil(lambda: "osc nowhere recovering" in window.error_banner.text(), timeout=5000)
            assert "nothing listens there" in window.error_banner.text()

            qtbot.keyClick(window, Qt.Key.Key_F12)  # blackout
            qtbot.waitUntil(lambda: receiver.last("/e") == 0.25, timeout=2000)
            qtbot.waitUntil(lambda: window.stage.state_text == "BLACKOUT", timeout=2000)
            qtbot.keyClick(window, Qt.Key.Key_F10)  # release
            qtbot.waitUntil(lambda: window.stage.state_text == "FOLLOWING", timeout=2000)
            qtbot.waitUntil(lambda: receiver.last("/e") != 0.25, timeout=3000)
            window.stage.buttons["hold"].click()
            qtbot.waitUntil(lambda: window.stage.state_text == "HOLD", timeout=2000)
            count = len(receiver.messages)
            qtbot.wait(1200)  # updates arrive, nothing is sent
            assert len(receiver.messages) == count
            window.stage.buttons["release"].click()
            window.stage.mute_buttons["Energy"].click()
            qtbot.waitUntil(lambda: receiver.last("/e") == 0.25, timeout=2000)
            qtbot.waitUntil(lambda: window.stage.state_text == "FOLLOWING, 1 MUTED", timeout=2000)
            window.stage.delay_boxes["visuals"].setValue(120)
            assert window.controller.show.delays_s["visuals"] == pytest.approx(0.12)
            window.tabs.setCurrentWidget(window.show_lanes)
            qtbot.waitUntil(lambda: window.show_lanes.table.item(0, 2).text() == "0.250", timeout=2000)
            assert window.show_lanes.table.item(1, 1).text().startswith("osc://127.0.0.1:")
            window.stage.delay_boxes["midi"].setValue(30)
            assert window.controller.engine.midi_delay_s == pytest.approx(0.03)
        finally:
            window.stop_engine()
    assert window.stage.state_text == "STOPPED"
