"""Refining the pair branch on real recordings whose melodic lines are broken, or added, by construction.

The pair branch (melodiousness, tonal stability) learnt melodiousness from generated pairs only: a
stepwise melody against random leaps or held tones. On real recordings that taught it "pitch keeps
moving" rather than "a line one could sing": film-music excerpts cut into pieces played backwards,
or with each piece moved by a few semitones, came out *more* melodious in 85-90 % of excerpts.

Real-recording pairs fix the direction. Each pair is an excerpt against a version with less of the
quality, known by construction:

- pieces shuffled: the excerpt vs its 0.15-0.5 s pieces in random order (harmony and timbre stay,
  the lines break);
- pieces transposed: the excerpt vs each 0.2-0.45 s piece moved up or down by 1-5 semitones (the
  line jumps about);
- a line added: the excerpt with a stepwise legato melody in its key vs with the same voice leaping
  about or holding chord tones, or vs the excerpt alone.

Pieces are joined by 25 ms crossfades whose gains sum to one, so a join is not a gap or a click
that could stand in for the broken line. The branch is fine-tuned from its weights in the base model on these pairs together
with the generated pairs of all seven qualities; on the real recordings its other logits are held to
their values before refining. It never hears a rating: its features stay out-of-fold for every
excerpt by construction.

    python -m dawemo.training.pair_refine --base v5.onnx --evaluation v5-evaluation.json \\
        --model-out v5r.onnx --evaluation-out v5r-evaluation.json
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dawemo import constants as C

SR = C.SAMPLE_RATE
FADE_S = 0.025


def _pieces(n_samples: int, rng: np.random.Generator, shortest_s: float, longest_s: float) -> list[tuple[int, int]]:
    """Consecutive (start, end) sample ranges of random lengths covering ``n_samples``."""
    bounds, start = [], 0
    while start < n_samples:
        length = int(rng.uniform(shortest_s, longest_s) * SR)
        bounds.append((start, min(n_samples, start + length)))
        start += length
    return bounds


def crossfaded(pieces: list[np.ndarray], n_samples: int) -> np.ndarray:
    """Join pieces that each carry ``FADE_S`` of extra audio at their end, overlapping by that much with
    fades that sum to one: a join is a short crossfade, not a gap or a click."""
    fade = int(FADE_S * SR)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    out = np.zeros(n_samples + 2 * fade + max(len(p) for p in pieces), np.float32)
    position = 0
    for piece in pieces:
        piece = piece.astype(np.float32).copy()
        k = min(fade, len(piece) // 2)
        piece[:k] *= ramp[fade - k :] if position else 1.0
        piece[len(piece) - k :] *= ramp[:k][::-1]
        out[position : position + len(piece)] += piece
        position += max(1, len(piece) - fade)
    return out[:n_samples]


def shuffled_pieces(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt vs its 0.15-0.5 s pieces in random order, crossfaded."""
    fade = int(FADE_S * SR)
    pieces = [x[a : b + fade] for a, b in _pieces(len(x), rng, 0.15, 0.5)]
    return x, crossfaded([pieces[i] for i in rng.permutation(len(pieces))], len(x))


def _resampled(n_samples: int, source: np.ndarray, ratio: float) -> np.ndarray:
    """``n_samples`` of ``source`` read ``ratio`` times faster (pitch moved by the ratio), zero-padded."""
    position = np.arange(n_samples) * ratio
    position = position[position < len(source) - 1]
    out = np.interp(position, np.arange(len(source)), source)
    return np.pad(out, (0, n_samples - len(out)))


def transposed_pieces(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt vs its 0.2-0.45 s pieces each moved up or down by 1-5 semitones, crossfaded."""
    fade = int(FADE_S * SR)
    pieces = []
    for a, b in _pieces(len(x), rng, 0.2, 0.45):
        ratio = 2 ** (float(rng.choice([-1, 1]) * rng.integers(1, 6)) / 12)
        n = min(len(x), b + fade) - a
        pieces.append(_resampled(n, x[a : a + int(n * ratio) + 2], ratio))
    return x, crossfaded(pieces, len(x))


def excerpt_key(x: np.ndarray, lowest_hz: float = 80.0, highest_hz: float = 2000.0) -> tuple[int, bool]:
    """(tonic pitch class, minor) of an excerpt: key-profile correlation of its chroma.

    The chroma comes from its own long STFT (0.37 s frames, 2.7 Hz bins), counting only bins within
    30 cents of a semitone: the network's filterbank is too coarse below a few hundred hertz to
    tell neighbouring semitones apart.
    """
    from dawemo.training.signal_estimates import key_correlations

    frame, hop = 8192, 4096
    x = np.asarray(x, np.float32)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop] * np.hanning(frame).astype(np.float32)
    magnitude = np.abs(np.fft.rfft(frames, axis=1)).sum(axis=0)
    hz = np.fft.rfftfreq(frame, 1.0 / SR)
    band = (hz >= lowest_hz) & (hz <= highest_hz)
    semitone = 12 * np.log2(hz[band] / 440.0) + 69
    near = np.abs(semitone - np.round(semitone)) < 0.3
    chroma = np.bincount(np.round(semitone[near]).astype(int) % 12, weights=magnitude[band][near], minlength=12)
    minor, tonic = np.unravel_index(np.argmax(key_correlations(chroma / (chroma.sum() + 1e-12))), (2, 12))
    return int(tonic), bool(minor)


SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}


def _voice(notes: list[tuple[int, float, float]], n_samples: int) -> np.ndarray:
    """A soft, slightly vibrato lead voice playing (midi, start_s, length_s) notes."""
    out = np.zeros(n_samples + SR, np.float32)
    harmonics = (1.0, 0.5, 0.25, 0.12)
    for midi, start_s, length_s in notes:
        t = np.arange(int(length_s * SR)) / SR
        f = 440 * 2 ** ((midi - 69) / 12) * (1 + 0.004 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(f) / SR
        tone = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))
        envelope = np.minimum(1.0, np.minimum(t / 0.04, (length_s - t) / 0.06)).clip(0)
        at = int(start_s * SR)
        out[at : at + len(t)] += (tone * envelope)[: len(out) - at]
    return out[:n_samples]


def _with_layer(x: np.ndarray, layer: np.ndarray, level_db: float) -> np.ndarray:
    scale = np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(layer ** 2)) + 1e-9) * 10 ** (level_db / 20)
    return (x + scale * layer).astype(np.float32)


def melody_pair(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt with a stepwise legato melody in its key vs the excerpt alone (70 %), or vs
    the same voice at the same level leaping at random through two octaves (15 %) or holding chord tones
    (15 %)."""
    tonic, minor = excerpt_key(x)
    scale, duration_s = SCALES[minor], len(x) / SR
    pitch = lambda degree: 60 + tonic + 12 * (degree // 7) + scale[degree % 7]  # noqa: E731
    line, degree, t = [], 7, 0.0
    while t < duration_s:
        length = float(rng.choice([0.25, 0.5, 0.5, 0.75, 1.0]))
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 2, 13))
        line.append((pitch(degree), t, length + 0.03))
        t += length
    choice = rng.random()
    if choice < 0.15:
        other, t = [], 0.0
        while t < duration_s:
            length = float(rng.uniform(0.12, 0.6))
            other.append((pitch(int(rng.integers(0, 16))), t, length * 0.9))
            t += length
    elif choice < 0.3:
        other = [(pitch(int(rng.choice([7, 9, 11]))), start, 2.6) for start in np.arange(0, duration_s, 2.5)]
    else:  # most often against nothing: over dense scores, a line must read as a line, not one more layer
        other = []
    level_db = float(rng.uniform(-8, -3))
    with_line = _with_layer(x, _voice(line, len(x)), level_db)
    return with_line, (_with_layer(x, _voice(other, len(x)), level_db) if other else np.asarray(x, np.float32))


REAL_PAIRS = {"melodiousness": (shuffled_pieces, transposed_pieces, melody_pair)}


def real_pair_spectrograms(audio: list[np.ndarray], seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """quality -> [(more, less) filterbank magnitudes] for every excerpt and transformation."""
    from dawemo.emotion.frontend import spectrogram

    pairs = {}
    for quality, makers in REAL_PAIRS.items():
        pairs[quality] = []
        for i, x in enumerate(audio):
            for j, make in enumerate(makers):
                rng = np.random.default_rng([seed, C.MIDLEVEL_NAMES.index(quality), i, j])
                more, less = make(np.asarray(x, np.float32), rng)
                pairs[quality].append((spectrogram(more), spectrogram(less)))
    return pairs


class FoldedBranch(nn.Module):
    """SegmentEncoder's layout (conv, conv, pool, conv, conv, pool, conv, conv, pool, conv) with its batch
    norm folded into the convolutions, then the mid-level head: (N, 1, bands, frames) -> (N, 7) logits."""

    POOL_AFTER = (1, 3, 5)

    def __init__(self, convs: list[nn.Conv2d], head: nn.Linear, dropout: float = 0.3) -> None:
        super().__init__()
        self.convs, self.head, self.dropout = nn.ModuleList(convs), head, nn.Dropout(dropout)

    def segment_logits(self, segments: torch.Tensor) -> torch.Tensor:
        h = segments
        for i, conv in enumerate(self.convs):
            h = torch.relu(conv(h))
            if i in self.POOL_AFTER:
                h = nn.functional.max_pool2d(h, 2)
        return self.head(self.dropout(h.mean(dim=(2, 3))))


def _branch_nodes(proto) -> list:
    """The pair branch's Conv nodes, input to output, then its head (Gemm) node.

    The branch is what feeds the ``Where`` that picks its columns by ``net.branch_mask``
    (``BranchedNet``), so a refined model, whose weights have new names, is found the same way.
    """
    producer = {out: node for node in proto.graph.node for out in node.output}
    picks = [n for n in proto.graph.node if n.op_type == "Where" and n.input[0] == "net.branch_mask"]
    if not picks or picks[0].input[1] not in producer:
        raise ValueError("the base model has no pair branch (no Where on net.branch_mask)")
    head = producer[picks[0].input[1]]
    convs, frontier = [], [head]
    while frontier:  # walk back from the branch's head to the input, collecting its convolutions
        node = frontier.pop()
        if node.op_type == "Conv":
            convs.append(node)
        frontier += [producer[name] for name in node.input[:1] if name in producer]
    return convs[::-1] + [head]


def _constant_values(proto) -> dict[str, np.ndarray]:
    """Initializers, Constant-node outputs and Identity copies of them by name (the exporter emits an
    Identity of one initializer for weights that happen to be equal)."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:  # topological order: a copy comes after what it copies
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def branch_from_onnx(proto) -> FoldedBranch:
    """The pair branch of an exported model as a PyTorch module with its (batch-norm folded) weights.

    Exported graphs fold batch normalisation into the convolutions; the module mirrors that: each
    convolution has a bias and no normalisation follows.
    """
    values = _constant_values(proto)
    *convs, head_node = _branch_nodes(proto)
    layers = []
    for node in convs:
        weight, bias = values[node.input[1]], values[node.input[2]]
        attrs = {a.name: list(a.ints) for a in node.attribute}
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride=attrs.get("strides", [1])[0],
                         padding=attrs.get("pads", [0])[0])
        conv.weight.data[:] = torch.from_numpy(weight.copy())
        conv.bias.data[:] = torch.from_numpy(bias.copy())
        layers.append(conv)
    head_weight = values[head_node.input[1]]
    head = nn.Linear(head_weight.shape[1], head_weight.shape[0])
    head.weight.data[:] = torch.from_numpy(head_weight.copy())
    head.bias.data[:] = torch.from_numpy(values[head_node.input[2]].copy())
    return FoldedBranch(layers, head)


def _real_batch(pairs: list[tuple[np.ndarray, np.ndarray]], n_pairs: int, segments_per_side: int, band_shift: int,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_pairs * segments_per_side, 1, bands, frames) inputs of both sides, segments at the same places."""
    from dawemo.emotion.frontend import network_input
    from dawemo.training.train import _shift_bands

    more, less = [], []
    for i in rng.integers(0, len(pairs), size=n_pairs):
        a, b = pairs[i]
        starts = rng.integers(0, min(len(a), len(b)) - C.SEGMENT_FRAMES + 1, size=segments_per_side)
        shift = int(rng.integers(-band_shift, band_shift + 1))
        more.append(network_input(_shift_bands(a, shift), starts))
        less.append(network_input(_shift_bands(b, shift), starts))
    return torch.from_numpy(np.concatenate(more)), torch.from_numpy(np.concatenate(less))


def refine_branch(branch: FoldedBranch, corpus, real_pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                  steps: int = 800, learning_rate: float = 2e-4, corpus_pairs_per_step: int = 16,
                  real_pairs_per_step: int = 16, segments_per_side: int = 2, keep_weight: float = 1.0,
                  seed: int = 0, log=print) -> FoldedBranch:
    """Fine-tune ``branch`` on the generated pairs of every quality and the real-recording pairs.

    Each real pair is scored on the mean logit of ``segments_per_side`` segments at the same places
    on both sides. On the real recordings, the logits of the qualities without real pairs are held
    to the branch's own before refining (squared difference, ``keep_weight``), so that refining
    melodiousness does not move tonal stability on real music. The logit penalty of the original
    training keeps the features graded.
    """
    import copy
    import time
    from dataclasses import replace

    from dawemo.training.config import TrainConfig
    from dawemo.training.train import _pair_batch, ranking_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = replace(TrainConfig(), pairs_per_batch=corpus_pairs_per_step)
    optimiser = torch.optim.AdamW(branch.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    qualities = list(real_pairs)
    original = copy.deepcopy(branch).eval()
    kept = torch.tensor([q not in real_pairs for q in C.MIDLEVEL_NAMES])
    started, history = time.time(), []
    for step in range(steps):
        branch.train()
        more, less, quality = _pair_batch(corpus, config, rng)
        corpus_loss, corpus_right, logits = ranking_loss(branch, more, less, quality)
        losses = [corpus_loss]
        penalty = [logits.pow(2).mean()]
        real_right = []
        for q in qualities:
            column = C.MIDLEVEL_NAMES.index(q)
            more, less = _real_batch(real_pairs[q], real_pairs_per_step // len(qualities), segments_per_side,
                                     config.band_shift, rng)
            inputs = torch.cat([more, less])
            real_logits = branch.segment_logits(inputs)
            with torch.no_grad():
                before = original.segment_logits(inputs)
            losses.append(keep_weight * (real_logits[:, kept] - before[:, kept]).pow(2).mean())
            half = len(more)
            side_more = real_logits[:half, column].view(-1, segments_per_side).mean(dim=1)
            side_less = real_logits[half:, column].view(-1, segments_per_side).mean(dim=1)
            losses.append(nn.functional.softplus(side_less - side_more).mean())
            penalty.append(real_logits.pow(2).mean())
            real_right.append((side_more > side_less).float().mean())
        loss = sum(losses) + config.logit_penalty * sum(penalty) / len(penalty)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        history.append([corpus_right.item()] + [r.item() for r in real_right])
        if log and ((step + 1) % max(1, steps // 10) == 0 or step + 1 == steps):
            recent = np.mean(history[-100:], axis=0)
            log(f"refining step {step + 1}/{steps}  generated pairs ordered {recent[0]:.0%}  "
                + "  ".join(f"real {q} {r:.0%}" for q, r in zip(qualities, recent[1:]))
                + f"  {time.time() - started:.0f} s")
    return branch.eval()


def write_branch(proto, branch: FoldedBranch) -> None:
    """Put ``branch``'s weights into ``proto``'s pair branch (in place), as initializers of their own so
    that no tensor the exporter shared with another part of the graph changes; unused ones are dropped."""
    from onnx import numpy_helper

    *convs, head_node = _branch_nodes(proto)
    layers = [(conv, node) for conv, node in zip(branch.convs, convs)] + [(branch.head, head_node)]
    ours = {f"net.branch.refined.{index}.{kind}" for index in range(len(layers)) for kind in ("weight", "bias")}
    kept = [i for i in proto.graph.initializer if i.name not in ours]  # an earlier refinement's
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    for index, (layer, node) in enumerate(layers):
        for slot, (kind, tensor) in ((1, ("weight", layer.weight)), (2, ("bias", layer.bias))):
            name = f"net.branch.refined.{index}.{kind}"
            proto.graph.initializer.append(numpy_helper.from_array(tensor.detach().numpy().astype(np.float32), name))
            node.input[slot] = name
    used = {name for node in proto.graph.node for name in node.input}
    kept = [i for i in proto.graph.initializer if i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)


def assemble(args) -> int:
    """The base model with its pair branch refined; the branch's columns of the out-of-fold features
    in the evaluation report replaced by the refined branch's (out-of-fold by construction)."""
    import json
    import time
    from pathlib import Path

    import onnx

    from dawemo.emotion.model import EmotionModel
    from dawemo.inputs.audio_io import load_audio
    from dawemo.training.command import load_contrast_pairs
    from dawemo.training.soundtracks import find_root, load_soundtracks

    started = time.time()
    log = lambda text: print(f"[{time.time() - started:6.1f} s] {text}", flush=True)  # noqa: E731
    torch.set_num_threads(max(1, args.threads))
    report = json.loads(Path(args.evaluation).read_text())
    columns = report.get("branch", {}).get("columns")
    if not columns:
        raise ValueError(f"{args.evaluation}: the base model's report names no pair-branch columns")
    data = load_soundtracks(args.soundtracks, args.cache)
    root = find_root(args.soundtracks)
    audio = [load_audio(root / "audio" / f"{i}.mp3") for i in data.ids[: args.real_excerpts]]
    real = real_pair_spectrograms(audio, args.seed)
    log(f"real-recording pairs from {len(audio)} excerpts: " + ", ".join(f"{q} {len(p)}" for q, p in real.items()))
    corpus, _ = load_contrast_pairs(Path(args.corpus), 150, 0, Path(args.cache))
    proto = onnx.load(str(args.base))
    branch = branch_from_onnx(proto)
    refine_branch(branch, corpus, real, steps=args.steps, learning_rate=args.learning_rate, seed=args.seed,
                  log=log)
    write_branch(proto, branch)
    info = json.loads(next(p.value for p in proto.metadata_props if p.key == "dawemo"))
    note = {"base_model": Path(args.base).name, "steps": args.steps, "learning_rate": args.learning_rate,
            "real_excerpts": len(audio), "real_pairs": {q: len(p) for q, p in real.items()},
            "transformations": {q: [f.__name__ for f in fs] for q, fs in REAL_PAIRS.items()}, "seed": args.seed}
    info.setdefault("training", {})["pair_branch_refined"] = note
    for p in proto.metadata_props:
        if p.key == "dawemo":
            p.value = json.dumps(info)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(args.model_out))
    model = EmotionModel(args.model_out, use_gpu=False)
    features = np.array([1 / (1 + np.exp(-model.clip_logits(s).mean(axis=0))) for s in data.spectrograms])
    for name in ("cv", "album_grouped_cv"):
        if name in report:
            scheme = report[name]
            scheme.setdefault("v5_out_of_fold_midlevel", scheme["out_of_fold_midlevel"])
            scheme.setdefault("v5_crossfitted_head", {k: v for k, v in scheme["crossfitted_head"].items()
                                                      if k != "out_of_fold_emotions"})
            table = np.array(scheme["out_of_fold_midlevel"])
            table[:, columns] = features[:, columns]
            scheme["out_of_fold_midlevel"] = table.round(6).tolist()
    report["pair_branch_refined"] = note
    report["model_file"] = str(args.model_out)
    Path(args.evaluation_out).write_text(json.dumps(report, indent=1))
    log(f"wrote {args.model_out} and {args.evaluation_out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from dawemo.training.command import assembly_parser, run_assembly

    parser = assembly_parser("python -m dawemo.training.pair_refine", "Refine a model's pair branch on real-recording pairs.",
                             "the model whose pair branch is refined (ONNX)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=2)
    return run_assembly(assemble, parser.parse_args(argv), "pair_refine")


if __name__ == "__main__":
    raise SystemExit(main())
