"""The cross-fitted emotion head: the 8x7 linear map refitted on out-of-fold clip features.

Joint training fits the emotion layer to features of clips the network has learnt (features of
training clips are sharper than those of new music) and of random 10 s crops (a file's summary
averages every segment). Cross-validation already yields, for every excerpt, the features of a
network that never heard it. Refitting the emotion layer on those (ridge regression, pulled
towards the jointly trained layer so that explanations keep their meaning) gives a layer fitted
to the situation it is used in: whole clips of unheard music.
"""

from __future__ import annotations

import numpy as np

from dawemo.training.config import HEAD_RIDGE as DEFAULT_RIDGE
from dawemo.training.evaluate import emotion_metrics


# The signs Chowdhury et al. 2019 found strongest for happy; ``signs=PAPER_SIGNS`` keeps them.
PAPER_SIGNS = {"happy": {"tonal_stability": +1, "rhythm_complexity": +1, "dissonance": -1, "minorness": -1}}
SIGN_MARGIN = 0.05  # rating points per unit of feature: a kept sign is at least this clear


def fit_emotion_head(midlevel: np.ndarray, ratings: np.ndarray, anchor_weight: np.ndarray,
                     anchor_bias: np.ndarray, ridge: float = DEFAULT_RIDGE,
                     signs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of ratings on features, shrunk towards an anchor layer.

    Minimises ``|ratings - midlevel @ W.T - b|^2 + ridge * |W - anchor_weight|^2`` (the bias is free).

    Args:
        midlevel: (n, 7) clip features in [0, 1].
        ratings: (n, 8) ratings on the 1-9 scale.
        anchor_weight, anchor_bias: (8, 7) and (8,) the jointly trained layer on the rating scale.
        signs: {emotion: {feature: +1 or -1}}: those weights are kept at least ``SIGN_MARGIN`` on that
            side (the same least squares, with each violated weight held at its bound in turn).
    Returns:
        weight (8, 7) and bias (8,) on the rating scale.
    """
    from dawemo import constants as C

    n_features = midlevel.shape[1]
    x = np.c_[midlevel, np.ones(len(midlevel))].astype(np.float64)
    penalty = ridge * np.diag([1.0] * n_features + [0.0])
    prior = np.r_[np.asarray(anchor_weight, np.float64).T, np.asarray(anchor_bias, np.float64)[None]]
    ratings = np.asarray(ratings, np.float64)
    solution = np.linalg.solve(x.T @ x + penalty, x.T @ ratings + penalty @ prior)
    for emotion, wanted in (signs or {}).items():
        e = C.EMOTION_NAMES.index(emotion)
        columns = {C.MIDLEVEL_NAMES.index(f): sign for f, sign in wanted.items()}
        held: dict[int, float] = {}
        while True:
            free = [k for k in range(n_features + 1) if k not in held]
            fixed = np.zeros(n_features + 1)
            for k, value in held.items():
                fixed[k] = value
            a = (x.T @ x + penalty)
            rhs = x.T @ ratings[:, e] + penalty @ prior[:, e] - a @ fixed
            row = fixed.copy()
            row[free] = np.linalg.solve(a[np.ix_(free, free)], rhs[free])
            violated = [k for k, sign in columns.items() if k not in held and row[k] * sign < SIGN_MARGIN]
            if not violated:
                break
            worst = min(violated, key=lambda k: row[k] * columns[k])
            held[worst] = columns[worst] * SIGN_MARGIN
        solution[:, e] = row
    return solution[:n_features].T, solution[n_features]


def crossfitted_head_metrics(midlevel_oof: np.ndarray, ratings: np.ndarray, splits: list[np.ndarray],
                             anchors: list[tuple[np.ndarray, np.ndarray]], ridge: float = DEFAULT_RIDGE,
                             signs: dict | None = None) -> dict:
    """Score the refitted layer by the same folds: for each fold, fit on the other folds' out-of-fold
    features (anchored to that fold's jointly trained layer) and predict the fold.

    Args:
        midlevel_oof: (n, 7) out-of-fold features from cross-validation with ``splits``.
        anchors: per fold, the (weight, bias) its network learnt jointly.
    """
    predicted = np.zeros(ratings.shape, dtype=np.float64)
    for test, (weight, bias) in zip(splits, anchors):
        train = np.setdiff1d(np.arange(len(ratings)), test)
        fitted_weight, fitted_bias = fit_emotion_head(midlevel_oof[train], ratings[train], weight, bias, ridge, signs)
        predicted[test] = midlevel_oof[test] @ fitted_weight.T + fitted_bias
    metrics = emotion_metrics(predicted, ratings)
    metrics["ridge"] = ridge
    if signs:
        metrics["signs_kept"] = signs
    metrics["out_of_fold_emotions"] = predicted.round(4).tolist()
    return metrics


def set_emotion_head(net, weight: np.ndarray, bias: np.ndarray) -> None:
    """Put a rating-scale (8, 7) weight and (8,) bias into ``net`` (which works on standardised ratings)."""
    import torch

    std, mean = net.emotion_std.detach().double(), net.emotion_mean.detach().double()
    with torch.no_grad():
        net.emotion_head.weight.copy_(torch.from_numpy(np.asarray(weight, np.float64)) / std[:, None])
        net.emotion_head.bias.copy_((torch.from_numpy(np.asarray(bias, np.float64)) - mean) / std)


def crossfit_net_head(net, midlevel_oof: np.ndarray, ratings: np.ndarray, n_folds: int,
                      ridge: float = DEFAULT_RIDGE, branch_columns: list[int] = ()) -> str:
    """Replace ``net``'s jointly trained emotion layer by one refitted on ``n_folds``-fold out-of-fold
    clip features, pulled towards the joint layer (but for ``branch_columns``: see ``without_columns``).
    Returns the description stored in the model."""
    joint_weight, joint_bias = (a.double().numpy() for a in net.linear_emotion_map())
    (anchor_weight, anchor_bias), = without_columns([(joint_weight, joint_bias)], branch_columns)
    set_emotion_head(net, *fit_emotion_head(midlevel_oof, ratings, anchor_weight, anchor_bias, ridge))
    freed = " (pulled towards 0 for the pair branch's features)" if len(branch_columns) else ""
    return f"cross-fitted on {n_folds}-fold out-of-fold clip features, ridge {ridge} towards the joint layer{freed}"


def without_columns(anchors: list[tuple[np.ndarray, np.ndarray]], columns: list[int]) -> list[tuple]:
    """Anchor layers with the weights of ``columns`` set to 0: where a pair-trained branch supplies a
    feature, the joint layer's weight for it was learnt for another feature and is no prior."""
    freed = []
    for weight, bias in anchors:
        weight = np.array(weight, dtype=np.float64)
        weight[:, list(columns)] = 0.0
        freed.append((weight, np.asarray(bias, dtype=np.float64)))
    return freed


def with_branch_features(midlevel: np.ndarray, branch_midlevel: np.ndarray, columns: list[int]) -> np.ndarray:
    """Clip features as the branched net gives them: ``branch_midlevel``'s in ``columns``, else ``midlevel``'s.
    The branch never hears the excerpts, so its features are out-of-fold for every one of them."""
    combined = np.array(midlevel, dtype=np.float64)
    combined[:, list(columns)] = np.asarray(branch_midlevel)[:, list(columns)]
    return combined
