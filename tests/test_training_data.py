"""Training plumbing: the 8-bit spectrogram cache, the cross-fitted emotion layer, --set parsing."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.emotion.frontend import network_input, segment_starts, spectrogram
from dawemo.training.evaluate import kfold_splits
from dawemo.training.head import crossfitted_head_metrics, fit_emotion_head
from dawemo.training.spectrogram_pack import STEP_DB, load_pack, save_pack


def music_like(seed: int, seconds: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    tones = sum(np.sin(2 * np.pi * 110 * 2 ** (k / 12) * t) for k in rng.integers(0, 36, 4))
    fade = np.minimum(1, t / 2)  # a fade-in: quiet frames far below the loudest
    return (0.2 * fade * tones + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def test_pack_round_trip_keeps_what_the_network_sees(tmp_path):
    spectrograms = {"a": spectrogram(music_like(0)), "b": 1e-4 * spectrogram(music_like(1)),
                    "silent": np.zeros((100, C.N_BANDS), np.float32)}
    path = save_pack(tmp_path / "pack.npz", spectrograms)
    back = load_pack(path)
    assert set(back) == set(spectrograms)
    assert not back["silent"].any()
    for key in ("a", "b"):
        original, restored = spectrograms[key], back[key]
        assert restored.dtype == np.float32 and restored.shape == original.shape
        loud = original > original.max() * 1e-6  # within 120 dB of the peak: at most half a step off
        level_error_db = 20 * np.abs(np.log10(restored[loud] / original[loud]))
        assert level_error_db.max() <= STEP_DB / 2 + 1e-3
        starts = segment_starts(len(original))
        difference = np.abs(network_input(original, starts) - network_input(restored, starts))
        assert difference.mean() < 0.01 and np.percentile(difference, 99.9) < 0.02  # log10 units
    # Stored as one byte per value, compressed: well under a quarter of float32.
    assert path.stat().st_size < 0.25 * sum(s.nbytes for s in spectrograms.values())


def test_pack_names_missing_keys(tmp_path):
    path = save_pack(tmp_path / "pack.npz", {"a": np.ones((3, C.N_BANDS), np.float32)})
    with pytest.raises(KeyError, match="delete it to rebuild"):
        load_pack(path, ["a", "b"])
    assert not list(tmp_path.glob("*.partial.npz"))


def linear_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 1, size=(n, 7))
    weight = rng.normal(0, 2, size=(8, 7))
    bias = rng.uniform(3, 6, size=8)
    ratings = features @ weight.T + bias + rng.normal(0, 0.3, size=(n, 8))
    return features, ratings, weight, bias


def test_head_fit_recovers_a_linear_map_and_ridge_pulls_to_the_anchor():
    features, ratings, weight, bias = linear_data()
    anchor = (np.zeros((8, 7)), np.full(8, 5.0))
    fitted_weight, fitted_bias = fit_emotion_head(features, ratings, *anchor, ridge=0.0)
    np.testing.assert_allclose(fitted_weight, weight, atol=0.3)
    np.testing.assert_allclose(fitted_bias, bias, atol=0.3)
    pulled, _ = fit_emotion_head(features, ratings, *anchor, ridge=1e6)
    assert np.abs(pulled).max() < 0.05  # an overwhelming ridge leaves the anchor
    towards_truth, _ = fit_emotion_head(features, ratings, weight, bias, ridge=1e6)
    np.testing.assert_allclose(towards_truth, weight, atol=1e-3)


def test_crossfitted_metrics_score_unseen_folds():
    features, ratings, weight, bias = linear_data()
    splits = kfold_splits(len(ratings), 5, 0)
    anchors = [(np.zeros((8, 7)), np.full(8, 5.0))] * 5
    informative = crossfitted_head_metrics(features, ratings, splits, anchors, ridge=0.1)
    noise = np.random.default_rng(9).uniform(0, 1, size=features.shape)
    uninformative = crossfitted_head_metrics(noise, ratings, splits, anchors, ridge=0.1)
    assert informative["mean_r"] > 0.9
    assert abs(uninformative["mean_r"]) < 0.2  # no in-sample optimism: each fold is predicted unseen
    assert len(informative["out_of_fold_emotions"]) == len(ratings)


def test_set_emotion_head_round_trips_through_the_net():
    torch = pytest.importorskip("torch", reason="needs the train extra")
    from dawemo.training.head import set_emotion_head
    from dawemo.training.net import MidlevelEmotionNet

    net = MidlevelEmotionNet(4, 0.0, torch.full((8,), 4.0), torch.full((8,), 2.0))
    _, _, weight, bias = linear_data()
    set_emotion_head(net, weight, bias)
    got_weight, got_bias = net.linear_emotion_map()
    np.testing.assert_allclose(got_weight.numpy(), weight, atol=1e-5)
    np.testing.assert_allclose(got_bias.numpy(), bias, atol=1e-5)
    features = torch.rand(3, 7)
    np.testing.assert_allclose(net.emotions(features).detach().numpy(),
                               features.numpy() @ weight.T + bias, atol=1e-4)


def test_train_settings_from_the_command_line():
    pytest.importorskip("torch", reason="needs the train extra")
    from dawemo.training.command import config_from_args

    args = argparse.Namespace(epochs=3, width=8, seed=2, overrides=["ranking_weight=0.25", "batch-size=32"])
    config = config_from_args(args)
    assert (config.epochs, config.width, config.ranking_weight, config.batch_size) == (3, 8, 0.25, 32)
    assert isinstance(config.batch_size, int)
    for bad in (["nonsense=1"], ["ranking_weight"], ["dropout=lots"]):
        with pytest.raises(ValueError, match="--set"):
            config_from_args(argparse.Namespace(epochs=3, width=8, seed=2, overrides=bad))
