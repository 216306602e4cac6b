"""Do the features follow real recordings changed so that they hold more, or less, of one quality?

    python bench/real_transforms.py [--model FILE ...] [--first 200] [--count 100] [--soundtracks DIR]

Each soundtrack excerpt is changed in ways whose effect on one quality is known by construction,
and the model's whole-clip feature of that quality is compared between the version with more of it
and the one with less. These changes are *not* the ones the branches are trained with
(``dawemo/training/rhythm_branch.py``, ``dawemo/training/pair_refine.py``), and by default the
excerpts are the 100 neither made pairs from, so this checks that the features carry over rather
than re-scoring the training pairs:

- melodiousness, less: every 0.4-0.7 s piece played backwards; more: a stepwise clarinet-like line
  in the excerpt's key added;
- rhythm stability, less: a tape-speed wander (playback rate drifting ±6-10 % over 1.5-3 s);
- rhythm complexity, more: the excerpt plus its own echo 110-190 ms later, off any beat grid;
- articulation, more: a downward expander that cuts the tail of every note; less: a feedback delay
  that fills the gaps between notes;
- dissonance, more: the excerpt plus itself a semitone up, against plus itself an octave up;
- tonal stability, less: every other second a tritone up; and a drone on the excerpt's tonic
  against the same drone a tritone away;
- minorness, more: a sustained minor triad pad on the excerpt's tonic against the major one.

The key comes from the excerpt's chroma (key-profile correlation); where that estimate is wrong,
the clarinet line, the drones and the pads hold less of the contrast they are meant to.

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


def reversed_pieces(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every 0.4-0.7 s piece played backwards, 10 ms fades: lines run the wrong way and break at each piece."""
    out, start, fade = [], 0, int(0.01 * SR)
    while start < len(x):
        piece = x[start : start + int(rng.uniform(0.4, 0.7) * SR)][::-1].copy()
        k = min(fade, len(piece) // 2)
        piece[:k] *= np.linspace(0, 1, k)
        piece[len(piece) - k :] *= np.linspace(1, 0, k)
        out.append(piece)
        start += len(piece)
    return np.concatenate(out).astype(np.float32)


def _voice(x: np.ndarray, rng: np.random.Generator, notes: list[tuple[int, float, float]],
           harmonics: tuple[float, ...], level_db: float) -> np.ndarray:
    """``x`` plus a plain additive voice playing (midi, start_s, length_s), ``level_db`` under ``x``."""
    layer = np.zeros(len(x) + SR, np.float32)
    for midi, start_s, length_s in notes:
        t = np.arange(int(length_s * SR)) / SR
        f = 440 * 2 ** ((midi - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f * (k + 1) * t) for k, a in enumerate(harmonics) if a and f * (k + 1) < SR / 2)
        envelope = np.minimum(1, np.minimum(t / 0.06, (length_s - t) / 0.1)).clip(0)
        at = int(start_s * SR)
        end = min(len(layer), at + len(t))
        layer[at:end] += (tone * envelope)[: end - at]
    layer = layer[: len(x)]
    scale = np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(layer ** 2)) + 1e-9) * 10 ** (level_db / 20)
    return (x + scale * layer).astype(np.float32)


SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}


def clarinet_line(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt with a stepwise clarinet-like line in its key vs the excerpt alone."""
    from dawemo.training.pair_refine import excerpt_key

    tonic, minor = excerpt_key(x)
    notes, degree, t = [], 4, 0.2
    while t < len(x) / SR:
        length = float(rng.choice([0.4, 0.6, 0.8, 1.2]))
        degree = int(np.clip(degree + rng.choice([-1, 1, -2, 2, 0, 1, -1]), 0, 11))
        notes.append((55 + tonic + 12 * (degree // 7) + SCALES[minor][degree % 7], t, length))
        t += length
    return _voice(x, rng, notes, (1, 0, 0.4, 0, 0.2, 0, 0.1), -4.0), x


def triad_pad(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt with a sustained minor triad pad on its tonic vs the same pad in major."""
    from dawemo.training.pair_refine import excerpt_key

    tonic, _ = excerpt_key(x)
    root, length_s = 48 + tonic, len(x) / SR
    pads = [_voice(x, rng, [(m, 0.0, length_s) for m in (root, root + third, root + 7, root + 12 + third)],
                   (1, 0.5, 0.3, 0.15), -6.0) for third in (3, 4)]
    return pads[0], pads[1]


def tonic_drone(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(more, less): the excerpt over a drone on its tonic and fifth vs the same drone a tritone away."""
    from dawemo.training.pair_refine import excerpt_key

    tonic, _ = excerpt_key(x)
    length_s = len(x) / SR
    drones = [_voice(x, rng, [(36 + pc, 0.0, length_s), (43 + pc, 0.0, length_s), (48 + pc, 0.0, length_s)],
                     (1, 0.5, 0.3, 0.15), -6.0) for pc in (tonic, (tonic + 6) % 12)]
    return drones[0], drones[1]


def alternating_key(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every other second replaced by the excerpt a tritone up (20 ms crossfades): the key keeps moving."""
    from pedalboard import Pedalboard, PitchShift

    moved = Pedalboard([PitchShift(semitones=6)])(x[None], SR)[0][: len(x)]
    second = np.arange(len(x)) // SR % 2
    blend = np.convolve(second.astype(np.float64), np.ones(int(0.02 * SR)) / int(0.02 * SR), mode="same")
    return (x * (1 - blend) + moved * blend).astype(np.float32)


def semitone_vs_octave(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return shifted_copy(1)(x, rng), shifted_copy(12)(x, rng)


def less_than_original(change):
    return lambda x, rng: (x, change(x, rng))


def more_than_original(change):
    return lambda x, rng: (change(x, rng), x)


# quality -> [(name, change)]: each change gives (audio with more of the quality, audio with less).
CHANGES = {
    "melodiousness": [("pieces reversed", less_than_original(reversed_pieces)),
                      ("clarinet line added", clarinet_line)],
    "rhythm_stability": [("tape wander", less_than_original(tape_wander))],
    "rhythm_complexity": [("off-grid echo", more_than_original(off_grid_echo))],
    "articulation": [("expander", more_than_original(expander)), ("feedback delay", less_than_original(feedback_delay))],
    "dissonance": [("semitone copy vs octave copy", semitone_vs_octave)],
    "tonal_stability": [("key alternating by a tritone", less_than_original(alternating_key)),
                        ("tonic drone vs tritone drone", tonic_drone)],
    "minorness": [("minor vs major triad pad", triad_pad)],
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
        versions = {}
        for quality, entries in CHANGES.items():
            for label, change in entries:
                versions[f"{quality}: {label}"] = change(x, rng)
        for name, model in models.items():
            features = {}
            row = {}
            for key, (more, less) in versions.items():
                column = model.midlevel_names.index(key.split(":")[0])
                for audio in (more, less):
                    if id(audio) not in features:
                        features[id(audio)] = summary(model, audio)
                row[key] = float(features[id(more)][column] - features[id(less)][column])
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
