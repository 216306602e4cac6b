"""Compare training recipes on one GPU within a fixed time, and train the winner.

    python3 scripts/train_sweep.py --out OUT --deadline-s 480 [--soundtracks DIR]
    python3 scripts/train_sweep.py --out OUT --assemble RECIPE --version V   # then: the shipped model

Every run is exactly what ``dawemo train --device cuda --epochs E --width W --set ...`` does for
that recipe (same data caches, splits, seeds and code), many at once: one process per run, all
sharing the GPU. Each recipe's final network (all 300 excerpts) trains first, and is run on
mid-level probe pairs of ``tests/probe_audio.py``: the test suite's 8 pairs per quality, which are
reported, and 16 further pairs of the same generator, on which recipes are chosen. Recipes whose
final network orders those right in every quality, with happy's signs as in the paper, get their
10 CV folds first; the others in their listed order as time allows. When time runs short, the
best of the qualifying recipes with all folds done also gets the album-grouped CV. Each recipe's
out-of-fold features are correlated with the signal estimates of ``bench/feature_validity.py``.

Whatever finished by the deadline is written to OUT/sweep.json, with the best recipes' final
weights (``*.weights.npz``, loadable by ``weights_to_onnx``) and their fold networks
(``*.folds.npz``, ``load_fold_networks``), so that changes that need no retraining can still be
cross-validated on a machine without a GPU.

The machine needs PyTorch and numpy only: the spectrogram caches (``cache/*.u8.npz``), the corpus
manifest and the Soundtracks ratings travel; the audio does not. ``scripts/gpu_sweep.sh`` runs the
sweep under the CUDA MPS daemon when the machine has it (a 150-epoch w32 run took 140 s with 15 at
once under MPS on an H100, and 240 s with 14 at once time-sliced on an H200).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dawemo.training.config import HEAD_RIDGE  # noqa: E402  (after the path: runs without installing)

# Every recipe is scored on the same folds, whatever its own seed.
SPLIT_SEED = 0
# Probe pairs (tests/probe_audio.py) by number: the first 8 are the test suite's; further pairs of the
# same generator (other seeds, tempo/key/timbre combinations) choose among final networks, so the
# test suite is not what the choice is made on.
TEST_PROBES = range(0, 8)
SELECTION_PROBES = range(8, 24)
PROBE_PASS_SHARE = 0.75  # tests/test_midlevel_probes.py's ACCURACY_THRESHOLD

# name -> TrainConfig fields that differ from the defaults, most promising first.
RECIPES = {
    # Next: 15 final networks at once, v4's recipe with weak real-music supervision from signal
    # estimates and/or batch-norm statistics from soundtrack and contrast-pair batches, over seeds
    # (v4's probes and its seed-1 replicate's differ widely; a CPU stand-in, w16 for 40 epochs,
    # ordered most probes right with both changes). Then CV for those whose finals qualify. With
    # --branch-qualities melodiousness,tonal_stability (model v5's pair branch) the choice is made on
    # the other five qualities, and --assemble adds the branch. The stand-in lost about 0.03 in CV
    # when its batch-norm statistics were re-estimated with contrast pairs (normpairs).
    "w32-e150-avg0.3-est0.5-normpairs": {"width": 32, "epochs": 150, "average_last": 0.3, "estimate_weight": 0.5,
                                         "norm_with_pairs": 1},
    "w32-e150-avg0.3-est0.5-normpairs-s1": {"width": 32, "epochs": 150, "average_last": 0.3,
                                            "estimate_weight": 0.5, "norm_with_pairs": 1, "seed": 1},
    "w32-e150-avg0.3-est0.5-normpairs-s2": {"width": 32, "epochs": 150, "average_last": 0.3,
                                            "estimate_weight": 0.5, "norm_with_pairs": 1, "seed": 2},
    "w32-e150-avg0.3-est0.5-normpairs-s3": {"width": 32, "epochs": 150, "average_last": 0.3,
                                            "estimate_weight": 0.5, "norm_with_pairs": 1, "seed": 3},
    "w32-e150-avg0.3-est0.5": {"width": 32, "epochs": 150, "average_last": 0.3, "estimate_weight": 0.5},
    "w32-e150-avg0.3-est0.5-s1": {"width": 32, "epochs": 150, "average_last": 0.3, "estimate_weight": 0.5,
                                  "seed": 1},
    "w32-e150-avg0.3-normpairs": {"width": 32, "epochs": 150, "average_last": 0.3, "norm_with_pairs": 1},
    "w32-e150-avg0.3-normpairs-s1": {"width": 32, "epochs": 150, "average_last": 0.3, "norm_with_pairs": 1,
                                     "seed": 1},
    "w32-e150-avg0.3-est1-normpairs": {"width": 32, "epochs": 150, "average_last": 0.3, "estimate_weight": 1.0,
                                       "norm_with_pairs": 1},
    "w32-e150-avg0.3-est1-normpairs-s1": {"width": 32, "epochs": 150, "average_last": 0.3,
                                          "estimate_weight": 1.0, "norm_with_pairs": 1, "seed": 1},
    "w32-e150-avg0.3-est0.5-normpairs-rank1": {"width": 32, "epochs": 150, "average_last": 0.3,
                                               "estimate_weight": 0.5, "norm_with_pairs": 1, "ranking_weight": 1.0},
    "w32-e150-avg0.3-est0.5-normpairs-rank1-s1": {"width": 32, "epochs": 150, "average_last": 0.3,
                                                  "estimate_weight": 0.5, "norm_with_pairs": 1,
                                                  "ranking_weight": 1.0, "seed": 1},
    "w32-e150-avg0.3-s2": {"width": 32, "epochs": 150, "average_last": 0.3, "seed": 2},
    "w32-e150-avg0.3-rank1": {"width": 32, "epochs": 150, "average_last": 0.3, "ranking_weight": 1.0},
    "w32-e150-avg0.3-normpairs-s2": {"width": 32, "epochs": 150, "average_last": 0.3, "norm_with_pairs": 1,
                                     "seed": 2},
    "w32-e150-avg0.3": {"width": 32, "epochs": 150, "average_last": 0.3},  # model v4
    "w32-e150-s1": {"width": 32, "epochs": 150, "seed": 1},  # the v3 recipe again: how much is the seed?
    "w32-e150-rank0.25": {"width": 32, "epochs": 150, "ranking_weight": 0.25},
    "w32-e150-avg0.3-s1": {"width": 32, "epochs": 150, "average_last": 0.3, "seed": 1},
    "w48-e150": {"width": 48, "epochs": 150},
    "w48-e150-rank0.25": {"width": 48, "epochs": 150, "ranking_weight": 0.25},
    "w32-e150": {"width": 32, "epochs": 150},
    "w48-e300": {"width": 48, "epochs": 300},
    "w48-e150-k12": {"width": 48, "epochs": 150, "segments_per_window": 12},
    "w32-e60": {"width": 32, "epochs": 60},  # the CPU-trained v2 recipe, as a reference
    "w48-e300-rank0.25": {"width": 48, "epochs": 300, "ranking_weight": 0.25},
    "w64-e150": {"width": 64, "epochs": 150},
    "w48-e150-dropout0.3": {"width": 48, "epochs": 150, "dropout": 0.3},
    "w48-e150-batch32": {"width": 48, "epochs": 150, "batch_size": 32, "learning_rate": 3e-3},
}

_data: dict = {}


def _load(soundtracks: str, corpus: str, cache: str) -> None:
    """Per worker process: read the caches once (seconds), use one CPU thread for batch cutting."""
    import torch

    from dawemo.training.command import load_contrast_pairs
    from dawemo.training.soundtracks import load_soundtracks

    torch.set_num_threads(1)
    data = load_soundtracks(soundtracks, cache)
    pairs, corpus_key = load_contrast_pairs(Path(corpus), 150, 0, Path(cache))
    _data.update(data=data, pairs=pairs, corpus_key=corpus_key)


def _run(job: dict) -> dict:
    from dawemo.training.config import TrainConfig
    from dawemo.training.train import predict_clips, train_model

    data, pairs = _data["data"], _data["pairs"]
    config = TrainConfig(**job["config"])
    test = np.array(job["test"], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(data.ids)), test)
    started = time.time()
    net = train_model([data.spectrograms[i] for i in train], data.ratings[train], pairs, config, log=None,
                      device=job["device"])
    result = dict(job, seconds=time.time() - started)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    if len(test):
        midlevel, emotions = predict_clips(net, [data.spectrograms[i] for i in test], config.context_frames)
        weight, bias = net.linear_emotion_map()
        result.update(midlevel=midlevel.tolist(), emotions=emotions.tolist(), head_weight=weight.tolist(),
                      head_bias=bias.tolist())
        # Kept so that later changes that need no retraining (batch-norm statistics, the emotion layer)
        # can be cross-validated on a machine without a GPU.
        path = Path(job["models_dir"]) / "folds" / job["recipe"] / f"{job['scheme']}{job['fold']}.weights.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **state)
        result["weights"] = str(path)
    else:  # the final model: keep its weights, and see how it does on the probes
        path = Path(job["models_dir"]) / f"{job['recipe']}.weights.npz"
        np.savez(path, **state, __config__=np.array(json.dumps(config.as_dict())))
        result["weights"] = str(path)
        try:
            result["probes"] = probe_scores(net, config.context_frames, TEST_PROBES)
            result["selection_probes"] = probe_scores(net, config.context_frames, SELECTION_PROBES)
            weight, _ = net.linear_emotion_map()
            result["happy_signs_ok"] = happy_signs_ok(weight.numpy())
        except Exception as error:  # the weights matter more than the probe table
            result["probes"] = {"error": repr(error)}
    return result


def probe_scores(net, context_frames: int, pair_numbers: range) -> dict:
    """Mid-level probe pairs of ``tests/probe_audio.py`` on a trained network, in PyTorch (the GPU
    machine needs no ONNX Runtime): quality -> pairs ordered right and mean difference (more - less)."""
    tests_dir = str(Path(__file__).resolve().parents[1] / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import probe_audio

    from dawemo import constants as C
    from dawemo.emotion.frontend import spectrogram
    from dawemo.training.train import predict_clips

    scores = {}
    for column, quality in enumerate(C.MIDLEVEL_NAMES):
        pairs = probe_audio.probe_pairs(quality, pair_numbers.stop)[pair_numbers.start:]
        more, _ = predict_clips(net, [spectrogram(pair.more) for pair in pairs], context_frames)
        less, _ = predict_clips(net, [spectrogram(pair.less) for pair in pairs], context_frames)
        differences = more[:, column] - less[:, column]
        scores[quality] = {"correct": int((differences > 0).sum()), "pairs": len(pairs),
                           "mean_difference": round(float(differences.mean()), 4)}
    return scores


def happy_signs_ok(weight: np.ndarray) -> bool:
    """Does the (8, 7) emotion layer give happy the paper's strongest signs (tests/test_shipped_model.py)?"""
    from dawemo import constants as C

    happy = dict(zip(C.MIDLEVEL_NAMES, weight[C.EMOTION_NAMES.index("happy")]))
    return bool(happy["tonal_stability"] > 0 and happy["rhythm_complexity"] > 0
                and happy["dissonance"] < 0 and happy["minorness"] < 0)


def selection_key(final: dict | None, branch_qualities: tuple[str, ...] = ()) -> tuple:
    """Sort key for a recipe by its final network, lowest first: networks whose features follow the
    selection probes in every quality (but ``branch_qualities``, which a pair branch will supply at
    assembly) and whose happy has the paper's signs, then the most qualities passed, then the weakest
    quality's share of pairs; recipes whose final network is not in yet between those that qualify
    and those that do not."""
    if not final or "probes" not in final:
        return (1, 0, 0.0)
    if not final.get("selection_probes"):  # the probe step failed: nothing to prefer it for
        return (2, 0, 0.0)
    shares = [r["correct"] / r["pairs"] for q, r in final["selection_probes"].items() if q not in branch_qualities]
    passed = sum(share >= PROBE_PASS_SHARE for share in shares)
    qualifies = passed == len(shares) and final["happy_signs_ok"]
    return (0 if qualifies else 2, -passed, -min(shares))


def prioritise(queue: list[dict], finals: dict, branch_qualities: tuple[str, ...] = ()) -> list[dict]:
    """Cross-validation runs of recipes whose final network qualifies go first (stable otherwise):
    the recipe shipped is one whose final network means what its features say, so time goes there."""
    return sorted(queue, key=lambda item: selection_key(finals.get(item["recipe"]), branch_qualities)
                  if item["scheme"] != "final" else (-1,))


def pack_fold_networks(recipe: str, models_dir: Path, out: Path) -> Path | None:
    """One file with a recipe's fold networks (multi-dimensional weights as float16, so 15 w32
    networks fit one returned file): keys ``cv3/encoder...`` and ``grouped0/...``."""
    packed = {}
    for path in sorted((models_dir / "folds" / recipe).glob("*.weights.npz")):
        run = path.name[: -len(".weights.npz")]
        with np.load(path) as stored:
            for key in stored.files:
                value = stored[key]
                packed[f"{run}/{key}"] = value.astype(np.float16) if value.ndim >= 2 else value
    if not packed:
        return None
    target = out / f"{recipe}.folds.npz"
    np.savez_compressed(target, **packed)
    return target


def load_fold_networks(folds: Path, config) -> dict:
    """``pack_fold_networks``'s file -> run name ("cv3", "grouped0") -> MidlevelEmotionNet in eval mode."""
    states: dict = {}
    with np.load(folds, allow_pickle=False) as stored:
        for key in stored.files:
            run, name = key.split("/", 1)
            value = stored[key]
            states.setdefault(run, {})[name] = value.astype(np.float32) if value.dtype == np.float16 else value
    return {run: _net_from_state(state, config) for run, state in states.items()}


def load_weights(weights: Path):
    """A ``*.weights.npz`` written by this sweep -> (MidlevelEmotionNet in eval mode, TrainConfig)."""
    from dawemo.training.config import TrainConfig

    with np.load(weights, allow_pickle=False) as stored:
        config = TrainConfig(**json.loads(str(stored["__config__"])))
        state = {k: stored[k] for k in stored.files if k != "__config__"}
    return _net_from_state(state, config), config


def _net_from_state(state: dict[str, np.ndarray], config):
    import torch

    from dawemo.training.net import MidlevelEmotionNet

    net = MidlevelEmotionNet(config.width, config.dropout)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return net.eval()


def weights_to_onnx(weights: Path, onnx_path: Path, version: str, extra_metadata: dict | None = None) -> Path:
    """Export a ``*.weights.npz`` with its jointly trained emotion layer as the runtime's ONNX file."""
    from dawemo.training.export import export_onnx

    net, config = load_weights(weights)
    meta = {"training": {"config": config.as_dict(), **(extra_metadata or {})}}
    return export_onnx(net, onnx_path, version=version, context_frames=config.context_frames,
                       extra_metadata=meta)


def assemble(args) -> int:
    """The shipped model from a sweep's recipe: its final network with the emotion layer refitted on its
    CV's out-of-fold features (what ``dawemo train`` does after its CV), plus the evaluation report."""
    import torch

    from dataclasses import replace

    from dawemo.training.evaluate import grouped_kfold_splits, kfold_splits
    from dawemo.training.export import export_onnx
    from dawemo.training.head import crossfit_net_head, crossfitted_head_metrics, with_branch_features, without_columns
    from dawemo.training.soundtracks import load_soundtracks

    recipe, sweep_dir = args.assemble, args.out
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    # The final weights may come from a later --final-only call into the same folder.
    finished = [n for n, r in sweep["results"].items() if "cv" in r and (sweep_dir / f"{n}.weights.npz").is_file()]
    if recipe not in finished:
        print(f"train_sweep: error: {recipe!r} has no complete CV and final weights in {sweep_dir}; "
              f"complete: {', '.join(finished) or 'none'}", file=sys.stderr)
        return 2
    cv = sweep["results"][recipe]["cv"]
    net, config = load_weights(sweep_dir / f"{recipe}.weights.npz")
    joint = [a.double().numpy() for a in net.linear_emotion_map()]
    soundtracks = load_soundtracks(args.soundtracks, args.cache)
    ratings = soundtracks.ratings
    grouped = sweep["results"][recipe].get("album_grouped_cv")
    branch_columns = []
    if args.branch_qualities:
        # The pair branch needs no GPU (minutes on one CPU thread) and no fold networks: it never hears
        # the excerpts, so its features replace the out-of-fold ones in its columns for every excerpt.
        from dawemo.training.command import load_contrast_pairs
        from dawemo.training.net import BranchedNet
        from dawemo.training.train import predict_clips, train_pair_branch

        config = replace(config, branch_qualities=args.branch_qualities)
        branch_columns = config.branch_columns()
        pairs, _ = load_contrast_pairs(Path(args.corpus), 150, 0, Path(args.cache))
        torch.set_num_threads(1)  # the same rounding on any CPU
        branch = train_pair_branch(pairs, config)
        branch_features, _ = predict_clips(branch, soundtracks.spectrograms, config.context_frames)
        for scheme in [cv] + ([grouped] if grouped else []):
            scheme["joint_out_of_fold_midlevel"] = scheme["out_of_fold_midlevel"]
            scheme["out_of_fold_midlevel"] = with_branch_features(
                np.array(scheme["out_of_fold_midlevel"]), branch_features, branch_columns).round(6).tolist()
        net = BranchedNet(net, branch, branch_columns)
    splits = kfold_splits(len(ratings), cv["n_folds"], sweep.get("split_seed", SPLIT_SEED))
    if "fold_emotion_heads" in cv:
        anchors, anchor_note = [(np.array(h["weight"]), np.array(h["bias"])) for h in cv["fold_emotion_heads"]], \
            "each fold's own joint layer"
    else:  # sweeps before fold layers were recorded
        anchors, anchor_note = [tuple(joint)] * len(splits), "the final network's joint layer (trained on all " \
            "excerpts, so the estimate is slightly optimistic)"
    cv["crossfitted_head"] = crossfitted_head_metrics(np.array(cv["out_of_fold_midlevel"]), ratings, splits,
                                                      without_columns(anchors, branch_columns), args.head_ridge)
    cv["crossfitted_head"]["anchor"] = anchor_note
    if grouped:
        grouped_splits = grouped_kfold_splits(soundtracks.albums, grouped["n_folds"],
                                              sweep.get("split_seed", SPLIT_SEED))
        grouped["crossfitted_head"] = crossfitted_head_metrics(
            np.array(grouped["out_of_fold_midlevel"]), ratings, grouped_splits,
            without_columns([(np.array(h["weight"]), np.array(h["bias"])) for h in grouped["fold_emotion_heads"]],
                            branch_columns), args.head_ridge)
    head_note = crossfit_net_head(net, np.array(cv["out_of_fold_midlevel"]), ratings, cv["n_folds"], args.head_ridge,
                                  branch_columns)
    meta = {"training": {"config": config.as_dict(), "trained_with": args.trained_with, "emotion_head": head_note,
                         "recipe": recipe, "evaluation": "see models/evaluation.json and MODEL_CARD.md"}}
    export_onnx(net, args.model_out, version=args.version, context_frames=config.context_frames,
                extra_metadata=meta)
    report = {"config": config.as_dict(), "recipe": recipe, "trained_with": args.trained_with,
              "exported_with_torch": torch.__version__, "model_file": str(args.model_out), "emotion_head": head_note,
              "joint_emotion_head": {"weight": joint[0].round(6).tolist(), "bias": joint[1].round(6).tolist()},
              "cv": cv, "sweep": _sweep_record(sweep),
              "other_sweeps": {str(d): _sweep_record(json.loads((d / "sweep.json").read_text()))
                               for d in args.other_sweeps}}
    if grouped:
        report["album_grouped_cv"] = grouped
    if branch_columns:
        report["branch"] = {"qualities": config.branch_qualities, "columns": branch_columns}
    if sweep["results"][recipe].get("real_music_validity"):
        report["real_music_validity"] = sweep["results"][recipe]["real_music_validity"]
    if sweep["results"][recipe].get("final_probes"):
        report["final_network_probes"] = sweep["results"][recipe]["final_probes"]
    args.report_out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.model_out} and {args.report_out}: CV mean r {cv['pooled']['mean_r']:.3f} with the joint "
          f"layer, {cv['crossfitted_head']['mean_r']:.3f} with the cross-fitted one")
    return 0


def _sweep_record(sweep: dict) -> dict:
    """What the evaluation report keeps of a sweep: each recipe's scores, not its raw predictions."""
    scores = {}
    for name, result in sweep["results"].items():
        scores[name] = {"folds_done": result["folds_done"], "final_probes": result.get("final_probes"),
                        "real_music_validity": result.get("real_music_validity")}
        for key in ("cv", "album_grouped_cv"):
            if key in result:
                scores[name][key] = {"pooled_mean_r": result[key]["pooled"]["mean_r"],
                                     "per_fold_mean_r": result[key]["per_fold_mean_r"]}
    return {"ranking": sweep["ranking"], "recipes": sweep["recipes"], "gpu": sweep.get("gpu"),
            "scores": scores, "log": sweep["log"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--soundtracks", default=None,
                        help="folder with ratings.csv and tracklist.csv (audio/ only when the cache is missing); "
                             "default ../shared/data/soundtracks")
    parser.add_argument("--corpus", default="cache/midlevel_corpus", help="folder with the corpus manifest.csv")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--deadline-s", type=float, default=480)
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names, in priority order")
    parser.add_argument("--grouped", default="",
                        help="comma-separated recipes whose album-grouped CV runs first (e.g. the shipped one's)")
    parser.add_argument("--keep", type=int, default=3,
                        help="best recipes whose final weights and fold networks are copied to OUT")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs (smoke tests)")
    parser.add_argument("--final-only", action="store_true", help="only train each recipe's final model")
    parser.add_argument("--assemble", metavar="RECIPE",
                        help="instead of sweeping: build the shipped model from RECIPE's results in --out")
    parser.add_argument("--model-out", type=Path, default=Path("models/dawemo-midlevel-emotion.onnx"))
    parser.add_argument("--report-out", type=Path, default=Path("models/evaluation.json"))
    parser.add_argument("--version", default="3")
    parser.add_argument("--head-ridge", type=float, default=HEAD_RIDGE)
    parser.add_argument("--branch-qualities", default="",
                        help="qualities a pair branch supplies (TrainConfig.branch_qualities): with --assemble, "
                             "train it; in a sweep, leave them out of the choice of recipes")
    parser.add_argument("--other-sweeps", type=Path, nargs="*", default=[],
                        help="further sweep folders whose scores the report records (e.g. seed replicates)")
    parser.add_argument("--trained-with", default="", help="where the sweep ran (recorded in the model)")
    args = parser.parse_args()
    if args.assemble:
        return assemble(args)

    started = time.time()
    from dawemo.training.command import load_contrast_pairs
    from dawemo.training.evaluate import grouped_kfold_splits, kfold_splits, summarize_folds
    from dawemo.training.soundtracks import load_soundtracks

    cv_names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    branch_qualities = tuple(n.strip() for n in args.branch_qualities.split(",") if n.strip())
    grouped_first = [n.strip() for n in args.grouped.split(",") if n.strip()]
    names = cv_names + [n for n in grouped_first if n not in cv_names]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    if args.epochs:
        for n in names:
            RECIPES[n]["epochs"] = args.epochs
    data = load_soundtracks(args.soundtracks, args.cache)
    load_contrast_pairs(Path(args.corpus), 150, 0, Path(args.cache))  # fails here, not in the workers
    from dawemo import constants as C
    from dawemo.training.signal_estimates import estimate_matrix

    estimates = estimate_matrix(data.spectrograms)

    def validity(midlevel: np.ndarray) -> dict:
        """Pearson r of each out-of-fold feature with its signal estimate over the excerpts
        (bench/feature_validity.py; for recipes trained on the estimates, not independent)."""
        return {q: round(float(np.corrcoef(midlevel[:, k], estimates[:, k])[0, 1]), 3)
                for k, q in enumerate(C.MIDLEVEL_NAMES) if not np.isnan(estimates[:, k]).all()}

    cv_splits = kfold_splits(len(data.ids), 10, SPLIT_SEED)
    grouped_splits = grouped_kfold_splits(data.albums, 5, SPLIT_SEED)
    args.out.mkdir(parents=True, exist_ok=True)
    models_dir = Path(tempfile.mkdtemp(prefix="dawemo-sweep-models-"))  # fresh: packing globs it

    def job(recipe, scheme, fold):
        test = [] if scheme == "final" else (cv_splits if scheme == "cv" else grouped_splits)[fold].tolist()
        return {"recipe": recipe, "config": RECIPES[recipe], "scheme": scheme, "fold": fold, "test": test,
                "device": args.device, "models_dir": str(models_dir)}

    queue = [job(n, "grouped", k) for n in grouped_first for k in range(len(grouped_splits))]
    # Final networks first: their probes decide which recipes' CV runs get the time (prioritise).
    queue += [job(n, "final", -1) for n in cv_names]
    queue += [job(n, "cv", k) for n in cv_names for k in range(10)]
    if args.final_only:
        queue = [item for item in queue if item["scheme"] == "final"]
    done: dict = {n: {"cv": {}, "grouped": {}, "final": None, "seconds": []} for n in names}
    import torch

    report = {"recipes": {n: RECIPES[n] for n in names}, "split_seed": SPLIT_SEED, "grouped_first": grouped_first,
              "device": args.device, "workers": args.workers,
              "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "results": {}, "log": []}
    grouped_for = None

    def say(text):
        line = f"[{time.time() - started:5.0f} s] {text}"
        print(line, flush=True)
        report["log"].append(line)

    def summarise():
        for n in names:
            entry = {"recipe": RECIPES[n], "folds_done": len(done[n]["cv"]), "final_probes": done[n].get("probes"),
                     "final_selection_probes": done[n].get("selection_probes"),
                     "final_happy_signs_ok": done[n].get("happy_signs_ok"),
                     "qualifies": selection_key(done[n], branch_qualities)[0] == 0,
                     "mean_run_s": float(np.mean(done[n]["seconds"])) if done[n]["seconds"] else None,
                     "final_weights": done[n]["final"]}
            if len(done[n]["cv"]) == 10:
                entry["cv"] = summarize_folds(data.ratings, cv_splits, done[n]["cv"])
                entry["real_music_validity"] = validity(np.array(entry["cv"]["out_of_fold_midlevel"]))
            if len(done[n]["grouped"]) == len(grouped_splits):
                entry["album_grouped_cv"] = summarize_folds(data.ratings, grouped_splits, done[n]["grouped"])
            report["results"][n] = entry
        ranked = sorted((n for n in names if "cv" in report["results"][n]),
                        key=lambda n: -report["results"][n]["cv"]["pooled"]["mean_r"])
        report["ranking"] = [(n, round(report["results"][n]["cv"]["pooled"]["mean_r"], 4)) for n in ranked]
        report["seconds"] = round(time.time() - started)
        tmp = args.out / "sweep.json.tmp"
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(args.out / "sweep.json")
        return ranked

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(args.workers, mp_context=context, initializer=_load,
                               initargs=(args.soundtracks, args.corpus, args.cache))
    running = {}
    say(f"{len(queue)} runs queued for {len(names)} recipes on {args.device} with {args.workers} workers")
    while queue or running:
        elapsed = time.time() - started
        ranked = [n for n in summarise() if done[n]["final"]]
        ranked.sort(key=lambda n: selection_key(done[n], branch_qualities)[0] != 0)  # qualifying recipes lead (stable)
        # Time for the album-grouped CV of the leader once its folds and final model are in and either
        # nothing else is left or the remaining time only just covers one more run.
        if grouped_for is None and ranked and ranked[0] not in grouped_first:
            leader = ranked[0]
            run_s = np.mean(done[leader]["seconds"])
            if not queue or args.deadline_s - elapsed < 1.6 * run_s + 10:
                grouped_for = leader
                queue[:0] = [job(leader, "grouped", k) for k in range(len(grouped_splits))]
                say(f"album-grouped CV for the leader {leader} (mean r {report['ranking'][0][1]})")
        while queue and len(running) < args.workers:
            item = queue.pop(0)
            known = done[item["recipe"]]["seconds"]
            if known and elapsed + np.mean(known) * 1.15 > args.deadline_s:
                continue  # would not finish in time
            running[pool.submit(_run, item)] = item
        if not running:
            break
        finished, _ = wait(running, timeout=max(1.0, args.deadline_s - (time.time() - started)),
                           return_when=FIRST_COMPLETED)
        if not finished:
            say("deadline reached; unfinished runs are dropped")
            break
        for future in finished:
            item = running.pop(future)
            try:
                result = future.result()
            except Exception as error:  # one broken run must not lose the others
                say(f"{item['recipe']} {item['scheme']} {item['fold']}: FAILED: {error!r}")
                continue
            slot = done[item["recipe"]]
            slot["seconds"].append(result["seconds"])
            if item["scheme"] == "final":
                slot["final"] = result["weights"]
                for key in ("probes", "selection_probes", "happy_signs_ok"):
                    slot[key] = result.get(key)
                if slot["probes"] and "error" not in slot["probes"]:
                    say(f"{item['recipe']} final probes (test; selection): " + ", ".join(
                        f"{q[:8]} {r['correct']}/{r['pairs']}; {slot['selection_probes'][q]['correct']}/"
                        f"{slot['selection_probes'][q]['pairs']}" for q, r in slot["probes"].items())
                        + f"; happy signs {'ok' if slot['happy_signs_ok'] else 'WRONG'}")
                queue[:] = prioritise(queue, done, branch_qualities)
            else:
                slot["cv" if item["scheme"] == "cv" else "grouped"][item["fold"]] = tuple(
                    np.array(result[key]) for key in ("midlevel", "emotions", "head_weight", "head_bias"))
            say(f"{item['recipe']} {item['scheme']} {item['fold']} done in {result['seconds']:.0f} s")
    ranked = summarise()
    say("ranking: " + ", ".join(f"{n} {r}" for n, r in report["ranking"]))
    with_final = [n for n in ranked + [n for n in names if n not in ranked] if done[n]["final"]]
    with_final.sort(key=lambda n: selection_key(done[n], branch_qualities)[0] != 0)
    # Returned files: sweep.json, sweep.log, and per kept recipe its final weights and its fold networks
    # (weights_to_onnx makes the ONNX file anywhere).
    for n in with_final[: args.keep]:
        weights = Path(done[n]["final"])
        (args.out / weights.name).write_bytes(weights.read_bytes())
        pack_fold_networks(n, models_dir, args.out)
    summarise()
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
