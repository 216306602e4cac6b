"""Show control from the command line, end to end: ``dawemo run`` to real OSC and Art-Net receivers
with stage commands on stdin and a timeline; ``dawemo replay`` of that timeline; presets with bad
destinations; the recorder's sent rows."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import chord_progression, write_audio
from dawemo import constants as C
from dawemo.outputs.mapping import PresetError
from dawemo.outputs.preset_file import load_preset, parse_preset, save_preset
from dawemo.outputs.recorder import AutomationRecorder, read_timeline
from show_helpers import ArtnetReceiver, OscReceiver, frame_value, udp_sockets, wait_until

SHOW = """
[preset]
name = "cli-show"

[stage]
glide_s = 0.3

[destination.visuals]
protocol = "osc"
host = "127.0.0.1"
port = {osc_port}

[destination.rig]
protocol = "artnet"
host = "127.0.0.1"
port = {dmx_port}
universe = 2

[[lane]]
name = "Energy"
source = "energy"
osc = "/e"
attack_s = 0.05
release_s = 0.05

[[lane]]
name = "Tension"
source = "tension"
osc = "/t"
osc_type = "int"
out_min = 10
out_max = 90
safe = 42
attack_s = 0.05
release_s = 0.05

[[lane]]
name = "Dimmer"
source = "energy"
dmx16 = 10
attack_s = 0.05
release_s = 0.05
"""


def run_cli(*args: str, timeout_s: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dawemo.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout_s, **kwargs)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("show") / "chords.wav", chord_progression(9.0, C.SAMPLE_RATE),
                       C.SAMPLE_RATE)


@pytest.mark.slow
def test_run_sends_obeys_stage_commands_records_and_replays(clip, tmp_path):
    timeline = tmp_path / "show.jsonl"
    with OscReceiver() as osc, ArtnetReceiver(2) as dmx:
        preset = tmp_path / "show.toml"
        preset.write_text(SHOW.format(osc_port=osc.port, dmx_port=dmx.port))
        process = subprocess.Popen(
            [sys.executable, "-m", "dawemo.cli.main", "run", "--file", str(clip), "--realtime", "--preset", str(preset),
             "--window-s", "3", "--hop-s", "0.5", "--timeline", str(timeline), "--delay-ms", "rig=40",
             "--view-every-s", "0.5"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: osc.last("/e") is not None and osc.last("/t") is not None, 20, "OSC values")
            wait_until(lambda: dmx.last() is not None and frame_value(dmx.last(), 10, 16) > 0, 5, "DMX values")
            sockets = udp_sockets(process.pid)  # dawemo only sends: every socket connected to its destination
            assert sorted(remote for _, remote in sockets) == sorted([f"127.0.0.1:{osc.port}", f"127.0.0.1:{dmx.port}"])
            process.stdin.write("panic\n")
            process.stdin.flush()
            wait_until(lambda: osc.last("/e") == 0.0 and osc.last("/t") == 42
                       and frame_value(dmx.last(), 10, 16) == 0, 3, "blackout on every target")
            count = len(osc.messages)
            time.sleep(0.6)
            assert len(osc.messages) == count  # the music moves, the blackout holds
            process.stdin.write("release\nmute Dimmer\n")
            process.stdin.flush()
            wait_until(lambda: osc.last("/e") > 0.0, 3, "released")
            time.sleep(0.5)
            assert frame_value(dmx.last(), 10, 16) == 0  # muted
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
    assert process.returncode == 0, err
    assert "BLACKOUT" in err and "MUTE: Dimmer" in err and "artnet 'rig' 127.0.0.1" in err
    rows = read_timeline(timeline)
    sent = [row for row in rows if "target" in row]
    assert {row["lane"] for row in sent} == {"Energy", "Tension", "Dimmer"}
    assert f"osc://127.0.0.1:{osc.port}/t?type=int" in {row["target"] for row in sent}
    assert any(row["target"].endswith("/2/10?bits=16") and row["value"] == 0 for row in sent)
    times = [row["time_s"] for row in sent if row["lane"] == "Energy"]
    assert times == sorted(times)
    recorded_e = [row["value"] for row in sent if row["lane"] == "Energy"]
    recorded_t = [row["value"] for row in sent if row["lane"] == "Tension"]
    assert recorded_e == pytest.approx(osc.values("/e"), abs=1e-6)  # float32 on the wire
    assert recorded_t == osc.values("/t")

    # Replay: the same values, in the same order, at the recorded pace.
    with OscReceiver() as osc2, ArtnetReceiver(2) as dmx2:
        started = time.monotonic()
        # The recorded targets carry the receivers' ports: retarget them to the new receivers.
        text = timeline.read_text().replace(f":{osc.port}/", f":{osc2.port}/").replace(f":{dmx.port}/", f":{dmx2.port}/")
        moved = tmp_path / "moved.jsonl"
        moved.write_text(text)
        result = run_cli("replay", str(moved), timeout_s=60)
        took_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert osc2.values("/e") == pytest.approx(osc.values("/e"), abs=1e-6)
    assert osc2.values("/t") == osc.values("/t")
    span_s = sent[-1]["time_s"] - sent[0]["time_s"]
    assert span_s < took_s < span_s + 5
    assert frame_value(dmx2.last(), 10, 16) == 0 and len(dmx2.frames) > 44 * span_s * 0.8


def test_bad_destinations_are_one_line_errors_with_file_and_line(tmp_path, clip):
    cases = {
        'host = "10.0.0.256"': ("host", "not an IPv4 address"),
        'host = "my host"': ("host", "neither an IPv4 address nor a host name"),
        "port = 70000": ("port", "must be 1-65535"),
        "universe = 40000": ("universe", "must be 0-32767"),
    }
    for line, (key, words) in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(SHOW.format(osc_port=9000, dmx_port=6454).replace("universe = 2", line)
                        if key == "universe" else
                        SHOW.format(osc_port=9000, dmx_port=6454).replace('host = "127.0.0.1"\nport = 9000',
                                                                           line + "\nport = 9000")
                        if key == "host" else SHOW.format(osc_port=70000, dmx_port=6454))
        result = run_cli("run", "--file", str(clip), "--preset", str(path), "-q")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        number = next(n for n, text in enumerate(path.read_text().splitlines(), 1)
                      if text.startswith(f"{key} ="))
        assert f"{path}:{number}:" in lines[0] and f"key '{key}'" in lines[0] and words in lines[0]
    path.write_text(SHOW.format(osc_port=9000, dmx_port=6454).replace("dmx16 = 10", "dmx16 = 512"))
    with pytest.raises(PresetError, match=r"bad.toml:\d+: lane 3 \('Dimmer'\), key 'dmx16': must be 1-511"):
        load_preset(path)
    path.write_text(SHOW.format(osc_port=9000, dmx_port=6454).replace("dmx16 = 10", "dmx = 10\nto = \"visuals\""))
    with pytest.raises(PresetError, match="destination 'visuals' is OSC, not Art-Net or sACN"):
        load_preset(path)
    result = run_cli("run", "--file", str(clip), "--preset", "default", "--delay-ms", "rig=10", "-q")
    assert result.returncode == 2 and "no OSC or DMX destinations" in result.stderr
    result = run_cli("run", "--file", str(clip), "--preset", "lights", "--delay-ms", "rig", "-q")
    assert result.returncode == 2 and "DESTINATION=MS" in result.stderr
    result = run_cli("replay", str(tmp_path / "missing.csv"))
    assert result.returncode == 2 and "no such timeline" in result.stderr


def test_shipped_show_presets_round_trip(tmp_path):
    for name in ("lights", "osc-visuals"):
        preset = load_preset(name)
        assert preset.show_lanes and not preset.lanes
        again = load_preset(save_preset(preset, tmp_path / f"{name}.toml"))
        again.path = preset.path
        assert again == preset
    lights = load_preset("lights")
    assert lights.destinations["rig"].protocol == "artnet" and lights.destinations["rig"].refresh_hz == 44.0
    visuals = load_preset("osc-visuals")
    assert len(visuals.show_lanes) == 15 and {lane.osc for lane in visuals.show_lanes} == {
        f"/dawemo/{name}" for name in C.EMOTION_NAMES + C.MIDLEVEL_NAMES}


def test_a_show_lane_cannot_also_be_a_cc_lane():
    with pytest.raises(PresetError, match="key 'cc': a lane sends to one target"):
        parse_preset('[destination.v]\nprotocol = "osc"\nport = 9000\n[[lane]]\nsource = "energy"\n'
                     'osc = "/e"\ncc = 20\n', "x.toml")
    with pytest.raises(PresetError, match=r"x.toml:9: lane 2 \('valence'\), key 'osc': OSC address /e"):
        parse_preset('[destination.v]\nprotocol = "osc"\nport = 9000\n[[lane]]\nsource = "energy"\n'
                     'osc = "/e"\n[[lane]]\nsource = "valence"\nosc = "/e"\n', "x.toml")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_recorder_keeps_sent_values_beside_updates_and_faults(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    with AutomationRecorder(None, path, start_time_s=0.0) as recorder:
        recorder.record_sent(0.25, "Dimmer", "artnet://10.0.0.5:6454/0/1?bits=16", 40000)
        recorder.record_update(0.5, {"valence": 5.0, "energy": 6.0})
        recorder.record_sent(0.5, "Energy, loud", "osc://127.0.0.1:7000/e", 0.625)
        recorder.record_fault(0.75, "osc visuals: back")
    rows = read_timeline(path)
    assert rows == [
        {"time_s": 0.25, "lane": "Dimmer", "target": "artnet://10.0.0.5:6454/0/1?bits=16", "value": 40000},
        {"time_s": 0.5, "valence": 5.0, "energy": 6.0},
        {"time_s": 0.5, "lane": "Energy, loud", "target": "osc://127.0.0.1:7000/e", "value": 0.625},
        {"time_s": 0.75, "event": "osc visuals: back"},
    ]


def test_osc_control_is_off_by_default_and_binds_localhost_when_asked(clip, tmp_path):
    """--osc-control PORT: /dawemo/panic and /dawemo/release from a show controller; nothing listens without it."""
    from pythonosc.udp_client import SimpleUDPClient

    from show_helpers import free_udp_port

    control_port = free_udp_port()
    with OscReceiver() as osc:
        preset = tmp_path / "show.toml"
        preset.write_text(SHOW.format(osc_port=osc.port, dmx_port=free_udp_port()))
        process = subprocess.Popen(
            [sys.executable, "-m", "dawemo.cli.main", "run", "--file", str(clip), "--realtime", "--loop",
             "--preset", str(preset), "--window-s", "3", "--hop-s", "0.5", "--osc-control", str(control_port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: osc.last("/t") is not None, 20, "OSC values")
            listening = [local for local, remote in udp_sockets(process.pid) if remote == "0.0.0.0:0"]
            assert listening == [f"127.0.0.1:{control_port}"]  # only the control port, only on this machine
            client = SimpleUDPClient("127.0.0.1", control_port)
            client.send_message("/dawemo/panic", 1)
            wait_until(lambda: osc.last("/t") == 42, 3, "blackout over OSC control")
            client.send_message("/dawemo/panic", 0)  # a button's release: ignored
            client.send_message("/dawemo/release", [])
            wait_until(lambda: osc.last("/t") != 42, 3, "released over OSC control")
        finally:
            process.terminate()
            _, err = process.communicate(timeout=10)
    assert "stage commands over OSC on 127.0.0.1" in err and "BLACKOUT" in err and "RELEASE" in err
    assert err.count("BLACKOUT") == 1
