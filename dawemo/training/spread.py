"""Measure a model's segment spreads on the training excerpts and keep them in its metadata.

    python -m dawemo.training.spread --model models/dawemo-midlevel-emotion.onnx [--soundtracks DIR] [--cache cache]

For each logit: how much it varies between the segments of one piece (``within``: root-mean-square
of the per-excerpt standard deviations) and between pieces (``between``: standard deviation of
the per-excerpt means). Change-aware averaging (``dawemo.emotion.averaging``) reads both. No
rating is used. Rewrites only the ``dawemo`` metadata entry; the graph is unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def measure_segment_spread(model, spectrograms) -> dict:
    """{"within": [...], "between": [...], "excerpts": n} of ``model``'s segment logits."""
    means, variances = [], []
    for magnitudes in spectrograms:
        logits = model.clip_logits(np.asarray(magnitudes, dtype=np.float32)).astype(np.float64)
        if len(logits) < 2:
            continue
        means.append(logits.mean(axis=0))
        variances.append(logits.var(axis=0))
    if len(means) < 2:
        raise ValueError("need at least two excerpts of two segments or more to measure spreads")
    return {"within": np.sqrt(np.mean(variances, axis=0)).round(6).tolist(),
            "between": np.std(means, axis=0).round(6).tolist(), "excerpts": len(means)}


def write_segment_spread(model_path: str | Path, spread: dict) -> None:
    """Store ``spread`` as the model's ``segment_spread`` metadata (in place)."""
    import onnx

    proto = onnx.load(str(model_path))
    for entry in proto.metadata_props:
        if entry.key == "dawemo":
            info = json.loads(entry.value)
            info["segment_spread"] = spread
            entry.value = json.dumps(info)
            break
    else:
        raise ValueError(f"{model_path}: not a dawemo model (no 'dawemo' metadata)")
    onnx.save(proto, str(model_path))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from dawemo.emotion.model import EmotionModel, ModelError
    from dawemo.training.soundtracks import load_soundtracks

    parser = argparse.ArgumentParser(prog="python -m dawemo.training.spread", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--soundtracks", default=None)
    parser.add_argument("--cache", default="cache")
    args = parser.parse_args(argv)
    try:
        model = EmotionModel(args.model, use_gpu=False)
        data = load_soundtracks(args.soundtracks, args.cache)
        spread = measure_segment_spread(model, data.spectrograms)
        write_segment_spread(args.model, spread)
    except (FileNotFoundError, ValueError, ModelError) as error:
        print(f"spread: error: {error}", file=sys.stderr)
        return 2
    print(f"segment spreads of {spread['excerpts']} excerpts written to {args.model}: "
          f"within {np.round(spread['within'], 2).tolist()}, between {np.round(spread['between'], 2).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
