"""Change-aware segment averaging: steady on one piece, quick on a change, exact explanations.

The stage is tested on its own with synthetic logits (where "the same music" and "a change" are
known by construction), then inside the tracker with the shipped model on generated music.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dawemo.emotion.averaging import CHANGE_TO, SteadyAverage

STRIDE_S = 0.48


def stage(steady_s: float = 15.0, n: int = 3) -> SteadyAverage:
    return SteadyAverage(np.ones(n), np.full(n, 2.0), steady_s, STRIDE_S)


def test_noise_within_one_piece_is_held_steady():
    rng = np.random.default_rng(0)
    # One piece: segments wobble around its level by a little less than the within-piece spread
    # (which also holds the piece's slow changes).
    logits = 0.6 * rng.standard_normal((400, 3))
    out = stage().process(logits)
    settled = out[100:]
    assert settled.var(axis=0).max() < 0.1 * logits.var(axis=0).min()
    assert np.abs(settled.mean(axis=0)).max() < 0.3  # and stays centred on the piece's level


def test_a_change_of_music_is_followed_at_once():
    rng = np.random.default_rng(1)
    before = rng.standard_normal((60, 3)) * 0.5
    after = rng.standard_normal((20, 3)) * 0.5 + 4.0  # a new piece: far beyond the within-piece spread
    out = stage().process(np.vstack([before, after]))
    progress = out[60:, 0] / 4.0
    assert progress[0] > 0.5  # half-way with the first new segment
    assert np.all(progress[1:] > 0.7)


def test_a_small_lasting_shift_is_followed_slowly_not_ignored():
    shifted = np.vstack([np.zeros((10, 3)), np.full((200, 3), 0.8)])  # below the change threshold
    averaging = stage(steady_s=15.0)
    out = averaging.process(shifted)[10:, 0] / 0.8
    segments_per_tau = 15.0 / STRIDE_S
    assert out[0] < 0.1  # no jump
    assert out[int(3 * segments_per_tau)] > 0.9  # ... but it gets there within a few time constants


def test_noisy_features_do_not_trigger_jumps():
    # Logit 0 separates pieces badly (between = within): its wobble alone must not count as a change.
    averaging = SteadyAverage(np.ones(3), np.array([1.0, 4.0, 4.0]), 15.0, STRIDE_S)
    noisy = np.zeros((50, 3))
    noisy[1::2, 0] = 3.0  # every other segment far off, in the noisy logit only
    averaging.process(noisy[:1])
    assert averaging.distance(noisy[1]) < CHANGE_TO
    assert averaging.weights[0] < averaging.weights[1]


def test_streaming_equals_batch():
    rng = np.random.default_rng(2)
    logits = np.vstack([rng.standard_normal((40, 3)), rng.standard_normal((40, 3)) + 3])
    whole = stage().process(logits)
    streamed = stage()
    parts = [streamed.process(logits[i : i + 7]) for i in range(0, len(logits), 7)]
    np.testing.assert_allclose(np.vstack(parts), whole)
    streamed.reset()
    np.testing.assert_allclose(streamed.process(logits), whole)


@pytest.mark.parametrize("within, between, steady_s, change", [
    ([1.0, 0.0], [1.0, 1.0], 15.0, (1.25, 2.25)),
    ([1.0, np.nan], [1.0, 1.0], 15.0, (1.25, 2.25)),
    ([1.0, 1.0], [1.0], 15.0, (1.25, 2.25)),
    ([1.0, 1.0], [1.0, 1.0], -1.0, (1.25, 2.25)),
    ([1.0, 1.0], [1.0, 1.0], 15.0, (2.0, 1.0)),
])
def test_bad_settings_are_refused(within, between, steady_s, change):
    with pytest.raises(ValueError):
        SteadyAverage(within, between, steady_s, STRIDE_S, *change)


# --- inside the tracker, with the shipped model ---------------------------------------------------

def calm_then_energetic(sample_rate: int, calm_s: float = 30.0, energetic_s: float = 15.0) -> tuple[np.ndarray, float]:
    from conftest import chord_progression

    calm = chord_progression(calm_s, sample_rate)[0]
    rng = np.random.default_rng(3)
    t = np.arange(int(energetic_s * sample_rate)) / sample_rate
    beat_s = 60 / 160
    hits = np.exp(-30 * (t % (beat_s / 2))) * rng.standard_normal(len(t))  # eighth-note noise hits at 160 BPM
    cluster = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (110.0, 116.5, 155.6, 164.8))  # a dissonant square cluster
    energetic = 0.35 * hits + 0.08 * cluster
    return np.concatenate([calm, energetic]).astype(np.float32), calm_s


def half_way_s(times, curve, change_s, old, new) -> float:
    progress = (curve - old) / (new - old)
    crossed = np.nonzero((times > change_s) & (progress >= 0.5))[0]
    return float(times[crossed[0]] - change_s) if len(crossed) else np.inf


def test_tracker_holds_a_piece_steady_and_follows_a_change_as_fast():
    from dawemo.emotion.model import EmotionModel
    from dawemo.emotion.tracker import EmotionTracker

    model = EmotionModel(use_gpu=False)
    if model.segment_spread is None:
        pytest.skip("the shipped model has no measured segment spreads")
    audio, change_s = calm_then_energetic(model.sample_rate)
    runs = {}
    for steady_s in (0.0, 15.0):
        updates = EmotionTracker(model, steady_s=steady_s).process(audio)
        runs[steady_s] = (np.array([u.time_s for u in updates]), np.array([u.emotions for u in updates]),
                          np.array([u.midlevel for u in updates]))
    times, raw, raw_features = runs[0.0]
    _, steady, steady_features = runs[15.0]
    calm = (times > 8.0) & (times < change_s)
    # On the calm piece the steady curves wobble much less than each window's own values.
    assert steady[calm].std(axis=0).mean() < 0.5 * raw[calm].std(axis=0).mean()
    assert steady_features[calm].std(axis=0).mean() < 0.5 * raw_features[calm].std(axis=0).mean()
    # After the change, the emotions that move clearly get half-way about as fast as the raw windows.
    settled = times > change_s + 5.0
    delays = []
    for k in range(raw.shape[1]):
        old, new = raw[calm, k].mean(), raw[settled, k].mean()
        if abs(new - old) < 0.5:
            continue
        delays.append((half_way_s(times, raw[:, k], change_s, old, new),
                       half_way_s(times, steady[:, k], change_s, old, new)))
    assert delays, "the generated change should move some emotion by half a rating point"
    for raw_s, steady_s in delays:
        assert steady_s <= max(raw_s + 0.5, 2.0)
    # Explanations stay exact: every update's emotions are the layer applied to its features.
    updates = EmotionTracker(model).process(audio)
    for update in updates[::10]:
        np.testing.assert_allclose(update.emotions, model.emotion_bias + model.emotion_weights @ update.midlevel)


def test_tracker_blocks_equal_whole_and_off_means_the_window_alone():
    from dawemo.emotion.model import EmotionModel
    from dawemo.emotion.tracker import EmotionTracker

    model = EmotionModel(use_gpu=False)
    audio, _ = calm_then_energetic(model.sample_rate, calm_s=12.0, energetic_s=6.0)
    whole = EmotionTracker(model).process(audio)
    tracker = EmotionTracker(model)
    blocks = [u for i in range(0, len(audio), 3001) for u in tracker.process(audio[i : i + 3001])]
    np.testing.assert_allclose([u.midlevel for u in blocks], [u.midlevel for u in whole], atol=1e-6)
    off = EmotionTracker(model, steady_s=0.0)
    assert off.steady is None and off.steady_s == 0.0
    window_alone = off.process(audio)
    segment_logits = model.clip_logits(off.front_end.__class__(model.sample_rate, model.frame_size,
                                                                 model.hop_size).process(audio))
    np.testing.assert_allclose([u.midlevel for u in window_alone],
                               model.midlevel_from_logits(segment_logits[: len(window_alone)]), atol=1e-5)


def test_models_without_spreads_and_bad_settings(tiny_model_path):
    from dawemo.emotion.model import EmotionModel
    from dawemo.emotion.tracker import EmotionTracker

    tiny = EmotionModel(tiny_model_path, use_gpu=False)
    assert tiny.segment_spread is None
    assert EmotionTracker(tiny).steady is None  # measured before spreads existed: each window alone
    with pytest.raises(ValueError, match="steady_s"):
        EmotionTracker(tiny, steady_s=-1.0)


def test_analyze_records_the_averaging_and_keeps_clip_summaries(tmp_path):
    """``dawemo analyze --steady-s``: the timeline follows it, the summary never depends on it."""
    from conftest import write_audio
    from test_analyze_cli import run_main

    from dawemo.emotion.model import EmotionModel

    if EmotionModel(use_gpu=False).segment_spread is None:
        pytest.skip("the shipped model has no measured segment spreads")
    audio, _ = calm_then_energetic(22050, calm_s=14.0, energetic_s=8.0)
    clip = write_audio(tmp_path / "change.wav", audio[None], 22050)
    documents = {}
    for steady_s in ("0", "15"):
        out = tmp_path / f"steady{steady_s}.json"
        code, _, err = run_main(["analyze", clip, "--steady-s", steady_s, "--json", out, "-q"])
        assert code == 0, err
        documents[steady_s] = json.loads(out.read_text())
    off, on = documents["0"], documents["15"]
    assert (off["steady_s"], on["steady_s"]) == (0.0, 15.0)
    assert off["files"][0]["summary"] == on["files"][0]["summary"]
    wobble = {key: np.std(np.diff(np.array(list(d["files"][0]["timeline"]["midlevel"].values())), axis=1))
              for key, d in documents.items()}
    assert wobble["15"] < wobble["0"]
    code, _, err = run_main(["analyze", clip, "--steady-s", "-2"])
    assert code == 2 and "--steady-s" in err and "Traceback" not in err
