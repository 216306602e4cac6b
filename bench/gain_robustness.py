"""Gain robustness: the same clips analysed at -20 dB and +6 dB; mean absolute emotion change (rating points).

    python bench/gain_robustness.py [--soundtracks DIR] [--limit N]

Uses the Soundtracks excerpts when present, else generated clips. Gains are applied to the float
signal (a +6 dB boost is not clipped: a DAW bus in floating point is not either).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dawemo.emotion.tracker import analyze_samples  # noqa: E402
from dawemo.inputs.audio_io import load_audio  # noqa: E402
from dawemo.cli.demo import demo_clip  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.training.soundtracks import DEFAULT_ROOT  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundtracks", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = EmotionModel(args.model)
    files = sorted((args.soundtracks / "audio").glob("*.mp3"))[: args.limit]
    clips = [load_audio(f) for f in files] if files else [demo_clip()]
    differences = {"-20": [], "+6": []}
    for clip in clips:
        reference = analyze_samples(clip, model)
        for label, gain_db in (("-20", -20.0), ("+6", 6.0)):
            scaled = analyze_samples(clip * np.float32(10 ** (gain_db / 20)), model)
            differences[label].append(np.abs(scaled.summary_emotions - reference.summary_emotions).mean())
            # Timeline too: every update, not only the clip summary.
            timeline = np.abs(np.array([u.emotions for u in scaled.updates]) -
                              np.array([u.emotions for u in reference.updates])).mean()
            differences[label].append(timeline)
    result = {"clips": len(clips), "source": "soundtracks" if files else "demo clip",
              "mean_abs_difference_rating_points": {k: float(np.mean(v)) for k, v in differences.items()},
              "max_abs_difference_rating_points": {k: float(np.max(v)) for k, v in differences.items()}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
