"""Machine sounds: chain files, the parameter-following processor, offline render, plugins command.

All with real pedalboard plugins and the real shipped ONNX model; no stand-ins.
"""

from __future__ import annotations

import csv
import math
import re
import textwrap

import numpy as np
import pytest

from dawemo.cli.main import main
from dawemo.machine.chain import ChainError, load_chain, parse_chain, shipped_chains
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import update_values
from tests.conftest import chord_progression, write_audio

SR = 44100


def chain_text(body: str, header: str = "[chain]\nname = \"t\"\n") -> str:
    return header + textwrap.dedent(body)


def gain_chain(attack_s: float = 0.0, release_s: float = 0.0, glide_s: float = 0.03):
    """Gain follows tension from -40 dB (tension 1) to 0 dB (tension 9), no smoothing of its own."""
    return parse_chain(chain_text(f"""
        [[plugin]]
        plugin = "Gain"
        [[plugin.lane]]
        parameter = "gain_db"
        source = "tension"
        out_min = -40.0
        out_max = 0.0
        attack_s = {attack_s}
        release_s = {release_s}
        """, header=f"[chain]\nname = \"gain\"\nglide_s = {glide_s}\n"))


def values(tension: float) -> dict[str, float]:
    """A full model update with every emotion at the middle except tension."""
    update = update_values([0.5] * 7, [5.0] * 8)
    update["tension"] = tension
    return update


def sine(duration_s: float, frequency_hz: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * SR)) / SR
    wave = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return np.stack([wave, wave])


def run_blocks(processor: MachineChain, audio: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([processor.process(audio[:, i:i + block]) for i in range(0, audio.shape[1], block)], axis=1)


def roughness(audio: np.ndarray, frame: int = 256) -> np.ndarray:
    """Largest |second difference| per frame: a step (click) in the signal shows up as a spike."""
    second = np.abs(np.diff(audio, n=2, axis=1)).max(axis=0)
    usable = len(second) // frame * frame
    return second[:usable].reshape(-1, frame).max(axis=1)


# -- chain files ----------------------------------------------------------------------------------


def test_shipped_chains_load_and_move_parameters():
    names = shipped_chains()
    assert len(names) >= 3
    for name in names:
        chain = load_chain(name)
        assert chain.lanes, name
        assert chain.description, name
        for _, lane in chain.lanes:
            assert lane.out_min != lane.out_max


@pytest.mark.parametrize("body, line, message", [
    ('[[plugin]]\nplugin = "Reverbb"\n', 4, "unknown built-in plugin 'Reverbb' (did you mean 'Reverb'?)"),
    ('[[plugin]]\nplugin = "Reverb"\n[[plugin.lane]]\nparameter = "room"\nsource = "tender"\n', 6,
     "Reverb has no parameter 'room'"),
    ('[[plugin]]\nplugin = "Reverb"\n[[plugin.lane]]\nparameter = "room_size"\nsource = "tender"\nout_max = 2.0\n', 8,
     "2 is outside Reverb room_size's range 0 .. 1"),
    ('[[plugin]]\nplugin = "LadderFilter"\n[[plugin.lane]]\nsource = "tension"\nparameter = "mode"\n', 7,
     "cannot follow a lane: a choice"),
    ('[[plugin]]\nplugin = "Delay"\n[[plugin.lane]]\nsource = "tension"\nparameter = "delay_seconds"\n', 7,
     "cannot follow a lane"),
    ('[[plugin]]\nplugin = "Reverb"\n[plugin.set]\nwet_level = 1.5\n', 6, "1.5 is outside Reverb wet_level's range"),
    ('[[plugin]]\nplugin = "LadderFilter"\n[plugin.set]\nmode = "LPF36"\n', 6, "must be one of LPF12"),
    ('[[plugin]]\nplugin = "Reverb"\n[[plugin.lane]]\nparameter = "room_size"\nsource = "tenderness"\n', 7,
     "unknown source 'tenderness' (did you mean 'tender'?)"),
    ('[[plugin]]\nplugin = "Reverb"\n[[plugin.lane]]\nparameter = "room_size"\nsource = "tender"\ncurve = "cubic"\n', 8,
     "unknown curve 'cubic'"),
    ('[[plugin]]\nplugin = "Reverb"\n[[plugin.lane]]\nparameter = "room_size"\nsource = "tender"\n'
     '[[plugin.lane]]\nparameter = "room_size"\nsource = "sad"\n', 9, "already follows another lane"),
    ('[[plugin]]\nplugin = "Reverb"\nroom_size = 0.5\n', 5, "unknown key in [[plugin]]"),
    ('[[plugin]]\nplugin = "/nowhere/thing.vst3"\n', 4, "no such plugin file"),
])
def test_chain_errors_name_file_and_line(tmp_path, body, line, message):
    path = tmp_path / "bad.toml"
    path.write_text('[chain]\nname = "bad"\n' + body)
    with pytest.raises(ChainError) as caught:
        load_chain(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}:"), text
    assert message in text
    assert "\n" not in text


def test_chain_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[chain]\nname = "x"\n[[plugin]\n')
    with pytest.raises(ChainError, match=r"broken.toml:3: TOML syntax error"):
        load_chain(path)
    with pytest.raises(ChainError, match="no such chain file"):
        load_chain(tmp_path / "nope.toml")
    with pytest.raises(ChainError, match="no shipped chain named 'nope'"):
        load_chain("nope")


# -- the processor ------------------------------------------------------------------------------


def test_parameters_follow_the_mapping_of_the_emotion():
    chain = gain_chain(attack_s=0.2, release_s=0.2)
    lane = chain.plugins[0].lanes[0]
    processor = MachineChain(chain, SR, hop_s=0.5, record_curves=True)
    steps = [(0.0, 2.0), (2.0, 8.0), (4.0, 5.0)]
    for time_s, tension in steps:
        processor.push(values(tension), time_s)
    processor.process(sine(6.0))
    times, curves = processor.curves()
    for time_s, tension in steps:  # settled value just before the next step = the lane's transfer function
        settled = curves[np.searchsorted(times, time_s + 1.9) - 1, 0]
        assert settled == pytest.approx(lane.map_value(tension), abs=0.05)
    assert lane.map_value(8.0) == pytest.approx(-40 + 40 * 7 / 8)
    # and in between it moves smoothly: no step larger than a glide of one control block allows
    assert np.abs(np.diff(curves[:, 0])).max() < 40 * 0.35


def test_output_differs_from_dry_where_lanes_move():
    chain = load_chain("tension-bites")
    audio = np.repeat(chord_progression(4.0, SR)[:1], 2, axis=0)
    still, moving = MachineChain(chain, SR), MachineChain(chain, SR)
    still.push(values(5.0), 0.0)
    moving.push(values(5.0), 0.0)
    moving.push(values(8.5), 1.0)
    quiet_part = slice(0, SR)  # identical until the emotion changes
    a, b = still.process(audio), moving.process(audio)
    assert np.allclose(a[:, quiet_part], b[:, quiet_part], atol=1e-6)
    assert np.abs(a[:, 2 * SR:] - b[:, 2 * SR:]).max() > 0.05
    assert np.abs(a - audio).max() > 0.05  # the chain is not a bypass


@pytest.mark.parametrize("name", ["tension-bites", "tender-space", "energy-motion"])
def test_block_size_does_not_change_the_result(name):
    chain = load_chain(name)
    audio = np.repeat(chord_progression(3.0, SR)[:1], 2, axis=0)
    renders = []
    for block in (4096, 1000, 77):
        processor = MachineChain(chain, SR)
        for k, emotion in enumerate((2.0, 8.0, 4.0)):
            update = values(emotion)
            update.update(tender=emotion, energy=emotion, anger=emotion, dissonance=emotion / 9)
            processor.push(update, k * 1.0)
        renders.append(run_blocks(processor, audio, block))
    assert np.abs(renders[0] - renders[1]).max() < 1e-4
    assert np.abs(renders[0] - renders[2]).max() < 1e-4


def test_a_parameter_change_never_clicks():
    # Hard emotion steps, no smoothing in the lane: only the chain's glide stands between the
    # model and the audio. The second difference of the output must stay as smooth as the
    # dry sine's and the static renders'.
    chain = gain_chain(attack_s=0.0, release_s=0.0)
    audio = sine(4.0, 220.0)
    moving = MachineChain(chain, SR, hop_s=0.01)
    for k in range(8):
        moving.push(values(9.0 if k % 2 else 1.0), k * 0.5)
    out = moving.process(audio)
    limits = []
    for tension in (1.0, 9.0):
        static = MachineChain(chain, SR)
        static.push(values(tension), 0.0)
        limits.append(roughness(static.process(audio)).max())
    # A corner where a ramp starts is allowed (2x); a step of even 0.1 % of full scale is not.
    assert roughness(out).max() <= 2.0 * max(limits)

    # The check does catch a click: the same gain jump applied at once, mid-block.
    import pedalboard
    gain = pedalboard.Gain(gain_db=-40.0)
    first = gain.process(audio[:, :SR + 37], SR, reset=False)
    gain.gain_db = 0.0
    stepped = np.concatenate([first, gain.process(audio[:, SR + 37:], SR, reset=False)], axis=1)
    assert roughness(stepped).max() > 10 * max(limits)


@pytest.mark.parametrize("name", ["tension-bites", "tender-space", "energy-motion"])
def test_example_chains_do_not_click_on_hard_emotion_jumps(name):
    chain = load_chain(name)
    for _, lane in chain.lanes:  # worst case: no smoothing in the lanes, only the chain's glide
        lane.attack_s = lane.release_s = 0.0
    audio = sine(4.0, 220.0)

    def everything_at(level: float) -> dict[str, float]:
        return update_values([level / 9] * 7, [level] * 8)

    moving = MachineChain(chain, SR, hop_s=0.01)
    for k in range(8):
        moving.push(everything_at(9.0 if k % 2 else 1.0), k * 0.5)
    limits = []
    for level in (1.0, 9.0):
        static = MachineChain(chain, SR)
        static.push(everything_at(level), 0.0)
        limits.append(roughness(static.process(audio)).max())
    assert roughness(moving.process(audio)).max() <= 1.2 * max(limits)


def test_first_update_during_playback_glides_from_the_fixed_value():
    chain = gain_chain(attack_s=0.0, release_s=0.0, glide_s=0.05)
    processor = MachineChain(chain, SR, record_curves=True, curve_interval_s=0.0)  # every control block
    processor.process(sine(0.5))  # no update yet: the plugin keeps its own value
    start = processor.applied[0]
    processor.push(values(1.0))  # -40 dB, arriving live
    processor.process(sine(0.5))
    times, curves = processor.curves()
    assert np.all(curves[times < 0.5, 0] == start)
    glide_step = (start + 40.0) * -math.expm1(-chain.control_block / SR / chain.glide_s)
    assert np.abs(np.diff(curves[:, 0])).max() <= glide_step + 1e-6  # no jump at the arrival
    assert curves[-1, 0] == pytest.approx(-40.0, abs=0.5)


# -- offline render -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def render_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render")
    music = write_audio(folder / "music.wav", chord_progression(12.0, 22050, seed=3), 22050)
    machine = write_audio(folder / "machine.wav", sine(8.0, 110.0)[:1], SR)
    return folder, music, machine


def test_render_command_writes_audio_curves_and_mix(render_inputs, tmp_path, capsys):
    from pedalboard.io import AudioFile

    _, music, machine = render_inputs
    out, mix = tmp_path / "machine_out.wav", tmp_path / "mix.wav"
    code = main(["render", str(music), str(machine), "-o", str(out), "--chain", "tension-bites", "--mix", str(mix)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert re.search(r"\d+x real time", printed)
    with AudioFile(str(out)) as rendered, AudioFile(str(machine)) as dry:
        assert rendered.samplerate == SR and rendered.num_channels == 2
        assert rendered.frames == dry.frames
        wet = rendered.read(rendered.frames)
        dry_audio = dry.read(dry.frames)
    assert np.abs(wet - dry_audio).max() > 0.05
    with AudioFile(str(mix)) as mixed:
        assert mixed.frames == len(wet[0]) and np.abs(mixed.read(mixed.frames) - wet).max() > 0.01
    rows = list(csv.reader(open(tmp_path / "machine_out.curves.csv")))
    assert rows[0] == ["time_s", "LadderFilter.cutoff_hz", "Distortion.drive_db"]
    cutoff = np.array([float(r[1]) for r in rows[1:]])
    assert 350.0 <= cutoff.min() and cutoff.max() <= 9000.0
    times = np.array([float(r[0]) for r in rows[1:]])
    assert times[-1] == pytest.approx(8.0, abs=0.05) and np.all(np.diff(times) > 0)


def test_render_with_silent_or_very_short_files(render_inputs, tmp_path, capsys):
    from pedalboard.io import AudioFile

    folder, music, machine = render_inputs
    silent = write_audio(tmp_path / "silent.wav", np.zeros((1, 22050 * 4), np.float32), 22050)
    tiny = write_audio(tmp_path / "tiny.wav", sine(0.002)[:1], SR)  # 88 samples
    code = main(["render", str(silent), str(machine), "-o", str(tmp_path / "a.wav"), "--chain", "tender-space"])
    assert code == 0
    assert "parameters stay at the chain's fixed values" in capsys.readouterr().err
    code = main(["render", str(music), str(tiny), "-o", str(tmp_path / "b.wav"), "--chain", "energy-motion"])
    assert code == 0
    with AudioFile(str(tmp_path / "b.wav")) as rendered:
        assert rendered.frames == 88
    code = main(["render", str(music), str(silent), "-o", str(tmp_path / "c.wav"), "--chain", "tension-bites"])
    assert code == 0
    with AudioFile(str(tmp_path / "c.wav")) as rendered:
        assert np.all(np.isfinite(rendered.read(rendered.frames)))


def test_render_errors_are_one_line(render_inputs, tmp_path, capsys):
    _, music, machine = render_inputs
    bad_chain = tmp_path / "bad.toml"
    bad_chain.write_text('[chain]\nname = "x"\n[[plugin]]\nplugin = "Reverb"\n[plugin.set]\nroom_size = 7\n')
    cases = [
        (["render", str(music), str(machine), "-o", str(tmp_path / "o.wav"), "--chain", str(bad_chain)], 2,
         f"{bad_chain}:6"),
        (["render", str(tmp_path / "none.wav"), str(machine), "-o", str(tmp_path / "o.wav"), "--chain",
          "tender-space"], 1, "no such file"),
        (["render", str(music), str(bad_chain), "-o", str(tmp_path / "o.wav"), "--chain", "tender-space"], 1,
         "cannot decode audio"),
        (["render", str(music), str(machine), "-o", str(tmp_path / "no" / "o.wav"), "--chain", "tender-space"], 2,
         "does not exist"),
        (["render", str(music), str(machine), "-o", str(tmp_path / "o.wav"), "--chain", "tender-space",
          "--window-s", "0.5"], 2, "window_s must be at least one segment"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_plugins_command_lists_parameters_and_chains(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "tension-bites" in out and "LadderFilter" in out
    assert main(["plugins", "Reverb"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"room_size\s+0 \.\. 1\s+yes", out)
    assert main(["plugins", "Chorusss"]) == 2
    assert "did you mean 'Chorus'" in capsys.readouterr().err
