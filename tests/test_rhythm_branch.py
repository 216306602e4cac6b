"""The rhythm branch: descriptors that mean what they say, a fit that keeps its signs, and a graph
that computes exactly what the explanation says."""

from __future__ import annotations

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.emotion.frontend import spectrogram
from dawemo.emotion.rhythm import DESCRIPTOR_NAMES, RhythmBranch, RhythmDescriber
from dawemo.training import rhythm_branch as rb

SR = C.SAMPLE_RATE


def click_track(beat_s: float, duration_s: float, rng: np.random.Generator, jitter_s: float = 0.0,
                extra_offsets: tuple[float, ...] = ()) -> np.ndarray:
    out = np.zeros(int(duration_s * SR), np.float32)
    t = 0.1
    while t < duration_s - 0.2:
        for offset in (0.0,) + extra_offsets:
            at = int((t + offset * beat_s + (rng.uniform(-jitter_s, jitter_s) if jitter_s else 0)) * SR)
            sound = rb.hit("click" if offset else "low", rng)
            out[at : at + len(sound)] += sound[: len(out) - at]
        t += beat_s
    return out + 1e-3 * rng.standard_normal(len(out)).astype(np.float32)


def descriptors(audio: np.ndarray) -> dict:
    return dict(zip(DESCRIPTOR_NAMES, RhythmDescriber().describe_clip(spectrogram(audio)).mean(axis=0)))


def test_descriptors_ignore_gain():
    rng = np.random.default_rng(0)
    audio = click_track(0.5, 10.0, rng)
    describer = RhythmDescriber()
    reference = describer.describe_clip(spectrogram(audio))
    for gain in (0.01, 8.0):
        np.testing.assert_allclose(describer.describe_clip(spectrogram(gain * audio)), reference, rtol=1e-4, atol=1e-5)


def test_a_steady_pulse_is_clearer_and_persists_longer_than_a_jittered_one():
    steady = descriptors(click_track(0.5, 10.0, np.random.default_rng(1)))
    jittered = descriptors(click_track(0.5, 10.0, np.random.default_rng(1), jitter_s=0.07))
    assert steady["pulse_clarity"] > jittered["pulse_clarity"] + 0.1
    assert steady["pulse_persistence"] > jittered["pulse_persistence"] + 0.1


def test_off_beat_layers_take_onset_energy_off_the_beat():
    plain = descriptors(click_track(0.6, 10.0, np.random.default_rng(2)))
    layered = descriptors(click_track(0.6, 10.0, np.random.default_rng(2), extra_offsets=(0.375, 0.75)))
    assert layered["onbeat_share"] < plain["onbeat_share"] - 0.05
    assert layered["onset_rate"] > plain["onset_rate"]


def test_any_span_gives_finite_descriptors():
    """Noise, silence, single clicks and spans of every length: no error, nothing infinite."""
    rng = np.random.default_rng(8)
    describer = RhythmDescriber()
    for n_frames in (1, 2, 7, 8, 9, 20, 47, 64, 100, 250):
        for kind in ("noise", "silence", "click", "decay"):
            if kind == "noise":
                spec = np.abs(rng.normal(size=(n_frames, C.N_BANDS))).astype(np.float32)
            elif kind == "silence":
                spec = np.zeros((n_frames, C.N_BANDS), np.float32)
            elif kind == "click":
                spec = np.full((n_frames, C.N_BANDS), 1e-4, np.float32)
                spec[n_frames // 2] = 1.0
            else:
                spec = np.exp(-np.arange(n_frames) / 3.0)[:, None] * np.ones(C.N_BANDS, np.float32)
            values = describer.describe(spec, [n_frames])
            assert values.shape == (1, len(DESCRIPTOR_NAMES)) and np.all(np.isfinite(values)), (n_frames, kind)


def test_streaming_descriptors_depend_only_on_the_span_before_each_segment():
    """Cutting the spectrogram just after a segment's end changes nothing for that segment."""
    spec = spectrogram(click_track(0.45, 14.0, np.random.default_rng(3)))
    describer = RhythmDescriber()
    ends = np.array([64, 200, 300, 400])
    whole = describer.describe(spec, ends)
    for i, end in enumerate(ends):
        np.testing.assert_allclose(describer.describe(spec[:end], [end])[0], whole[i])
        start = max(0, end - describer.span_frames)
        np.testing.assert_allclose(describer.describe(spec[start:end], [end - start])[0], whole[i])


def test_fit_keeps_each_descriptor_on_the_side_its_quality_implies():
    """A descriptor that would fit with the wrong sign (a side effect of how pairs were made) is dropped."""
    rng = np.random.default_rng(4)
    n = len(DESCRIPTOR_NAMES)
    clarity, onbeat = DESCRIPTOR_NAMES.index("pulse_clarity"), DESCRIPTOR_NAMES.index("onbeat_share")
    pairs = []
    for _ in range(200):
        less = rng.normal(0, 1, n)
        more = less.copy()
        more[clarity] += 1.0  # the real contrast
        more[onbeat] -= 0.8  # a confound whose sign contradicts rhythm stability's definition
        pairs.append((more, less))
    reference = [rng.normal(0, 1, (20, n)) for _ in range(30)]
    branch = rb.fit_branch({"rhythm_stability": pairs}, reference)
    weight = branch.weight[0]
    assert weight[clarity] > 0
    assert weight[onbeat] == 0.0
    assert all(weight[DESCRIPTOR_NAMES.index(name)] == 0.0 for name in DESCRIPTOR_NAMES
               if name not in rb.DESCRIPTORS_OF["rhythm_stability"])
    accuracy, mean_difference = rb.pair_accuracy(branch, "rhythm_stability", pairs)
    assert accuracy > 0.95 and mean_difference > 0.05


def test_emotion_layer_keeps_the_asked_signs():
    from dawemo.training.head import PAPER_SIGNS, SIGN_MARGIN, fit_emotion_head

    rng = np.random.default_rng(5)
    features = rng.uniform(0, 1, (200, 7))
    truth = rng.normal(0, 2, (8, 7))
    happy = C.EMOTION_NAMES.index("happy")
    truth[happy, C.MIDLEVEL_NAMES.index("tonal_stability")] = -1.5  # the data pull against the paper's sign
    ratings = features @ truth.T + 5 + rng.normal(0, 0.3, (200, 8))
    free, _ = fit_emotion_head(features, ratings, np.zeros((8, 7)), np.full(8, 5.0), 1.0)
    kept, _ = fit_emotion_head(features, ratings, np.zeros((8, 7)), np.full(8, 5.0), 1.0, PAPER_SIGNS)
    assert free[happy, C.MIDLEVEL_NAMES.index("tonal_stability")] < 0
    for feature, sign in PAPER_SIGNS["happy"].items():
        assert kept[happy, C.MIDLEVEL_NAMES.index(feature)] * sign >= SIGN_MARGIN - 1e-9
    others = [e for e in range(8) if e != happy]
    np.testing.assert_allclose(kept[others], free[others])


@pytest.fixture(scope="module")
def branched_model(tmp_path_factory):
    """A small exported network with a branch attached, as ``attach_to_onnx`` writes it."""
    torch = pytest.importorskip("torch", reason="needs the train extra (torch)")
    from dawemo.emotion.model import EmotionModel
    from dawemo.training.export import export_onnx
    from dawemo.training.net import MidlevelEmotionNet

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("branch") / "base.onnx"
    export_onnx(MidlevelEmotionNet(width=4), base, version="5")
    rng = np.random.default_rng(6)
    n = len(DESCRIPTOR_NAMES)
    branch = RhythmBranch(("articulation", "rhythm_stability"), rng.normal(0, 1, (2, n)), rng.normal(0, 0.2, 2),
                          rng.uniform(0, 1, n), rng.uniform(0.5, 2, n))
    weight = rng.normal(0, 1, (8, 7))
    bias = rng.uniform(3, 6, 8)
    path = base.with_name("branched.onnx")
    rb.attach_to_onnx(base, path, branch, weight, bias, "test", {"note": "test"})
    return EmotionModel(path, use_gpu=False), branch, weight, bias


def test_attached_graph_computes_the_branch_and_the_explained_layer(branched_model):
    model, branch, weight, bias = branched_model
    rng = np.random.default_rng(7)
    segments = rng.normal(0, 1, (4, 1, C.N_BANDS, C.SEGMENT_FRAMES)).astype(np.float32)
    descriptors = rng.uniform(0, 1, (4, len(DESCRIPTOR_NAMES))).astype(np.float32)
    logits, midlevel, emotions = model.session.run(None, {"segments": segments, "rhythm_descriptors": descriptors})
    columns = [C.MIDLEVEL_NAMES.index(q) for q in branch.qualities]
    np.testing.assert_allclose(logits[:, columns], branch.logits(descriptors), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emotions, midlevel @ weight.T + bias, atol=1e-4)
    np.testing.assert_allclose(model.emotion_weights, weight)
    assert model.version == "test"


def test_assembly_command_reports_a_missing_input_in_one_line(tmp_path, capsys):
    code = rb.main(["--base", str(tmp_path / "none.onnx"), "--evaluation", str(tmp_path / "none.json"),
                    "--model-out", str(tmp_path / "out.onnx"), "--evaluation-out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "none.json" in err
