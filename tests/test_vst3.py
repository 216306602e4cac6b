"""External plugins: a real VST3 (built from source by scripts/build_test_vst3.sh) in chains and renders.

The plugin "TestGain" has gain_db (-36..12 dB), drive (0..100 %) and a switch, mute.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dawemo.cli.main import main
from dawemo.machine.chain import ChainError, parse_chain
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import update_values

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def build_plugin(tmp_path_factory, script: str, bundle: str) -> Path:
    """Run one of scripts/build_test_*.sh into a fresh folder; skip when it cannot build here."""
    if shutil.which("g++") is None or not Path("/usr/share/dpf/distrho").is_dir():
        pytest.skip("building the test VST3 needs g++ and Debian's dpf-source (scripts/test.sh installs them as root)")
    out = tmp_path_factory.mktemp(bundle.lower())
    built = subprocess.run(["bash", str(ROOT / "scripts" / script), str(out)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    return out / f"{bundle}.vst3"


@pytest.fixture(scope="session")
def test_vst3(tmp_path_factory) -> Path:
    return build_plugin(tmp_path_factory, "build_test_vst3.sh", "TestGain")


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


# -- a hosted instrument ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_synth(tmp_path_factory) -> Path:
    return build_plugin(tmp_path_factory, "build_test_synth.sh", "TestSynth")


def synth_chain(synth: Path, extra: str = "") -> str:
    return (f'[chain]\nname = "synth"\n[[plugin]]\nplugin = "{synth}"\n[[plugin.lane]]\nparameter = "velocity"\n'
            f'source = "energy"\nout_min = 20.0\nout_max = 120.0\nattack_s = 0.0\nrelease_s = 0.0\n'
            f'[[plugin.lane]]\nparameter = "brightness"\nsource = "tension"\nattack_s = 0.0\nrelease_s = 0.0\n'
            f'[[plugin]]\nplugin = "Reverb"\n[plugin.set]\nwet_level = 0.2\n{extra}')


def notes(count: int, every_s: float = 0.5, note: int = 69) -> list:
    import mido

    events = []
    for k in range(count):
        events.append((k * every_s, mido.Message("note_on", note=note, velocity=64)))
        events.append((k * every_s + 0.3, mido.Message("note_off", note=note)))
    return events


def play(processor: MachineChain, events: list, seconds: float, block: int) -> np.ndarray:
    out, done = [], 0
    total = int(seconds * SR)
    while done < total:
        n = min(block, total - done)
        start_s, end_s = done / SR, (done + n) / SR
        out.append(processor.process_midi([e for e in events if start_s <= e[0] < end_s], n))
        done += n
    return np.concatenate(out, axis=1)


def test_instrument_velocity_and_brightness_follow_the_emotion(test_synth):
    chain = parse_chain(synth_chain(test_synth))
    assert chain.is_instrument
    quiet, loud = MachineChain(chain, SR), MachineChain(chain, SR)
    calm = update_values([0.5] * 7, [5.0, 1.0, 1.0, 5, 5, 5, 5, 5])  # energy 1 -> velocity 20, tension 1
    lively = update_values([0.5] * 7, [5.0, 9.0, 9.0, 5, 5, 5, 5, 5])  # energy 9 -> velocity 120, tension 9
    quiet.push(calm, 0.0)
    loud.push(lively, 0.0)
    a, b = play(quiet, notes(2), 1.0, 4096), play(loud, notes(2), 1.0, 4096)
    peak = lambda x: float(np.abs(x[:, int(0.1 * SR):int(0.25 * SR)]).max())
    assert peak(b) / peak(a) == pytest.approx(120 / 20, rel=0.25)
    spectrum = lambda x: np.abs(np.fft.rfft(x[0, int(0.05 * SR):int(0.25 * SR)]))
    bins = lambda hz: int(round(hz * 0.2))  # 0.2 s of audio: 5 Hz per bin
    assert spectrum(b)[bins(880)] / spectrum(b)[bins(440)] > 10 * spectrum(a)[bins(880)] / spectrum(a)[bins(440)]


def test_instrument_render_is_block_size_independent(test_synth):
    chain = parse_chain(synth_chain(test_synth))
    renders = []
    for block in (4096, 333, 64):
        processor = MachineChain(chain, SR)
        for k, level in enumerate((2.0, 8.0, 4.0)):
            processor.push(update_values([0.5] * 7, [5.0, level, level, 5, 5, 5, 5, 5]), k * 0.6)
        renders.append(play(processor, notes(4, 0.45), 2.0, block))
    assert np.abs(renders[0]).max() > 0.05
    assert np.abs(renders[0] - renders[1]).max() < 1e-4
    assert np.abs(renders[0] - renders[2]).max() < 1e-4


def test_render_plays_a_midi_file_through_an_instrument_chain(test_synth, tmp_path, capsys):
    import mido
    from pedalboard.io import AudioFile

    from tests.conftest import chord_progression, write_audio

    chain_path = tmp_path / "synth.toml"
    chain_path.write_text(synth_chain(test_synth))
    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    for k in range(8):  # 8 quarter notes at 120 BPM: 4 s
        track.append(mido.Message("note_on", note=60 + 2 * k, velocity=90, time=0 if k == 0 else 240))
        track.append(mido.Message("note_off", note=60 + 2 * k, time=240))
    midi_path = tmp_path / "riff.mid"
    song.save(str(midi_path))
    music = write_audio(tmp_path / "music.wav", chord_progression(6.0, 22050, seed=2), 22050)
    out = tmp_path / "riff.wav"
    assert main(["render", str(music), str(midi_path), "-o", str(out), "--chain", str(chain_path)]) == 0, \
        capsys.readouterr().err
    with AudioFile(str(out)) as rendered:
        assert rendered.num_channels == 2
        assert rendered.frames / rendered.samplerate == pytest.approx(song.length + 1.0, abs=0.01)
        audio = rendered.read(rendered.frames)
    assert np.abs(audio).max() > 0.05 and np.all(np.isfinite(audio))
    header = open(tmp_path / "riff.curves.csv").readline().strip().split(",")
    assert header == ["time_s", "TestSynth.velocity", "TestSynth.brightness"]
    # The wrong kind of machine input for a chain is a clear error.
    assert main(["render", str(music), str(music), "-o", str(out), "--chain", str(chain_path)]) == 1
    assert "starts with an instrument: give it a MIDI file" in capsys.readouterr().err
    assert main(["render", str(music), str(midi_path), "-o", str(out), "--chain", "tender-space"]) == 1
    assert "needs a chain that starts with an instrument" in capsys.readouterr().err


def test_an_instrument_must_come_first(test_synth, tmp_path):
    path = tmp_path / "late.toml"
    path.write_text(f'[chain]\nname = "late"\n[[plugin]]\nplugin = "Reverb"\n[[plugin]]\nplugin = "{test_synth}"\n')
    with pytest.raises(ChainError, match=rf"{path}:6: .*is an instrument: it must be the first plugin"):
        from dawemo.machine.chain import load_chain
        load_chain(path)


@pytest.mark.skipif(shutil.which("jackd") is None, reason="needs jackd (Debian package jackd2)")
def test_live_instrument_is_played_from_a_jack_midi_port(test_synth):
    import time

    import mido

    from dawemo.inputs.jack_server import DummyJackServer
    from dawemo.machine.live import JackMachine
    from dawemo.inputs.sources import JackSource
    from tests.jack_helpers import unique, wait_until

    chain = parse_chain(synth_chain(test_synth))
    with DummyJackServer(sample_rate=48000, period_frames=512):
        # rtmidi's client opens before any Python-callback JACK client (it holds the GIL while opening).
        keyboard = mido.Backend("mido.backends.rtmidi/UNIX_JACK").open_output("out", virtual=True,
                                                                               client_name=unique("keys"))
        try:
            name = unique("machine")
            with JackMachine(chain, client_name=name) as machine, \
                    JackSource(connect=[f"{name}:out_1"], client_name=unique("capture"), buffer_s=4.0) as capture:
                import jack

                patchbay = jack.Client(unique("patchbay"), no_start_server=True)
                try:
                    midi_out = [p.name for p in patchbay.get_ports(is_midi=True, is_output=True) if "keys" in p.name]
                    assert len(midi_out) == 1, midi_out
                    patchbay.connect(midi_out[0], f"{name}:midi_in")
                    wait_until(lambda: bool(patchbay.get_all_connections(f"{name}:midi_in")), 3.0, "MIDI connection")
                finally:
                    patchbay.close()

                def level(seconds: float) -> float:
                    blocks, got = [], 0
                    while got < seconds * 22050:
                        block = capture.read(0.2)
                        if block is not None:
                            blocks.append(block)
                            got += len(block)
                    return float(np.sqrt(np.mean(np.concatenate(blocks)[-int(0.2 * 22050):] ** 2)))

                machine.push(update_values([0.5] * 7, [5.0, 9.0, 5.0, 5, 5, 5, 5, 5]))  # energy 9: velocity 120
                silent = level(0.5)
                keyboard.send(mido.Message("note_on", note=69, velocity=64))
                sounding = max(level(0.3) for _ in range(6))  # up to ~2 s for a loaded machine
                keyboard.send(mido.Message("note_off", note=69))
                time.sleep(0.1)
                released = level(0.6)
                assert machine.error is None, machine.error
        finally:
            keyboard.close()
    assert silent < 1e-4 and sounding > 0.05 and released < 0.1 * sounding  # the reverb tail is still fading
