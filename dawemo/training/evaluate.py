"""Cross-validation on Soundtracks: Pearson r per emotion, mean r, dominant-emotion agreement.

Two split schemes: plain k-fold over excerpts, and album-grouped k-fold (several excerpts share
an album and even a track, so plain folds can put near-duplicates on both sides).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

from dawemo import constants as C


def kfold_splits(n_items: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of each fold, a seeded permutation dealt round-robin."""
    order = np.random.default_rng(seed).permutation(n_items)
    return [np.sort(order[k::n_folds]) for k in range(n_folds)]


def grouped_kfold_splits(groups: list[str], n_folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of each fold with every group in exactly one fold, folds balanced by size."""
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    sizes = {name: groups.count(name) for name in names}
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    fold_sizes = np.zeros(n_folds)
    for name in sorted(names, key=lambda g: -sizes[g]):  # largest albums first, into the emptiest fold
        k = int(np.argmin(fold_sizes))
        folds[k].append(name)
        fold_sizes[k] += sizes[name]
    return [np.array([i for i, g in enumerate(groups) if g in set(fold)]) for fold in folds]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def emotion_metrics(predicted: np.ndarray, rated: np.ndarray) -> dict:
    """Pearson r per emotion, their mean, and argmax agreement over the 5 discrete emotions.

    Args:
        predicted, rated: (n_clips, 8) in EMOTION_NAMES order.
    """
    r = {name: pearson(predicted[:, k], rated[:, k]) for k, name in enumerate(C.EMOTION_NAMES)}
    discrete = [C.EMOTION_NAMES.index(name) for name in C.DISCRETE_EMOTION_NAMES]
    agreement = float(np.mean(predicted[:, discrete].argmax(1) == rated[:, discrete].argmax(1)))
    return {"pearson_r": r, "mean_r": float(np.mean(list(r.values()))), "dominant_emotion_agreement": agreement,
            "n_clips": int(len(rated))}


@dataclass
class FoldJob:
    fold: int
    test: np.ndarray
    config: object  # TrainConfig
    device: str = "cpu"


_worker_data: dict = {}


def _init_worker(spectrograms: list, ratings: np.ndarray, pairs) -> None:
    """Receive the data once per worker process (not once per fold)."""
    import torch

    torch.set_num_threads(1)
    _worker_data.update(spectrograms=spectrograms, ratings=ratings, pairs=pairs)


def _run_fold(job: FoldJob):
    from dawemo.training.train import predict_clips, train_model

    spectrograms, ratings = _worker_data["spectrograms"], _worker_data["ratings"]
    train = np.setdiff1d(np.arange(len(ratings)), job.test)
    started = time.time()
    net = train_model([spectrograms[i] for i in train], ratings[train], _worker_data["pairs"], job.config,
                      log=lambda text: print(f"  fold {job.fold + 1}: {text}", flush=True), device=job.device)
    midlevel, emotions = predict_clips(net, [spectrograms[i] for i in job.test], job.config.context_frames)
    weight, bias = net.linear_emotion_map()
    return job.fold, (midlevel, emotions, weight.double().numpy(), bias.double().numpy()), time.time() - started


def cross_validate(spectrograms: list, ratings: np.ndarray, pairs, config, splits: list[np.ndarray],
                   workers: int = 2, log=print, device: str = "cpu") -> dict:
    """Train one model per fold (``workers`` folds at a time, one thread each) and score the
    held-out excerpts (see ``summarize_folds``)."""
    jobs = [FoldJob(k, test, config, device) for k, test in enumerate(splits)]
    fold_predictions = {}
    # spawn, not fork: forking after PyTorch has started its OpenMP threads can hang the children.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(spectrograms, ratings, pairs)) as pool:
        for fold, predictions, seconds in pool.imap_unordered(_run_fold, jobs):
            fold_predictions[fold] = predictions
            fold_metrics = emotion_metrics(predictions[1], ratings[splits[fold]])
            log(f"fold {fold + 1}/{len(splits)} done in {seconds:.0f} s: mean r {fold_metrics['mean_r']:.3f}")
    return summarize_folds(ratings, splits, fold_predictions)


def summarize_folds(ratings: np.ndarray, splits: list[np.ndarray], fold_predictions: dict) -> dict:
    """Metrics of out-of-fold predictions ``{fold: (midlevel (n, 7), emotions (n, 8), joint emotion
    layer weight (8, 7), bias (8,))}``, all folds present.

    Returns the metrics on the pooled predictions, the mean and spread of per-fold metrics, the
    out-of-fold predictions themselves and each fold's jointly trained emotion layer (the anchor
    of the cross-fitted layer's score).
    """
    predicted = np.zeros_like(ratings, dtype=np.float64)
    midlevel = np.zeros((len(ratings), len(C.MIDLEVEL_NAMES)))
    per_fold = []
    for fold, test in enumerate(splits):
        midlevel[test], predicted[test] = fold_predictions[fold][:2]
        per_fold.append(emotion_metrics(predicted[test], ratings[test]))
    pooled = emotion_metrics(predicted, ratings)
    fold_means = np.array([m["mean_r"] for m in per_fold])
    return {
        "n_folds": len(splits),
        "pooled": pooled,
        "per_fold_mean_r": {"mean": float(fold_means.mean()), "std": float(fold_means.std()),
                            "min": float(fold_means.min()), "max": float(fold_means.max())},
        "per_fold_pearson_r_mean": {name: float(np.mean([m["pearson_r"][name] for m in per_fold]))
                                    for name in C.EMOTION_NAMES},
        "out_of_fold_emotions": predicted.round(4).tolist(),
        "out_of_fold_midlevel": midlevel.round(6).tolist(),
        "fold_emotion_heads": [{"weight": np.round(fold_predictions[k][2], 6).tolist(),
                                "bias": np.round(fold_predictions[k][3], 6).tolist()} for k in range(len(splits))],
    }
