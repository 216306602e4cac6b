"""External plugins: a real VST3 (built from source by scripts/build_test_vst3.sh) in chains and renders.

The plugin "TestGain" has gain_db (-36..12 dB), drive (0..100 %) and a switch, mute.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dawemo.cli import main
from dawemo.machine.chain import ChainError, parse_chain
from dawemo.machine.processor import MachineChain
from dawemo.mapping import update_values

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


@pytest.fixture(scope="session")
def test_vst3(tmp_path_factory) -> Path:
    if shutil.which("g++") is None or not Path("/usr/share/dpf/distrho").is_dir():
        pytest.skip("building the test VST3 needs g++ and Debian's dpf-source (scripts/test.sh installs them as root)")
    out = tmp_path_factory.mktemp("vst3")
    built = subprocess.run(["bash", str(ROOT / "scripts" / "build_test_vst3.sh"), str(out)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return out / "TestGain.vst3"


def vst3_chain(plugin: Path, lane: str) -> str:
    return f'[chain]\nname = "vst"\n[[plugin]]\nplugin = "{plugin}"\n[[plugin.lane]]\n{lane}'


def test_plugins_command_lists_vst3_parameters(test_vst3, capsys):
    assert main(["plugins", str(test_vst3)]) == 0
    out = capsys.readouterr().out
    assert "3 parameters" in out
    assert "gain_db" in out and "-36 .. 12 dB" in out
    assert "mute" in out and "no (a switch)" in out


def test_vst3_gain_lane_follows_the_emotion(test_vst3):
    chain = parse_chain(vst3_chain(test_vst3, 'parameter = "gain_db"\nsource = "tension"\nout_min = -30.0\n'
                                               'out_max = 0.0\nattack_s = 0.0\nrelease_s = 0.0\n'))
    t = np.arange(SR * 2) / SR
    audio = np.stack([0.5 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    processor = MachineChain(chain, SR, record_curves=True)
    processor.push(update_values([0.5] * 7, [5.0, 5.0, 1.0, 5, 5, 5, 5, 5]), 0.0)  # tension 1 -> -30 dB
    processor.push(update_values([0.5] * 7, [5.0, 5.0, 9.0, 5, 5, 5, 5, 5]), 1.0)  # tension 9 -> 0 dB
    out = processor.process(audio)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))
    quiet, loud = rms(out[:, SR // 2:SR]), rms(out[:, SR + SR // 2:])
    assert quiet == pytest.approx(rms(audio) * 10 ** (-30 / 20), rel=0.05)
    assert loud == pytest.approx(rms(audio), rel=0.05)
    times, curves = processor.curves()
    assert curves[0, 0] == pytest.approx(-30.0) and curves[-1, 0] == pytest.approx(0.0, abs=0.01)


def test_vst3_errors_name_the_line(test_vst3, tmp_path):
    cases = [
        ('parameter = "mute"\nsource = "sad"\n', "cannot follow a lane: a switch"),
        ('parameter = "gain_db"\nsource = "sad"\nout_max = 20.0\n', "20 is outside TestGain gain_db's range -36 .. 12 dB"),
        ('parameter = "gian_db"\nsource = "sad"\n', "did you mean 'gain_db'"),
    ]
    for lane, message in cases:
        path = tmp_path / "vst.toml"
        path.write_text(vst3_chain(test_vst3, lane))
        with pytest.raises(ChainError, match=rf"^{path}:\d+: .*") as caught:
            from dawemo.machine.chain import load_chain
            load_chain(path)
        assert message in str(caught.value)
    not_a_plugin = tmp_path / "junk.vst3"
    not_a_plugin.write_text("not a plugin")
    with pytest.raises(ChainError, match="cannot load as a VST3/AU plugin"):
        parse_chain(f'[chain]\nname = "x"\n[[plugin]]\nplugin = "{not_a_plugin}"\n')
