"""Joint training (A2Mid2E-Joint): emotion regression on Soundtracks + mid-level ranking on contrast pairs.

Every input goes through ``dawemo.emotion.frontend`` exactly as at run time: linear filterbank
magnitudes are cut into segments and normalised with ``normalize_segments``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dawemo import constants as C
from dawemo.emotion.frontend import network_input, segment_starts
from dawemo.training.config import TrainConfig
from dawemo.training.net import MidlevelEmotionNet


@dataclass
class ContrastPairs:
    """Mid-level supervision: for each pair, the clip with more of ``quality`` and the one with less."""

    quality_index: np.ndarray  # (n,) index into MIDLEVEL_NAMES
    more: list[np.ndarray]  # (n_frames, n_bands) linear filterbank magnitudes
    less: list[np.ndarray]


def _shift_bands(segments: np.ndarray, shift: int) -> np.ndarray:
    """Transpose (..., frames, bands) magnitudes by ``shift`` bands, repeating the edge band."""
    if shift == 0:
        return segments
    shifted = np.roll(segments, shift, axis=-1)
    if shift > 0:
        shifted[..., :shift] = segments[..., :1]
    else:
        shifted[..., shift:] = segments[..., -1:]
    return shifted


def _random_window_input(spec: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """K random segments of a random crop, transposed by a random shift: (K, 1, bands, frames)."""
    seg = C.SEGMENT_FRAMES
    crop = min(config.window_frames, len(spec))
    crop_start = rng.integers(0, len(spec) - crop + 1)
    starts = crop_start + rng.integers(0, crop - seg + 1, size=config.segments_per_window)
    shift = int(rng.integers(-config.band_shift, config.band_shift + 1))
    return network_input(_shift_bands(spec, shift), starts, seg, config.context_frames)


def _pair_batch(pairs: ContrastPairs, config: TrainConfig, rng: np.random.Generator):
    idx = rng.integers(0, len(pairs.quality_index), size=config.pairs_per_batch)
    more, less = [], []
    for i in idx:
        a, b = pairs.more[i], pairs.less[i]
        start = rng.integers(0, min(len(a), len(b)) - C.SEGMENT_FRAMES + 1, size=1)
        shift = int(rng.integers(-config.band_shift, config.band_shift + 1))
        more.append(network_input(_shift_bands(a, shift), start, C.SEGMENT_FRAMES, config.context_frames))
        less.append(network_input(_shift_bands(b, shift), start, C.SEGMENT_FRAMES, config.context_frames))
    return (torch.from_numpy(np.concatenate(more)), torch.from_numpy(np.concatenate(less)),
            torch.from_numpy(pairs.quality_index[idx]))


def ranking_loss(net: MidlevelEmotionNet, more: torch.Tensor, less: torch.Tensor,
                 quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logistic pairwise loss: the named quality's logit must be higher on the ``more`` clip.

    Returns the loss, the fraction of pairs ordered right, and all logits (for the range penalty).
    """
    logits = net.segment_logits(torch.cat([more, less]))
    n = len(quality)
    margin = logits[:n].gather(1, quality[:, None]) - logits[n:].gather(1, quality[:, None])
    return F.softplus(-margin).mean(), (margin > 0).float().mean(), logits


def _standardised_estimates(spectrograms: list[np.ndarray]) -> torch.Tensor:
    """(n_clips, 7) signal estimates of the qualities, standardised over these clips (NaN: none)."""
    from dawemo.training.signal_estimates import estimate_matrix

    values = estimate_matrix(spectrograms)
    known = ~np.isnan(values).all(axis=0)
    columns = values[:, known]
    values[:, known] = (columns - np.nanmean(columns, axis=0)) / (np.nanstd(columns, axis=0) + 1e-9)
    return torch.from_numpy(values.astype(np.float32))


def estimate_ranking_loss(window_logits: torch.Tensor, estimates: torch.Tensor, margin: float) -> torch.Tensor:
    """Logistic pairwise loss between windows of a batch: for every quality with an estimate, the window
    whose clip has clearly more of it (estimates apart by more than ``margin``) must have the higher logit.

    Args:
        window_logits: (B, 7) mid-level logits of B windows (mean over each window's segments).
        estimates: (B, 7) standardised estimates of the windows' clips, NaN where a quality has none.
    """
    logit_gap = window_logits[:, None, :] - window_logits[None, :, :]
    estimate_gap = estimates[:, None, :] - estimates[None, :, :]
    counted = estimate_gap.abs() > margin  # False for NaN
    losses = F.softplus(-torch.sign(estimate_gap.nan_to_num()) * logit_gap)
    return (losses * counted).sum() / counted.sum().clamp(min=1)


@dataclass
class RatedMidlevel:
    """Clips with human mid-level ratings (the Mid-level Perceptual Features dataset), when available."""

    spectrograms: list[np.ndarray]
    ratings: np.ndarray  # (n, 7) in [0, 1], MIDLEVEL_NAMES order


MIN_TRAINING_STEPS = 4  # the one-cycle schedule needs at least 2 warm-up and 2 annealing steps


def too_few_steps(n_clips: int, config: TrainConfig) -> str | None:
    """Why ``n_clips`` clips are too few steps for ``config``'s schedule, or None when they are enough."""
    steps = config.epochs * int(np.ceil(n_clips / config.batch_size))
    if steps >= MIN_TRAINING_STEPS:
        return None
    return (f"{config.epochs} epoch(s) of {n_clips} clips in batches of {config.batch_size} are {steps} training "
            f"steps; the learning-rate schedule needs {MIN_TRAINING_STEPS}: use more epochs or a smaller batch")


def train_model(spectrograms: list[np.ndarray], ratings: np.ndarray, pairs: ContrastPairs | None,
                config: TrainConfig, log=print, rated_midlevel: RatedMidlevel | None = None,
                device: str = "cpu") -> MidlevelEmotionNet:
    """Train from scratch with a fixed seed; returns the net on the CPU, in eval mode.

    Batches are cut on the CPU with numpy (the same code as at run time) and moved to ``device``.
    On CUDA, cuDNN is put in deterministic mode, so a rerun on the same GPU and software repeats
    the model; CPU and GPU runs of one config differ by floating-point rounding only.

    Args:
        spectrograms: per clip (n_frames, n_bands) linear filterbank magnitudes.
        ratings: (n_clips, 8) emotion ratings on the 1-9 scale.
        pairs: mid-level contrast pairs, or None for emotion-only training.
        rated_midlevel: clips with mid-level ratings, regressed directly (MSE on the features).
    """
    torch.manual_seed(config.seed)
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    rng = np.random.default_rng(config.seed)
    mean = torch.tensor(ratings.mean(axis=0))
    std = torch.tensor(ratings.std(axis=0) + 1e-6)
    targets = ((torch.tensor(ratings) - mean) / std).to(device)
    net = MidlevelEmotionNet(config.width, config.dropout, mean, std).to(device)
    to_device = lambda array: torch.from_numpy(array).to(device, non_blocking=True)  # noqa: E731
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = int(np.ceil(len(spectrograms) / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    problem = too_few_steps(len(spectrograms), config)
    if problem:
        raise ValueError(problem)
    # Warm up over 10 % of the steps (at least 2: the schedule divides by the warm-up length).
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=total_steps,
                                                   pct_start=max(0.1, 2.0 / total_steps))
    estimates = _standardised_estimates(spectrograms).to(device) if config.estimate_weight > 0 else None
    average = WeightAverage(net, start_step=int(round(total_steps * (1 - config.average_last)))) \
        if config.average_last > 0 else None
    started = time.time()
    for epoch in range(config.epochs):
        net.train()
        order = rng.permutation(len(spectrograms))
        totals = torch.zeros(3, device=device)  # summed on the device: no GPU sync per step
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            windows = np.stack([_random_window_input(spectrograms[i], config, rng) for i in batch])
            _, predicted, logits = net(to_device(windows))
            loss = emotion_loss = F.mse_loss(predicted, targets[torch.from_numpy(batch).to(device)])
            # Keep logits where the sigmoid is sensitive, so features are graded rather than pinned
            # at 0 or 1 (ranking alone only constrains differences, not the scale).
            loss = loss + config.logit_penalty * logits.pow(2).mean()
            if estimates is not None:
                loss = loss + config.estimate_weight * estimate_ranking_loss(
                    logits.mean(dim=1), estimates[torch.from_numpy(batch).to(device)], config.estimate_margin)
            rank_loss = rank_acc = torch.zeros((), device=device)
            if pairs is not None and config.ranking_weight > 0:
                more, less, quality = _pair_batch(pairs, config, rng)
                rank_loss, rank_acc, pair_logits = ranking_loss(net, more.to(device), less.to(device),
                                                                quality.to(device))
                loss = loss + config.ranking_weight * rank_loss + config.logit_penalty * pair_logits.pow(2).mean()
            if rated_midlevel is not None:
                picked = rng.integers(0, len(rated_midlevel.ratings), size=config.batch_size)
                clips = np.stack([_random_window_input(rated_midlevel.spectrograms[i], config, rng) for i in picked])
                features, _, _ = net(to_device(clips))
                loss = loss + F.mse_loss(features, to_device(rated_midlevel.ratings[picked]).float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if average is not None:
                average.update(net, epoch * steps_per_epoch + step)
            totals += torch.stack([emotion_loss.detach(), rank_loss.detach(), rank_acc.detach()])
        totals = totals.cpu().numpy() / steps_per_epoch
        if log and (epoch % 5 == 4 or epoch == config.epochs - 1):
            log(f"epoch {epoch + 1}/{config.epochs}  emotion mse {totals[0]:.3f}  ranking loss {totals[1]:.3f} "
                f"(pairs ordered {totals[2]:.0%})  {time.time() - started:.0f} s")
    if average is not None:
        average.load_into(net)
        _reestimate_batch_norm(net, spectrograms, pairs if config.norm_with_pairs else None, config, rng, device)
    return net.cpu().eval()


def train_pair_branch(pairs: ContrastPairs, config: TrainConfig, log=print, device: str = "cpu") -> MidlevelEmotionNet:
    """The network behind ``config.branch_qualities``: the ranking loss on the contrast pairs alone, for all
    seven qualities (they share its encoder), seeded. It never sees a soundtrack excerpt or a rating.
    Returned on the CPU in eval mode; its emotion layer is untrained and unused."""
    from dataclasses import replace

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = MidlevelEmotionNet(config.branch_width, config.dropout).to(device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.branch_steps,
                                                   pct_start=max(0.1, 2.0 / config.branch_steps))
    batch_config = replace(config, pairs_per_batch=config.branch_pairs_per_batch)
    started, ordered = time.time(), []
    for step in range(config.branch_steps):
        net.train()
        more, less, quality = _pair_batch(pairs, batch_config, rng)
        loss, accuracy, logits = ranking_loss(net, more.to(device), less.to(device), quality.to(device))
        loss = loss + config.logit_penalty * logits.pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        ordered.append(accuracy.detach())
        if log and ((step + 1) % max(1, config.branch_steps // 10) == 0 or step + 1 == config.branch_steps):
            recent = torch.stack(ordered[-200:]).mean().item()
            log(f"pair branch step {step + 1}/{config.branch_steps}  pairs ordered {recent:.0%}  "
                f"{time.time() - started:.0f} s")
    return net.cpu().eval()


@torch.no_grad()
def _reestimate_batch_norm(net: MidlevelEmotionNet, spectrograms: list[np.ndarray], pairs: ContrastPairs | None,
                           config: TrainConfig, rng: np.random.Generator, device: str) -> None:
    """Averaged weights need their own batch statistics: one pass over the training clips' random
    windows, and as many contrast-pair batches when ``pairs`` are given (the domain the statistics
    come from changes what the features do on synthetic audio)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    net.train()
    order = rng.permutation(len(spectrograms))
    for start in range(0, len(spectrograms), config.batch_size):
        batch = order[start : start + config.batch_size]
        windows = np.stack([_random_window_input(spectrograms[i], config, rng) for i in batch])
        net(torch.from_numpy(windows).to(device))
        if pairs is not None:
            more, less, _ = _pair_batch(pairs, config, rng)
            net.segment_logits(torch.cat([more, less]).to(device))
    for m in norms:
        m.momentum = 0.1


class WeightAverage:
    """Uniform average of a net's parameters and batch-norm statistics over the steps from ``start_step``."""

    def __init__(self, net: torch.nn.Module, start_step: int) -> None:
        self.start_step, self.count = start_step, 0
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        if step < self.start_step:
            return
        self.count += 1
        current = net.state_dict()
        for name, mean in self.state.items():
            mean.lerp_(current[name].detach(), 1.0 / self.count)  # running mean: first step copies

    @torch.no_grad()
    def load_into(self, net: torch.nn.Module) -> None:
        if self.count:
            net.load_state_dict(self.state, strict=False)


@torch.no_grad()
def predict_clips(net: MidlevelEmotionNet, spectrograms: list[np.ndarray],
                  context_frames: int = C.CONTEXT_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Whole-clip predictions on the CPU, as ``dawemo analyze`` summarises a file: (n, 7) features,
    (n, 8) emotions."""
    net.cpu().eval()
    midlevel = []
    for spec in spectrograms:
        starts = segment_starts(len(spec))
        if len(starts) == 0:  # shorter than one segment: pad by repetition (training data only)
            spec = np.concatenate([spec] * int(np.ceil(C.SEGMENT_FRAMES / len(spec))))
            starts = segment_starts(len(spec))
        logits = net.segment_logits(torch.from_numpy(network_input(spec, starts, C.SEGMENT_FRAMES, context_frames)))
        midlevel.append(torch.sigmoid(logits.mean(dim=0)))
    midlevel = torch.stack(midlevel)
    return midlevel.numpy(), net.emotions(midlevel).numpy()
