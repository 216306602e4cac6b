"""The app on stage: every live fault shows within 1 s in the banner and the status bar, and clears.

Real parts only: a real ``jackd -d dummy`` stopped with SIGTERM under the app's JACK input and
virtual MIDI port, then restarted under the same name; a real synth port (a JACK MIDI client) that
quits; a real full disk (a small tmpfs, needs root) under a recording.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install -e .)")
pytest.importorskip("pytestqt", reason="GUI tests need pytest-qt (pip install -e .[dev])")

from dawemo import faults  # noqa: E402
from dawemo.faults import Fault, Health  # noqa: E402
from dawemo.ui.main_window import MainWindow  # noqa: E402
from dawemo.ui.settings import AppSettings  # noqa: E402
from dawemo.ui.widgets import BANNER_COLOURS, FaultBanner, format_age  # noqa: E402
from tests.conftest import chord_progression, fill_disk, small_tmpfs, write_audio  # noqa: E402

needs_jackd = pytest.mark.skipif(shutil.which("jackd") is None,
                                 reason="needs jackd (Debian package jackd2, installed by scripts/test.sh)")
SCREENSHOT = Path("/tmp/app-fault.png")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("faults") / "clip.wav", chord_progression(12.0, 22050, seed=3), 22050)


@pytest.fixture
def make_window(qtbot, tmp_path):
    windows = []

    def make(**settings) -> MainWindow:
        window = MainWindow(AppSettings(**settings), tmp_path / "config")
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.stop_engine()


def line_of(window: MainWindow, part: str) -> tuple[str, str] | None:
    """The banner's (state, text) line for ``part`` ("input", "MIDI"...), or None."""
    return next((line for line in window.error_banner.lines if line[1].startswith(part + " ")), None)


def test_banner_lists_faults_worst_first_with_where_and_age(qtbot):
    from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

    holder = QWidget()
    banner = FaultBanner()
    QVBoxLayout(holder).addWidget(banner)
    qtbot.addWidget(holder)
    holder.show()
    assert not banner.isVisible()  # nothing to say
    now = time.monotonic()
    current = [
        Fault("cpu", Health(faults.DEGRADED, "other programs keep the 4 CPU cores 97% busy", "CPU", now - 2), now),
        Fault("input", Health(faults.RECOVERING, "the JACK server shut down (closed); rejoining when it returns",
                              "JACK server 'stage'", now - 3.4), now),
        Fault("recording", Health(faults.FAILED, "disk full writing /take.mid: the last 2.0 s were not saved",
                                  "/take.mid", now - 75), now),
        Fault("midi", Health(faults.RECOVERING, "MIDI port 'synth:in' lost (disappeared)", "MIDI port 'synth:in'",
                             now - 1.2), now),
    ]
    banner.set_faults(current, now)
    banner.set_message("cannot save settings: read-only")
    assert banner.isVisible()
    assert [state for state, _ in banner.lines] == ["failed", "recovering", "recovering", "degraded", "error"]
    assert banner.text().splitlines() == [
        "recording failed 1 min 15 s ago: disk full writing /take.mid: the last 2.0 s were not saved",
        "input recovering for 3 s: the JACK server shut down (closed); rejoining when it returns "
        "[JACK server 'stage']",
        "MIDI recovering for 1 s: MIDI port 'synth:in' lost (disappeared)",  # the message names the port
        "CPU degraded for 2 s: other programs keep the 4 CPU cores 97% busy",
        "cannot save settings: read-only",
    ]
    labels = [label for label in banner.findChildren(QLabel) if label.isVisible()]
    assert labels[0].property("state") == "failed" and BANNER_COLOURS["failed"][1] in labels[0].styleSheet()
    assert BANNER_COLOURS["recovering"][0] in labels[1].styleSheet()
    banner.set_faults(current[2:3], now)  # the others came back: their lines go
    banner.set_message("")
    assert banner.text().startswith("recording failed") and len(banner.lines) == 1
    banner.set_faults([], now)
    assert not banner.isVisible() and banner.text() == ""
    assert [format_age(s) for s in (0.2, 59.9, 125, 7300)] == ["<1 s", "59 s", "2 min 05 s", "2 h 01 min"]


def start_jackd(name: str) -> subprocess.Popen:
    """``jackd -d dummy`` named ``name``, as a session manager restarts it. (A DummyJackServer
    would open a probe client in this process while the app's parts rejoin: two JACK client opens
    at once in one process have crashed libjack here.)"""
    return subprocess.Popen([shutil.which("jackd"), "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000",
                             "-p", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@needs_jackd
def test_a_stopped_jack_server_shows_within_a_second_and_clears_when_it_returns(qtbot, make_window, tmp_path,
                                                                                 monkeypatch):
    from dawemo.inputs.jack_server import DummyJackServer
    from dawemo.outputs.recorder import read_timeline
    from tests.jack_helpers import unique

    name = unique("dawemo-stage")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)  # the rig's server, before and after its restart
    server = DummyJackServer(name=name).__enter__()
    stopper = restarted = window = None
    try:
        window = make_window(source_kind="jack", jack_ports="", midi_mode="virtual", midi_name=unique("dawemo-cc"))
        timeline = tmp_path / "take.csv"
        window.record_timeline.setText(str(timeline))
        assert window.start_engine(), window.error_banner.text()
        window.toggle_recording()
        assert window.record_button.isChecked(), window.error_banner.text()
        qtbot.waitUntil(lambda: window.updates_received >= 2, timeout=20000)
        assert line_of(window, "input") is None and line_of(window, "MIDI") is None
        notes = []
        window.statusBar().messageChanged.connect(notes.append)

        # SIGTERM, as a session manager stops the server; the GUI thread goes on meanwhile.
        stopper = threading.Thread(target=server.__exit__, args=(None, None, None))
        stopped_s = time.monotonic()
        stopper.start()
        qtbot.waitUntil(lambda: line_of(window, "input") is not None and line_of(window, "MIDI") is not None,
                        timeout=1000)
        print(f"\nJACK server stopped -> input and MIDI lines in the banner: "
              f"{1000 * (time.monotonic() - stopped_s):.0f} ms")
        os.environ["JACK_DEFAULT_SERVER"] = name  # DummyJackServer.__exit__ put back the previous value
        state, text = line_of(window, "input")
        assert state == "recovering" and f"JACK server '{name}'" in text and "JACK server shut down" in text
        state, text = line_of(window, "MIDI")
        assert state == "recovering" and "JACK server" in text
        assert window.status_faults.isVisible() and window.status_faults.text().startswith("⚠ ")
        assert int(window.status_faults.text().split()[1]) == len(window.error_banner.lines) >= 2
        assert window.controller.running and window.record_button.isChecked()
        qtbot.wait(1300)  # the ages move on while the fault lasts
        assert "recovering for 1 s" in line_of(window, "input")[1]
        window.grab().save(str(SCREENSHOT))

        stopper.join(15)
        restarted_s = time.monotonic()
        restarted = start_jackd(name)  # the same server comes back
        qtbot.waitUntil(lambda: line_of(window, "input") is None and line_of(window, "MIDI") is None, timeout=3000)
        print(f"JACK server restarted -> banner clear: {1000 * (time.monotonic() - restarted_s):.0f} ms")
        qtbot.waitUntil(lambda: "input is back" in notes and "MIDI is back" in notes, timeout=1000)
        assert window.controller.running
        count = window.updates_received
        qtbot.waitUntil(lambda: window.updates_received > count, timeout=3000)  # analysing again

        window.toggle_recording()
        assert window.record_time.text() == "recording saved"
        events = [row["event"] for row in read_timeline(timeline) if "event" in row]
        assert any(event.startswith("input: recovering") for event in events), events
        assert "input: back" in events and "midi: back" in events
    finally:
        if window is not None:
            window.stop_engine()  # while a server still runs, if the test failed early
        if stopper is None:
            server.__exit__(None, None, None)
        else:
            stopper.join(15)
        if restarted is not None:
            restarted.terminate()
            try:
                restarted.wait(12)
            except subprocess.TimeoutExpired:
                restarted.kill()
                restarted.wait()


@needs_jackd
def test_a_synth_port_that_quits_shows_a_midi_line_naming_it_and_clears(qtbot, make_window, clip):
    from dawemo.inputs.jack_server import DummyJackServer
    from tests.jack_helpers import Receiver, unique

    with DummyJackServer(sample_rate=48000):
        client = unique("synth")
        synth = Receiver(client)
        window = None
        try:
            window = make_window(source_kind="file", file_path=str(clip), midi_mode="existing",
                                 midi_name=f"{client}:in")
            assert window.start_engine(), window.error_banner.text()
            qtbot.waitUntil(lambda: len(synth.messages()) > 0, timeout=20000)
            synth.close()  # the synth quits
            quit_s = time.monotonic()
            qtbot.waitUntil(lambda: line_of(window, "MIDI") is not None, timeout=1000)
            print(f"\nsynth quit -> MIDI line in the banner: {1000 * (time.monotonic() - quit_s):.0f} ms")
            state, text = line_of(window, "MIDI")
            assert state == "recovering" and f"MIDI port '{client}:in'" in text and "disappeared" in text
            assert window.controller.running
            updates = window.updates_received
            qtbot.wait(1000)
            window.grab().save(str(SCREENSHOT.with_name("app-fault-midi.png")))
            synth = Receiver(client)  # it is started again under the same name
            qtbot.waitUntil(lambda: line_of(window, "MIDI") is None, timeout=3000)
            qtbot.waitUntil(lambda: len(synth.messages()) > 0, timeout=3000)
            assert window.updates_received > updates  # the analysis never stopped
        finally:
            if window is not None:
                window.stop_engine()
            synth.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test (needs root)."""
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


fill = fill_disk


def test_a_full_disk_pauses_the_recording_not_the_show(qtbot, make_window, clip, small_disk):
    import mido

    window = make_window(source_kind="file", file_path=str(clip), midi_mode="none")
    assert window.start_engine(), window.error_banner.text()
    qtbot.waitUntil(lambda: window.updates_received >= 2, timeout=20000)
    engine = window.controller.engine
    filler = fill(small_disk)
    window.record_midi.setText(str(small_disk / "take.mid"))
    window.record_timeline.setText(str(small_disk / "take.csv"))
    started_s = time.monotonic()
    window.toggle_recording()  # onto a full disk: the take is kept in memory, the show goes on
    assert window.record_button.isChecked(), window.error_banner.text()
    qtbot.waitUntil(lambda: line_of(window, "recording") is not None, timeout=1000)
    print(f"\nrecording onto a full disk -> banner line: {1000 * (time.monotonic() - started_s):.0f} ms")
    state, text = line_of(window, "recording")
    assert state == "recovering" and "take" in text and "disk full" in text.lower()
    cc, updates = engine.cc_events, window.updates_received
    qtbot.wait(1200)
    assert engine.cc_events > cc and window.updates_received > updates  # CC and analysis go on
    assert window.controller.running

    window.toggle_recording()  # stopped while the disk is still full: what is lost is said, and stays
    assert not window.record_button.isChecked() and window.controller.running
    assert window.record_time.text().startswith("recording incomplete")
    state, text = line_of(window, "recording")
    assert state == "failed" and "not saved" in text
    assert window.status_faults.isVisible()
    qtbot.wait(300)
    assert line_of(window, "recording")[0] == "failed"  # no longer watched by the engine, still shown
    window.grab().save(str(SCREENSHOT.with_name("app-fault-disk.png")))

    filler.unlink()  # space again: a new take starts clean
    window.toggle_recording()
    assert window.record_button.isChecked()
    qtbot.waitUntil(lambda: line_of(window, "recording") is None, timeout=1000)
    qtbot.wait(1500)
    assert line_of(window, "recording") is None
    window.toggle_recording()
    assert window.record_time.text() == "recording saved"
    assert len(mido.MidiFile(str(small_disk / "take.mid")).tracks) > 1
    rows = list(csv.DictReader(open(small_disk / "take.csv")))
    assert len(rows) >= 2
