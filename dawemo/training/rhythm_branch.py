"""Training the rhythm branch (``dawemo/emotion/rhythm.py``) on contrast pairs whose order is known
by construction, from real recordings as well as from the generated corpus.

Real-recording pairs change one quality of an excerpt and keep the rest:

- rhythm stability: the excerpt vs the same excerpt cut into short pieces that are each moved by
  up to ±60 ms (its timing jittered); and the excerpt with a steady pulse added vs with the same
  pulse drifting and jittered;
- rhythm complexity: the excerpt with a layered, syncopated percussion part added vs with a plain
  on-the-beat part of the same sounds and density class;
- articulation: the excerpt gated after each onset (notes cut short) vs itself, and itself vs the
  excerpt smeared by a long reverb.

No rating is used: the branch's features of every excerpt are out-of-fold by construction. The
soundtracks only set the descriptors' standardisation and the feature scale.
"""

from __future__ import annotations

import numpy as np

from dawemo import constants as C
from dawemo.emotion.rhythm import DESCRIPTOR_NAMES, RHYTHM_SPAN_S, RhythmBranch, RhythmDescriber

SR = C.SAMPLE_RATE


def _fade(n: int) -> np.ndarray:
    return np.sin(np.linspace(0, np.pi / 2, n)) ** 2


def jitter_timing(x: np.ndarray, rng: np.random.Generator, max_shift_s: float = 0.06) -> np.ndarray:
    """Cut ``x`` into 0.12-0.4 s pieces and move each by up to ±``max_shift_s`` (10 ms crossfades)."""
    out = np.zeros_like(x)
    weight = np.zeros_like(x)
    fade = int(0.01 * SR)
    start = 0
    while start < len(x):
        length = int(rng.uniform(0.12, 0.4) * SR)
        piece = x[start : start + length + fade].copy()
        window = np.ones(len(piece))
        k = min(fade, len(piece) // 2)
        window[:k] *= _fade(k)
        window[len(piece) - k :] *= _fade(k)[::-1]
        at = start + int(rng.uniform(-max_shift_s, max_shift_s) * SR)
        lo, hi = max(0, at), min(len(x), at + len(piece))
        if hi > lo:
            out[lo:hi] += (piece * window)[lo - at : hi - at]
            weight[lo:hi] += window[lo - at : hi - at]
        start += length
    return (out / np.maximum(weight, 1e-3)).astype(np.float32)


def hit(kind: str, rng: np.random.Generator, velocity: float = 1.0) -> np.ndarray:
    """One percussive sound: 'low' (tom-like sine drop), 'click' (wood-like band of noise), 'tick' (hat-like)."""
    if kind == "low":
        n = int(0.25 * SR)
        t = np.arange(n) / SR
        freq = rng.uniform(70, 110) * (1 + 1.5 * np.exp(-t / 0.03))
        sound = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t / 0.08)
    elif kind == "click":
        n = int(0.08 * SR)
        t = np.arange(n) / SR
        f0 = rng.uniform(700, 1400)
        sound = np.sin(2 * np.pi * f0 * t) * np.exp(-t / 0.015) + 0.3 * rng.standard_normal(n) * np.exp(-t / 0.005)
    else:
        n = int(0.06 * SR)
        t = np.arange(n) / SR
        noise = np.diff(rng.standard_normal(n + 1))  # high-passed
        sound = noise * np.exp(-t / 0.012)
    return (velocity * sound / (np.abs(sound).max() + 1e-9)).astype(np.float32)


def percussion(length: int, onsets_s: list[tuple[float, str, float]], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(length, dtype=np.float32)
    for time_s, kind, velocity in onsets_s:
        at = int(time_s * SR)
        if 0 <= at < length:
            sound = hit(kind, rng, velocity)
            end = min(length, at + len(sound))
            out[at:end] += sound[: end - at]
    return out


def beat_grid(duration_s: float, beat_s: float, rng: np.random.Generator, drift: float = 0.0,
              jitter_s: float = 0.0) -> np.ndarray:
    """Beat times; ``drift`` is the depth of a slow tempo wander, ``jitter_s`` random timing error."""
    times, t, phase = [], rng.uniform(0, beat_s), rng.uniform(0, 2 * np.pi)
    while t < duration_s:
        times.append(t + (rng.uniform(-jitter_s, jitter_s) if jitter_s else 0.0))
        t += beat_s * (1 + drift * np.sin(phase + 2 * np.pi * t / rng.uniform(2.5, 4.0)))
    return np.array(times)


def mix(x: np.ndarray, part: np.ndarray, level_db: float) -> np.ndarray:
    rms_x = np.sqrt(np.mean(x ** 2)) + 1e-9
    rms_p = np.sqrt(np.mean(part ** 2)) + 1e-9
    return (x + part * (rms_x / rms_p) * 10 ** (level_db / 20)).astype(np.float32)


def pulse_pair(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x + a steady accented pulse vs x + the same pulse drifting and jittered."""
    beat_s, duration_s = 60.0 / rng.uniform(70, 150), len(x) / SR
    level_db = rng.uniform(-8, -2)

    def part(times):
        return percussion(len(x), [(t, "low" if i % 2 == 0 else "click", 1.0 if i % 4 == 0 else 0.7)
                                   for i, t in enumerate(times)], np.random.default_rng(0))

    steady = part(beat_grid(duration_s, beat_s, rng))
    wobbly = part(beat_grid(duration_s, beat_s, rng, drift=rng.uniform(0.12, 0.25), jitter_s=rng.uniform(0.04, 0.08)))
    return mix(x, steady, level_db), mix(x, wobbly, level_db)


def layers_pair(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x + layered syncopated percussion (off-beat 16ths, 3 against 2) vs x + the same sounds on the beat."""
    beat_s, duration_s = 60.0 / rng.uniform(70, 140), len(x) / SR
    n_beats = int(duration_s / beat_s) + 1
    start = rng.uniform(0, beat_s)
    # A random one-bar syncopated figure on the 16th grid, mostly off the beat, repeated every bar.
    figure = [s for s in range(16) if s % 4 != 0 and rng.random() < 0.35] or [3, 6, 11]
    triplet = rng.integers(2, 4)  # 3 or 2 ... against 4: every 4/3 or 4/2 beats shifted
    complex_onsets, simple_onsets = [], []
    for beat in range(n_beats):
        t0 = start + beat * beat_s
        simple_onsets += [(t0, "low", 1.0 if beat % 4 == 0 else 0.75), (t0, "tick", 0.6)]
        if beat % 2 == 1:
            simple_onsets.append((t0, "click", 0.8))
        if beat % 4 == 0:
            complex_onsets += [(t0 + s * beat_s / 4, "click", 0.8) for s in figure]
        complex_onsets.append((t0 + (0.75 if beat % 2 else 0.0) * beat_s, "low", 1.0 if beat % 4 == 0 else 0.75))
    period = 4.0 / (3 if triplet == 3 else 2.5)
    t = start + beat_s * rng.uniform(0.2, 0.6)
    while t < duration_s:
        complex_onsets.append((t, "tick", 0.6))
        t += period * beat_s
    level_db = rng.uniform(-8, -2)
    return (mix(x, percussion(len(x), complex_onsets, np.random.default_rng(1)), level_db),
            mix(x, percussion(len(x), simple_onsets, np.random.default_rng(1)), level_db))


def gate_notes(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut every note short: after each onset the level holds 50-110 ms, then falls 30 dB in 30 ms."""
    from dawemo.emotion.frontend import spectrogram

    spec = spectrogram(x)
    log_spec = np.log10(spec + 1e-3 * spec.mean() + 1e-12)
    flux = np.maximum(np.diff(log_spec, axis=0), 0).mean(axis=1)
    threshold = flux.mean() + 0.5 * flux.std()
    peaks = np.flatnonzero((flux[1:-1] > threshold) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] > flux[2:])) + 1
    gain = np.full(len(x), 10 ** (-30 / 20), dtype=np.float32)
    hold, fall = int(rng.uniform(0.05, 0.11) * SR), int(0.03 * SR)
    shape = np.r_[np.ones(hold), np.geomspace(1.0, 10 ** (-30 / 20), fall)].astype(np.float32)
    for p in peaks:
        at = max(0, (p + 1) * C.HOP_SIZE + C.FRAME_SIZE // 2 - int(0.02 * SR))
        end = min(len(x), at + len(shape))
        gain[at:end] = np.maximum(gain[at:end], shape[: end - at])
    return (x * gain).astype(np.float32)


def reverb_smear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from pedalboard import Pedalboard, Reverb

    board = Pedalboard([Reverb(room_size=rng.uniform(0.85, 0.97), damping=0.3, wet_level=0.6, dry_level=0.5)])
    return board(x[None].astype(np.float32), SR)[0]


REAL_PAIRS = {
    "rhythm_stability": (lambda x, rng: (x, jitter_timing(x, rng)), pulse_pair),
    "rhythm_complexity": (layers_pair,),
    "articulation": (lambda x, rng: (gate_notes(x, rng), x), lambda x, rng: (x, reverb_smear(x, rng))),
}


def real_pair_descriptors(audio: list[np.ndarray], quality: str, seed: int,
                          describer: RhythmDescriber | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mean descriptors of (more, less) for every excerpt and every transformation of ``quality``."""
    from dawemo.emotion.frontend import spectrogram

    describer = describer or RhythmDescriber()
    pairs = []
    for i, x in enumerate(audio):
        for j, make in enumerate(REAL_PAIRS[quality]):
            rng = np.random.default_rng([seed, C.MIDLEVEL_NAMES.index(quality), i, j])
            more, less = make(np.asarray(x, np.float32), rng)
            pairs.append(tuple(describer.describe_clip(spectrogram(side)).mean(axis=0) for side in (more, less)))
    return pairs


def fit_ranking(differences: np.ndarray, l2: float = 1e-2, steps: int = 500) -> np.ndarray:
    """Weights w with sigmoid(w @ d) high for each row d = z(more) - z(less): logistic ranking, L2."""
    w = np.zeros(differences.shape[1])
    for _ in range(steps):  # Newton's method: a few dozen iterations converge
        margin = differences @ w
        p = 1 / (1 + np.exp(-margin))
        gradient = -differences.T @ (1 - p) / len(differences) + l2 * w
        hessian = (differences * (p * (1 - p))[:, None]).T @ differences / len(differences) + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


# Which descriptors may explain each quality, with the sign its rater question implies: an
# explanation then reads right, and side effects of the training transformations cannot be learnt.
# A descriptor whose fitted weight comes out with the other sign is dropped and the rest refitted.
DESCRIPTORS_OF = {
    "rhythm_stability": {"pulse_clarity": +1, "pulse_persistence": +1, "onbeat_share": +1},
    "rhythm_complexity": {"onbeat_share": -1, "onset_rate": +1, "layer_independence": +1},
    "articulation": {"envelope_depth_db": +1, "gap_share": +1},
}


def fit_branch(pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]], reference: list[np.ndarray],
               logit_spread: float = 1.2, l2: float = 1e-2) -> RhythmBranch:
    """Fit each quality's linear map on its pairs' descriptor differences.

    Args:
        pairs: quality -> [(descriptors of more, descriptors of less)], each (n_descriptors,).
        reference: per real excerpt, its per-segment descriptors (n_segments, n_descriptors): sets the
            standardisation, the bias (its clips' mean feature is 0.5) and the scale (the clips' mean
            logits spread by ``logit_spread``, so features use the 0-1 range on real music).
    """
    stacked = np.concatenate(reference)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    clip_z = np.array([((r - mean) / std).mean(axis=0) for r in reference])
    qualities = tuple(q for q in C.MIDLEVEL_NAMES if q in pairs)
    weights, biases = [], []
    for quality in qualities:
        signs = np.array([DESCRIPTORS_OF[quality].get(name, 0) for name in DESCRIPTOR_NAMES])
        d = np.array([(more - less) / std for more, less in pairs[quality]])
        w = np.zeros(len(DESCRIPTOR_NAMES))
        used = signs != 0
        while used.any():
            w[:] = 0.0
            w[used] = fit_ranking(d[:, used], l2)
            wrong = used & (w * signs < 0)
            if not wrong.any():
                break
            used &= ~wrong
        scale = logit_spread / ((clip_z @ w).std() + 1e-12)
        weights.append(w * scale)
        biases.append(-(clip_z @ w * scale).mean())
    return RhythmBranch(qualities, np.array(weights), np.array(biases), mean, std)


def pair_accuracy(branch: RhythmBranch, quality: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Share of pairs ordered right and mean feature difference (more - less)."""
    column = branch.qualities.index(quality)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    diffs = np.array([sig(branch.logits(m)[column]) - sig(branch.logits(l)[column]) for m, l in pairs])
    return float(np.mean(diffs > 0)), float(diffs.mean())



def attach_to_onnx(base_path, out_path, branch: RhythmBranch, emotion_weight: np.ndarray, emotion_bias: np.ndarray,
                   version: str, training_note: dict, span_s: float = RHYTHM_SPAN_S) -> None:
    """Write ``base_path``'s graph with the rhythm branch's linear map inside it and a new emotion layer.

    The graph gains an input ``rhythm_descriptors`` (n_segments, n_descriptors), computed by
    ``RhythmDescriber`` beside the spectrogram; in the branch's columns ``midlevel_logits`` become
    the branch's, so ``midlevel`` and ``emotions`` stay the graph's own outputs and exactly
    ``bias + weight @ features``. ``emotion_weight`` (8, 7) and ``emotion_bias`` (8,) are on the
    rating scale.
    """
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(base_path))
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    std = numpy_helper.to_array(next(v for k, v in inits.items() if k.endswith("emotion_std"))).astype(np.float64)
    mean = numpy_helper.to_array(next(v for k, v in inits.items() if k.endswith("emotion_mean"))).astype(np.float64)
    head = next(n for n in graph.node if n.op_type == "MatMul" and n.input[0] == "midlevel")
    head_add = next(n for n in graph.node if n.op_type == "Add" and head.output[0] in n.input)
    bias_name = next(i for i in head_add.input if i != head.output[0])
    inits[head.input[1]].CopyFrom(numpy_helper.from_array(
        (np.asarray(emotion_weight, np.float64) / std[:, None]).T.astype(np.float32), head.input[1]))
    inits[bias_name].CopyFrom(numpy_helper.from_array(
        ((np.asarray(emotion_bias, np.float64) - mean) / std).astype(np.float32), bias_name))

    columns = [C.MIDLEVEL_NAMES.index(q) for q in branch.qualities]
    place = np.zeros((len(columns), len(C.MIDLEVEL_NAMES)), np.float32)
    place[np.arange(len(columns)), columns] = 1.0
    mask = np.zeros(len(C.MIDLEVEL_NAMES), bool)
    mask[columns] = True
    for name, value in (("rhythm.mean", branch.mean), ("rhythm.std", branch.std), ("rhythm.weight", branch.weight.T),
                        ("rhythm.bias", branch.bias), ("rhythm.place", place), ("rhythm.mask", mask)):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32 if value.dtype != bool else bool),
                                                         name))
    graph.input.append(helper.make_tensor_value_info("rhythm_descriptors", TensorProto.FLOAT,
                                                     ["n_segments", len(DESCRIPTOR_NAMES)]))
    branch_nodes = [
        helper.make_node("Sub", ["rhythm_descriptors", "rhythm.mean"], ["rhythm/centred"]),
        helper.make_node("Div", ["rhythm/centred", "rhythm.std"], ["rhythm/standardised"]),
        helper.make_node("MatMul", ["rhythm/standardised", "rhythm.weight"], ["rhythm/product"]),
        helper.make_node("Add", ["rhythm/product", "rhythm.bias"], ["rhythm_logits"]),
        helper.make_node("MatMul", ["rhythm_logits", "rhythm.place"], ["rhythm/placed"]),
        helper.make_node("Where", ["rhythm.mask", "rhythm/placed", "network_logits"], ["midlevel_logits"]),
    ]
    nodes = []
    for node in graph.node:
        if "midlevel_logits" in node.output:
            node.output[list(node.output).index("midlevel_logits")] = "network_logits"
            nodes += [node] + branch_nodes
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    meta = {p.key: p.value for p in proto.metadata_props}
    info = json.loads(meta["dawemo"])
    info.update({"version": version, "emotion_weights": np.asarray(emotion_weight, np.float64).tolist(),
                 "emotion_bias": np.asarray(emotion_bias, np.float64).tolist(),
                 "rhythm_branch": branch.metadata(span_s), "training": training_note})
    for p in proto.metadata_props:
        if p.key == "dawemo":
            p.value = json.dumps(info)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))


def happy_keeps_signs(weight: np.ndarray) -> bool:
    """happy rises with tonal stability and rhythm complexity, falls with dissonance and minorness
    (Chowdhury et al. 2019's strongest signs)."""
    happy = dict(zip(C.MIDLEVEL_NAMES, weight[C.EMOTION_NAMES.index("happy")]))
    return bool(happy["tonal_stability"] > 0 and happy["rhythm_complexity"] > 0
                and happy["dissonance"] < 0 and happy["minorness"] < 0)


def assemble(args) -> int:
    """v6: the base model's networks, the rhythm branch in its qualities' columns, and the emotion layer
    cross-fitted on the out-of-fold features with the branch's columns swapped in."""
    import json
    import time
    from pathlib import Path

    from dawemo.inputs.audio_io import load_audio
    from dawemo.training.command import load_contrast_pairs
    from dawemo.training.evaluate import grouped_kfold_splits, kfold_splits
    from dawemo.training.head import PAPER_SIGNS, crossfitted_head_metrics, fit_emotion_head, without_columns
    from dawemo.training.soundtracks import find_root, load_soundtracks

    started = time.time()
    log = lambda text: print(f"[{time.time() - started:6.1f} s] {text}", flush=True)  # noqa: E731
    report = json.loads(Path(args.evaluation).read_text())
    data = load_soundtracks(args.soundtracks, args.cache)
    describer = RhythmDescriber(span_s=args.span_s)
    reference = [describer.describe_clip(s) for s in data.spectrograms]
    log(f"descriptors of {len(reference)} soundtrack excerpts")
    corpus, _ = load_contrast_pairs(Path(args.corpus), 150, 0, Path(args.cache))
    qualities = [q for q in C.MIDLEVEL_NAMES if q in args.qualities.split(",")]
    pairs = {q: [] for q in qualities}
    for index, more, less in zip(corpus.quality_index, corpus.more, corpus.less):
        quality = C.MIDLEVEL_NAMES[index]
        if quality in pairs:
            pairs[quality].append((describer.describe_clip(more).mean(axis=0), describer.describe_clip(less).mean(axis=0)))
    log(f"descriptors of the generated pairs: {', '.join(f'{q} {len(p)}' for q, p in pairs.items())}")
    root = find_root(args.soundtracks)
    audio = [load_audio(root / "audio" / f"{i}.mp3") for i in data.ids[: args.real_excerpts]]
    for quality in qualities:
        pairs[quality] += real_pair_descriptors(audio, quality, args.seed, describer)
    log(f"real-recording pairs from {len(audio)} excerpts")
    branch = fit_branch(pairs, reference)
    clip_features = 1 / (1 + np.exp(-np.array([branch.logits(r).mean(axis=0) for r in reference])))
    columns = [C.MIDLEVEL_NAMES.index(q) for q in branch.qualities]
    freed = sorted(set(report.get("branch", {}).get("columns", [])) | set(columns))  # the pair branch's and this one's
    evaluation = {"qualities": list(branch.qualities), "columns": columns, "branch": branch.metadata(args.span_s),
                  "pairs": {q: len(p) for q, p in pairs.items()},
                  "pair_accuracy": {q: pair_accuracy(branch, q, pairs[q]) for q in qualities}}
    schemes = {"cv": kfold_splits(len(data.ids), report["cv"]["n_folds"], 0)}
    if "album_grouped_cv" in report:
        schemes["album_grouped_cv"] = grouped_kfold_splits(data.albums, report["album_grouped_cv"]["n_folds"], 0)
    for name, splits in schemes.items():
        scheme = report[name]
        features = np.array(scheme["out_of_fold_midlevel"])
        scheme.setdefault("v5_out_of_fold_midlevel", scheme["out_of_fold_midlevel"])
        scheme.setdefault("v5_crossfitted_head", {k: v for k, v in scheme["crossfitted_head"].items()
                                                  if k != "out_of_fold_emotions"})
        features[:, columns] = clip_features[:, [branch.qualities.index(q) for q in branch.qualities]]
        scheme["out_of_fold_midlevel"] = features.round(6).tolist()
        anchors = without_columns([(np.array(h["weight"]), np.array(h["bias"])) for h in scheme["fold_emotion_heads"]],
                                  freed)
        scheme["crossfitted_head"] = crossfitted_head_metrics(features, data.ratings, splits, anchors, args.head_ridge,
                                                               PAPER_SIGNS)
        log(f"{name}: cross-fitted mean r {scheme['crossfitted_head']['mean_r']:.4f} "
            f"(v5 {scheme['v5_crossfitted_head']['mean_r']:.4f})")
    joint = report["joint_emotion_head"]
    (anchor_weight, anchor_bias), = without_columns([(np.array(joint["weight"]), np.array(joint["bias"]))], freed)
    weight, bias = fit_emotion_head(np.array(report["cv"]["out_of_fold_midlevel"]), data.ratings, anchor_weight,
                                    anchor_bias, args.head_ridge, PAPER_SIGNS)
    assert happy_keeps_signs(weight)
    head_note = (f"cross-fitted on {report['cv']['n_folds']}-fold out-of-fold clip features, ridge {args.head_ridge} "
                 f"towards the joint layer (towards 0 for the branches' features: columns {freed}); happy's "
                 f"weights for tonal stability, rhythm complexity, dissonance and minorness kept at least "
                 f"0.05 on the paper's side")
    note = {"config": report["config"], "base_model": f"{Path(args.base).name} (its networks, unchanged)",
            "rhythm_branch": evaluation["branch"],
            "emotion_head": head_note, "evaluation": "see models/evaluation.json and MODEL_CARD.md"}
    if "pair_branch_refined" in report:  # the base's pair branch was refined on real recordings
        note["pair_branch_refined"] = report["pair_branch_refined"]
    attach_to_onnx(args.base, args.model_out, branch, weight, bias, args.version, note, args.span_s)
    from dawemo.emotion.model import EmotionModel
    from dawemo.training.spread import measure_segment_spread, write_segment_spread

    spread = measure_segment_spread(EmotionModel(args.model_out, use_gpu=False), data.spectrograms)
    write_segment_spread(args.model_out, spread)
    log(f"segment spreads for change-aware averaging: within {np.round(spread['within'], 2).tolist()}")
    report.update({"version": args.version, "emotion_head": head_note, "rhythm_branch": evaluation,
                   "model_file": str(args.model_out),
                   "emotion_layer": {"weight": weight.round(6).tolist(), "bias": bias.round(6).tolist()}})
    Path(args.evaluation_out).write_text(json.dumps(report, indent=1))
    log(f"wrote {args.model_out} and {args.evaluation_out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from dawemo.training.command import assembly_parser, run_assembly

    parser = assembly_parser("python -m dawemo.training.rhythm_branch",
                             "Fit the rhythm branch on contrast pairs and attach it to a trained model (v6 from v5).",
                             "the model whose networks are kept (ONNX)")
    parser.add_argument("--qualities", default="articulation,rhythm_stability,rhythm_complexity")
    parser.add_argument("--head-ridge", type=float, default=3.0)
    parser.add_argument("--span-s", type=float, default=RHYTHM_SPAN_S, help="audio each rhythm descriptor reads")
    parser.add_argument("--version", default="6")
    return run_assembly(assemble, parser.parse_args(argv), "rhythm_branch")


if __name__ == "__main__":
    raise SystemExit(main())
