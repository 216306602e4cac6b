"""Training spectrogram caches, stored as 8-bit log magnitudes.

Linear filterbank magnitudes are stored as ``uint8`` codes on a log scale: 256 steps over the
140 dB below each clip's loudest bin, 0.55 dB apart (rounding error at most 0.27 dB), and code 0
stands for silence. The network only sees magnitudes relative to a floor 60 dB below the mean
of its context, so nothing it can see is lost; the cache is a quarter of float32 and compresses
further, small enough to travel to a GPU machine (``scripts/train_sweep.py``).

Every training run, on any machine, reads its spectrograms through this cache, so a model
trained on a GPU from a carried cache and one trained here from the audio see the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RANGE_DECADES = 7.0  # 140 dB of magnitude below each clip's maximum
STEP_DECADES = RANGE_DECADES / 255
STEP_DB = 20 * STEP_DECADES


def encode(magnitudes: np.ndarray) -> tuple[np.ndarray, float]:
    """(n_frames, n_bands) linear magnitudes -> uint8 codes and the log10 level of code 1."""
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    peak = float(magnitudes.max()) if magnitudes.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros(magnitudes.shape, dtype=np.uint8), 0.0
    lowest = np.log10(peak) - RANGE_DECADES + STEP_DECADES  # code 1; code 0 is silence
    with np.errstate(divide="ignore"):
        steps = np.round((np.log10(magnitudes) - lowest) / STEP_DECADES) + 1
    return np.clip(np.nan_to_num(steps, neginf=0.0), 0, 255).astype(np.uint8), lowest


def decode(codes: np.ndarray, lowest: float) -> np.ndarray:
    """uint8 codes -> float32 linear magnitudes (code 0 -> 0)."""
    levels = (10.0 ** (lowest + (np.arange(256) - 1) * STEP_DECADES)).astype(np.float32)
    levels[0] = 0.0
    return levels[codes]


def save_pack(path: str | Path, spectrograms: dict[str, np.ndarray]) -> Path:
    """Write ``{key: magnitudes}`` compressed and atomically (an interrupted write leaves no file)."""
    return write_encoded(path, {key: encode(magnitudes) for key, magnitudes in spectrograms.items()})


def load_pack(path: str | Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a pack written by ``save_pack``: ``{key: float32 magnitudes}`` (only ``keys`` if given)."""
    with np.load(path, allow_pickle=False) as stored:
        missing = sorted(set(keys or []) - set(pack_keys(stored)))
        if missing:
            raise KeyError(f"{path} lacks {len(missing)} spectrograms (e.g. {missing[0]}); delete it to rebuild")
        return {key: decode(*encoded) for key, encoded in read_encoded(stored, keys).items()}


def write_encoded(path: str | Path, encoded: dict[str, tuple[np.ndarray, float]],
                  extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``{key: (codes, lowest)}`` and any ``extra`` arrays compressed and atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(extra or {})
    for key, (codes, lowest) in encoded.items():
        arrays[f"codes/{key}"], arrays[f"lowest/{key}"] = codes, np.array(lowest)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)
    return path


def pack_keys(stored) -> list[str]:
    """The spectrogram keys of an open pack (``np.load`` of a file written by ``write_encoded``)."""
    return [name[len("codes/"):] for name in stored.files if name.startswith("codes/")]


def read_encoded(stored, keys=None) -> dict[str, tuple[np.ndarray, float]]:
    """``{key: (codes, lowest)}`` of an open pack, for ``keys`` (all when None)."""
    return {key: (stored[f"codes/{key}"], float(stored[f"lowest/{key}"]))
            for key in (keys if keys is not None else pack_keys(stored))}
