"""The shipped model's explanations: exact, and plausible where the paper gives strong evidence."""

from __future__ import annotations

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.emotion.model import EmotionModel, default_model_path

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="shipped model not built")


def test_happy_shares_the_papers_strongest_signs():
    """Chowdhury et al. 2019: happy rises with tonal stability and rhythm complexity, falls with
    dissonance and minorness."""
    model = EmotionModel(use_gpu=False)
    happy = dict(zip(model.midlevel_names, model.emotion_weights[list(model.emotion_names).index("happy")]))
    assert happy["tonal_stability"] > 0 and happy["rhythm_complexity"] > 0, happy
    assert happy["dissonance"] < 0 and happy["minorness"] < 0, happy


def test_graph_emotions_are_exactly_the_explained_linear_map():
    """What the ONNX graph outputs equals bias + sum(weight x feature) from the metadata."""
    model = EmotionModel(use_gpu=False)
    rng = np.random.default_rng(0)
    segments = rng.normal(0, 1, size=(3, 1, C.N_BANDS, C.SEGMENT_FRAMES)).astype(np.float32)
    feed = {"segments": segments}
    if model.rhythm is not None:
        feed["rhythm_descriptors"] = rng.uniform(0, 1, size=(3, len(model.metadata["rhythm_branch"]["descriptors"])
                                                          )).astype(np.float32)
    _, midlevel, emotions = model.session.run(None, feed)
    np.testing.assert_allclose(emotions, model.emotions_from_midlevel(midlevel), atol=1e-4)
    np.testing.assert_allclose(model.contributions(midlevel).sum(axis=1) + model.emotion_bias, emotions, atol=1e-4)


def test_evaluation_report_describes_the_shipped_layer():
    """models/evaluation.json belongs to the shipped file: its emotion layer is the refit of the
    report's out-of-fold features towards the report's joint layer, at the recorded pull."""
    import csv
    import json
    from pathlib import Path

    from dawemo.training.head import fit_emotion_head, without_columns
    from dawemo.training.soundtracks import DEFAULT_ROOT, find_root

    if not (DEFAULT_ROOT / "ratings.csv").exists():
        pytest.skip(f"Soundtracks ratings not found at {DEFAULT_ROOT} (copyrighted data, not in the repo)")

    report = json.loads((Path(__file__).resolve().parents[1] / "models" / "evaluation.json").read_text())
    with open(find_root() / "ratings.csv", newline="") as f:
        ratings = np.array([[float(row[name]) for name in C.EMOTION_NAMES] for row in csv.DictReader(f)])
    joint = report["joint_emotion_head"]
    # Where a pair branch supplies a feature, the refit is pulled towards 0 instead (its features are
    # the report's out-of-fold ones in those columns).
    freed = sorted(set(report.get("branch", {}).get("columns", []))
                   | set(report.get("rhythm_branch", {}).get("columns", [])))
    (anchor_weight, anchor_bias), = without_columns([(np.array(joint["weight"]), np.array(joint["bias"]))], freed)
    weight, bias = fit_emotion_head(np.array(report["cv"]["out_of_fold_midlevel"]), ratings, anchor_weight,
                                    anchor_bias, report["cv"]["crossfitted_head"]["ridge"],
                                    report["cv"]["crossfitted_head"].get("signs_kept"))
    model = EmotionModel(use_gpu=False)
    assert model.metadata["training"]["config"] == report["config"]
    np.testing.assert_allclose(model.emotion_weights, weight, atol=1e-4)
    np.testing.assert_allclose(model.emotion_bias, bias, atol=1e-4)
