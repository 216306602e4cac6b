"""The dawemo Bridge plugin's LV2 build hosted by jalv on a real JACK server (``jackd -d dummy``):
a JACK client plays music into it, dawemo analyses what the bridge sends and its CC leave the
plugin's MIDI output to a JACK MIDI receiver; dawemo killed with -9, the host restarted, and
recording on the host's timeline (JACK transport with a timebase master giving bar/beat/tempo)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge_helpers import Jalv, JackRecorder, build_bridge, unique_name
from conftest import chord_progression
from dawemo.bridge_shm import BridgeSegment
from dawemo.emotion.model import EmotionModel
from dawemo.engine import EmotionEngine
from dawemo.inputs.bridge import BridgeSource
from dawemo.inputs.jack_server import DummyJackServer, JackServerError
from dawemo.outputs.bridge_midi import BridgeMidiOut
from dawemo.outputs.preset_file import load_preset
from jack_helpers import JackPlayer, Receiver, connect, wait_until

SR = 48000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lv2_dir() -> Path:
    return build_bridge() / "lv2"


@pytest.fixture
def server():
    pytest.importorskip("jack")
    try:
        with DummyJackServer(sample_rate=SR, period_frames=512, name=unique_name("wtbridge-")) as running:
            yield running
    except JackServerError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return chord_progression(8.0, SR, channels=1, seed=3).astype(np.float32).reshape(-1)


def find(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """First index where ``needle`` (exactly) starts in ``haystack``."""
    head = needle[:32]
    for index in np.flatnonzero(haystack[: len(haystack) - len(needle) + 1] == head[0]):
        if np.array_equal(haystack[index:index + len(needle)], needle):
            return int(index)
    return None


def test_music_in_cc_out_of_the_plugins_midi_output_in_order_and_complete(server, lv2_dir, music):
    receiver = Receiver(unique_name("rx"))  # rtmidi before any Python-callback JACK client (GIL)
    client = unique_name("jalv")
    with Jalv(lv2_dir, client, unique_name("jb")) as host:
        connect(f"{client}:lv2_events_out", receiver.name)
        player = JackPlayer([music, music * 0.5], name=unique_name("daw"))
        recorder = JackRecorder(unique_name("rec"), channels=2)
        for i in (1, 2):
            connect(f"{player.name}:out_{i}", f"{client}:lv2_audio_in_{i}")
            connect(f"{client}:lv2_audio_out_{i}", f"{recorder.client.name}:in_{i}")
        sent: list = []
        try:
            with BridgeSource(host.bridge) as source, BridgeMidiOut(source=source) as midi:
                engine = EmotionEngine(source, EmotionModel(), preset=load_preset("default"), midi=midi,
                                       on_events=sent.extend)
                with engine:
                    wait_until(lambda: len(sent) >= 40, 60, "40 CC events from the engine")
                assert source.health.ok and midi.health.ok
                assert source.sample_rate == SR and source.dropped_frames == 0
                expected = [[0xB0 | event.channel, event.control, event.value] for event in sent]
                got = receiver.wait_for(len(expected), timeout_s=5)
                time.sleep(0.3)
                assert receiver.messages() == expected  # in order, complete, nothing extra
                assert midi.segment.u64("midi_emitted") == len(expected) and midi.dropped_count == 0
                assert got
        finally:
            player.client.deactivate()
            player.client.close()
            recorder.close()
            receiver.close()
        # The host's output is its input, sample for sample: its last blocks are found in the clip.
        out = recorder.audio()
        assert out.shape[1] > SR
        window = out[:, -8192:-4096]
        assert np.abs(window).max() > 0.01
        at = find(np.tile(music, 2), window[0])
        assert at is not None, "the plugin's output is not its input"
        assert np.array_equal(window[1], np.tile(music * 0.5, 2)[at:at + 4096])


def test_instance_name_comes_from_the_plugin_state(server, lv2_dir, tmp_path):
    """A saved session names the instance (LV2 state restored by jalv -l); the default name goes."""
    name = unique_name("stage ")  # the space becomes '-'
    (tmp_path / "manifest.ttl").write_text(
        "@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n@prefix pset: <http://lv2plug.in/ns/ext/presets#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "<state.ttl> a pset:Preset ; lv2:appliesTo <urn:dawemo:bridge> ; rdfs:seeAlso <state.ttl> .\n")
    (tmp_path / "state.ttl").write_text(
        "@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n@prefix pset: <http://lv2plug.in/ns/ext/presets#> .\n"
        "@prefix state: <http://lv2plug.in/ns/ext/state#> .\n"
        f'<> a pset:Preset ; lv2:appliesTo <urn:dawemo:bridge> ; state:state [ <urn:dawemo:bridge#name> "{name}" ] .\n')
    prefix = unique_name("default")
    expected = name.replace(" ", "-")
    with Jalv(lv2_dir, unique_name("jalv"), prefix, state_dir=tmp_path, bridge=expected) as host:
        from dawemo.bridge_shm import list_bridges

        names = [info.name for info in list_bridges()]
        assert expected in names and not [n for n in names if n.startswith(prefix)]
        with BridgeSource(expected) as source:
            wait_until(lambda: source.read(0.05) is not None and source.bridge_name == expected, 3, "audio")
        assert host.process.poll() is None


def _wait_attached(name: str, pid: int, timeout_s: float = 60.0) -> BridgeSegment:
    segment = BridgeSegment(name)
    emitted = segment.u64("midi_emitted")
    wait_until(lambda: segment.i64("reader_pid") == pid and segment.u64("midi_emitted") > emitted, timeout_s,
               f"dawemo pid {pid} attached and sending CC")
    return segment


@pytest.mark.slow
def test_kill_9_dawemo_host_keeps_passing_audio_and_a_new_dawemo_reconnects(server, lv2_dir, music, tmp_path):
    client = unique_name("jalv")
    with Jalv(lv2_dir, client, unique_name("jk")) as host:
        player = JackPlayer([music], name=unique_name("daw"))
        recorder = JackRecorder(unique_name("rec"))
        connect(f"{player.name}:out_1", f"{client}:lv2_audio_in_1")
        connect(f"{client}:lv2_audio_out_1", f"{recorder.client.name}:in_1")
        command = [sys.executable, "-m", "dawemo.cli.main", "run", "--bridge", host.bridge, "-q", "--duration-s", "120"]
        try:
            first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            segment = _wait_attached(host.bridge, first.pid)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            frames, written = recorder.audio().shape[1], segment.u64("audio_write")
            time.sleep(1.0)
            after = recorder.audio()[0, frames:]
            assert host.process.poll() is None, "the host died with dawemo"
            assert after.size >= 0.8 * SR and segment.u64("audio_write") - written >= 0.8 * SR
            assert find(np.tile(music, 3), after[:4096]) is not None, "the host's output is no longer its input"
            second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _wait_attached(host.bridge, second.pid)
            finally:
                second.send_signal(signal.SIGTERM)
                assert second.wait(20) == 0, second.stderr.read().decode()[-800:]
            segment.close()
        finally:
            player.client.deactivate()
            player.client.close()
            recorder.close()


def test_host_restart_reconnects_within_a_second(server, lv2_dir, music):
    prefix = unique_name("jr")
    player = JackPlayer([music], name=unique_name("daw"))
    try:
        with BridgeSource(f"{prefix}-1", target_rate=22050) as source:
            assert not source.health.ok  # dawemo first: it waits for the bridge
            for round_ in range(2):
                client = unique_name("jalv")
                with Jalv(lv2_dir, client, prefix):
                    appeared = time.monotonic()
                    connect(f"{player.name}:out_1", f"{client}:lv2_audio_in_1")
                    while not (source.health.ok and (block := source.read(0.05)) is not None and block.size
                               and np.abs(block).max() > 0.01):
                        source.read(0.05)
                        assert time.monotonic() - appeared < 1.0, f"round {round_}: {source.health}"
                    assert source.attaches == round_ + 1
                # jalv gone (its segment removed): dawemo notices and waits again
                wait_until(lambda: source.read(0.05) is None and not source.health.ok, 3, "the bridge gone")
    finally:
        player.client.deactivate()
        player.client.close()


@pytest.mark.slow
def test_recording_lands_on_the_hosts_timeline(server, lv2_dir, music, tmp_path):
    import jack
    import mido

    bpm, beats_per_bar, beat_type, ticks_per_beat = 90.0, 3, 4, 1920.0
    master = jack.Client(unique_name("timebase"), no_start_server=True)

    def timebase(state, blocksize, pos, new_pos):  # JACK's BBT from the frame position
        beats = pos.frame / SR * bpm / 60.0
        pos.valid |= jack._lib.JackPositionBBT
        pos.bar = int(beats // beats_per_bar) + 1
        pos.beat = int(beats % beats_per_bar) + 1
        pos.tick = int((beats % 1.0) * ticks_per_beat)
        pos.bar_start_tick = (pos.bar - 1) * beats_per_bar * ticks_per_beat
        pos.beats_per_bar, pos.beat_type = beats_per_bar, beat_type
        pos.ticks_per_beat, pos.beats_per_minute = ticks_per_beat, bpm

    master.set_timebase_callback(timebase, conditional=False)
    master.activate()
    song_s = 8 * beats_per_bar * 60.0 / bpm  # bar 9
    master.transport_frame = int(song_s * SR)
    master.transport_start()
    started = time.monotonic()
    client = unique_name("jalv")
    out = tmp_path / "take.mid"
    try:
        with Jalv(lv2_dir, client, unique_name("jt")) as host:
            player = JackPlayer([music], name=unique_name("daw"))
            connect(f"{player.name}:out_1", f"{client}:lv2_audio_in_1")
            result = subprocess.run([sys.executable, "-m", "dawemo.cli.main", "run", "--bridge", host.bridge, "-q",
                                     "--duration-s", "6", "--record", str(out)], capture_output=True, text=True,
                                    timeout=120)
            ended = time.monotonic()
            player.client.deactivate()
            player.client.close()
        assert result.returncode == 0, result.stderr
        assert "on the DAW timeline" in result.stderr
    finally:
        master.deactivate()
        master.close()
    midi = mido.MidiFile(out)
    meta = {message.type: message for message in midi.tracks[0] if message.is_meta}
    assert meta["set_tempo"].tempo == round(60_000_000 / (bpm * 4 / beat_type))
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (beats_per_bar, beat_type)
    ticks = []
    for track in midi.tracks[1:]:
        now = 0
        for message in track:
            now += message.time
            if message.type == "control_change":
                ticks.append(now)
    assert ticks, "no automation recorded"
    seconds = np.array(ticks) / midi.ticks_per_beat * 60.0 / bpm  # song time of each CC
    # Every CC lies between bar 9 (where the song was when recording began) and the song position at the end.
    assert seconds.min() >= song_s and seconds.max() <= song_s + (ended - started) + 0.5
