"""``dawemo train`` end to end on a tiny Soundtracks-shaped folder: mp3 decoding, corpus generation,
final network, both CV schemes, the cross-fitted emotion layer and the exported model."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="dawemo train needs the train extra (pip install -e .[train])")
pytest.importorskip("onnx", reason="export needs onnx (pip install -e .[train])")

from dawemo import constants as C  # noqa: E402
from dawemo.training import midlevel_corpus  # noqa: E402

N_CLIPS = 12
N_ALBUMS = 4


def write_soundtracks_folder(root: Path) -> np.ndarray:
    """ratings.csv, tracklist.csv and audio/NNN.mp3 like the real set; ratings follow the audio
    (brighter, faster clips rate happier), so the folder is learnable, not noise."""
    from pedalboard.io import AudioFile

    rng = np.random.default_rng(7)
    (root / "audio").mkdir(parents=True)
    ratings = np.zeros((N_CLIPS, len(C.EMOTION_NAMES)))
    with open(root / "ratings.csv", "w", newline="") as f_ratings, \
            open(root / "tracklist.csv", "w", newline="") as f_tracks:
        rating_rows = csv.writer(f_ratings)
        track_rows = csv.writer(f_tracks)
        rating_rows.writerow(["number", *C.EMOTION_NAMES, "TARGET"])
        track_rows.writerow(["Nro", "Emotion", "Album name", "Track", "Min:Sec"])
        for k in range(N_CLIPS):
            number = f"{k + 1:03d}"
            brightness = k / (N_CLIPS - 1)
            t = np.arange(int(12 * C.SAMPLE_RATE)) / C.SAMPLE_RATE
            pitch_hz = 110 * 2 ** (2 * brightness + rng.uniform(0, 0.2))
            pulse = (np.sin(2 * np.pi * (1 + 4 * brightness) * t) > 0.7).astype(np.float32)
            audio = 0.2 * np.sin(2 * np.pi * pitch_hz * t) * (0.3 + 0.7 * pulse)
            with AudioFile(str(root / "audio" / f"{number}.mp3"), "w", C.SAMPLE_RATE, 1) as out:
                out.write(audio.astype(np.float32)[None])
            ratings[k] = 1 + 8 * np.clip(brightness + rng.normal(0, 0.1, len(C.EMOTION_NAMES)), 0, 1)
            rating_rows.writerow([number, *(f"{r:.2f}" for r in ratings[k]), "HAPPY"])
            track_rows.writerow([number, "Happy", f"Album {k % N_ALBUMS}", k, "00:00-00:12"])
    return ratings


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fluidsynth") is None or not midlevel_corpus.SOUNDFONT_PATH.exists(),
                    reason="the contrast corpus needs fluidsynth and the GM soundfont "
                           "(apt-get install fluidsynth fluid-soundfont-gm)")
@pytest.mark.parametrize("branch_qualities", ["", "melodiousness,tonal_stability"], ids=["joint", "with-branch"])
def test_train_command_builds_a_cross_fitted_model_with_its_report(tmp_path, branch_qualities):
    from dawemo.emotion.model import EmotionModel
    from dawemo.training.head import fit_emotion_head, without_columns

    ratings = write_soundtracks_folder(tmp_path / "soundtracks")
    model_path, report_path = tmp_path / "model.onnx", tmp_path / "evaluation.json"
    branch_options = ["--set", f"branch_qualities={branch_qualities}", "--set", "branch_width=4",
                      "--set", "branch_steps=6", "--set", "branch_pairs_per_batch=2"] if branch_qualities else []
    result = subprocess.run(
        [sys.executable, "-m", "dawemo.cli.main", "train", "--soundtracks", str(tmp_path / "soundtracks"),
         "--corpus", str(tmp_path / "corpus"), "--pairs-per-quality", "1", "--cache", str(tmp_path / "cache"),
         "--out", str(model_path), "--report", str(report_path), "--cv", "3", "--grouped-cv", "2",
         "--epochs", "3", "--width", "4", "--workers", "1", "--device", "cpu", "--version", "t",
         "--set", "batch_size=4", "--set", "pairs_per_batch=2", "--set", "average_last=0.5", *branch_options],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "with the cross-fitted emotion layer" in result.stdout

    report = json.loads(report_path.read_text())
    assert report["config"]["average_last"] == 0.5 and report["config"]["width"] == 4
    assert report["soundtracks"] == {"n_excerpts": N_CLIPS, "n_albums": N_ALBUMS}
    assert report["corpus"]["n_pairs"] == len(C.MIDLEVEL_NAMES)
    for scheme, n_folds in (("cv", 3), ("album_grouped_cv", 2)):
        cv = report[scheme]
        assert cv["n_folds"] == n_folds and len(cv["fold_emotion_heads"]) == n_folds
        assert np.array(cv["out_of_fold_midlevel"]).shape == (N_CLIPS, len(C.MIDLEVEL_NAMES))
        assert -1 <= cv["crossfitted_head"]["mean_r"] <= 1

    # The shipped layer is exactly the refit of the report's out-of-fold features towards the
    # final network's joint layer: the model file and its report describe the same thing.
    model = EmotionModel(model_path, use_gpu=False)
    assert model.metadata["version"] == "t"
    assert model.metadata["training"]["config"]["average_last"] == 0.5
    assert model.metadata["training"]["emotion_head"].startswith("cross-fitted on 3-fold")
    stored = np.loadtxt(tmp_path / "soundtracks" / "ratings.csv", delimiter=",", skiprows=1,
                        usecols=range(1, 1 + len(C.EMOTION_NAMES)))
    np.testing.assert_allclose(stored, ratings, atol=0.006)
    joint = report["joint_emotion_head"]
    columns = [C.MIDLEVEL_NAMES.index(q) for q in branch_qualities.split(",") if q]
    (anchor_weight, anchor_bias), = without_columns([(np.array(joint["weight"]), np.array(joint["bias"]))], columns)
    weight, bias = fit_emotion_head(np.array(report["cv"]["out_of_fold_midlevel"]), stored, anchor_weight, anchor_bias)
    np.testing.assert_allclose(model.emotion_weights, weight, atol=1e-4)
    np.testing.assert_allclose(model.emotion_bias, bias, atol=1e-4)
    if columns:
        # The branch never hears the excerpts: one set of features for every fold and scheme, and it is
        # what the shipped file computes in those columns; the joint nets' features are kept beside them.
        assert report["branch"]["columns"] == columns
        plain, grouped = (np.array(report[s]["out_of_fold_midlevel"]) for s in ("cv", "album_grouped_cv"))
        np.testing.assert_array_equal(plain[:, columns], grouped[:, columns])
        assert not np.allclose(plain[:, columns], np.array(report["cv"]["joint_out_of_fold_midlevel"])[:, columns])
        from dawemo.emotion.frontend import network_input, segment_starts
        from dawemo.training.soundtracks import load_soundtracks

        spec = load_soundtracks(tmp_path / "soundtracks", tmp_path / "cache").spectrograms[0]
        segments = network_input(spec, segment_starts(len(spec)), C.SEGMENT_FRAMES, C.CONTEXT_FRAMES)
        features = model.midlevel_from_logits(model.segment_logits(segments).mean(axis=0))
        np.testing.assert_allclose(features[columns], plain[0, columns], atol=1e-4)
        assert "pulled towards 0 for the pair branch" in model.metadata["training"]["emotion_head"]

    # The decoded audio is cached: a second run reads the pack instead of the mp3s.
    assert (tmp_path / "cache" / "soundtracks_spectrograms.u8.npz").is_file()


def test_a_cache_written_for_other_excerpts_is_a_one_line_error(tmp_path):
    from dawemo.training.soundtracks import CACHE_FILENAME
    from dawemo.training.spectrogram_pack import save_pack

    write_soundtracks_folder(tmp_path / "soundtracks")
    save_pack(tmp_path / "cache" / CACHE_FILENAME, {"999": np.ones((100, C.N_BANDS), np.float32)})
    result = subprocess.run(
        [sys.executable, "-m", "dawemo.cli.main", "train", "--soundtracks", str(tmp_path / "soundtracks"),
         "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "m.onnx"), "--report", str(tmp_path / "e.json")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "lacks 12 spectrograms" in result.stderr and "delete it to rebuild" in result.stderr
    assert not (tmp_path / "m.onnx").exists()
