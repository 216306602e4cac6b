"""Reading audio files into the model's format, with one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dawemo import constants as C


class AudioInputError(Exception):
    """An input file cannot be analysed; the message is one line meant for the user."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(channels, n) or (n,) float audio -> (n,) float32 mono (channel mean)."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=0) if samples.ndim == 2 else samples


def path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an audio file (missing, a folder, empty), or None."""
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a directory, not an audio file"
    if path.stat().st_size == 0:
        return f"{path}: file is empty"
    return None


def wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file whose data chunk is cut short, say so (pedalboard would zero-fill it)."""
    import struct

    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = path.stat().st_size - f.tell()
                if size != 0xFFFFFFFF and available < size:  # 0xFFFFFFFF: streamed, size unknown
                    return f"{path}: truncated WAV file ({available} of {size} audio bytes present)"
                return None
            f.seek(size + (size & 1), 1)


def load_audio(path: str | Path, sample_rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """Decode any format pedalboard reads to mono float32 at ``sample_rate``.

    Raises:
        AudioInputError: missing, empty, unreadable or non-finite audio.
    """
    from pedalboard.io import AudioFile

    path = Path(path)
    problem = path_problem(path) or wav_truncation(path)
    if problem:
        raise AudioInputError(problem)
    try:
        with AudioFile(str(path)) as opened:
            if opened.frames == 0 or opened.num_channels == 0:
                raise AudioInputError(f"{path}: contains no audio frames")
            with opened.resampled_to(float(sample_rate)) as resampled:
                samples = resampled.read(resampled.frames)
    except AudioInputError:
        raise
    except Exception as error:  # pedalboard raises several types for unreadable files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AudioInputError(f"{path}: cannot decode audio ({reason})") from None
    mono = to_mono(samples)
    if mono.size == 0:
        raise AudioInputError(f"{path}: contains no audio frames")
    if not np.all(np.isfinite(mono)):
        raise AudioInputError(f"{path}: audio contains NaN or infinite samples")
    return mono
