"""Reading audio files into the model's format, with one clear error per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

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


def audio_duration_s(path: str | Path) -> float | None:
    """Length in seconds from the file's header (an estimate for some MP3s), or None when unreadable."""
    from pedalboard.io import AudioFile

    try:
        with AudioFile(str(path)) as opened:
            return opened.frames / opened.samplerate if opened.samplerate > 0 else None
    except Exception:  # the analysis reports the reason; a header scan only sizes a progress bar
        return None


class AudioFileReader:
    """An audio file read as mono float32 blocks at ``sample_rate``, so memory does not grow with length.

    Use it in a ``with`` statement; ``blocks()`` yields the samples that ``load_audio`` returns,
    cut into blocks (pedalboard's streaming resampler gives the same samples for any block size).

    Args:
        path: any format pedalboard reads.
        sample_rate: rate of the blocks, in Hz.
        block_s: seconds of audio per block (the last one is shorter).
    Raises:
        AudioInputError: on entering (missing, empty, truncated or undecodable file) and from
            ``blocks()`` (decoding fails part way, or NaN or infinite samples).
    """

    def __init__(self, path: str | Path, sample_rate: int = C.SAMPLE_RATE, block_s: float = 20.0) -> None:
        if not block_s > 0:
            raise ValueError(f"block_s must be positive, got {block_s}")
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.block_frames = max(1, int(round(block_s * sample_rate)))
        self.duration_s = 0.0  # from the header once open: an estimate for some MP3s
        self._file = None
        self._reader = None

    def __enter__(self) -> AudioFileReader:
        from pedalboard.io import AudioFile

        problem = path_problem(self.path) or wav_truncation(self.path)
        if problem:
            raise AudioInputError(problem)
        try:
            self._file = AudioFile(str(self.path))
            if self._file.frames == 0 or self._file.num_channels == 0:
                raise AudioInputError(f"{self.path}: contains no audio frames")
            self._reader = self._file.resampled_to(float(self.sample_rate))
            self.duration_s = self._reader.frames / self.sample_rate
        except BaseException as error:
            self.close()
            if isinstance(error, AudioInputError) or not isinstance(error, Exception):
                raise
            raise self._decode_error(error) from None
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for opened in (self._reader, self._file):
            if opened is not None:
                opened.close()
        self._file = self._reader = None

    def _decode_error(self, error: Exception) -> AudioInputError:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return AudioInputError(f"{self.path}: cannot decode audio ({reason})")

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks of ``block_frames`` samples (fewer in the last) until the file ends."""
        if self._reader is None:
            raise AudioInputError(f"{self.path}: not open; use AudioFileReader in a 'with' statement")
        total = 0
        while True:
            try:
                block = self._reader.read(self.block_frames)
            except Exception as error:  # pedalboard raises several types for unreadable files
                raise self._decode_error(error) from None
            if block.shape[-1] == 0:  # read returns fewer frames only at the end
                break
            mono = to_mono(block)
            if not np.all(np.isfinite(mono)):
                raise AudioInputError(f"{self.path}: audio contains NaN or infinite samples")
            total += mono.size
            yield mono
        if total == 0:
            raise AudioInputError(f"{self.path}: contains no audio frames")


def load_audio(path: str | Path, sample_rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """Decode any format pedalboard reads to mono float32 at ``sample_rate``, whole.

    For long files, read blocks with ``AudioFileReader`` instead.

    Raises:
        AudioInputError: missing, empty, unreadable or non-finite audio.
    """
    with AudioFileReader(path, sample_rate, block_s=600.0) as reader:
        blocks = list(reader.blocks())
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
