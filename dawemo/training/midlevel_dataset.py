"""The Mid-level Perceptual Features dataset (Aljanaki & Soleymani 2018): ratings and spectrograms.

Layout as distributed::

    <root>/metadata_annotations/annotations.csv   comma-separated: song_id + 7 quality ratings
    <root>/metadata_annotations/metadata.csv      semicolon-separated: song id, Source, ...
    <root>/audio/<song_id>.mp3

Clips whose Source is the Soundtracks set are excluded by default, because dawemo evaluates
the emotion head on Soundtracks and a mid-level model trained on those excerpts would leak.
The audio is copyrighted; only derived spectrograms are cached locally (``cache/``, git-ignored).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dawemo import constants as C
from dawemo.inputs.audio_io import load_audio
from dawemo.emotion.frontend import spectrogram
from dawemo.training.spectrogram_pack import decode, encode, pack_keys, read_encoded, write_encoded

log = logging.getLogger(__name__)

ANNOTATIONS_CSV = Path("metadata_annotations") / "annotations.csv"
METADATA_CSV = Path("metadata_annotations") / "metadata.csv"
AUDIO_DIR = "audio"
# 8-bit log magnitudes, as every training cache (dawemo.training.spectrogram_pack): 5000 clips of
# ~15 s take ~350 MB instead of the ~1.4 GB of float32.
CACHE_FILENAME = "midlevel_spectrograms.u8.npz"

# Raters answered on a 1..10 scale (a few aggregated values fall slightly outside it).
RATING_SCALE = (1.0, 10.0)

# Header spellings seen in the distributed files -> our names (after _normalise_header).
# Keys are compared without separators, so "Song ID", "song_id" and "songid" all match.
_ALIASES = {"melody": "melodiousness", "songid": "song_id"}
_SONG_ID = "song_id"
_SOURCE = "source"
_SOURCE_ID = "id_at_file_source"

# Stored beside the spectrograms so that a cache built with other front-end settings is rebuilt.
_FRONTEND_KEY = "__frontend__"
_FRONTEND = np.array([C.SAMPLE_RATE, C.FRAME_SIZE, C.HOP_SIZE, C.FMIN_HZ, C.FMAX_HZ,
                      C.BANDS_PER_OCTAVE, C.N_BANDS], dtype=np.float64)


class MidlevelDatasetError(Exception):
    """The dataset cannot be read; the message is one line naming the file and the problem."""


@dataclass
class MidlevelClip:
    song_id: str
    audio_path: Path
    source: str  # the metadata Source column ("" if the song has no metadata row)
    ratings: np.ndarray  # (7,) float32 in [0, 1], MIDLEVEL_NAMES order
    raw_ratings: np.ndarray  # (7,) float32 on the ~1-10 rating scale, MIDLEVEL_NAMES order
    source_id: str = ""  # "ID at file source": the clip's id within its source collection


class MidlevelClips(list):
    """A list of MidlevelClip that also records which annotated songs were left out and why."""

    def __init__(self, clips=(), excluded_ids=(), missing_audio_ids=(), missing_metadata_ids=()):
        super().__init__(clips)
        self.excluded_ids = list(excluded_ids)  # dropped by exclude_sources (leakage)
        self.missing_audio_ids = list(missing_audio_ids)  # annotated but no <song_id>.mp3
        self.missing_metadata_ids = list(missing_metadata_ids)  # kept, source unknown

    @property
    def n_excluded(self) -> int:
        return len(self.excluded_ids)

    @property
    def n_missing_audio(self) -> int:
        return len(self.missing_audio_ids)


def rescale(raw: np.ndarray) -> np.ndarray:
    """Ratings on the 1..10 scale, any shape -> float32 in [0, 1] (min-max, clipped)."""
    low, high = RATING_SCALE
    return np.clip((np.asarray(raw, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def _normalise_header(name: str) -> str:
    """'\\ufeffSong ID ' -> 'song_id'; 'Melody' -> 'melodiousness'."""
    key = re.sub(r"[\s_\-]+", "_", name.replace("\ufeff", "").strip().lower()).strip("_")
    return _ALIASES.get(key.replace("_", ""), key)


def _sniff_delimiter(header_line: str, default: str) -> str:
    """The most frequent of , ; tab in the header line (the two files use different ones)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else default


def _read_table(path: Path, default_delimiter: str) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """A CSV file -> ({normalised column: index}, [(line number, stripped cells)]), blank rows dropped."""
    if not path.is_file():
        raise MidlevelDatasetError(f"{path}: no such file")
    try:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM
    except OSError as error:
        raise MidlevelDatasetError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # metadata titles are not always UTF-8; only ASCII columns are used
        text = data.decode("latin-1")
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    # newline="" lets the csv module handle quoted cells that span lines, as it documents;
    # reader.line_num then stays the physical line number used in error messages.
    delimiter = _sniff_delimiter(header_line, default_delimiter)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    if header is None:
        raise MidlevelDatasetError(f"{path}: file is empty (expected a header row)")
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _normalise_header(name)
        if key in columns and key:
            raise MidlevelDatasetError(
                f"{path}: two columns mean {key!r} ({header[columns[key]]!r}, {name!r})")
        columns.setdefault(key, index)
    rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader if any(c.strip() for c in row)]
    return columns, rows


# How a missing column is named in errors: the spelling(s) the user should look for.
_SPELLINGS = {"melodiousness": "'melodiousness' (or 'melody')", _SONG_ID: "'song_id' (or 'song id')",
              _SOURCE: "'Source'"}


def _require(path: Path, columns: dict[str, int], names) -> None:
    """Raise naming the first required column that the header lacks."""
    for name in names:
        if name not in columns:
            found = ", ".join(sorted(k for k in columns if k))
            raise MidlevelDatasetError(
                f"{path}: missing required column {_SPELLINGS.get(name, repr(name))} (found: {found})")


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def read_annotations(path: Path) -> dict[str, np.ndarray]:
    """annotations.csv -> {song_id: (7,) float32 raw ratings in MIDLEVEL_NAMES order}, file order."""
    columns, rows = _read_table(path, ",")
    _require(path, columns, (_SONG_ID, *C.MIDLEVEL_NAMES))
    ratings: dict[str, np.ndarray] = {}
    for line, row in rows:
        song_id = _cell(row, columns[_SONG_ID])
        if not song_id:
            raise MidlevelDatasetError(f"{path}, line {line}: empty song_id")
        if song_id in ratings:
            raise MidlevelDatasetError(f"{path}, line {line}: duplicate song_id {song_id!r}")
        ratings[song_id] = np.array([_rating(path, line, name, _cell(row, columns[name]))
                                     for name in C.MIDLEVEL_NAMES], dtype=np.float32)
    return ratings


def _rating(path: Path, line: int, column: str, text: str) -> float:
    """One rating cell -> float, or an error naming file, line and column."""
    if not text:
        raise MidlevelDatasetError(
            f"{path}, line {line}: column {column!r} has no rating (empty or missing cell)")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise MidlevelDatasetError(f"{path}, line {line}: column {column!r} has non-numeric rating {text!r}")
    return value


def read_metadata(path: Path) -> dict[str, tuple[str, str]]:
    """metadata.csv -> {song_id: (Source, ID at file source)}; other columns are ignored."""
    columns, rows = _read_table(path, ";")
    _require(path, columns, (_SONG_ID, _SOURCE))
    source_id_col = columns.get(_SOURCE_ID)
    metadata = {}
    for _, row in rows:
        source_id = _cell(row, source_id_col) if source_id_col is not None else ""
        metadata[_cell(row, columns[_SONG_ID])] = (_cell(row, columns[_SOURCE]), source_id)
    return metadata


def _audio_files(audio_dir: Path) -> dict[str, Path]:
    """{song_id: path} for every <song_id>.mp3 (suffix case-insensitive) in ``audio_dir``."""
    if not audio_dir.is_dir():
        raise MidlevelDatasetError(f"{audio_dir}: no such directory (expected <song_id>.mp3 files)")
    return {p.stem: p for p in audio_dir.iterdir() if p.suffix.lower() == ".mp3" and p.is_file()}


def _is_excluded(source: str, exclude_sources) -> bool:
    """True if any of ``exclude_sources`` is a case-insensitive substring of ``source``."""
    return any(s.lower() in source.lower() for s in exclude_sources or () if s)


def load_midlevel_dataset(root: str | Path, exclude_sources=("soundtracks",)) -> MidlevelClips:
    """Clips with audio and ratings, in annotation-file order, minus those from ``exclude_sources``.

    ``exclude_sources`` are case-insensitive substrings of the metadata Source column (() keeps
    all). The returned list also carries ``excluded_ids`` / ``n_excluded`` (a song from an excluded
    source counts there even without audio), ``missing_audio_ids`` / ``n_missing_audio`` and
    ``missing_metadata_ids``; the counts are logged too.

    Raises:
        MidlevelDatasetError: missing root/file/column, non-numeric rating, or no usable clip.
    """
    root = Path(root)
    if not root.is_dir():
        raise MidlevelDatasetError(f"{root}: Mid-level dataset root not found (no such directory)")
    annotations = read_annotations(root / ANNOTATIONS_CSV)
    metadata = read_metadata(root / METADATA_CSV)
    audio = _audio_files(root / AUDIO_DIR)
    clips = MidlevelClips()
    for song_id, raw in annotations.items():
        source, source_id = metadata.get(song_id, ("", ""))
        if song_id not in metadata:
            clips.missing_metadata_ids.append(song_id)
        if _is_excluded(source, exclude_sources):
            clips.excluded_ids.append(song_id)
        elif song_id not in audio:
            clips.missing_audio_ids.append(song_id)
        else:
            clips.append(MidlevelClip(song_id, audio[song_id], source, rescale(raw), raw, source_id))
    _log_summary(root, clips, exclude_sources)
    if not clips:
        raise MidlevelDatasetError(
            f"{root}: no usable clips ({len(annotations)} annotated, {clips.n_excluded} excluded by source, "
            f"{clips.n_missing_audio} without audio in {root / AUDIO_DIR})")
    return clips


def _log_summary(root: Path, clips: MidlevelClips, exclude_sources) -> None:
    """Log what was left out, so that a silent exclusion cannot hide a leakage or a bad copy."""
    log.info("%s: %d clips; %d excluded (sources %s); %d annotated without audio",
             root, len(clips), clips.n_excluded, tuple(exclude_sources or ()), clips.n_missing_audio)
    if clips.missing_audio_ids:
        log.warning("%s: %d annotated songs have no audio file, e.g. %s", root,
                    clips.n_missing_audio, clips.missing_audio_ids[:5])
    if clips.missing_metadata_ids:
        # Without a Source we cannot tell whether the clip comes from Soundtracks.
        log.warning("%s: %d annotated songs have no metadata row (source unknown, kept), e.g. %s",
                    root, len(clips.missing_metadata_ids), clips.missing_metadata_ids[:5])


def _read_cache(path: Path, wanted: set[str]) -> dict[str, tuple[np.ndarray, float]]:
    """Cached {song_id: (uint8 codes, lowest level)}: only ``wanted`` if all are there, else every
    entry (the file is rewritten with the new ones); {} if absent or built differently."""
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as stored:
        if _FRONTEND_KEY not in stored.files or not np.array_equal(stored[_FRONTEND_KEY], _FRONTEND):
            log.warning("%s: built with other front-end settings; recomputing", path)
            return {}
        keys = set(pack_keys(stored))
        # Read only what is asked for unless we must rewrite.
        return read_encoded(stored, wanted if wanted <= keys else keys)


def spectrograms(clips, cache_dir: str | Path = "cache", progress=None) -> list[np.ndarray]:
    """Filterbank spectrograms of ``clips``: list of float32 (n_frames, 149), clip order.

    Decodes each clip once with ``load_audio`` and caches by song_id in
    ``cache_dir/midlevel_spectrograms.u8.npz``, 8-bit like every training cache; what is returned
    is always the cached form, decoded, so a first run and a later one train on the same values.
    ``progress(done, to_decode)`` is called per decoded clip. Clips decoded before an error or
    interrupt are still cached.
    """
    path = Path(cache_dir) / CACHE_FILENAME
    cached = _read_cache(path, {clip.song_id for clip in clips})
    todo = list({clip.song_id: clip for clip in clips if clip.song_id not in cached}.values())
    try:
        for n, clip in enumerate(todo):
            cached[clip.song_id] = encode(spectrogram(load_audio(clip.audio_path)))
            if progress:
                progress(n + 1, len(todo))
    finally:
        if todo and any(clip.song_id in cached for clip in todo):
            # Atomic, so that an interrupted write never leaves a truncated cache behind.
            write_encoded(path, cached, extra={_FRONTEND_KEY: _FRONTEND})
    return [decode(*cached[clip.song_id]) for clip in clips]
