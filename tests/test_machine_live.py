"""The live machine sound on a real JACK server: a player -> dawemo-machine (chain) -> a capture client."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from dawemo.machine.chain import parse_chain
from dawemo.outputs.mapping import update_values
from tests.jack_helpers import JackPlayer, unique, wait_until

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None,
                                reason="needs jackd (Debian package jackd2, installed by scripts/test.sh)")
RATE = 48000


@pytest.fixture(scope="module")
def jack_server():
    from dawemo.inputs.jack_server import DummyJackServer

    with DummyJackServer(sample_rate=RATE, period_frames=1024) as server:
        yield server


def tension(value: float) -> dict[str, float]:
    update = update_values([0.5] * 7, [5.0] * 8)
    update["tension"] = value
    return update


def rms_dbfs(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) + 1e-12)


def test_machine_sound_follows_pushed_emotions_through_jack(jack_server):
    from dawemo.machine.live import JackMachine
    from dawemo.inputs.sources import JackSource

    chain = parse_chain('[chain]\nname = "gain"\n[[plugin]]\nplugin = "Gain"\n[[plugin.lane]]\nparameter = "gain_db"\n'
                        'source = "tension"\nout_min = -40.0\nout_max = 0.0\nattack_s = 0.0\nrelease_s = 0.0\n')
    t = np.arange(RATE) / RATE
    player = JackPlayer([(0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)], name=unique("synth"))
    machine_name = unique("machine")
    try:
        with JackMachine(chain, inputs=[f"{player.name}:out_1"], client_name=machine_name) as machine, \
                JackSource(connect=[f"{machine_name}:out_1"], client_name=unique("capture"), buffer_s=4.0) as capture:
            def level_after(update: dict, seconds: float = 1.0) -> float:
                machine.push(update)
                blocks, samples = [], 0
                while samples < seconds * 22050:
                    block = capture.read(0.2)
                    if block is not None:
                        blocks.append(block)
                        samples += len(block)
                return rms_dbfs(np.concatenate(blocks)[-int(0.4 * 22050):])

            dry_dbfs = rms_dbfs(0.5 * np.sin(2 * np.pi * 300 * t))
            quiet = level_after(tension(1.0))
            loud = level_after(tension(9.0))
            middle = level_after(tension(5.0))
            assert machine.error is None
            assert quiet == pytest.approx(dry_dbfs - 40.0, abs=1.5)
            assert loud == pytest.approx(dry_dbfs, abs=1.0)
            assert middle == pytest.approx(dry_dbfs - 20.0, abs=1.5)
            assert machine.dropped_input_frames == 0
    finally:
        player.close()


def test_run_with_a_chain_plays_the_machine_sound(jack_server, tmp_path):
    """``dawemo run --file ... --chain ... --machine-input ...``: the chain runs beside the analysis."""
    import jack

    from tests.conftest import chord_progression, write_audio

    music = write_audio(tmp_path / "music.wav", chord_progression(6.0, 22050), 22050)
    t = np.arange(RATE) / RATE
    player = JackPlayer([(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)], name=unique("synth"))
    player_port = f"{player.name}:out_1"
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "dawemo.cli.main", "run", "--file", str(music), "--realtime", "--chain", "tension-bites",
             "--machine-input", f"{player.name}:out_1", "--duration-s", "5", "--view-every-s", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watcher = jack.Client(unique("watcher"), no_start_server=True)
        try:
            def connections() -> list[str]:
                if not watcher.get_ports("dawemo-machine:in_1"):
                    return []
                try:
                    return [p.name for p in watcher.get_all_connections("dawemo-machine:in_1")]
                except RuntimeError:  # JACK-Client cannot decode an empty connection list
                    return []

            wait_until(lambda: bool(connections()), timeout_s=30, what="the machine input connection")
            connected = connections()
        finally:
            watcher.close()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        player.close()
    assert process.returncode == 0, err
    assert connected == [player_port]
    assert "machine sound 'Tension bites'" in err
    assert "machine 'Tension bites' underruns" in err


def test_run_machine_options_need_a_chain():
    done = subprocess.run([sys.executable, "-m", "dawemo.cli.main", "run", "--file", "x.wav", "--machine-input", "a:b"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "need --chain" in done.stderr
