"""Do the mid-level features track simple signal estimates of their qualities on real film music?

    python bench/feature_validity.py [--soundtracks DIR] [--cache cache] [--features REPORT.json [--recipe R]]

No human mid-level ratings exist here, so this is a sanity check, not a score: for each quality
with a textbook signal estimate, the Pearson r over the 300 Soundtracks excerpts between the
model's clip feature and that estimate. The estimates (computed from the same filterbank
spectrogram the model reads; ``dawemo/training/signal_estimates.py``):

- minorness: Krumhansl-Kessler key profiles, best minor-key correlation minus best major-key one;
- tonal_stability: key clarity, the best correlation with any of the 24 key profiles;
- dissonance: chroma energy next to a semitone neighbour, and spectral flatness (noisy timbre);
- articulation: depth of the fast loudness envelope (log energy minus its 1 s moving average);
- rhythm_stability: pulse clarity, the highest autocorrelation of the onset envelope at 0.25-1.5 s;
- rhythm_complexity: onsets per second;
- melodiousness: none (no simple estimate of "would you sing along").

Features come from the shipped model (whole-clip summaries) or, with ``--features``, from a report's
out-of-fold features (``models/evaluation.json``, or a sweep's ``sweep.json`` with ``--recipe``).
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dawemo import constants as C  # noqa: E402
from dawemo.training.signal_estimates import ESTIMATES_OF, band_centres_hz, signal_estimates  # noqa: E402


def model_features(spectrograms: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """Whole-clip features of the shipped model, as ``dawemo analyze`` summarises a file."""
    from dawemo.emotion.model import EmotionModel

    model = EmotionModel(use_gpu=False)
    rows = [model.midlevel_from_logits(model.clip_logits(spec).mean(axis=0)) for spec in spectrograms]
    return np.array(rows), f"{model.name} v{model.version}, whole-clip summaries"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundtracks", default=None, help="default ../shared/data/soundtracks")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--features", type=Path, default=None,
                        help="a report with out-of-fold features (evaluation.json, or sweep.json with --recipe)")
    parser.add_argument("--recipe", default=None)
    args = parser.parse_args()
    from dawemo.training.soundtracks import load_soundtracks

    try:
        data = load_soundtracks(args.soundtracks, args.cache)
    except FileNotFoundError as error:
        print(f"feature_validity: {error}", file=sys.stderr)
        return 2
    if args.features:
        report = json.loads(args.features.read_text())
        cv = report["results"][args.recipe]["cv"] if args.recipe else report["cv"]
        features = np.array(cv["out_of_fold_midlevel"])
        source = f"out-of-fold features from {args.features}" + (f" ({args.recipe})" if args.recipe else "")
    else:
        features, source = model_features(data.spectrograms)
    centres_hz = band_centres_hz()
    estimates = [signal_estimates(spec, centres_hz) for spec in data.spectrograms]
    result = {"features": source, "excerpts": len(estimates), "pearson_r": {}}
    for column, quality in enumerate(C.MIDLEVEL_NAMES):
        result["pearson_r"][quality] = {
            name: round(float(np.corrcoef(features[:, column], [e[name] for e in estimates])[0, 1]), 3)
            for name in ESTIMATES_OF[quality]}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
