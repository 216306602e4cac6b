"""The GPU sweep's bookkeeping (scripts/train_sweep.py): which recipes get the cross-validation time,
and the fold networks it returns for work without a GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the training extra (PyTorch) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import train_sweep  # noqa: E402

from dawemo import constants as C  # noqa: E402
from dawemo.training.config import TrainConfig  # noqa: E402
from dawemo.training.net import MidlevelEmotionNet  # noqa: E402


def _final(correct_per_quality: int, happy_ok: bool = True, pairs: int = 16) -> dict:
    scores = {q: {"correct": correct_per_quality, "pairs": pairs, "mean_difference": 0.1} for q in C.MIDLEVEL_NAMES}
    return {"probes": scores, "selection_probes": scores, "happy_signs_ok": happy_ok}


def test_a_recipe_qualifies_only_with_every_quality_passed_and_happys_signs():
    passing, failing_one = _final(12), _final(12)
    failing_one["selection_probes"] = dict(failing_one["selection_probes"],
                                           tonal_stability={"correct": 11, "pairs": 16, "mean_difference": 0.0})
    assert train_sweep.selection_key(passing)[0] == 0
    assert train_sweep.selection_key(failing_one)[0] == 2
    assert train_sweep.selection_key(_final(12, happy_ok=False))[0] == 2
    assert train_sweep.selection_key({"cv": {}})[0] == 1  # final network not in yet
    assert train_sweep.selection_key({"probes": {"error": "boom"}, "selection_probes": None})[0] == 2
    # Among those that fail, more qualities passed sorts first.
    assert train_sweep.selection_key(failing_one) < train_sweep.selection_key(_final(3))


def test_cv_runs_of_qualifying_recipes_go_first_and_finals_stay_ahead():
    def job(recipe, scheme, fold):
        return {"recipe": recipe, "scheme": scheme, "fold": fold}

    queue = ([job("a", "cv", k) for k in range(2)] + [job("b", "cv", k) for k in range(2)]
             + [job("c", "final", -1)] + [job("c", "cv", 0)])
    done = {"a": _final(2), "b": _final(16), "c": {"cv": {}}}
    order = [(item["recipe"], item["scheme"], item["fold"]) for item in train_sweep.prioritise(queue, done)]
    assert order == [("c", "final", -1), ("b", "cv", 0), ("b", "cv", 1), ("c", "cv", 0), ("a", "cv", 0),
                     ("a", "cv", 1)]


def test_fold_networks_round_trip_through_one_file(tmp_path):
    config = TrainConfig(width=4)
    recipe_dir = tmp_path / "folds" / "w4-test"
    recipe_dir.mkdir(parents=True)
    nets = {}
    for run in ("cv0", "cv1", "grouped0"):
        torch.manual_seed(len(nets))
        nets[run] = MidlevelEmotionNet(config.width, config.dropout).eval()
        for m in nets[run].modules():  # statistics that are not the defaults, so loading them is tested
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
        np.savez(recipe_dir / f"{run}.weights.npz", **{k: v.numpy() for k, v in nets[run].state_dict().items()})
    (tmp_path / "folds" / "w4-test-s1").mkdir()  # another recipe's folder is not packed
    np.savez(tmp_path / "folds" / "w4-test-s1" / "cv0.weights.npz", **{"x": np.zeros(1)})

    packed = train_sweep.pack_fold_networks("w4-test", tmp_path, tmp_path)
    loaded = train_sweep.load_fold_networks(packed, config)

    assert sorted(loaded) == ["cv0", "cv1", "grouped0"]
    segments = torch.randn(3, 1, C.N_BANDS, C.SEGMENT_FRAMES)
    with torch.no_grad():
        for run, net in nets.items():
            expected, got = net.segment_logits(segments), loaded[run].segment_logits(segments)
            assert torch.allclose(expected, got, atol=2e-2), run  # float16 weights
            assert not torch.equal(expected, loaded["cv0" if run != "cv0" else "cv1"].segment_logits(segments))
    assert train_sweep.pack_fold_networks("no-such-recipe", tmp_path, tmp_path) is None


def test_qualities_a_pair_branch_supplies_do_not_count_against_a_recipe():
    final = _final(16)
    final["selection_probes"] = dict(final["selection_probes"],
                                     melodiousness={"correct": 4, "pairs": 16, "mean_difference": -0.1})
    assert train_sweep.selection_key(final)[0] == 2
    assert train_sweep.selection_key(final, ("melodiousness", "tonal_stability"))[0] == 0
