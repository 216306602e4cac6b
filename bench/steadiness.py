"""Live steadiness against responsiveness: how much a preset's lanes flicker while one piece plays,
compared with how much they differ between pieces, and how fast they follow a change of music.

    python bench/steadiness.py [--preset default] [--window-s 2.1 3 4] [--steady-s 0 15] [--smoothing 0.3:0.8 1:1.5]
                               [--interpolation none linear] [--excerpts 300]

For every window length, change-aware averaging time constant (``--steady-s``, 0: off), smoothing
(attack_s:release_s of every lane) and hop interpolation given, each Soundtracks
excerpt runs through the tracker and the preset's mapping as ``dawemo run`` does (same updates,
same control ticks); each lane's mapped value is sampled every 0.1 s once the first window is full.

- **steadiness** of a lane: the spread of its per-excerpt means across excerpts, divided by the
  root-mean-square of its spread within an excerpt. 1 means a lane wobbles on one piece as much as
  it differs between pieces; the issue asks for >= 3 on emotion lanes and >= 2 on feature lanes.
- **responsiveness**: ``bench/responsiveness.py``'s calm -> energetic and back pairs, measured on
  the mapped emotion lanes: seconds from the change until a clearly changing lane is half way to
  its new level (median and 90th percentile).

The joint network heard these excerpts in training, so its features (dissonance, minorness) are
steadier here than on unseen music; the branch features (melodiousness, tonal stability, rhythm,
articulation) never heard them. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dawemo import constants as C  # noqa: E402

SAMPLE_EVERY_S = 0.1
_updates: dict = {}  # (model, clip identity, window_s, hop_s) -> tracker updates: smoothings share them


def lane_curves(model, preset, audio: np.ndarray, window_s: float, hop_s: float,
                steady_s: float = C.DEFAULT_STEADY_S) -> tuple[np.ndarray, np.ndarray]:
    """(times, values (n_times, n_lanes)): each lane's mapped value sampled every 0.1 s."""
    from dawemo.emotion.tracker import EmotionTracker
    from dawemo.outputs.mapping import CcMapper

    mapper = CcMapper(preset)
    times, rows = [], []
    names = list(model.emotion_names) + list(model.midlevel_names)
    key = (id(model), id(audio), window_s, hop_s, steady_s)
    if key not in _updates:
        _updates[key] = EmotionTracker(model, window_s, hop_s, steady_s).process(audio)
    updates = _updates[key]
    if not updates:
        return np.zeros(0), np.zeros((0, len(preset.lanes)))
    now = updates[0].time_s
    for update, following in zip(updates, updates[1:] + [None]):
        mapper.push(update.time_s, dict(zip(names, np.r_[update.emotions, update.midlevel])))
        end = following.time_s if following else update.time_s + hop_s
        while now < end:
            mapper.tick(now)
            times.append(now)
            rows.append([np.nan if v is None else v for v in mapper.mapped_values()])
            now += SAMPLE_EVERY_S
    return np.array(times), np.array(rows, dtype=np.float64)


def with_smoothing(preset, attack_s: float, release_s: float):
    return replace(preset, lanes=[replace(lane, attack_s=attack_s, release_s=release_s) for lane in preset.lanes])


def steadiness(model, preset, clips: list[np.ndarray], window_s: float, hop_s: float,
               steady_s: float = C.DEFAULT_STEADY_S) -> dict:
    means, within = [], []
    for audio in clips:
        times, values = lane_curves(model, preset, audio, window_s, hop_s, steady_s)
        steady = values[times >= times[0] + window_s] if len(times) else values
        if len(steady) < 10:
            continue
        means.append(np.nanmean(steady, axis=0))
        within.append(np.nanvar(steady, axis=0))
    between = np.std(means, axis=0)
    wobble = np.sqrt(np.mean(within, axis=0))
    return {lane.name: round(float(b / max(w, 1e-9)), 2) for lane, b, w in zip(preset.lanes, between, wobble)}


def responsiveness(model, preset, pairs: list[tuple[np.ndarray, np.ndarray]], window_s: float, hop_s: float,
                   steady_s: float = C.DEFAULT_STEADY_S, min_change: float = 0.1) -> dict:
    """Half-way times of the emotion lanes (mapped values, as a fraction of their range).

    ``pairs``: (first part, first and second parts joined) per change of music."""
    emotion_lanes = [i for i, lane in enumerate(preset.lanes) if lane.source in C.EMOTION_NAMES]
    result = []
    for first, joined in pairs:
        change_s = len(first) / model.sample_rate
        times, values = lane_curves(model, preset, joined, window_s, hop_s, steady_s)
        for i in emotion_lanes:
            lane = preset.lanes[i]
            span = (lane.out_max - lane.out_min) or 1.0
            curve = values[:, i] / span
            old = curve[(times > change_s - 3) & (times <= change_s)].mean()
            new = curve[times >= change_s + window_s + 4].mean()
            if not np.isfinite(old) or not np.isfinite(new) or abs(new - old) < min_change:
                continue
            progress = (curve - old) / (new - old)
            crossed = np.nonzero((times > change_s) & (progress >= 0.5))[0]
            if len(crossed):
                result.append(float(times[crossed[0]] - change_s))
    return {"curves": len(result), "median_half_way_s": round(float(np.median(result)), 2) if result else None,
            "p90_half_way_s": round(float(np.percentile(result, 90)), 2) if result else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundtracks", type=Path, default=None)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--window-s", type=float, nargs="+", default=[C.DEFAULT_WINDOW_S])
    parser.add_argument("--hop-s", type=float, default=C.DEFAULT_HOP_S)
    parser.add_argument("--steady-s", type=float, nargs="+", default=[C.DEFAULT_STEADY_S],
                        help="change-aware averaging time constants to try (0: each window alone)")
    parser.add_argument("--smoothing", nargs="+", default=None,
                        help="attack_s:release_s for every lane (the preset's own when left out)")
    parser.add_argument("--interpolation", nargs="+", default=None, choices=["none", "linear"],
                        help="hop interpolations to try (the preset's own when left out)")
    parser.add_argument("--excerpts", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    from dawemo.emotion.model import EmotionModel
    from dawemo.inputs.audio_io import load_audio
    from dawemo.outputs.mapping import PresetError
    from dawemo.outputs.preset_file import load_preset
    from dawemo.training.soundtracks import find_root
    from responsiveness import contrasting_pairs

    try:
        root = find_root(args.soundtracks)
        preset = load_preset(args.preset)
    except (FileNotFoundError, PresetError) as error:
        print(f"steadiness: {error}", file=sys.stderr)
        return 2
    model = EmotionModel(args.model, use_gpu=False)
    ids = sorted(p.stem for p in (root / "audio").glob("*.mp3"))[: args.excerpts]
    cache: dict[str, np.ndarray] = {}

    def clip(number: str) -> np.ndarray:
        if number not in cache:
            cache[number] = load_audio(root / "audio" / f"{number}.mp3")
        return cache[number]

    clips = [clip(i) for i in ids]
    pairs = []
    for calm, intense in contrasting_pairs(root, args.pairs):
        a, b = (np.resize(clip(x), 20 * model.sample_rate).astype(np.float32) for x in (calm, intense))
        pairs += [(a, b), (b, a)]
    joined = [np.concatenate(p) for p in pairs]  # kept alive so their ids stay unique in the cache
    smoothings = [tuple(float(v) for v in s.split(":")) for s in args.smoothing] if args.smoothing else [None]
    interpolations = args.interpolation or [preset.interpolation]
    settings = [(w, s, m, i) for w in args.window_s for s in args.steady_s for m in smoothings for i in interpolations]
    results = []
    for window_s, steady_s, smoothing, interpolation in settings:
        tuned = with_smoothing(preset, *smoothing) if smoothing else preset
        tuned = replace(tuned, interpolation=interpolation)
        lanes = steadiness(model, tuned, clips, window_s, args.hop_s, steady_s)
        emotion = [v for lane, v in zip(tuned.lanes, lanes.values()) if lane.source in C.EMOTION_NAMES]
        feature = [v for lane, v in zip(tuned.lanes, lanes.values()) if lane.source in C.MIDLEVEL_NAMES]
        row = {"window_s": window_s, "hop_s": args.hop_s, "steady_s": steady_s,
               "attack_s:release_s": "preset" if smoothing is None else f"{smoothing[0]}:{smoothing[1]}",
               "interpolation": interpolation,
               "lowest_emotion_lane": min(emotion) if emotion else None,
               "lowest_feature_lane": min(feature) if feature else None,
               "responsiveness": responsiveness(model, tuned, [(p[0], j) for p, j in zip(pairs, joined)],
                                                 window_s, args.hop_s, steady_s),
               "calm_to_energetic": responsiveness(model, tuned, [(p[0], j) for p, j in zip(pairs[::2], joined[::2])],
                                                   window_s, args.hop_s, steady_s),
               "lanes": lanes}
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "lanes"}), file=sys.stderr, flush=True)
    print(json.dumps({"model": f"{model.name} v{model.version}", "preset": preset.name, "excerpts": len(clips),
                      "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
