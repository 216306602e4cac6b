"""Refining the pair branch on real-recording pairs: the changes do what their names say, the branch
read from a graph is the graph's, refined weights go back into it, and refining orders the pairs
while holding the other qualities."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (pip install -e .[train])")
onnx = pytest.importorskip("onnx", reason="export needs onnx (pip install -e .[train])")

from dawemo import constants as C  # noqa: E402
from dawemo.emotion.frontend import network_input, segment_starts, spectrogram  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.training import pair_refine as pr  # noqa: E402
from dawemo.training.train import ContrastPairs  # noqa: E402

SR = C.SAMPLE_RATE
COLUMNS = [C.MIDLEVEL_NAMES.index("melodiousness"), C.MIDLEVEL_NAMES.index("tonal_stability")]


def dominant_hz(x: np.ndarray, frame_s: float = 0.05) -> np.ndarray:
    n = int(frame_s * SR)
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    spectrum = np.abs(np.fft.rfft(frames, 8 * n, axis=1))
    return spectrum.argmax(axis=1) * SR / (8 * n)


def test_shuffled_pieces_break_a_rising_line_and_keep_its_range():
    t = np.arange(12 * SR) / SR
    glide = np.sin(2 * np.pi * np.cumsum(200 * 2 ** (t / 6)) / SR).astype(np.float32)  # 200 -> 800 Hz
    more, less = pr.shuffled_pieces(glide, np.random.default_rng(1))
    assert more is glide and len(less) == len(glide)
    rising, shuffled = dominant_hz(more), dominant_hz(less)
    assert np.mean(np.diff(rising) >= 0) > 0.95
    assert np.sum(np.diff(shuffled) < -20) >= 10  # the line jumps back down at many of its ~37 joins
    assert abs(np.percentile(shuffled, 5) - np.percentile(rising, 5)) < 40
    assert abs(np.percentile(shuffled, 95) - np.percentile(rising, 95)) < 80


def test_transposed_pieces_move_each_piece_by_whole_semitones():
    t = np.arange(10 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    more, less = pr.transposed_pieces(tone, np.random.default_rng(2))
    assert more is tone and len(less) == len(tone)
    semitones = 12 * np.log2(dominant_hz(less) / 440)
    assert np.mean(np.abs(semitones) < 0.3) < 0.15  # hardly any frame left at the original pitch
    steady = np.abs(semitones - np.round(semitones)) < 0.3
    assert np.mean(steady & (np.abs(np.round(semitones)) <= 5)) > 0.7


def test_excerpt_key_finds_the_key_of_cadences_in_all_24_keys():
    t = np.arange(int(0.6 * SR)) / SR
    for minor in (False, True):
        scale = pr.SCALES[minor]
        for tonic in range(12):
            chords = []
            for degree in (0, 3, 4, 0, 3, 4, 0, 0):  # I IV V I twice, the tonic held at the end
                notes = [48 + tonic + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
                chords.append(sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t) for m in notes) * np.hanning(len(t)))
            assert pr.excerpt_key(np.concatenate(chords * 2).astype(np.float32)) == (tonic, minor)


def test_melody_pair_adds_a_voice_at_the_same_level_on_both_sides():
    from conftest import chord_progression

    x = np.asarray(chord_progression(8.0, SR), np.float32).reshape(-1)
    more, less = pr.melody_pair(x, np.random.default_rng(3))
    assert len(more) == len(less) == len(x)
    added_more, added_less = more - x, less - x
    assert np.sqrt(np.mean(added_more ** 2)) > 0.2 * np.sqrt(np.mean(x ** 2))
    # The other side is the same voice at the same level, or the excerpt alone.
    level_less = np.sqrt(np.mean(added_less ** 2))
    assert level_less == 0 or abs(level_less / np.sqrt(np.mean(added_more ** 2)) - 1) < 0.05


@pytest.fixture(scope="module")
def branched(tmp_path_factory):
    """An exported joint net with a pair branch in the melodiousness and tonal-stability columns."""
    from dawemo.training.export import export_onnx
    from dawemo.training.net import BranchedNet, MidlevelEmotionNet

    rng = np.random.default_rng(4)
    t = np.arange(6 * SR) / SR
    clips = [(np.sin(2 * np.pi * rng.uniform(150, 600) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
              + 0.05 * rng.standard_normal(len(t))).astype(np.float32) for _ in range(8)]
    spectrograms = [spectrogram(x) for x in clips]
    segments = torch.from_numpy(np.concatenate([network_input(s, segment_starts(len(s))) for s in spectrograms]))
    torch.manual_seed(3)
    joint, branch = MidlevelEmotionNet(4), MidlevelEmotionNet(4)
    for net in (joint, branch):  # batch statistics of this audio, as a trained net has them
        for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.momentum = None
        with torch.no_grad():
            net.train().segment_logits(segments)
        net.eval()
    path = tmp_path_factory.mktemp("refine") / "branched.onnx"
    export_onnx(BranchedNet(joint, branch, COLUMNS), path, version="test")
    return path, spectrograms, clips


def graph_logits(path, spec: np.ndarray) -> np.ndarray:
    segments = network_input(spec, segment_starts(len(spec)))
    return EmotionModel(path, use_gpu=False).session.run(["midlevel_logits"], {"segments": segments})[0]


def branch_logits(branch, spec: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return branch.eval().segment_logits(torch.from_numpy(network_input(spec, segment_starts(len(spec))))).numpy()


def test_branch_read_from_the_graph_gives_the_graphs_logits(branched):
    path, spectrograms, _ = branched
    branch = pr.branch_from_onnx(onnx.load(str(path)))
    assert len(branch.convs) == 7
    for spec in spectrograms[:3]:
        np.testing.assert_allclose(branch_logits(branch, spec)[:, COLUMNS], graph_logits(path, spec)[:, COLUMNS],
                                   atol=1e-4)


def test_a_model_without_a_pair_branch_is_refused(tiny_model_path):
    with pytest.raises(ValueError, match="no pair branch"):
        pr.branch_from_onnx(onnx.load(str(tiny_model_path)))


def test_refining_orders_the_real_pairs_holds_other_qualities_and_goes_back_into_the_graph(branched, tmp_path):
    path, spectrograms, clips = branched
    proto = onnx.load(str(path))
    branch = pr.branch_from_onnx(proto)
    real = {"melodiousness": [tuple(spectrogram(side) for side in pr.shuffled_pieces(x, np.random.default_rng(i)))
                              for i, x in enumerate(clips)]}
    corpus = ContrastPairs(np.arange(7), spectrograms[:7], [spectrogram(x[::-1].copy()) for x in clips[:7]])

    def clip_margins(net):
        return np.array([branch_logits(net, more).mean(0) - branch_logits(net, less).mean(0)
                         for more, less in real["melodiousness"]])

    before = clip_margins(branch)
    pr.refine_branch(branch, corpus, real, steps=80, learning_rate=3e-3, real_pairs_per_step=8, log=None)
    after = clip_margins(branch)
    melodiousness = C.MIDLEVEL_NAMES.index("melodiousness")
    assert np.mean(after[:, melodiousness] > 0) >= 0.85
    assert after[:, melodiousness].mean() > before[:, melodiousness].mean() + 0.3
    # Tonal stability, held to its old logits on the real recordings, moves far less than melodiousness.
    tonal = C.MIDLEVEL_NAMES.index("tonal_stability")
    moved = lambda column: np.mean([np.abs(branch_logits(branch, s)[:, column] - graph_logits(path, s)[:, column]).mean()  # noqa: E731
                                    for s in spectrograms])
    assert moved(tonal) < 0.5 * moved(melodiousness)

    pr.write_branch(proto, branch)
    refined = tmp_path / "refined.onnx"
    onnx.save(proto, str(refined))
    others = [c for c in range(7) if c not in COLUMNS]
    for spec in spectrograms[:3]:
        np.testing.assert_allclose(graph_logits(refined, spec)[:, COLUMNS], branch_logits(branch, spec)[:, COLUMNS],
                                   atol=1e-4)
        np.testing.assert_allclose(graph_logits(refined, spec)[:, others], graph_logits(path, spec)[:, others],
                                   atol=1e-6)
    # A refined model can be read and refined again: its branch is found by what it feeds.
    again = onnx.load(str(refined))
    reread = pr.branch_from_onnx(again)
    np.testing.assert_allclose(branch_logits(reread, spectrograms[0]), branch_logits(branch, spectrograms[0]), atol=1e-5)
    with torch.no_grad():
        reread.head.bias += 1.0
    pr.write_branch(again, reread)
    onnx.checker.check_model(again)
    twice = tmp_path / "twice.onnx"
    onnx.save(again, str(twice))
    np.testing.assert_allclose(graph_logits(twice, spectrograms[0])[:, COLUMNS],
                               graph_logits(refined, spectrograms[0])[:, COLUMNS] + 1.0, atol=1e-4)


def test_command_reports_a_missing_input_in_one_line(tmp_path, capsys):
    code = pr.main(["--base", str(tmp_path / "none.onnx"), "--evaluation", str(tmp_path / "none.json"),
                    "--model-out", str(tmp_path / "out.onnx"), "--evaluation-out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "none.json" in err
