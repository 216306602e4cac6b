"""The Soundtracks loader and CV splits (skipped when ../shared/data/soundtracks is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from dawemo.training.evaluate import emotion_metrics, grouped_kfold_splits, kfold_splits
from dawemo.training.soundtracks import DEFAULT_ROOT

needs_data = pytest.mark.skipif(not (DEFAULT_ROOT / "ratings.csv").exists(),
                                reason=f"Soundtracks data not found at {DEFAULT_ROOT} (copyrighted, not in the repo)")


@needs_data
def test_ratings_and_albums_load():
    import csv

    from dawemo.training.soundtracks import find_root

    with open(find_root() / "ratings.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300
    ratings = np.array([[float(r[k]) for k in ("valence", "energy", "tension")] for r in rows])
    assert ratings.min() >= 1 and ratings.max() <= 9


def test_kfold_covers_every_item_once():
    splits = kfold_splits(300, 10, seed=0)
    joined = np.concatenate(splits)
    assert sorted(joined.tolist()) == list(range(300)) and all(len(s) == 30 for s in splits)
    assert [s.tolist() for s in splits] == [s.tolist() for s in kfold_splits(300, 10, seed=0)]


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = [f"album{rng.integers(0, 40)}" for _ in range(300)]
    splits = grouped_kfold_splits(groups, 5, seed=0)
    assert sorted(np.concatenate(splits).tolist()) == list(range(300))
    fold_of = {}
    for k, split in enumerate(splits):
        for i in split:
            assert fold_of.setdefault(groups[i], k) == k
    sizes = [len(s) for s in splits]
    assert max(sizes) - min(sizes) < 30


def test_metrics():
    rng = np.random.default_rng(0)
    rated = rng.uniform(1, 9, size=(50, 8))
    perfect = emotion_metrics(rated * 2 + 1, rated)
    assert perfect["mean_r"] == pytest.approx(1.0) and perfect["dominant_emotion_agreement"] == 1.0
    noise = emotion_metrics(rng.uniform(1, 9, size=(50, 8)), rated)
    assert abs(noise["mean_r"]) < 0.3
