"""``dawemo analyze`` end to end: real audio files, a real (random-init) ONNX model, the real CLI."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dawemo.cli import main as cli
from dawemo.emotion import report

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A word each bad input's error message must contain.
BAD_REASONS = {
    "empty": "empty",
    "not_audio": "cannot decode",
    "truncated": "cannot decode",
    "short": "too short",
    "silent": "silent",
    "nan": "NaN",
    "empty_dir": "no audio files",
    "missing": "no such file",
}


def run_main(args: list[str]) -> tuple[int, str, str]:
    """``dawemo.cli.main.main(args)`` in-process -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_document(document: dict) -> None:
    """Assert the JSON report has the documented shape and internally consistent numbers."""
    model = document["model"]
    emotions, features = model["emotions"], model["midlevel"]
    assert len(emotions) == 8 and len(features) == 7
    weights, bias = np.array(model["emotion_weights"]), np.array(model["emotion_bias"])
    assert weights.shape == (8, 7) and bias.shape == (8,)
    assert {"name", "version"} <= model.keys()
    assert document["time_reference"] == "window_end"
    assert document["window_s"] > 0 and document["hop_s"] > 0
    for entry in document["files"]:
        assert {"path", "duration_s", "error", "summary", "timeline"} <= entry.keys()
        if entry["error"] is not None:
            assert isinstance(entry["error"], str) and entry["error"]
            assert entry["summary"] is None and entry["timeline"] is None
            continue
        summary, timeline = entry["summary"], entry["timeline"]
        assert list(summary["emotions"]) == emotions and list(summary["midlevel"]) == features
        midlevel = np.array([summary["midlevel"][n] for n in features])
        values = np.array([summary["emotions"][n] for n in emotions])
        assert np.all((midlevel >= 0) & (midlevel <= 1))
        np.testing.assert_allclose(values, bias + weights @ midlevel, rtol=0, atol=1e-6)
        times = np.array(timeline["time_s"])
        assert len(timeline["window_s"]) == len(times)
        for group, names in (("emotions", emotions), ("midlevel", features)):
            assert list(timeline[group]) == names
            assert all(len(timeline[group][n]) == len(times) for n in names)
        if len(times) == 0:  # clip shorter than one hop: summary only
            continue
        assert np.all(np.diff(times) > 0), "times must increase strictly"
        np.testing.assert_allclose(np.diff(times), document["hop_s"], rtol=1e-9)
        assert times[-1] <= entry["duration_s"] + 1e-6
        assert times[0] >= document["segment_s"] - 1e-6  # the first window ends after one full segment
        series_mid = np.array([timeline["midlevel"][n] for n in features]).T  # (T, 7)
        series_emo = np.array([timeline["emotions"][n] for n in emotions]).T  # (T, 8)
        assert np.all((series_mid >= 0) & (series_mid <= 1))
        assert np.all(np.isfinite(series_emo))
        np.testing.assert_allclose(series_emo, bias + series_mid @ weights.T, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def batch(session_clips, tiny_model_path, tmp_path_factory):
    """One in-process run over the clip folder (good and bad files), an empty folder and a missing path."""
    out = tmp_path_factory.mktemp("batch")
    code, stdout, stderr = run_main([
        "analyze", session_clips.root, session_clips.empty_dir, session_clips.missing,
        "--model", tiny_model_path, "--json", out / "report.json", "--csv", out / "report.csv",
        "--plot", out / "fig.png"])
    document = json.loads((out / "report.json").read_text())
    return dict(code=code, stdout=stdout, stderr=stderr, out=out, document=document, clips=session_clips)


def entry_for(document: dict, path: Path) -> dict:
    """The files[] entry of ``path``."""
    matches = [e for e in document["files"] if e["path"] == str(path)]
    assert len(matches) == 1, f"{path} missing from {[e['path'] for e in document['files']]}"
    return matches[0]


# ----------------------------------------------------------------------------------------------
# Batch with good and bad inputs


def test_batch_json_has_documented_shape(batch):
    check_document(batch["document"])
    clips = batch["clips"]
    expected = {str(p) for p in [*clips.good.values(), *clips.bad.values()]}
    assert {e["path"] for e in batch["document"]["files"]} == expected  # readme.txt is not picked up


def test_every_bad_input_gets_its_own_error_and_the_others_succeed(batch):
    document, clips = batch["document"], batch["clips"]
    for name, path in clips.bad.items():
        entry = entry_for(document, path)
        assert BAD_REASONS[name].lower() in entry["error"].lower(), (name, entry["error"])
        assert f"dawemo: error: {path}: " in batch["stderr"], name
    for path in clips.good.values():
        assert entry_for(document, path)["error"] is None
    assert batch["code"] == 1
    assert "Traceback" not in batch["stderr"]


def test_error_lines_are_one_line_each(batch):
    error_lines = [line for line in batch["stderr"].splitlines() if line.startswith("dawemo: error:")]
    assert len(error_lines) == len(batch["clips"].bad)


def test_progress_lines_on_non_tty_stderr(batch):
    total = len(batch["document"]["files"])
    for index in range(1, total + 1):
        assert f"[{index}/{total}] " in batch["stderr"]
    assert batch["stdout"] == ""  # outputs were requested, so no console summary


def test_odd_rates_and_channel_counts_give_valid_answers(batch):
    document, clips = batch["document"], batch["clips"]
    for name, duration_s in (("mono_8k", 4.0), ("surround_96k", 4.0), ("chords", 12.0), ("melody_flac", 5.0)):
        entry = entry_for(document, clips.good[name])
        assert entry["error"] is None
        assert entry["duration_s"] == pytest.approx(duration_s, abs=0.01)
        assert len(entry["timeline"]["time_s"]) >= 1
    assert all(len(entry_for(document, p)["timeline"]["time_s"]) for p in clips.good.values())


def test_csv_matches_json(batch):
    document = batch["document"]
    with open(batch["out"] / "report.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    emotions, features = document["model"]["emotions"], document["model"]["midlevel"]
    assert list(rows[0]) == ["path", "kind", "time_s", "window_s", "duration_s", *emotions, *features, "error"]
    for entry in document["files"]:
        file_rows = [r for r in rows if r["path"] == entry["path"]]
        summaries = [r for r in file_rows if r["kind"] == "summary"]
        timeline = [r for r in file_rows if r["kind"] == "timeline"]
        assert len(summaries) == 1 and summaries[0] is file_rows[0]
        summary_row = summaries[0]
        assert summary_row["time_s"] == ""
        if entry["error"] is not None:
            assert summary_row["error"] == entry["error"] and not timeline
            assert all(summary_row[n] == "" for n in [*emotions, *features])
            continue
        assert summary_row["error"] == ""
        for group, names in (("emotions", emotions), ("midlevel", features)):
            # Full-precision repr: the CSV equals the JSON exactly.
            assert [float(summary_row[n]) for n in names] == [entry["summary"][group][n] for n in names]
            for i, row in enumerate(timeline):
                assert [float(row[n]) for n in names] == [entry["timeline"][group][n][i] for n in names]
        assert [float(r["time_s"]) for r in timeline] == entry["timeline"]["time_s"]


def test_one_figure_per_good_file(batch):
    clips, out = batch["clips"], batch["out"]
    for path in clips.good.values():
        figure = out / f"fig-{path.stem}.png"
        assert png_size(figure) == (1600, 1000)
        assert figure.stat().st_size > 30_000  # a real figure, not a blank canvas
    assert sorted(p.name for p in out.glob("fig-*.png")) == sorted(f"fig-{p.stem}.png" for p in clips.good.values())
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporary files


# ----------------------------------------------------------------------------------------------
# Single files, stdout, exit codes


def test_subprocess_all_good_exits_zero_and_writes_plot_at_the_given_name(session_clips, tiny_model_path, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dawemo.cli.main", "analyze", str(session_clips.good["chords"]),
         "--model", str(tiny_model_path), "--json", str(tmp_path / "a.json"), "--plot", str(tmp_path / "a.png")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress for one file, no errors
    document = json.loads((tmp_path / "a.json").read_text())
    check_document(document)
    assert [e["error"] for e in document["files"]] == [None]
    assert png_size(tmp_path / "a.png") == (1600, 1000)


def test_console_summary_explains_dominant_emotion(session_clips, tiny_model_path):
    code, stdout, stderr = run_main(["analyze", session_clips.good["mono_8k"], "--model", tiny_model_path])
    assert code == 0 and stderr == ""
    assert str(session_clips.good["mono_8k"]) in stdout
    for text in ("emotions (1-9)", "mid-level (0-1)", "dominant:", "pushed up by", "pushed down by", "dissonance"):
        assert text in stdout


def test_json_to_stdout(session_clips, tiny_model_path):
    code, stdout, _ = run_main(["analyze", session_clips.good["melody_flac"], "--model", tiny_model_path,
                                "--json", "-"])
    assert code == 0
    document = json.loads(stdout)
    check_document(document)
    assert len(document["files"]) == 1


def test_window_and_hop_actually_used_are_reported(session_clips, tiny_model_path):
    code, stdout, _ = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path,
                                "--window-s", "5", "--hop-s", "1", "--json", "-"])
    assert code == 0
    document = json.loads(stdout)
    check_document(document)
    assert document["window_s"] == pytest.approx(5.0, abs=0.05)
    # The hop is rounded to whole segment strides.
    strides = document["hop_s"] / document["segment_stride_s"]
    assert strides == pytest.approx(round(strides))
    assert document["hop_s"] == pytest.approx(1.0, abs=document["segment_stride_s"] / 2 + 1e-9)


def test_clip_shorter_than_one_hop_has_summary_and_empty_timeline(session_clips, tiny_model_path, tmp_path):
    code, _, stderr = run_main(["analyze", session_clips.good["mono_8k"], "--model", tiny_model_path,
                                "--hop-s", "5", "--json", tmp_path / "a.json", "--plot", tmp_path / "a.png"])
    assert code == 0, stderr
    document = json.loads((tmp_path / "a.json").read_text())
    check_document(document)
    entry = document["files"][0]
    assert entry["summary"] is not None and entry["timeline"]["time_s"] == []
    assert png_size(tmp_path / "a.png") == (1600, 1000)


def test_only_failures_exit_one(generated_clips, tiny_model_path, tmp_path):
    code, _, stderr = run_main(["analyze", generated_clips.empty_dir, "--model", tiny_model_path,
                                "--csv", tmp_path / "out.csv"])
    assert code == 1
    assert f"dawemo: error: {generated_clips.empty_dir}: no audio files" in stderr
    assert "no audio files" in (tmp_path / "out.csv").read_text()


@pytest.mark.parametrize("model_kind", ["missing", "not_onnx"])
def test_missing_or_broken_model_exits_two(generated_clips, tmp_path, model_kind):
    model = tmp_path / "model.onnx"
    if model_kind == "not_onnx":
        model.write_text("not a model")
    code, _, stderr = run_main(["analyze", generated_clips.good["chords"], "--model", model,
                                "--json", tmp_path / "out.json"])
    assert code == 2
    assert stderr.startswith("dawemo: error:") and str(model) in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
def test_unwritable_output_exits_two_before_analysing(session_clips, tiny_model_path, tmp_path, option):
    target = tmp_path / "no_such_folder" / "out.png"
    code, _, stderr = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path, option, target])
    assert code == 2
    assert f"dawemo: error: cannot write {option} output {target}" in stderr
    assert "[1/" not in stderr


def test_output_path_that_is_a_directory_exits_two(session_clips, tiny_model_path, tmp_path):
    code, _, stderr = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path,
                                "--json", tmp_path])
    assert code == 2 and "is a directory" in stderr


@pytest.mark.parametrize("args, message", [
    (["--window-s", "2"], "--window-s must be at least one model segment"),
    (["--window-s", "0"], "must be a positive number of seconds"),
    (["--hop-s", "0"], "must be a positive number of seconds"),
    (["--hop-s", "-1"], "must be a positive number of seconds"),
    (["--hop-s", "nan"], "must be a positive number of seconds"),
    (["--window-s", "ten"], "not a number of seconds"),
    (["--plot", "figure.jpg"], "--plot figure.jpg: use a file name ending in"),
])
def test_bad_window_hop_or_options_exit_two(session_clips, tiny_model_path, args, message):
    code, _, stderr = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path, *args])
    assert code == 2
    assert message in stderr and "Traceback" not in stderr


def test_usage_errors_exit_two():
    assert run_main([])[0] == 2
    assert run_main(["analyze"])[0] == 2  # no PATH
    assert run_main(["no-such-command"])[0] == 2
    assert run_main(["analyze", "x.wav", "--json", "-", "--csv", "-"])[0] == 2


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, io, contextlib\n"
            "from dawemo.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['--help']) == 0 and main(['analyze', '--help']) == 0\n"
            "heavy = [m for m in ('numpy', 'onnxruntime', 'matplotlib', 'torch', 'pedalboard') if m in sys.modules]\n"
            "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# Helpers


def test_atomic_write_keeps_previous_file_when_interrupted(tmp_path):
    target = tmp_path / "report.json"
    target.write_text('{"old": true}')

    def write_half_then_fail(file):
        file.write('{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.atomic_write(target, write_half_then_fail)
    assert target.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_plot_targets_single_and_unique_per_stem():
    out = Path("figs/out.png")
    assert cli.plot_targets(out, [Path("a/song.wav")]) == [out]
    assert cli.plot_targets(out, [Path("a/song.wav"), Path("b/song.flac"), Path("c/other.wav")]) == [
        Path("figs/out-song.png"), Path("figs/out-song-2.png"), Path("figs/out-other.png")]


def test_text_summary_arithmetic_matches_the_model(batch):
    document = batch["document"]
    entry = entry_for(document, batch["clips"].good["chords"])
    dominant = report.dominant_emotion(document, entry)
    row = document["model"]["emotions"].index(dominant)
    total = document["model"]["emotion_bias"][row] + report.contributions(document, entry)[row].sum()
    assert math.isclose(total, entry["summary"]["emotions"][dominant], abs_tol=1e-9)
    assert dominant in ("anger", "fear", "happy", "sad", "tender")
    assert os.path.basename(entry["path"]) == "chords.wav"
