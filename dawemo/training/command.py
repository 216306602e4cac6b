"""``dawemo train``: rebuild the shipped model from scratch, with its cross-validation report.

    dawemo train --out models/dawemo-midlevel-emotion.onnx --report models/evaluation.json

Everything is seeded: the same command on the same data and library versions gives the same model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from dawemo import constants as C


def configure(parser: argparse.ArgumentParser) -> None:
    from dawemo.training.config import HEAD_RIDGE, TrainConfig

    defaults = TrainConfig()
    parser.add_argument("--soundtracks", type=Path, default=None,
                        help="Soundtracks folder (ratings.csv, tracklist.csv, audio/); default ../shared/data/soundtracks")
    parser.add_argument("--corpus", type=Path, default=Path("cache/midlevel_corpus"),
                        help="generated contrast-pair corpus; made here if missing (default %(default)s)")
    parser.add_argument("--pairs-per-quality", type=int, default=150,
                        help="size of a newly generated corpus (default %(default)s)")
    parser.add_argument("--midlevel-dataset", type=Path, default=None,
                        help="Mid-level Perceptual Features dataset folder, if you have it (its 'soundtracks' "
                             "clips are left out)")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="spectrogram cache (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("models") / C.MODEL_FILENAME, help="ONNX file to write")
    parser.add_argument("--report", type=Path, default=Path("models/evaluation.json"),
                        help="evaluation report (JSON) to write")
    parser.add_argument("--cv", type=int, default=10, help="folds of plain cross-validation (0: skip)")
    parser.add_argument("--grouped-cv", type=int, default=5, help="folds of album-grouped cross-validation (0: skip)")
    parser.add_argument("--no-final", action="store_true", help="only cross-validate, do not train/export the model")
    parser.add_argument("--joint-head", action="store_true",
                        help="ship the jointly trained emotion layer instead of refitting it on the CV's "
                             "out-of-fold features")
    parser.add_argument("--head-ridge", type=float, default=HEAD_RIDGE,
                        help="pull of the refitted emotion layer towards the joint one (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="folds trained in parallel (one thread each)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other training setting, e.g. --set ranking_weight=0.25 (fields: "
                             + ", ".join(f for f in defaults.as_dict() if f not in ("epochs", "width", "seed")) + ")")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N or auto (CUDA when PyTorch sees a GPU; default %(default)s)")
    parser.add_argument("--version", dest="model_version", default="1", help="version written into the model")


def load_contrast_pairs(corpus: Path, pairs_per_quality: int, seed: int, cache: Path):
    import numpy as np

    from dawemo.training import midlevel_corpus
    from dawemo.training.spectrogram_pack import load_pack, save_pack
    from dawemo.training.train import ContrastPairs

    manifest = corpus / midlevel_corpus.MANIFEST_NAME
    if not manifest.exists():
        print(f"generating the mid-level contrast corpus in {corpus} ...", flush=True)
        midlevel_corpus.generate_corpus(corpus, pairs_per_quality, seed)
    records = midlevel_corpus.load_manifest(manifest)
    key = hashlib.sha1(manifest.read_bytes()).hexdigest()[:12]
    cached = cache / f"corpus_spectrograms_{key}.u8.npz"
    keys = [f"{r.pair_id}_{side}" for r in records for side in ("more", "less")]
    if not cached.exists():
        from dawemo.inputs.audio_io import load_audio  # pedalboard: not needed when the cache travels
        from dawemo.emotion.frontend import spectrogram

        save_pack(cached, {f"{r.pair_id}_{side}": spectrogram(load_audio(getattr(r, f"{side}_path")))
                           for r in records for side in ("more", "less")})
    stored = load_pack(cached, keys)
    more = [stored[f"{r.pair_id}_more"] for r in records]
    less = [stored[f"{r.pair_id}_less"] for r in records]
    quality = np.array([C.MIDLEVEL_NAMES.index(r.quality) for r in records], dtype=np.int64)
    return ContrastPairs(quality, more, less), key


def assembly_parser(prog: str, description: str, base_help: str) -> argparse.ArgumentParser:
    """The options every CPU assembly step shares (pair refinement, rhythm branch): a trained model and
    its report in, a model and a report out, and where the soundtracks, the corpus and the caches are."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--base", required=True, help=base_help)
    parser.add_argument("--evaluation", required=True, help="its evaluation report (out-of-fold features)")
    parser.add_argument("--model-out", required=True)
    parser.add_argument("--evaluation-out", required=True)
    parser.add_argument("--soundtracks", default=None)
    parser.add_argument("--corpus", default="corpus")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--real-excerpts", type=int, default=200,
                        help="excerpts the real-recording pairs are made from (the rest check them)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run_assembly(assemble, args: argparse.Namespace, name: str) -> int:
    """``assemble(args)``, with a missing or unreadable input as a one-line error and exit status 2."""
    try:
        return assemble(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2


def _summary_line(name: str, result: dict) -> str:
    pooled = result["pooled"]
    per_emotion = "  ".join(f"{k} {v:.2f}" for k, v in pooled["pearson_r"].items())
    return (f"{name}: mean r {pooled['mean_r']:.3f} (per-fold mean {result['per_fold_mean_r']['mean']:.3f} "
            f"+- {result['per_fold_mean_r']['std']:.3f}), dominant emotion agreement "
            f"{pooled['dominant_emotion_agreement']:.0%}\n    {per_emotion}")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dawemo.training.evaluate import cross_validate, grouped_kfold_splits, kfold_splits
    from dawemo.training.export import export_onnx
    from dawemo.training.soundtracks import load_soundtracks
    from dawemo.training.head import (crossfit_net_head, crossfitted_head_metrics, fit_emotion_head, set_emotion_head,
                                      with_branch_features, without_columns)
    from dawemo.training.net import BranchedNet
    from dawemo.training.train import RatedMidlevel, predict_clips, too_few_steps, train_model, train_pair_branch

    started = time.time()
    try:
        config = config_from_args(args)
        branch_columns = config.branch_columns()
        if branch_columns and args.joint_head:
            raise ValueError("--joint-head cannot be used with branch_qualities: the joint layer was learnt for "
                             "the joint net's own features in those columns")
    except ValueError as error:
        print(f"dawemo train: error: {error}", file=sys.stderr)
        return 2
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        data = load_soundtracks(args.soundtracks, args.cache,
                                progress=lambda i, n: print(f"\rdecoding soundtracks {i}/{n}", end="", file=sys.stderr))
    except FileNotFoundError as error:
        print(f"dawemo: error: {error}", file=sys.stderr)
        return 2
    except KeyError as error:  # a cache written for other excerpts
        print(f"dawemo train: error: {error.args[0]}", file=sys.stderr)
        return 2
    smallest_training_set = int(len(data.ids) * (1 - 1 / max(2, args.cv or 2, args.grouped_cv or 2)))
    problem = too_few_steps(smallest_training_set, config)
    if problem:
        print(f"dawemo train: error: {problem}", file=sys.stderr)
        return 2
    pairs, corpus_key = load_contrast_pairs(args.corpus, args.pairs_per_quality, args.seed, args.cache)
    rated = None
    if args.midlevel_dataset:
        from dawemo.training.midlevel_dataset import load_midlevel_dataset, spectrograms

        clips = load_midlevel_dataset(args.midlevel_dataset)
        rated = RatedMidlevel(spectrograms(clips, args.cache), np.stack([c.ratings for c in clips]))
    print(f"{len(data.ids)} rated excerpts, {len(pairs.quality_index)} contrast pairs"
          + (f", {len(rated.ratings)} clips with mid-level ratings" if rated else ""), flush=True)
    report = {"config": config.as_dict(), "device": device, "soundtracks": {"n_excerpts": len(data.ids), "n_albums": len(set(data.albums))},
              "corpus": {"n_pairs": int(len(pairs.quality_index)), "manifest_sha1": corpus_key},
              "torch": torch.__version__}
    if rated is not None:
        report["midlevel_dataset"] = {"n_clips": int(len(rated.ratings))}
        if args.cv or args.grouped_cv:
            print("note: cross-validation below trains without the rated mid-level clips", file=sys.stderr)
    branch = branch_features = None
    if branch_columns:
        print(f"training the pair branch for {config.branch_qualities} ...", flush=True)
        torch.set_num_threads(max(1, args.workers))
        branch = train_pair_branch(pairs, config, device=device)
        branch_features, _ = predict_clips(branch, data.spectrograms, config.context_frames)
        report["branch"] = {"qualities": config.branch_qualities, "columns": branch_columns}
    schemes = []
    if args.cv:
        schemes.append(("cv", f"{args.cv}-fold CV", kfold_splits(len(data.ids), args.cv, args.seed)))
    if args.grouped_cv:
        schemes.append(("album_grouped_cv", f"album-grouped {args.grouped_cv}-fold CV",
                        grouped_kfold_splits(data.albums, args.grouped_cv, args.seed)))
    # The shipped model first: cross-validation only measures how this recipe generalises.
    if not args.no_final:
        print("training the final model on all excerpts ...", flush=True)
        torch.set_num_threads(max(1, args.workers))
        net = train_model(data.spectrograms, data.ratings, pairs, config, rated_midlevel=rated, device=device)
        joint_head = [array.double().numpy() for array in net.linear_emotion_map()]
        training_meta = {"config": config.as_dict(), "device": device, "corpus_manifest_sha1": corpus_key,
                         "emotion_head": "joint", "evaluation": "see models/evaluation.json and MODEL_CARD.md"}
        if branch is not None:
            # The joint layer's weights in the branch's columns belong to other features: until the CV's
            # refit replaces it, the layer is fitted on the training excerpts' own features.
            net = BranchedNet(net, branch, branch_columns)
            training_features, _ = predict_clips(net, data.spectrograms, config.context_frames)
            (anchor_weight, anchor_bias), = without_columns([tuple(joint_head)], branch_columns)
            set_emotion_head(net, *fit_emotion_head(training_features, data.ratings, anchor_weight, anchor_bias,
                                                    args.head_ridge))
            training_meta["emotion_head"] = "fitted on the training excerpts' features (replaced after the CV)"
        # Written now, before the CV's refit, so an interrupted CV still leaves a usable model.
        export_onnx(net, args.out, version=args.model_version, context_frames=config.context_frames,
                    extra_metadata={"training": training_meta})
        report["model_file"] = str(args.out)
        report["emotion_head"] = training_meta["emotion_head"]
        print(f"wrote {args.out}", flush=True)
        torch.set_num_threads(1)
        _write_report(args.report, report)
    for key, name, splits in schemes:
        print(f"{name} ...", flush=True)
        report[key] = cross_validate(data.spectrograms, data.ratings, pairs, config, splits, args.workers,
                                     device=device)
        print(_summary_line(name, report[key]), flush=True)
        if branch is not None:  # what the shipped net's features are: the branch's in its columns
            report[key]["joint_out_of_fold_midlevel"] = report[key]["out_of_fold_midlevel"]
            report[key]["out_of_fold_midlevel"] = with_branch_features(
                np.array(report[key]["out_of_fold_midlevel"]), branch_features, branch_columns).round(6).tolist()
        if not args.joint_head:
            report[key]["crossfitted_head"] = crossfitted_head_metrics(
                np.array(report[key]["out_of_fold_midlevel"]), data.ratings, splits,
                without_columns([(np.array(h["weight"]), np.array(h["bias"]))
                                 for h in report[key]["fold_emotion_heads"]], branch_columns),
                args.head_ridge)
            print(f"    with the cross-fitted emotion layer: mean r "
                  f"{report[key]['crossfitted_head']['mean_r']:.3f}", flush=True)
        _write_report(args.report, report)
    if not args.no_final and not args.joint_head and "cv" in report:
        set_emotion_head(net, *joint_head)  # the refit's anchor is the jointly trained layer
        training_meta["emotion_head"] = crossfit_net_head(
            net, np.array(report["cv"]["out_of_fold_midlevel"]), data.ratings, args.cv, args.head_ridge, branch_columns)
        export_onnx(net, args.out, version=args.model_version, context_frames=config.context_frames,
                    extra_metadata={"training": training_meta})
        report["emotion_head"] = training_meta["emotion_head"]
        report["joint_emotion_head"] = {"weight": joint_head[0].round(6).tolist(), "bias": joint_head[1].round(6).tolist()}
        print(f"wrote {args.out} with the cross-fitted emotion layer", flush=True)
    report["seconds"] = round(time.time() - started)
    _write_report(args.report, report)
    print(f"wrote {args.report} ({report['seconds']} s)")
    return 0


def config_from_args(args: argparse.Namespace):
    """TrainConfig from --epochs/--width/--seed and any --set FIELD=VALUE (ValueError when bad)."""
    from dataclasses import fields

    from dawemo.training.config import TrainConfig

    types = {f.name: f.type for f in fields(TrainConfig)}
    values = {"epochs": args.epochs, "width": args.width, "seed": args.seed}
    for item in args.overrides:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(types)}")
        if types[name] in (str, "str"):
            values[name] = text.strip()
            continue
        try:
            values[name] = (int if types[name] in (int, "int") else float)(text)
        except ValueError:
            raise ValueError(f"--set {item!r}: {text!r} is not a number") from None
    return TrainConfig(**values)


def _write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)
