"""Fast, streamed render: bulk parameter curves equal the per-tick mapping, block size and
streaming change nothing, memory does not grow with length, progress shows on a terminal only.

Real pedalboard plugins, the real shipped model and generated audio; no stand-ins.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from dawemo.cli.main import main
from dawemo.machine.chain import load_chain, parse_chain, shipped_chains
from dawemo.machine.processor import MachineChain, ParameterAutomation, ParameterMapper, one_pole
from dawemo.outputs.mapping import update_values
from tests.conftest import chord_progression, write_audio

SR = 44100


class PerTickReference:
    """The parameter computation as MachineChain did it before the bulk path, one control block at a time:
    ``ParameterMapper`` ticked at each block, then the glide."""

    def __init__(self, lanes, initial, sample_rate, control_block, hop_s, glide_s) -> None:
        self.mapper = ParameterMapper(lanes, tick_hz=sample_rate / control_block, hop_s=hop_s)
        self.alpha = -math.expm1(-control_block / sample_rate / glide_s)
        self.rate, self.block = float(sample_rate), control_block
        self.applied, self.targets = list(initial), list(initial)
        self.samples_done = 0
        self.incoming = deque()

    def push(self, values, time_s=None) -> None:
        self.incoming.append((time_s, values))

    def tick(self) -> list[float]:
        now_s = self.samples_done / self.rate
        while self.incoming:
            time_s, values = self.incoming.popleft()
            self.mapper.push(now_s if time_s is None else time_s, values)
        for _, index, value in self.mapper.tick(now_s):
            self.targets[index] = value
        if self.samples_done == 0:
            self.applied[:] = self.targets
        for k, target in enumerate(self.targets):
            value = self.applied[k]
            if value == target and self.samples_done:
                continue
            value += self.alpha * (target - value)
            if abs(target - value) <= 1e-9 * max(1.0, abs(target)):
                value = target
            self.applied[k] = value
        self.samples_done += self.block
        return list(self.applied)


def lanes_chain():
    """Lanes that exercise every part of the mapping: curves, inverted ranges, no smoothing, a rate limit."""
    return parse_chain(textwrap.dedent("""
        [chain]
        name = "lanes"
        glide_s = 0.02
        [[plugin]]
        plugin = "LadderFilter"
        [[plugin.lane]]
        parameter = "cutoff_hz"
        source = "tension"
        out_min = 300.0
        out_max = 9000.0
        curve = "exponential"
        shape = 3.2
        attack_s = 0.4
        release_s = 1.2
        [[plugin.lane]]
        parameter = "resonance"
        source = "energy"
        in_min = 8.0
        in_max = 2.0
        curve = "s-curve"
        attack_s = 0.0
        release_s = 0.5
        [[plugin.lane]]
        parameter = "drive"
        source = "anger"
        curve = "logarithmic"
        attack_s = 0.0
        release_s = 0.0
        max_rate_hz = 40.0
        [[plugin]]
        plugin = "Reverb"
        [[plugin.lane]]
        parameter = "wet_level"
        source = "sad"
        attack_s = 2.0
        release_s = 0.1
        """))


def random_updates(seed: int, count: int, every_s: float = 0.48, first_s: float = 0.0):
    rng = np.random.default_rng(seed)
    times = first_s + every_s * np.arange(count) + rng.uniform(-0.05, 0.05, count) * (np.arange(count) > 0)
    return [(float(t), update_values(rng.uniform(0, 1, 7), rng.uniform(1, 9, 8))) for t in times]


def automation_pair(chain, rate: float = SR, hop_s: float = 0.48):
    lanes = [lane for _, lane in chain.lanes]
    plugins = chain.instantiate()
    initial = [float(getattr(plugins[p], lane.parameter)) for p, lane in chain.lanes]
    return (ParameterAutomation(lanes, initial, rate, chain.control_block, hop_s, chain.glide_s),
            PerTickReference(lanes, initial, rate, chain.control_block, hop_s, chain.glide_s))


def lane_ranges(chain) -> np.ndarray:
    return np.array([abs(lane.out_max - lane.out_min) for _, lane in chain.lanes])


# -- bulk parameter curves ----------------------------------------------------------------------


def test_one_pole_matches_the_recursion():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal(1000))
    for alpha in (1.0, 0.9, 0.02, 1e-4):
        y, expected, value = one_pole(x, alpha, 3.0, {}), [], 3.0
        for sample in x:
            value += alpha * (sample - value)
            expected.append(value)
        assert np.allclose(y, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["lanes"] + shipped_chains())
@pytest.mark.parametrize("grouping", ["whole", "blocks", "ragged"])
def test_bulk_curves_equal_the_per_tick_mapping(name, grouping):
    chain = lanes_chain() if name == "lanes" else load_chain(name)
    bulk, reference = automation_pair(chain)
    updates = random_updates(3, 40, first_s=0.0)
    ticks = int(20.0 * SR / chain.control_block)
    for time_s, values in updates:
        bulk.push(values, time_s)
        reference.push(values, time_s)
    expected = np.array([reference.tick() for _ in range(ticks)])
    rng = np.random.default_rng(7)
    sizes = {"whole": [ticks], "blocks": [512] * (ticks // 512 + 1),
             "ragged": rng.integers(1, 60, ticks).tolist()}[grouping]
    got, done = [], 0
    for size in sizes:  # ragged: the plain-float path for short calls and the array path for long ones, mixed
        size = min(size, ticks - done)
        if size <= 0:
            break
        got.append(bulk.process(size))
        done += size
    got = np.concatenate(got)
    assert got.shape == expected.shape
    assert np.all(np.abs(got - expected) <= 1e-7 * lane_ranges(chain) + 1e-9)


def test_bulk_curves_with_live_pushes_and_an_off_grid_first_update():
    # Updates arriving while the stream runs (time None: at the next block), the first one
    # between two control blocks, one late: the bulk path takes them exactly as the per-tick one.
    chain = lanes_chain()
    bulk, reference = automation_pair(chain, rate=48000.0)
    rng = np.random.default_rng(11)
    schedule = {3: [(0.0123, 2.0)], 40: [(None, 8.0)], 41: [(None, 3.0)], 300: [(0.5, 6.0)], 700: [(None, 9.0)]}
    got, expected = [], []
    for step in range(1000):
        for time_s, level in schedule.get(step, []):
            values = update_values(rng.uniform(0, 1, 7), [level] * 8)
            bulk.push(values, time_s)
            reference.push(values, time_s)
        size = int(rng.integers(1, 80))
        got.append(bulk.process(size))
        expected += [reference.tick() for _ in range(size)]
    got = np.concatenate(got)
    assert np.all(np.abs(got - np.array(expected)) <= 1e-7 * lane_ranges(chain) + 1e-9)


def test_machine_chain_output_does_not_depend_on_the_block_size_in_either_path():
    chain = lanes_chain()
    audio = np.repeat(chord_progression(6.0, SR)[:1], 2, axis=0)
    renders = []
    for block in (65536, 8192, 1000, 77):
        processor = MachineChain(chain, SR, record_curves=True)
        for time_s, values in random_updates(5, 12, every_s=0.5):
            processor.push(values, time_s)
        renders.append((np.concatenate([processor.process(audio[:, i:i + block])
                                        for i in range(0, audio.shape[1], block)], axis=1), processor.curves()))
    for out, (times, curves) in renders[1:]:
        assert np.abs(out - renders[0][0]).max() < 1e-4
        assert np.array_equal(times, renders[0][1][0])
        assert np.allclose(curves, renders[0][1][1], rtol=1e-9, atol=1e-9)


# -- streamed analysis and render ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    from dawemo.emotion.model import EmotionModel

    return EmotionModel()


@pytest.mark.parametrize("rate, channels, seconds", [(22050, 1, 20.0), (44100, 2, 20.3), (48000, 2, 15.0),
                                                     (8000, 1, 12.7)])
def test_streamed_analysis_gives_the_updates_of_the_whole_file_analysis(tmp_path, model, rate, channels, seconds):
    from dawemo.emotion.tracker import analyze_samples
    from dawemo.inputs.audio_io import load_audio
    from dawemo.machine.render import analyse_music

    music = write_audio(tmp_path / "music.wav", chord_progression(seconds, rate, channels=channels, seed=4), rate)
    whole = analyze_samples(load_audio(music, model.sample_rate), model)
    for block_frames in (None, 9999):
        timeline = analyse_music(music, model, block_frames=block_frames)
        assert timeline.duration_s == pytest.approx(whole.duration_s, abs=1.5 / model.sample_rate)
        assert np.array_equal(timeline.times_s, [u.time_s for u in whole.updates])
        # Mixing to mono before resampling, not after: float rounding, nothing more
        assert np.abs(timeline.emotions - [u.emotions for u in whole.updates]).max() < 1e-3
        assert np.abs(timeline.midlevel - [u.midlevel for u in whole.updates]).max() < 1e-3
        assert timeline.note is None


def test_streamed_analysis_errors_and_notes(tmp_path, model):
    from dawemo.machine.render import RenderError, analyse_music

    silent = write_audio(tmp_path / "silent.wav", np.zeros((2, 44100 * 5), np.float32), 44100)
    timeline = analyse_music(silent, model)
    assert len(timeline) == 0 and "audio is silent" in timeline.note
    short = write_audio(tmp_path / "short.wav", chord_progression(0.5, 22050), 22050)
    timeline = analyse_music(short, model)
    assert len(timeline) == 0 and "too short" in timeline.note
    broken = np.concatenate([chord_progression(8.0, 22050), np.full((1, 10), np.nan, np.float32)], axis=1)
    with pytest.raises(RenderError, match="NaN or infinite"):
        analyse_music(write_audio(tmp_path / "nan.wav", broken, 22050, bit_depth=32), model)
    (tmp_path / "junk.wav").write_bytes(b"RIFF but not really audio" * 10)
    with pytest.raises(RenderError, match="cannot decode audio"):
        analyse_music(tmp_path / "junk.wav", model)


def read(path: Path) -> np.ndarray:
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as file:
        return file.read(file.frames)


@pytest.fixture(scope="module")
def render_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    music = write_audio(folder / "music.wav", chord_progression(14.0, 44100, channels=2, seed=8), 44100)
    machine = write_audio(folder / "machine.wav", chord_progression(10.0, SR, channels=2, seed=9), SR)
    return folder, music, machine


@pytest.mark.parametrize("name", shipped_chains())
def test_block_size_does_not_change_the_render(render_files, tmp_path, model, name):
    from dawemo.machine.render import render

    _, music, machine = render_files
    outputs = []
    for block in (65536, 4096, 1000, 129):
        out = tmp_path / f"out-{block}.wav"
        render(music, machine, load_chain(name), out, model, block_size=block, mix_path=tmp_path / f"mix-{block}.wav")
        outputs.append((read(out), read(tmp_path / f"mix-{block}.wav"),
                        (tmp_path / f"out-{block}.curves.csv").read_text()))
    for wet, mix, curves in outputs[1:]:
        assert wet.shape == outputs[0][0].shape
        assert np.abs(wet - outputs[0][0]).max() < 1e-4
        assert np.abs(mix - outputs[0][1]).max() < 1e-4
        assert curves == outputs[0][2]


def test_streamed_render_equals_the_render_of_the_whole_file_analysis(render_files, tmp_path, model):
    # What render did before it streamed: analyse the whole decoded file, then render with those updates.
    from dawemo.emotion.tracker import EmotionTracker, analyze_samples
    from dawemo.inputs.audio_io import load_audio
    from dawemo.machine.render import render, render_with_updates

    _, music, machine = render_files
    chain = load_chain("tension-bites")
    updates = analyze_samples(load_audio(music, model.sample_rate), model).updates
    render_with_updates(machine, chain, updates, tmp_path / "whole.wav", EmotionTracker(model).hop_s,
                        curves_path=tmp_path / "whole.csv", block_size=4096)
    result = render(music, machine, chain, tmp_path / "streamed.wav", model)
    assert result.updates == len(updates)
    assert np.abs(read(tmp_path / "streamed.wav") - read(tmp_path / "whole.wav")).max() < 1e-4
    whole = np.loadtxt(tmp_path / "whole.csv", delimiter=",", skiprows=1)
    streamed = np.loadtxt(result.curves_path, delimiter=",", skiprows=1)
    assert whole.shape == streamed.shape
    assert np.allclose(whole, streamed, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_memory_does_not_grow_with_length(tmp_path, model):
    # Python-side allocations (numpy included) of a render four times as long stay the same:
    # nothing holds the whole music, machine sound, updates or curves.
    import tracemalloc

    from dawemo.machine.render import render

    chain = load_chain("tender-space")
    peaks = []
    for seconds in (20.0, 80.0):
        music = tmp_path / f"music-{seconds:g}.wav"
        machine = tmp_path / f"machine-{seconds:g}.wav"
        write_audio(music, chord_progression(seconds, 44100, channels=2, seed=1), 44100)
        write_audio(machine, chord_progression(seconds, SR, channels=2, seed=2), SR)
        tracemalloc.start()
        render(music, machine, chain, tmp_path / "out.wav", model)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    whole_short_file = 20.0 * 44100 * 2 * 4  # what holding even the short music file would take
    assert peaks[1] < peaks[0] + 0.25 * whole_short_file, peaks


# -- progress -----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_shows_progress_on_a_terminal_only(render_files, tmp_path, monkeypatch, capsys):
    import sys

    _, music, machine = render_files
    argv = ["render", str(music), str(machine), "-o", str(tmp_path / "o.wav"), "--chain", "tender-space",
            "--block-size", "8192"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    shown = terminal.getvalue()
    assert "analysing music" in shown and "rendering" in shown and "of audio" in shown
    assert "wrote" in capsys.readouterr().out

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(argv + ["-q"]) == 0
    assert quiet.getvalue() == ""

    piped = io.StringIO()  # not a terminal: nothing either
    monkeypatch.setattr(sys, "stderr", piped)
    assert main(argv) == 0
    assert piped.getvalue() == ""


def test_progress_bar_shows_audio_done_rate_and_time_left():
    import time

    from dawemo.cli.machine import RenderProgress

    terminal = Terminal()
    bars = RenderProgress(terminal, mininterval_s=0.0)
    bars("analyse", 0.0, 600.0)
    time.sleep(0.05)
    bars("analyse", 300.0, 600.0)
    bars("render", 0.0, 120.0)
    time.sleep(0.05)
    bars("render", 60.0, 120.0)
    bars.close()
    shown = terminal.getvalue()
    assert "analysing music:  50%" in shown and "300/600 s of audio" in shown
    assert "rendering:  50%" in shown and "60/120 s of audio" in shown
    assert "x real time" in shown and "left]" in shown and "? left" in shown
    assert shown.endswith("\r")  # removed at the end: only the result lines stay
