"""Loader for the Mid-level Perceptual Features dataset, on a tiny generated copy of its layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.training.midlevel_dataset import (
    MidlevelDatasetError,
    load_midlevel_dataset,
    rescale,
    spectrograms,
)

# Real header spelling: "melody" for melodiousness; padded names check whitespace tolerance.
ANNOTATION_HEADER = ("song_id, melody,articulation,rhythm_stability,rhythm_complexity,Dissonance ,"
                     "tonal_stability,minorness")
ANNOTATIONS = {  # song_id -> 7 raw ratings, in the file's (= MIDLEVEL_NAMES) column order
    "1": [1.0, 10.0, 5.5, 2.0, 3.0, 4.0, 7.0],
    "2": [2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
    "3": [0.5, 10.5, 1.0, 1.0, 1.0, 1.0, 1.0],  # just outside the 1..10 scale: clipped
    "4": [6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0],
    "5": [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0],  # from the Soundtracks set: excluded
    "6": [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # no audio file: skipped, counted
}
SOURCES = {"1": "Jamendo", "2": "Magnatagatune", "3": "Jamendo", "4": "Jamendo",
           "5": "Soundtracks", "6": "Jamendo"}
WITH_AUDIO = ("1", "2", "3", "4", "5")


def write_mp3(path, seconds=0.4, sample_rate=22050, seed=0):
    """A short mono sine-plus-noise clip written as real MP3 by pedalboard."""
    from pedalboard.io import AudioFile

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)[None, :]
    with AudioFile(str(path), "w", sample_rate, 1) as f:
        f.write(samples)


def write_annotations(root, header=ANNOTATION_HEADER, rows=None):
    lines = [header] + [",".join([i] + [str(v) for v in r]) for i, r in (rows or ANNOTATIONS).items()]
    (root / "metadata_annotations" / "annotations.csv").write_text("\n".join(lines) + "\n")


def write_dataset(root):
    """The distributed layout: annotations (comma), metadata (semicolon, BOM, quotes), audio/."""
    (root / "metadata_annotations").mkdir(parents=True)
    (root / "audio").mkdir()
    write_annotations(root)
    metadata = ['song id;file name;Source;ID at file source;Title ']
    metadata += [f'{i};{i}.mp3;"{s}" ;{100 + int(i)};"Title; with semicolon"' for i, s in SOURCES.items()]
    (root / "metadata_annotations" / "metadata.csv").write_bytes(
        ("\ufeff" + "\r\n".join(metadata) + "\r\n").encode("utf-8"))
    for n, i in enumerate(WITH_AUDIO):
        write_mp3(root / "audio" / f"{i}.mp3", seed=n)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("midlevel")
    write_dataset(root)
    return root


def test_ratings_are_mapped_rescaled_and_in_order(dataset_root):
    clips = load_midlevel_dataset(dataset_root)
    assert [c.song_id for c in clips] == ["1", "2", "3", "4"]
    by_id = {c.song_id: c for c in clips}
    np.testing.assert_allclose(by_id["2"].raw_ratings, ANNOTATIONS["2"])
    np.testing.assert_allclose(by_id["2"].ratings, (np.array(ANNOTATIONS["2"]) - 1) / 9, atol=1e-6)
    # melody -> melodiousness (index 0); articulation 10 -> 1.0; 5.5 -> 0.5.
    np.testing.assert_allclose(by_id["1"].ratings[:3], [0.0, 1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(by_id["3"].ratings[:2], [0.0, 1.0])  # clipped
    for clip in clips:
        assert clip.ratings.shape == (len(C.MIDLEVEL_NAMES),) and clip.ratings.dtype == np.float32
        assert clip.audio_path.name == f"{clip.song_id}.mp3" and clip.audio_path.exists()
    assert by_id["2"].source == "Magnatagatune" and by_id["2"].source_id == "102"


def test_rescale_uses_documented_scale():
    np.testing.assert_allclose(rescale([1.0, 10.0, 5.5, -3.0, 12.0]), [0.0, 1.0, 0.5, 0.0, 1.0])


def test_soundtracks_clips_excluded_and_missing_audio_counted(dataset_root, caplog):
    with caplog.at_level(logging.INFO, logger="dawemo.training.midlevel_dataset"):
        clips = load_midlevel_dataset(dataset_root)
    assert clips.excluded_ids == ["5"] and clips.n_excluded == 1
    assert clips.missing_audio_ids == ["6"] and clips.n_missing_audio == 1
    assert "1 excluded" in caplog.text and "no audio file" in caplog.text
    kept = load_midlevel_dataset(dataset_root, exclude_sources=())
    assert [c.song_id for c in kept] == ["1", "2", "3", "4", "5"] and kept.n_excluded == 0
    assert kept[4].source == "Soundtracks"


def test_missing_root_and_csv(tmp_path, dataset_root):
    with pytest.raises(MidlevelDatasetError, match="not found"):
        load_midlevel_dataset(tmp_path / "nowhere")
    (tmp_path / "metadata_annotations").mkdir()
    with pytest.raises(MidlevelDatasetError, match=r"annotations\.csv: no such file"):
        load_midlevel_dataset(tmp_path)


def test_missing_column_is_named(tmp_path):
    write_dataset(tmp_path)
    write_annotations(tmp_path, header=ANNOTATION_HEADER.replace("minorness", "mode"))
    with pytest.raises(MidlevelDatasetError, match=r"annotations\.csv: missing required column 'minorness'"):
        load_midlevel_dataset(tmp_path)


def test_non_numeric_rating_names_file_line_and_column(tmp_path):
    write_dataset(tmp_path)
    rows = dict(ANNOTATIONS)
    rows["3"] = [1.0, 2.0, "n/a", 4.0, 5.0, 6.0, 7.0]  # 4th line: header + songs 1, 2, 3
    write_annotations(tmp_path, rows=rows)
    with pytest.raises(MidlevelDatasetError) as error:
        load_midlevel_dataset(tmp_path)
    message = str(error.value)
    assert "annotations.csv, line 4" in message and "'rhythm_stability'" in message and "'n/a'" in message
    assert "\n" not in message


def test_error_when_no_clip_has_audio(tmp_path):
    write_dataset(tmp_path)
    for path in (tmp_path / "audio").iterdir():
        path.unlink()
    with pytest.raises(MidlevelDatasetError, match="no usable clips"):
        load_midlevel_dataset(tmp_path)


def test_spectrograms_have_149_bands_and_are_cached(tmp_path):
    write_dataset(tmp_path / "data")
    clips = load_midlevel_dataset(tmp_path / "data")
    calls = []
    first = spectrograms(clips, tmp_path / "cache", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(clips), len(clips))
    assert (tmp_path / "cache" / "midlevel_spectrograms.u8.npz").exists()
    for spec in first:
        assert spec.ndim == 2 and spec.shape[1] == C.N_BANDS == 149 and spec.shape[0] > 0
        assert spec.dtype == np.float32 and np.all(np.isfinite(spec))
    # With the audio gone, only the cache can answer (load_audio would raise).
    for clip in clips:
        clip.audio_path.unlink()
    again = spectrograms(clips[::-1], tmp_path / "cache", progress=lambda *a: pytest.fail("decoded"))
    for a, b in zip(first, again[::-1]):
        np.testing.assert_array_equal(a, b)


def test_cache_grows_with_new_clips(tmp_path):
    write_dataset(tmp_path / "data")
    clips = load_midlevel_dataset(tmp_path / "data")
    spectrograms(clips[:2], tmp_path / "cache")
    decoded = []
    spectrograms(clips, tmp_path / "cache", progress=lambda done, total: decoded.append(total))
    assert decoded == [len(clips) - 2] * (len(clips) - 2)  # only the new clips are decoded
    with np.load(tmp_path / "cache" / "midlevel_spectrograms.u8.npz") as stored:
        assert {f"codes/{c.song_id}" for c in clips} <= set(stored.files)
        assert all(stored[f"codes/{c.song_id}"].dtype == np.uint8 for c in clips)
