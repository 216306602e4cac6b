"""The desktop app (PyQt6), offscreen: real engine, real file source, real ONNX model, real JACK MIDI."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install -e .)")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt (pip install -e .[dev])")

from dawemo import constants as C  # noqa: E402
from tests.conftest import chord_progression, write_audio  # noqa: E402
from dawemo.ui.main_window import MainWindow  # noqa: E402
from dawemo.ui.settings import AppSettings  # noqa: E402

needs_jackd = pytest.mark.skipif(shutil.which("jackd") is None,
                                 reason="needs jackd (Debian package jackd2, installed by scripts/test.sh)")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("app") / "clip.wav", chord_progression(12.0, 22050, seed=7), 22050)


@pytest.fixture
def window(qtbot, clip, tmp_path):
    settings = AppSettings(source_kind="file", file_path=str(clip), midi_mode="none")
    window = MainWindow(settings, tmp_path / "config")
    qtbot.addWidget(window)
    window.show()
    yield window
    window.stop_engine()


def wait_for_updates(qtbot, window, count: int = 3) -> None:
    qtbot.waitUntil(lambda: window.updates_received >= count, timeout=20000)
    qtbot.wait(100)  # one redraw


def test_meters_timelines_and_explanation_receive_values(qtbot, window):
    assert window.start_engine(), window.error_banner.text()
    wait_for_updates(qtbot, window)
    for name in C.EMOTION_NAMES:
        assert window.emotion_meters.labels[name].text() != "-"
        assert 1.0 <= window.emotion_meters.values[name] <= 9.0 or abs(window.emotion_meters.values[name] - 5) < 5
    for name in C.MIDLEVEL_NAMES:
        assert 0.0 <= window.midlevel_meters.values[name] <= 1.0
    assert window.emotion_plot.points >= 3 and window.midlevel_plot.points >= 3
    assert np.any(window.explanation.contributions != 0)
    assert "happy =" in window.explanation.summary.text()
    qtbot.waitUntil(lambda: "updates/s" in window.status_details.text(), timeout=3000)
    assert "model dawemo" in window.status_details.text()
    assert window.level_meter.value() > -60
    assert window.stalls.late_ms  # the event loop kept ticking


def test_bad_preset_and_bad_cells_show_errors_instead_of_raising(qtbot, window, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[preset]\nname = "bad"\n\n[[lane]]\nsource = "valence"\ncc = 300\n')
    assert window.mapping.load(str(bad)) is False
    assert window.error_banner.isVisible()
    assert f"{bad}:6" in window.error_banner.text()
    before = window.mapping.preset
    cell = window.mapping.table.item(0, 3)  # the first lane's CC
    cell.setText("300")
    assert window.mapping.preset is before  # the last valid mapping stays
    assert "must be 0-119" in cell.toolTip()
    assert "not applied" in window.mapping.error_label.text()
    cell.setText("not a number")
    assert "must be an integer" in cell.toolTip()
    cell.setText("20")
    assert window.mapping.error_label.text() == ""


def test_start_with_a_missing_file_shows_a_message(qtbot, window, tmp_path):
    window.source_value.setText(str(tmp_path / "nope.wav"))
    assert window.start_engine() is False
    assert "cannot start" in window.error_banner.text() and "nope.wav" in window.error_banner.text()
    assert not window.controller.running


def test_record_writes_readable_midi_and_timeline(qtbot, window, tmp_path):
    import mido

    midi_path, timeline_path = tmp_path / "take.mid", tmp_path / "take.csv"
    window.record_midi.setText(str(midi_path))
    window.record_timeline.setText(str(timeline_path))
    assert window.start_engine()
    window.toggle_recording()
    assert window.record_button.isChecked()
    wait_for_updates(qtbot, window, 6)
    qtbot.waitUntil(lambda: window.record_time.text().startswith("recording 00:0"), timeout=3000)
    window.toggle_recording()
    assert window.record_time.text() == "recording saved"
    midi = mido.MidiFile(str(midi_path))
    assert midi.type == 1
    names = [track.name for track in midi.tracks]
    assert "Valence" in names
    assert sum(1 for track in midi.tracks for message in track if message.type == "control_change") > 10
    rows = list(csv.DictReader(open(timeline_path)))
    assert len(rows) >= 4 and set(C.EMOTION_NAMES) <= set(rows[0])


def test_choices_are_remembered_between_launches(qtbot, window, tmp_path, clip):
    window.midi_name.setText("my-synth")
    window.machine.choice.setCurrentText("tender-space")
    window.steady.setValue(0)
    window.close()
    again = MainWindow(None, tmp_path / "config")
    qtbot.addWidget(again)
    assert again.source_value.text() == str(clip)
    assert again.midi_name.text() == "my-synth"
    assert again.machine.choice.currentText() == "tender-space"
    assert again.steady.value() == 0 and again.steady.text().startswith("off")


def test_hold_steady_setting_reaches_the_engine(qtbot, window):
    assert window.steady.value() == C.DEFAULT_STEADY_S
    for steady_s in (0.0, 30.0):
        window.steady.setValue(steady_s)
        assert window.start_engine(), window.error_banner.text()
        tracker = window.controller.engine.tracker
        assert tracker.steady_s == (steady_s if tracker.model.segment_spread is not None else 0.0)
        assert (tracker.steady is None) == (tracker.steady_s == 0.0)
        window.stop_engine()


def test_machine_panel_shows_moving_parameters_and_chain_errors(qtbot, window):
    window.tabs.setCurrentWidget(window.machine)
    assert window.machine.lanes.rowCount() == 2  # tension-bites: cutoff and drive
    assert window.start_engine()
    wait_for_updates(qtbot, window, 3)
    qtbot.waitUntil(lambda: window.machine.lanes.item(0, 3).text() != "-", timeout=3000)
    cutoff = float(window.machine.lanes.item(0, 3).text())
    assert 350 <= cutoff <= 9000
    window.machine.editor.setPlainText('[chain]\nname = "x"\n[[plugin]]\nplugin = "Reverbb"\n')
    assert window.machine.apply_text() is False
    assert "chain:4" in window.machine.error_label.text() and "did you mean 'Reverb'" in window.machine.error_label.text()


@needs_jackd
def test_editing_a_lane_changes_what_is_sent_on_a_jack_midi_port(qtbot, window):
    import jack

    from dawemo.inputs.jack_server import DummyJackServer
    from tests.jack_helpers import Receiver, unique, wait_until

    with DummyJackServer(sample_rate=48000):
        receiver = Receiver(unique("synth"))
        try:
            port = unique("dawemo-app")
            window.midi_mode.setCurrentIndex(0)  # virtual port
            window.midi_name.setText(port)
            assert window.start_engine(), window.error_banner.text()
            patchbay = jack.Client(unique("patchbay"), no_start_server=True)
            try:
                wait_until(lambda: bool(patchbay.get_ports(port, is_midi=True, is_output=True)), 10, "dawemo's port")
                patchbay.connect(patchbay.get_ports(port, is_midi=True, is_output=True)[0], receiver.name)
            finally:
                patchbay.close()
            qtbot.waitUntil(lambda: any(data[1] == 20 for data in receiver.messages()), timeout=20000)
            assert not any(data[1] == 90 for data in receiver.messages())
            window.mapping.table.item(0, 3).setText("90")  # valence: CC 20 -> CC 90
            count = len(receiver.messages())
            window.mapping.table.item(0, 10).setText("0")  # attack 0 s: the new lane answers at once
            qtbot.waitUntil(lambda: any(data[1] == 90 for data in receiver.messages()[count:]), timeout=20000)
            after = receiver.messages()[count + 2:]
            assert all(data[0] == 0xB0 for data in after)
            assert not any(data[1] == 20 for data in after[5:])  # the old CC is no longer sent
        finally:
            window.stop_engine()
            receiver.close()


def test_dawemo_app_smoke(clip, tmp_path):
    """Launch the real entry point for a few seconds on a generated clip; any error in the log fails."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DAWEMO_CONFIG_DIR": str(tmp_path)}
    shot = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "-m", "dawemo.ui.app", "--file", str(clip), "--no-midi", "--quit-after-s", "5",
                           "--screenshot", str(shot)], capture_output=True, text=True, timeout=120, env=env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    for word in ("Traceback", "Error", "error:", "cannot"):
        assert word not in log, log
    assert shot.stat().st_size > 20000
    assert (tmp_path / "app.json").exists()


@needs_jackd
def test_midi_port_loss_is_shown_and_the_app_recovers(qtbot, window):
    from dawemo.inputs.jack_server import DummyJackServer
    from tests.jack_helpers import Receiver, unique

    with DummyJackServer(sample_rate=48000):
        client = unique("synth")
        first = Receiver(client)
        second = None
        try:
            window.midi_mode.setCurrentIndex(1)  # an existing port, found by name
            window.midi_name.setText(f"{client}:in")
            assert window.start_engine(), window.error_banner.text()
            qtbot.waitUntil(lambda: len(first.messages()) > 0, timeout=20000)
            first.close()
            qtbot.waitUntil(lambda: f"MIDI port '{client}:in' lost" in window.error_banner.text(), timeout=10000)
            assert window.error_banner.isVisible() and window.controller.running
            second = Receiver(client)  # the synth comes back under the same name
            # Only the MIDI line goes: a CPU line may stay while other programs load the cores.
            qtbot.waitUntil(lambda: not any(text.startswith("MIDI ") for _, text in window.error_banner.lines),
                            timeout=10000)
            qtbot.waitUntil(lambda: len(second.messages()) > 0, timeout=10000)
        finally:
            window.stop_engine()
            if second is not None:
                second.close()


def test_closing_the_window_stops_and_flushes_the_recording(qtbot, window, tmp_path):
    import mido

    midi_path, timeline_path = tmp_path / "closing.mid", tmp_path / "closing.csv"
    window.record_midi.setText(str(midi_path))
    window.record_timeline.setText(str(timeline_path))
    assert window.start_engine()
    window.toggle_recording()
    wait_for_updates(qtbot, window, 4)
    window.close()  # no explicit stop: closing must stop the engine and finish the files
    assert not window.controller.running and window.controller.recorder is None
    assert len(mido.MidiFile(str(midi_path)).tracks) > 1
    assert len(list(csv.DictReader(open(timeline_path)))) >= window.updates_received - 1


def test_dawemo_app_subcommand_takes_the_app_options(clip, tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DAWEMO_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dawemo.cli.main", "app", "--file", str(clip), "--no-midi",
                           "--quit-after-s", "2"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert str(clip) in (tmp_path / "app.json").read_text()
