"""Train tiny, export, compare: ONNX Runtime equals PyTorch, metadata is complete, no train/serve skew."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (pip install -e .[train])")
pytest.importorskip("onnx", reason="export needs onnx (pip install -e .[train])")

from dawemo import constants as C  # noqa: E402
from dawemo.emotion.tracker import EmotionTracker, analyze_samples  # noqa: E402
from dawemo.emotion.frontend import spectrogram  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.training.config import TrainConfig  # noqa: E402
from dawemo.training.export import export_onnx  # noqa: E402
from dawemo.training.train import ContrastPairs, predict_clips, train_model  # noqa: E402


def clip(seed: int, duration_s: float = 8.0) -> np.ndarray:
    """Random chords with a random tempo of noise bursts, so clips differ audibly."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    freqs = 110 * 2 ** (rng.integers(0, 24, size=3) / 12)
    tonal = sum(np.sin(2 * np.pi * f * t) for f in freqs)
    pulse = (np.sin(2 * np.pi * rng.uniform(1, 6) * t) > 0.9) * rng.standard_normal(len(t))
    return (0.1 * tonal * rng.uniform(0.2, 1) + 0.2 * pulse * rng.uniform(0, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    clips = [clip(seed) for seed in range(12)]
    spectrograms = [spectrogram(x) for x in clips]
    rng = np.random.default_rng(0)
    ratings = rng.uniform(1, 9, size=(12, 8)).astype(np.float32)
    pairs = ContrastPairs(np.arange(7) % 7, [spectrograms[i] for i in range(7)],
                          [spectrograms[i + 1] for i in range(7)])
    config = TrainConfig(epochs=2, batch_size=4, pairs_per_batch=4, width=4, seed=1, context_frames=200)
    net = train_model(spectrograms, ratings, pairs, config, log=None)
    path = export_onnx(net, tmp_path_factory.mktemp("export") / "model.onnx", version="test",
                       context_frames=config.context_frames)
    return net, path, clips, spectrograms, config


def test_onnx_runtime_matches_pytorch(trained):
    net, path, _, spectrograms, _ = trained
    from dawemo.emotion.frontend import network_input, segment_starts

    segments = network_input(spectrograms[0], segment_starts(len(spectrograms[0])), context_frames=200)
    model = EmotionModel(path, use_gpu=False)
    onnx_logits, onnx_mid, onnx_emotions = model.session.run(None, {"segments": segments})
    with torch.no_grad():
        logits = net.segment_logits(torch.from_numpy(segments))
        mid = torch.sigmoid(logits.mean(0))
        emotions = net.emotions(mid)
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(onnx_mid, mid.numpy(), atol=1e-4)
    np.testing.assert_allclose(onnx_emotions, emotions.numpy(), atol=1e-4)
    # The explanation in the metadata reproduces the graph's emotions exactly.
    np.testing.assert_allclose(model.emotions_from_midlevel(onnx_mid), onnx_emotions, atol=1e-4)


def test_metadata_carries_everything_the_runtime_needs(trained):
    net, path, *_ = trained
    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["dawemo"])
    assert meta["midlevel_names"] == list(C.MIDLEVEL_NAMES)
    assert meta["emotion_names"] == list(C.EMOTION_NAMES)
    assert meta["emotion_scale"] == [1.0, 9.0] and meta["midlevel_scale"] == [0.0, 1.0]
    assert (meta["sample_rate"], meta["frame_size"], meta["hop_size"], meta["n_bands"]) == (22050, 2048, 705, 149)
    assert meta["segment_frames"] == C.SEGMENT_FRAMES and meta["default_window_s"] == C.DEFAULT_WINDOW_S
    weight, bias = net.linear_emotion_map()
    np.testing.assert_allclose(np.array(meta["emotion_weights"]), weight.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.array(meta["emotion_bias"]), bias.numpy(), rtol=1e-6)
    assert np.array(meta["emotion_weights"]).shape == (8, 7)


def test_runtime_prediction_equals_training_prediction(trained):
    """Same audio through the training code (PyTorch) and the runtime path (ONNX Runtime): same answer."""
    net, path, clips, spectrograms, config = trained
    model = EmotionModel(path, use_gpu=False)
    train_mid, train_emotions = predict_clips(net, spectrograms[:3], config.context_frames)
    for k in range(3):
        analysis = analyze_samples(clips[k], model)
        np.testing.assert_allclose(analysis.summary_midlevel, train_mid[k], atol=1e-4)
        np.testing.assert_allclose(analysis.summary_emotions, train_emotions[k], atol=1e-4)


@pytest.mark.parametrize("block", [512, 4410, 22050])
def test_streaming_equals_batch(trained, block):
    _, path, clips, *_ = trained
    model = EmotionModel(path, use_gpu=False)
    audio = np.concatenate(clips[:3])
    batch = analyze_samples(audio, model, window_s=6.0, hop_s=0.5)
    tracker = EmotionTracker(model, window_s=6.0, hop_s=0.5)
    streamed = [u for i in range(0, len(audio), block) for u in tracker.process(audio[i : i + block])]
    assert len(streamed) == len(batch.updates) > 10
    for a, b in zip(streamed, batch.updates):
        assert a.time_s == pytest.approx(b.time_s)
        np.testing.assert_allclose(a.emotions, b.emotions, atol=1e-4)
        np.testing.assert_allclose(a.midlevel, b.midlevel, atol=1e-5)
    times = [u.time_s for u in streamed]
    assert np.all(np.diff(times) > 0) and times[-1] <= len(audio) / C.SAMPLE_RATE


def test_gain_does_not_change_the_answer(trained):
    _, path, clips, *_ = trained
    model = EmotionModel(path, use_gpu=False)
    reference = analyze_samples(clips[0], model).summary_emotions
    for gain_db in (-20.0, 6.0):
        scaled = analyze_samples(clips[0] * 10 ** (gain_db / 20), model).summary_emotions
        np.testing.assert_allclose(scaled, reference, atol=1e-3)


def test_training_is_reproducible(trained):
    net, _, _, spectrograms, config = trained
    ratings = np.random.default_rng(0).uniform(1, 9, size=(12, 8)).astype(np.float32)
    pairs = ContrastPairs(np.arange(7) % 7, [spectrograms[i] for i in range(7)], [spectrograms[i + 1] for i in range(7)])
    again = train_model(spectrograms, ratings, pairs, config, log=None)
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_weight_average_is_the_mean_from_its_start_step():
    from dawemo.training.train import WeightAverage

    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(net, start_step=2)
    seen = []
    for step in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.full_like(p, float(step)))
        net[1].running_mean.fill_(10.0 * step)
        average.update(net, step)
        if step >= 2:
            seen.append(step)
    average.load_into(net)
    assert torch.allclose(net[0].weight, torch.full_like(net[0].weight, float(np.mean(seen))))
    assert torch.allclose(net[1].running_mean, torch.full((2,), 10.0 * np.mean(seen)))


def test_averaged_training_refits_batch_statistics_and_differs_from_the_last_weights(trained):
    net, _, _, spectrograms, config = trained
    ratings = np.random.default_rng(0).uniform(1, 9, size=(12, 8)).astype(np.float32)
    from dataclasses import replace

    averaged = train_model(spectrograms, ratings, None, replace(config, average_last=0.5), log=None)
    last = train_model(spectrograms, ratings, None, config, log=None)
    norms = [m for m in averaged.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    steps_per_epoch = int(np.ceil(len(spectrograms) / config.batch_size))
    # Statistics were reset and re-estimated over exactly one pass of the training clips.
    assert all(int(m.num_batches_tracked) == steps_per_epoch for m in norms)
    assert all(m.momentum == 0.1 for m in norms)
    differs = [not torch.equal(a, b) for a, b in zip(averaged.parameters(), last.parameters())]
    assert any(differs)
    # Statistics from soundtrack and contrast-pair batches in turn: same weights, other statistics.
    pairs = ContrastPairs(np.arange(7) % 7, [spectrograms[i] for i in range(7)], [spectrograms[i + 1] for i in range(7)])
    soundtracks_only = train_model(spectrograms, ratings, pairs, replace(config, average_last=0.5), log=None)
    mixed = train_model(spectrograms, ratings, pairs, replace(config, average_last=0.5, norm_with_pairs=1), log=None)
    for a, b in zip(soundtracks_only.parameters(), mixed.parameters()):
        torch.testing.assert_close(a, b)
    mixed_norms = [m for m in mixed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(int(m.num_batches_tracked) == 2 * steps_per_epoch for m in mixed_norms)
    first_norm = next(m for m in soundtracks_only.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.equal(first_norm.running_var, mixed_norms[0].running_var)
    midlevel, emotions = predict_clips(averaged, spectrograms[:3], config.context_frames)
    assert np.isfinite(emotions).all() and ((midlevel > 0) & (midlevel < 1)).all()


def test_signal_estimate_ranking_changes_training(trained):
    net, _, _, spectrograms, config = trained
    ratings = np.random.default_rng(0).uniform(1, 9, size=(12, 8)).astype(np.float32)
    from dataclasses import replace

    plain = train_model(spectrograms, ratings, None, config, log=None)
    weak = train_model(spectrograms, ratings, None, replace(config, estimate_weight=1.0), log=None)
    assert any(not torch.equal(a, b) for a, b in zip(plain.parameters(), weak.parameters()))
    assert all(torch.isfinite(p).all() for p in weak.parameters())


def test_pair_branch_is_seeded_and_learns_to_order_its_pairs(trained):
    from dataclasses import replace

    from dawemo.training.train import train_pair_branch

    _, _, _, spectrograms, config = trained
    # Pair i: a clip against a quieter, duller copy of itself, for quality i % 7.
    dull = [spec * np.linspace(1.0, 0.05, spec.shape[1])[None, :] for spec in spectrograms[:7]]
    pairs = ContrastPairs(np.arange(7), spectrograms[:7], dull)
    branch_config = replace(config, branch_width=4, branch_steps=40, branch_pairs_per_batch=7)
    first = train_pair_branch(pairs, branch_config, log=None)
    again = train_pair_branch(pairs, branch_config, log=None)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    more, _ = predict_clips(first, pairs.more, config.context_frames)
    less, _ = predict_clips(first, pairs.less, config.context_frames)
    ordered = more[np.arange(7), np.arange(7)] > less[np.arange(7), np.arange(7)]
    assert ordered.sum() >= 6, (more - less).diagonal()


def test_branched_net_exports_with_the_branch_logits_in_its_columns(trained, tmp_path):
    from dawemo.emotion.frontend import network_input, segment_starts
    from dawemo.training.net import BranchedNet, MidlevelEmotionNet

    net, _, _, spectrograms, config = trained
    torch.manual_seed(5)
    branch = MidlevelEmotionNet(4, 0.2).eval()
    branched = BranchedNet(net, branch, [0, 5])
    path = export_onnx(branched, tmp_path / "branched.onnx", version="test", context_frames=config.context_frames)
    segments = network_input(spectrograms[0], segment_starts(len(spectrograms[0])), context_frames=200)
    model = EmotionModel(path, use_gpu=False)
    onnx_logits, _, onnx_emotions = model.session.run(None, {"segments": segments})
    with torch.no_grad():
        joint_logits = net.segment_logits(torch.from_numpy(segments)).numpy()
        branch_logits = branch.segment_logits(torch.from_numpy(segments)).numpy()
    np.testing.assert_allclose(onnx_logits[:, [0, 5]], branch_logits[:, [0, 5]], atol=1e-4)
    others = [1, 2, 3, 4, 6]
    np.testing.assert_allclose(onnx_logits[:, others], joint_logits[:, others], atol=1e-4)
    np.testing.assert_allclose(model.emotion_weights, net.linear_emotion_map()[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(model.emotions_from_midlevel(1 / (1 + np.exp(-onnx_logits.mean(0)))), onnx_emotions,
                               atol=1e-4)
