"""The Soundtracks set (Eerola & Vuoskoski 2011): ratings, album groups and cached spectrograms.

The audio is copyrighted and stays in ``../shared/data/soundtracks``; only derived spectrograms
are cached locally (``cache/``, git-ignored).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dawemo import constants as C
from dawemo.training.spectrogram_pack import load_pack, save_pack

CACHE_FILENAME = "soundtracks_spectrograms.u8.npz"
DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "soundtracks"


@dataclass
class SoundtrackSet:
    ids: list[str]
    ratings: np.ndarray  # (n, 8) on the 1-9 scale, in EMOTION_NAMES order
    targets: list[str]  # the emotion each excerpt was chosen to express (not used for tuning)
    albums: list[str]  # album name, for album-grouped cross-validation
    spectrograms: list[np.ndarray]  # (n_frames, n_bands) linear filterbank magnitudes


def find_root(root: str | Path | None = None) -> Path:
    path = Path(root) if root else DEFAULT_ROOT
    if not (path / "ratings.csv").exists():
        raise FileNotFoundError(
            f"Soundtracks data not found at {path} (expected ratings.csv and audio/); "
            "pass --soundtracks DIR"
        )
    return path


def load_soundtracks(root: str | Path | None = None, cache_dir: str | Path = "cache",
                     progress=None) -> SoundtrackSet:
    """Ratings plus spectrograms (decoded once, then read from ``cache_dir``)."""
    root = find_root(root)
    with open(root / "ratings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(root / "tracklist.csv", newline="") as f:
        album_by_id = {row["Nro"].strip(): row["Album name"].strip() for row in csv.DictReader(f)}
    ids = [row["number"].strip() for row in rows]
    ratings = np.array([[float(row[name]) for name in C.EMOTION_NAMES] for row in rows], dtype=np.float32)
    cache = Path(cache_dir) / CACHE_FILENAME
    if cache.exists():
        stored = load_pack(cache, ids)
        spectrograms = [stored[i] for i in ids]
    else:
        from dawemo.inputs.audio_io import load_audio  # pedalboard: not needed when the cache travels
        from dawemo.emotion.frontend import spectrogram

        spectrograms = []
        for n, i in enumerate(ids):
            spectrograms.append(spectrogram(load_audio(root / "audio" / f"{i}.mp3")))
            if progress:
                progress(n + 1, len(ids))
        save_pack(cache, dict(zip(ids, spectrograms)))
        spectrograms = list(load_pack(cache, ids).values())  # train on exactly what later runs will read
    return SoundtrackSet(ids, ratings, [row["TARGET"].strip() for row in rows],
                         [album_by_id.get(i, i) for i in ids], spectrograms)
