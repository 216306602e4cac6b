"""``dawemo analyze`` on long files and many files: streaming decode, worker processes, resume, a Dask cluster.

Real audio files, a real (random-init) ONNX model, real worker processes and a real local Dask
cluster; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import chord_progression, write_audio
from dawemo.cli import batch
from dawemo.cli import main as cli
from dawemo.emotion import report
from dawemo.emotion.model import EmotionModel
from dawemo.emotion.tracker import analyze_samples
from dawemo.inputs.audio_io import AudioFileReader, AudioInputError, load_audio

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_main(args: list) -> tuple[int, str, str]:
    """``dawemo.cli.main.main(args)`` in-process -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def entries_by_path(entries: list[dict]) -> dict[str, dict]:
    by_path = {entry["path"]: entry for entry in entries}
    assert len(by_path) == len(entries), "a file appears twice"
    return by_path


def jsonl_entries(path: Path) -> list[dict]:
    return report.read_jsonl(path)["files"]


def csv_blocks(path: Path) -> dict[str, list[str]]:
    """CSV lines grouped by file (first column), header left out."""
    import csv

    blocks: dict[str, list[str]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for line, row in zip(lines[1:], csv.reader(lines[1:])):
        blocks.setdefault(row[0], []).append(line)
    return blocks


@pytest.fixture(scope="module")
def model(tiny_model_path) -> EmotionModel:
    return EmotionModel(tiny_model_path)


@pytest.fixture(scope="module")
def reference(session_clips, tiny_model_path, tmp_path_factory) -> dict:
    """An uninterrupted run with one worker: JSON document, JSON Lines and CSV."""
    out = tmp_path_factory.mktemp("reference")
    code, _, stderr = run_main(["analyze", session_clips.root, "--model", tiny_model_path, "--jobs", "1",
                                "--json", out / "a.json", "--jsonl", out / "a.jsonl", "--csv", out / "a.csv"])
    assert code == 1, stderr  # the folder holds bad files too
    return dict(out=out, document=json.loads((out / "a.json").read_text()))


# ----------------------------------------------------------------------------------------------
# Streaming decode


@pytest.mark.parametrize("name", ["chords", "mono_8k", "surround_96k", "melody_flac"])
def test_reader_blocks_are_load_audio_cut_in_pieces(session_clips, name):
    whole = load_audio(session_clips.good[name])
    for block_s in (0.05, 0.7, 5.0):
        with AudioFileReader(session_clips.good[name], block_s=block_s) as reader:
            blocks = list(reader.blocks())
            assert reader.duration_s == pytest.approx(len(whole) / 22050, abs=1e-3)
        assert max(len(b) for b in blocks) <= round(block_s * 22050)
        assert np.array_equal(np.concatenate(blocks), whole)


def test_reader_finds_nan_part_way_and_bad_files_on_opening(session_clips):
    with AudioFileReader(session_clips.bad["nan"], block_s=0.01) as reader:
        with pytest.raises(AudioInputError, match="NaN"):
            for _ in reader.blocks():
                pass
    for name, reason in (("empty", "empty"), ("not_audio", "cannot decode"), ("truncated", "cannot decode")):
        with pytest.raises(AudioInputError, match=reason):
            with AudioFileReader(session_clips.bad[name]):
                pass


def test_block_size_does_not_change_the_analysis(session_clips, model):
    path = session_clips.good["chords"]
    today = analyze_samples(load_audio(path), model, 3.0, 0.5)  # the whole-file path
    for block_s in (0.3, 1.1, 5.0, 60.0):
        result = batch.analyze_file(path, model, 3.0, 0.5, block_s=block_s)
        assert result.error is None
        analysis = result.analysis
        assert analysis.duration_s == today.duration_s
        assert np.array_equal(analysis.summary_midlevel, today.summary_midlevel)
        assert np.array_equal(analysis.summary_emotions, today.summary_emotions)
        assert [u.time_s for u in analysis.updates] == [u.time_s for u in today.updates]
        for a, b in zip(analysis.updates, today.updates):
            assert np.array_equal(a.midlevel, b.midlevel) and np.array_equal(a.emotions, b.emotions)
            assert a.window_s == b.window_s


def test_long_mp3_streams_like_the_whole_file(tmp_path, model):
    path = write_audio(tmp_path / "long.mp3", chord_progression(40.0, 44100, channels=2), 44100)
    today = analyze_samples(load_audio(path), model)
    streamed = batch.analyze_file(path, model, 2.1, 0.5, block_s=2.0)
    assert streamed.error is None
    assert np.array_equal(streamed.analysis.summary_emotions, today.summary_emotions)
    assert len(streamed.analysis.updates) == len(today.updates) > 70


def test_progress_callback_counts_the_audio(session_clips, model):
    seen = []
    batch.analyze_file(session_clips.good["chords"], model, 2.1, 0.5, block_s=2.0, on_progress=seen.append)
    assert seen == sorted(seen) and len(seen) == 6 and seen[-1] == pytest.approx(12.0)


# ----------------------------------------------------------------------------------------------
# Worker processes


def test_two_workers_give_the_one_worker_results(session_clips, tiny_model_path, reference, tmp_path):
    code, _, stderr = run_main(["analyze", session_clips.root, "--model", tiny_model_path, "--jobs", "2",
                                "--json", tmp_path / "b.json", "--jsonl", tmp_path / "b.jsonl", "--csv", tmp_path / "b.csv"])
    assert code == 1 and "Traceback" not in stderr
    document = json.loads((tmp_path / "b.json").read_text())
    assert document["files"] == reference["document"]["files"]  # --json keeps the input order
    assert entries_by_path(jsonl_entries(tmp_path / "b.jsonl")) == entries_by_path(reference["document"]["files"])
    assert csv_blocks(tmp_path / "b.csv") == csv_blocks(reference["out"] / "a.csv")
    total = len(document["files"])
    assert all(f"[{i}/{total}] " in stderr for i in range(1, total + 1))


def test_jsonl_reads_back_as_the_json_document(reference):
    document = report.read_jsonl(reference["out"] / "a.jsonl")
    assert document == reference["document"]  # one worker: the finishing order is the input order
    entries = list(report.iter_csv_entries(reference["out"] / "a.csv", document))
    assert entries == document["files"]  # the CSV holds the same numbers, exactly


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> list[Path]:
    """Eight 30 s clips, long enough to interrupt a batch part way."""
    folder = tmp_path_factory.mktemp("long")
    return [write_audio(folder / f"take{i}.wav", chord_progression(30.0, 22050, seed=i), 22050) for i in range(8)]


def test_interrupted_batch_keeps_finished_files_and_resume_finishes_it(long_clips, tiny_model_path, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dawemo.cli.main", "analyze", *map(str, long_clips), "--model",
               str(tiny_model_path), "--jobs", "1", "--jsonl", str(out.with_suffix(".jsonl")),
               "--csv", str(out.with_suffix(".csv"))]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.with_suffix(".jsonl").is_file() and len(out.with_suffix(".jsonl").read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "add --resume to go on" in stderr and "Traceback" not in stderr
    finished = jsonl_entries(out.with_suffix(".jsonl"))
    assert 2 <= len(finished) < len(long_clips)
    assert set(csv_blocks(out.with_suffix(".csv"))) == {e["path"] for e in finished}

    code, _, stderr = run_main([*command[3:], "--resume"])
    assert code == 0, stderr
    assert f"resuming: {len(finished)} of {len(long_clips)} files" in stderr
    entries = entries_by_path(jsonl_entries(out.with_suffix(".jsonl")))
    assert set(entries) == {str(p) for p in long_clips}
    assert all(entries[e["path"]] == e for e in finished)  # kept, not analysed again
    assert list(report.iter_csv_entries(out.with_suffix(".csv"), report.read_jsonl(out.with_suffix(".jsonl")))) \
        == jsonl_entries(out.with_suffix(".jsonl"))


def test_resume_drops_cut_lines_and_failed_files(session_clips, tiny_model_path, reference, tmp_path):
    jsonl, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    lines = (reference["out"] / "a.jsonl").read_bytes().splitlines(keepends=True)
    good = [i for i, line in enumerate(lines[1:], 1) if json.loads(line)["error"] is None]
    # Killed while writing: the JSON Lines lose the last good file's line half way; the CSV
    # loses that file's last timeline row half way.
    cut_line = good[-1]
    jsonl.write_bytes(b"".join(lines[:cut_line]) + lines[cut_line][:40])
    cut_path = json.loads(lines[cut_line])["path"]
    text = (reference["out"] / "a.csv").read_text()
    blocks = csv_blocks(reference["out"] / "a.csv")
    cut_at = text.index(blocks[cut_path][-1]) + 20
    table.write_text(text[:cut_at])
    code, _, stderr = run_main(["analyze", session_clips.root, "--model", tiny_model_path, "--jobs", "1",
                                "--jsonl", jsonl, "--csv", table, "--resume"])
    assert code == 1  # the bad files are tried again and fail again
    assert f"resuming: {len(good) - 1} of" in stderr
    assert entries_by_path(jsonl_entries(jsonl)) == entries_by_path(reference["document"]["files"])
    assert csv_blocks(table) == csv_blocks(reference["out"] / "a.csv")


def test_resume_refuses_an_output_of_another_window(session_clips, tiny_model_path, reference, tmp_path):
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_bytes((reference["out"] / "a.jsonl").read_bytes())
    code, _, stderr = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path,
                                "--window-s", "5", "--jsonl", jsonl, "--resume"])
    assert code == 2 and "another model, window or hop" in stderr
    assert jsonl.read_bytes() == (reference["out"] / "a.jsonl").read_bytes()  # untouched


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs --jsonl or --csv"),
    (["--resume", "--jsonl", "-"], "--resume needs --jsonl or --csv"),
    (["--jsonl", "-", "--csv", "-"], "only one of --json, --jsonl and --csv"),
    (["--jobs", "2", "--cluster", "tcp://127.0.0.1:8786"], "--jobs does not apply to --cluster"),
    (["--cluster", "nonsense"], "missing port number"),
    (["--jobs", "0"], "must be at least 1"),
])
def test_bad_batch_options_exit_two(session_clips, tiny_model_path, args, message):
    code, _, stderr = run_main(["analyze", session_clips.good["chords"], "--model", tiny_model_path, *args])
    assert code == 2 and message in stderr and "Traceback" not in stderr


def worker_reading_a_file(psutil, process: subprocess.Popen, paths: list[Path]):
    """A worker process of ``process`` once it has one of ``paths`` open (None after 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for child in psutil.Process(process.pid).children():
            with contextlib.suppress(psutil.Error):
                if any(f.path in map(str, paths) for f in child.open_files()):
                    return child
        time.sleep(0.01)
    return None


def test_a_worker_that_dies_fails_its_file_and_the_batch_goes_on(long_clips, tiny_model_path, tmp_path):
    psutil = pytest.importorskip("psutil")
    jsonl = tmp_path / "w.jsonl"
    command = [sys.executable, "-m", "dawemo.cli.main", "analyze", *map(str, long_clips[:4]), "--model",
               str(tiny_model_path), "--jobs", "2", "--jsonl", str(jsonl)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    victim = worker_reading_a_file(psutil, process, long_clips[:4])
    assert victim is not None, "no worker opened a file"
    victim.kill()  # as the out-of-memory killer would
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    entries = entries_by_path(jsonl_entries(jsonl))
    assert set(entries) == set(map(str, long_clips[:4]))
    died = [e for e in entries.values() if e["error"] is not None]
    assert len(died) == 1 and "worker process died" in died[0]["error"] and "SIGKILL" in died[0]["error"]
    assert f"dawemo: error: {died[0]['path']}: the worker process died" in stderr


def test_workers_end_when_the_main_process_is_killed(long_clips, tiny_model_path, tmp_path):
    psutil = pytest.importorskip("psutil")
    command = [sys.executable, "-m", "dawemo.cli.main", "analyze", *map(str, long_clips), "--model",
               str(tiny_model_path), "--jobs", "2", "--jsonl", str(tmp_path / "k.jsonl")]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    assert worker_reading_a_file(psutil, process, long_clips) is not None
    workers = [p for p in psutil.Process(process.pid).children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 2
    process.kill()  # no chance to stop its workers
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "orphaned workers kept running"


# ----------------------------------------------------------------------------------------------
# Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_files_audio_rate_and_time_left():
    stream = FakeTerminal()
    progress = batch.BatchProgress(2, 7200.0, enabled=True, stream=stream)
    progress.bar.delay = 0  # show at once (a real run waits a second, so short runs stay quiet)
    progress.expect(0, 3600.0)
    progress.expect(1, 3600.0)
    progress.advance(0, 1800.0)
    progress.finish(0, "a.wav", failed=False)
    progress.message("dawemo: error: b.wav: bad")
    progress.advance(1, 9999.0)  # capped at the header's length
    progress.finish(1, "b.wav", failed=True)
    progress.close()
    text = stream.getvalue()
    assert "2/2 files, 2:00:00/2:00:00 audio" in text and "real time, 1 failed" in text
    assert "100%" in text and "<00:00]" in text  # tqdm's time left
    assert "dawemo: error: b.wav: bad\n" in text


def test_progress_in_a_log_is_one_line_per_file_and_nothing_for_one_file():
    log = io.StringIO()
    progress = batch.BatchProgress(2, 60.0, enabled=True, stream=log)
    progress.expect(0, 30.0)
    progress.finish(0, "a.wav", failed=False)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[1/2] a.wav  0:30/1:00 audio, ") and lines[0].endswith(" left")
    single = io.StringIO()
    one = batch.BatchProgress(1, 60.0, enabled=True, stream=single)
    one.expect(0, 60.0)
    one.advance(0, 30.0)
    one.finish(0, "a.wav", failed=False)
    assert single.getvalue() == ""


# ----------------------------------------------------------------------------------------------
# A real local Dask cluster


@pytest.fixture(scope="module")
def cluster_address():
    distributed = pytest.importorskip("distributed", reason="the cluster extra: pip install -e .[cluster]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_cluster_gives_the_local_results_and_resumes(session_clips, tiny_model_path, reference, cluster_address,
                                                     tmp_path):
    args = ["analyze", session_clips.root, "--model", tiny_model_path, "--cluster", cluster_address,
            "--jsonl", tmp_path / "c.jsonl", "--csv", tmp_path / "c.csv", "--plot", tmp_path / "fig.png"]
    code, _, stderr = run_main([*args, "--json", tmp_path / "c.json"])
    assert code == 1 and "Traceback" not in stderr
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["files"] == reference["document"]["files"]
    assert csv_blocks(tmp_path / "c.csv") == csv_blocks(reference["out"] / "a.csv")
    for path in session_clips.good.values():  # figures drawn by the cluster's workers
        assert (tmp_path / f"fig-{path.stem}.png").stat().st_size > 30_000
    total = len(document["files"])
    assert all(f"[{i}/{total}] " in stderr for i in range(1, total + 1))
    for name, path in session_clips.bad.items():
        if name not in ("empty_dir", "missing"):  # (those two are not in the folder)
            assert f"dawemo: error: {path}: " in stderr

    # Resume on the cluster after losing the last two files of each output.
    lines = (tmp_path / "c.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "c.jsonl").write_bytes(b"".join(lines[:-2]))
    code, _, stderr = run_main(args + ["--resume"])
    assert code == 1 and "resuming:" in stderr
    assert entries_by_path(jsonl_entries(tmp_path / "c.jsonl")) == entries_by_path(reference["document"]["files"])
    assert csv_blocks(tmp_path / "c.csv") == csv_blocks(reference["out"] / "a.csv")
