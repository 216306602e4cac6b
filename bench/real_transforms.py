"""Do the features follow real recordings changed so that they hold more, or less, of one quality?

    python bench/real_transforms.py [--model FILE ...] [--first 200] [--count 100] [--soundtracks DIR]

Each soundtrack excerpt is changed in ways whose effect on one quality is known by construction,
and the model's whole-clip feature of that quality is compared with the excerpt's own. These
changes are *not* the ones the rhythm branch is trained with (``dawemo/training/rhythm_branch.py``),
and by default the excerpts are the 100 it never made pairs from, so this checks that the features
carry over rather than re-scoring the training pairs:

- rhythm stability, less: a tape-speed wander (playback rate drifting ±6-10 % over 1.5-3 s);
- rhythm complexity, more: the excerpt plus its own echo 110-190 ms later, off any beat grid;
- articulation, more: a downward expander that cuts the tail of every note; less: a feedback delay
  that fills the gaps between notes;
- dissonance, more: the excerpt plus itself a semitone up; less: plus itself an octave up.

For each quality and change: how many excerpts moved the right way, and the mean change on the
0-1 scale. A quality counts when at least 75 % move the right way by at least 0.05 on average
(the issue's bar). Prints JSON; several ``--model`` files are compared on the same changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dawemo import constants as C  # noqa: E402

SR = C.SAMPLE_RATE


def tape_wander(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    depth, period_s = rng.uniform(0.06, 0.10), rng.uniform(1.5, 3.0)
    t = np.arange(len(x)) / SR
    rate = 1 + depth * np.sin(2 * np.pi * t / period_s + rng.uniform(0, 2 * np.pi))
    position = np.cumsum(rate) - rate[0]
    position = position[position < len(x) - 1]
    return np.interp(position, np.arange(len(x)), x).astype(np.float32)


def off_grid_echo(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    delay = int(rng.uniform(0.11, 0.19) * SR)
    echo = np.r_[np.zeros(delay, np.float32), x[:-delay]]
    return (x + 0.63 * echo).astype(np.float32)


def expander(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain falls 4 dB per dB once the fast envelope is more than 8 dB under its 0.4 s maximum."""
    frame = int(0.005 * SR)
    n = len(x) // frame
    env_db = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-10)
    window = int(0.4 / 0.005)
    padded = np.pad(env_db, window // 2, mode="edge")
    local_max = np.lib.stride_tricks.sliding_window_view(padded, window + 1).max(axis=1)[:n]
    below = np.maximum(0.0, local_max - env_db - 8.0)
    gain = 10 ** (-np.minimum(4.0 * below, 60.0) / 20)
    gain = np.repeat(gain, frame)
    return (x[: len(gain)] * gain).astype(np.float32)


def feedback_delay(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from pedalboard import Delay, Pedalboard

    board = Pedalboard([Delay(delay_seconds=rng.uniform(0.07, 0.11), feedback=0.55, mix=0.45)])
    return board(x[None], SR)[0]


def shifted_copy(semitones: float):
    def change(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from pedalboard import Pedalboard, PitchShift

        copy = Pedalboard([PitchShift(semitones=semitones)])(x[None], SR)[0]
        return (x + 0.5 * copy[: len(x)]).astype(np.float32)
    return change


# quality -> [(name, change, direction)]: direction +1 when the change adds the quality.
CHANGES = {
    "rhythm_stability": [("tape wander", tape_wander, -1)],
    "rhythm_complexity": [("off-grid echo", off_grid_echo, +1)],
    "articulation": [("expander", expander, +1), ("feedback delay", feedback_delay, -1)],
    "dissonance": [("semitone copy vs octave copy", None, +1)],
}


def summary(model, x: np.ndarray) -> np.ndarray:
    from dawemo.emotion.tracker import analyze_samples

    return analyze_samples(x, model).summary_midlevel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="ONNX file (repeatable); the shipped one by default")
    parser.add_argument("--soundtracks", default=None)
    parser.add_argument("--first", type=int, default=200, help="index of the first excerpt used")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    from dawemo.emotion.model import EmotionModel
    from dawemo.inputs.audio_io import load_audio
    from dawemo.training.soundtracks import find_root

    try:
        root = find_root(args.soundtracks)
    except FileNotFoundError as error:
        print(f"real_transforms: {error}", file=sys.stderr)
        return 2
    ids = sorted(p.stem for p in (root / "audio").glob("*.mp3"))[args.first : args.first + args.count]
    models = {path or "shipped": EmotionModel(path, use_gpu=False) for path in (args.model or [None])}
    changes = {name: [] for name in models}
    for n, excerpt in enumerate(ids):
        x = load_audio(root / "audio" / f"{excerpt}.mp3")
        rng = np.random.default_rng(int(excerpt))
        versions = {"original": x}
        for quality, entries in CHANGES.items():
            for label, change, _ in entries:
                if quality == "dissonance":
                    versions[f"{quality}:{label}:more"] = shifted_copy(1)(x, rng)
                    versions[f"{quality}:{label}:less"] = shifted_copy(12)(x, rng)
                else:
                    versions[f"{quality}:{label}"] = change(x, rng)
        for name, model in models.items():
            features = {key: summary(model, audio) for key, audio in versions.items()}
            row = {}
            for quality, entries in CHANGES.items():
                column = model.midlevel_names.index(quality)
                for label, _, direction in entries:
                    if quality == "dissonance":
                        delta = features[f"{quality}:{label}:more"][column] - features[f"{quality}:{label}:less"][column]
                    else:
                        delta = direction * (features[f"{quality}:{label}"][column] - features["original"][column])
                    row[f"{quality}: {label}"] = float(delta)
            changes[name].append(row)
        print(f"{n + 1}/{len(ids)}", file=sys.stderr, end="\r", flush=True)
    result = {"excerpts": len(ids), "first": args.first, "models": {}}
    for name, rows in changes.items():
        table = {}
        for key in rows[0]:
            deltas = np.array([r[key] for r in rows])
            right = float(np.mean(deltas > 0))
            table[key] = {"right_way": round(right, 3), "mean_change": round(float(deltas.mean()), 3),
                          "counts": bool(right >= 0.75 and deltas.mean() >= 0.05)}
        result["models"][name] = table
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
