"""Responsiveness: how fast the emotion curves follow a change in the music.

    python bench/responsiveness.py [--pairs 6] [--window-s 4] [--hop-s 0.5]

Concatenates contrasting Soundtracks excerpts (a calm/tender one, then an angry/fearful one, and
the reverse) and measures, for each emotion whose level changes clearly, the time from the change
until the curve has moved half way from its old level to its new one. Compares the given
settings with the paper's inference windowing (15 s window, 5 s hop) measured the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dawemo import constants as C  # noqa: E402
from dawemo.emotion.tracker import EmotionTracker  # noqa: E402
from dawemo.inputs.audio_io import load_audio  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.training.soundtracks import DEFAULT_ROOT  # noqa: E402


def contrasting_pairs(root: Path, n_pairs: int) -> list[tuple[str, str]]:
    """(calm id, intense id) pairs: most tender/least tense vs most angry/fearful excerpts."""
    with open(root / "ratings.csv") as f:
        rows = list(csv.DictReader(f))
    calm = sorted(rows, key=lambda r: float(r["tender"]) - float(r["tension"]), reverse=True)
    intense = sorted(rows, key=lambda r: float(r["anger"]) + float(r["fear"]) + float(r["tension"]), reverse=True)
    return [(calm[i]["number"], intense[i]["number"]) for i in range(n_pairs)]


def half_way_times(model: EmotionModel, first: np.ndarray, second: np.ndarray, window_s: float, hop_s: float,
                   min_change: float = 0.5, steady_s: float = 0.0) -> list[float]:
    """Seconds from the change until each clearly changing emotion is half way to its new level."""
    change_s = len(first) / model.sample_rate
    tracker = EmotionTracker(model, window_s, hop_s, steady_s)
    updates = tracker.process(np.concatenate([first, second]))
    times = np.array([u.time_s for u in updates])
    emotions = np.array([u.emotions for u in updates])
    before = emotions[times <= change_s][-2:]  # the last updates before the change (any hop)
    settle_from = change_s + window_s + C.SEGMENT_FRAMES * C.HOP_SIZE / C.SAMPLE_RATE  # fully new content
    after = emotions[times >= settle_from]
    if len(before) == 0 or len(after) == 0:
        return []
    old, new = before.mean(axis=0), after.mean(axis=0)
    result = []
    for k in range(emotions.shape[1]):
        if abs(new[k] - old[k]) < min_change:
            continue
        progress = (emotions[:, k] - old[k]) / (new[k] - old[k])
        crossed = np.nonzero((times > change_s) & (progress >= 0.5))[0]
        if len(crossed):
            result.append(float(times[crossed[0]] - change_s))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundtracks", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--window-s", type=float, default=C.DEFAULT_WINDOW_S)
    parser.add_argument("--hop-s", type=float, default=C.DEFAULT_HOP_S)
    parser.add_argument("--steady-s", type=float, default=C.DEFAULT_STEADY_S,
                        help="change-aware averaging time constant (0: each window alone)")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = EmotionModel(args.model)
    audio = {}

    def clip(number: str) -> np.ndarray:
        if number not in audio:
            audio[number] = load_audio(args.soundtracks / "audio" / f"{number}.mp3")
        return audio[number]

    settings = {"dawemo": (args.window_s, args.hop_s, args.steady_s),
                "dawemo, each window alone": (args.window_s, args.hop_s, 0.0),
                "paper (15 s window, 5 s hop)": (15.0, 5.0, 0.0)}
    results = {name: [] for name in settings}
    for calm, intense in contrasting_pairs(args.soundtracks, args.pairs):
        for first, second in ((calm, intense), (intense, calm)):
            # Pad each side to 30 s by looping so both windowings see a steady state before and after.
            a, b = (np.resize(clip(x), 30 * model.sample_rate).astype(np.float32) for x in (first, second))
            for name, (window_s, hop_s, steady_s) in settings.items():
                results[name] += half_way_times(model, a, b, window_s, hop_s, steady_s=steady_s)
    report = {name: {"window_s": settings[name][0], "hop_s": settings[name][1], "steady_s": settings[name][2],
                     "curves": len(values),
                     "median_half_way_s": float(np.median(values)) if values else None,
                     "p90_half_way_s": float(np.percentile(values, 90)) if values else None}
              for name, values in results.items()}
    print(json.dumps({"excerpt_pairs": args.pairs, "directions": 2, "results": report}, indent=1))


if __name__ == "__main__":
    main()
