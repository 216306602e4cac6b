"""``dawemo analyze`` over many files: worker processes, outputs written as each file finishes, resume.

The main process expands the inputs, reads what a resumed output already holds, writes every
output and draws one progress bar. The analysis runs in one of three places, with the same
results (each file is decoded in blocks, so memory does not grow with its length):

- ``InProcess``: here, one file after another (``--jobs 1``, or a single file);
- ``LocalWorkers``: N processes started here, each with its own model session;
- ``dawemo.cli.cluster.ClusterWorkers``: the workers of a running Dask cluster (``--cluster``).

A runner's ``run(tasks, sink)`` calls ``sink.progress(index, done_s)`` while a file is being
analysed and ``sink.done(index, entry, plot_error)`` when it finishes; ``entry`` is the file's
``files[]`` item of the JSON document (with its error, if it failed). A failing file never
stops the batch, and neither does a worker process that dies: its file is reported failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, Protocol, TextIO

from dawemo import constants as C

BLOCK_S = 5.0  # seconds decoded and analysed at a time: pedalboard's buffers and the front end grow with it; 5 s costs no speed
PROGRESS_EVERY_S = 1.0  # workers report how far into a file they are at most this often
WORKER_POLL_S = 0.2  # how often the main process looks for workers that died


@dataclass(frozen=True)
class AnalysisSettings:
    """What every worker needs to analyse a file as the main process would.

    Args:
        model_path: the ONNX model file (the workers of a cluster get its bytes instead).
        window_s, hop_s: as actually used (``EmotionTracker`` rounds the hop).
        threads: ONNX Runtime intra-op threads per worker.
        block_s: seconds of audio per decoded block.
        steady_s: change-aware averaging of the timeline (0: each window alone), as used.
    """

    model_path: str
    window_s: float
    hop_s: float
    threads: int = 1
    block_s: float = BLOCK_S
    steady_s: float = C.DEFAULT_STEADY_S


@dataclass(frozen=True)
class FileTask:
    """One file to analyse: ``index`` in the input order, the path to open (absolute, so workers
    elsewhere find it), the path as given (reported), and where its figure goes (or None)."""

    index: int
    path: str
    display_path: str
    plot_path: str | None = None


class Sink(Protocol):
    """Where a runner reports (the main process's ``BatchRun``)."""

    def progress(self, index: int, done_s: float) -> None: ...

    def done(self, index: int, entry: dict, plot_error: str | None) -> None: ...


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` for errors nobody foresaw."""
    reason = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


# ----------------------------------------------------------------------------------------------
# One file


def analyze_file(path: Path, model, window_s: float, hop_s: float, block_s: float = BLOCK_S,
                 on_progress: Callable[[float], None] | None = None, steady_s: float = C.DEFAULT_STEADY_S):
    """Decode and analyse one file block by block -> ``report.FileReport``; every failure becomes its ``error``.

    Args:
        path: the audio file.
        model: an ``EmotionModel``.
        window_s, hop_s: analysis window and hop, seconds.
        block_s: seconds of audio decoded at a time (the result does not depend on it).
        on_progress: called after each block with the seconds of audio analysed so far.
        steady_s: change-aware averaging of the timeline (as for ``EmotionTracker``).
    """
    import numpy as np

    from dawemo.emotion.report import FileReport
    from dawemo.emotion.tracker import ClipAnalyzer
    from dawemo.inputs.audio_io import AudioFileReader, AudioInputError

    def strip_path(message: str) -> str:
        # The reader prefixes its messages with the path; the report has a path field already.
        prefix = f"{path}: "
        return message[len(prefix):] if message.startswith(prefix) else message

    clip = None
    try:
        clip = ClipAnalyzer(model, window_s, hop_s, steady_s)
        with AudioFileReader(path, model.sample_rate, block_s) as reader:
            for block in reader.blocks():
                clip.process(block)
                if on_progress is not None:
                    on_progress(clip.duration_s)
        analysis = clip.finish()
    except AudioInputError as error:
        return FileReport(str(path), None, strip_path(str(error)) or type(error).__name__, None)
    except ValueError as error:  # too short or silent
        return FileReport(str(path), clip.duration_s if clip else None, str(error) or type(error).__name__, None)
    except MemoryError:
        return FileReport(str(path), clip.duration_s if clip else None, "out of memory while analysing this file", None)
    except Exception as error:  # a bug must not stop a batch of hundreds of files
        return FileReport(str(path), None, f"unexpected error ({one_line(error)})", None)
    values = [analysis.summary_midlevel, analysis.summary_emotions] + \
        [v for u in analysis.updates for v in (u.midlevel, u.emotions)]
    if not all(np.all(np.isfinite(v)) for v in values):
        return FileReport(str(path), analysis.duration_s, "the model produced non-finite values", None)
    return FileReport(str(path), analysis.duration_s, None, analysis)


def draw_plot(document: dict, entry: dict, target: str) -> str | None:
    """Write one file's figure; return why it failed, or None."""
    from dawemo.emotion.plot import save_file_plot

    try:
        save_file_plot(document, entry, target)
    except OSError as error:
        return error.strerror or str(error)
    except Exception as error:  # e.g. a matplotlib failure: report it, keep the other outputs
        return one_line(error)
    return None


def run_task(task: FileTask, model, settings: AnalysisSettings, document: dict,
             on_progress: Callable[[float], None] | None = None) -> tuple[dict, str | None]:
    """Analyse one file and draw its figure -> (its ``files[]`` entry, why the figure failed or None)."""
    from dawemo.emotion import report

    result = analyze_file(Path(task.path), model, settings.window_s, settings.hop_s, settings.block_s, on_progress,
                          settings.steady_s)
    entry = report.file_entry(result, document["model"]["emotions"], document["model"]["midlevel"])
    entry["path"] = task.display_path
    plot_error = None
    if task.plot_path is not None and entry["error"] is None:
        plot_error = draw_plot(document, entry, task.plot_path)
    return entry, plot_error


def failed_entry(task: FileTask, reason: str) -> dict:
    """The ``files[]`` entry of a file that no worker could analyse."""
    return {"path": task.display_path, "duration_s": None, "error": reason, "summary": None, "timeline": None}


class Throttle:
    """Calls ``report(value)`` at most every ``every_s`` seconds (the first call always)."""

    def __init__(self, report: Callable[[float], None], every_s: float = PROGRESS_EVERY_S) -> None:
        self.report = report
        self.every_s = every_s
        self._last = -float("inf")

    def __call__(self, value: float) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.report(value)


# ----------------------------------------------------------------------------------------------
# Runners


class InProcess:
    """Analyses the files here, one after another, with the main process's model."""

    def __init__(self, model, settings: AnalysisSettings) -> None:
        self.model = model
        self.settings = settings

    def run(self, tasks: list[FileTask], sink: Sink) -> None:
        from dawemo.emotion import report

        document = report.new_document(self.model, self.settings.window_s, self.settings.hop_s, self.settings.steady_s)
        for task in tasks:
            entry, plot_error = run_task(task, self.model, self.settings, document,
                                         lambda done_s, index=task.index: sink.progress(index, done_s))
            sink.done(task.index, entry, plot_error)


def _exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """End this worker when the main process is gone (killed: no chance to stop its workers)."""
    while True:
        time.sleep(every_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def _worker_main(settings: AnalysisSettings, tasks, events) -> None:
    """A local worker process: one model session, files from ``tasks`` until a None, results to ``events``."""
    # Ctrl-C reaches the whole process group: the main process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="dawemo-parent-watch", daemon=True).start()
    from dawemo.emotion import report
    from dawemo.emotion.model import EmotionModel

    pid = os.getpid()
    try:
        model = EmotionModel(settings.model_path, threads=settings.threads)
    except Exception as error:
        events.put(("fatal", pid, f"a worker could not load the model: {one_line(error)}"))
        return
    document = report.new_document(model, settings.window_s, settings.hop_s, settings.steady_s)
    while (task := tasks.get()) is not None:
        events.put(("start", pid, task.index))
        progress = Throttle(lambda done_s, index=task.index: events.put(("progress", index, done_s)))
        entry, plot_error = run_task(task, model, settings, document, progress)
        events.put(("done", task.index, entry, plot_error))


class LocalWorkers:
    """``jobs`` worker processes started here, one model session each, fed from one task queue.

    A worker that dies (a crash in a decoder, the out-of-memory killer) fails the file it was
    analysing and is replaced; the batch goes on.
    """

    def __init__(self, jobs: int, settings: AnalysisSettings) -> None:
        self.jobs = jobs
        self.settings = settings

    def run(self, tasks: list[FileTask], sink: Sink) -> None:
        # spawn: a fresh interpreter per worker, no copy of the main process's ONNX Runtime threads.
        context = multiprocessing.get_context("spawn")
        task_queue, events = context.Queue(), context.Queue()
        for task in tasks:
            task_queue.put(task)
        n_workers = min(self.jobs, len(tasks))
        for _ in range(n_workers):
            task_queue.put(None)  # one stop sign per worker; a replaced worker's is left for its successor
        pending = {task.index: task for task in tasks}
        running: dict[int, int] = {}  # worker pid -> index of the file it analyses
        fatal: list[str] = []

        def start():
            worker = context.Process(target=_worker_main, args=(self.settings, task_queue, events),
                                     name="dawemo-analyze-worker", daemon=True)
            with sigint_ignored():  # inherited: a Ctrl-C while the worker starts up reaches only this process
                worker.start()
            return worker

        def handle(event: tuple) -> None:
            kind = event[0]
            if kind == "start":
                running[event[1]] = event[2]
            elif kind == "progress" and event[1] in pending:
                sink.progress(event[1], event[2])
            elif kind == "done" and event[1] in pending:
                del pending[event[1]]
                sink.done(event[1], event[2], event[3])
            elif kind == "fatal":
                fatal.append(event[2])

        def drain() -> None:
            while True:
                try:
                    handle(events.get_nowait())
                except queue.Empty:
                    return

        workers = [start() for _ in range(n_workers)]
        next_check = time.monotonic() + WORKER_POLL_S
        try:
            while pending:
                try:
                    handle(events.get(timeout=WORKER_POLL_S))
                except queue.Empty:
                    pass
                if time.monotonic() < next_check:
                    continue
                next_check = time.monotonic() + WORKER_POLL_S
                for worker in [w for w in workers if not w.is_alive()]:
                    workers.remove(worker)
                    worker.join()
                    drain()  # what it reported before it ended
                    index = running.pop(worker.pid, None)
                    if worker.exitcode != 0 and index in pending:
                        task = pending.pop(index)
                        sink.done(index, failed_entry(task, "the worker process died while analysing it "
                                                            f"({exit_reason(worker.exitcode)})"), None)
                    if worker.exitcode != 0 and not fatal and pending:
                        workers.append(start())
                if not workers and pending:
                    drain()
                    reason = fatal[0] if fatal else "no worker was left to analyse it"
                    for index, task in sorted(pending.items()):
                        sink.done(index, failed_entry(task, reason), None)
                    pending.clear()
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
            for worker in workers:
                worker.join(timeout=5)
            for channel in (task_queue, events):
                channel.cancel_join_thread()  # unread tasks must not keep this process from exiting
                channel.close()


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C while processes are started (they inherit it); a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_reason(exitcode: int | None) -> str:
    """A worker's exit code in words: ``killed by signal 9 (SIGKILL)`` or ``exit code 3``."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        hint = ", maybe out of memory" if -exitcode == signal.SIGKILL else ""
        return f"killed by signal {-exitcode} ({name}{hint})"
    return f"exit code {exitcode}"


# ----------------------------------------------------------------------------------------------
# Outputs written as files finish, and resume


class OutputError(Exception):
    """An output cannot be resumed or written; the message is one line for the user."""


def path_key(path: str) -> str:
    """What identifies an input across runs: its real path (relative paths resolved from here)."""
    return os.path.realpath(path)


class BatchOutputs:
    """``--jsonl`` and ``--csv`` appended as each file finishes; ``--json`` gathered for the end.

    Each file's JSON line, and each file's CSV rows, go out in one write followed by a flush,
    so an interrupted batch leaves every finished file complete (at worst a last line cut by a
    hard kill, which ``resume`` removes).

    Args:
        document: the report's header (``report.new_document``); its ``files`` stay empty.
        json_path, jsonl_path, csv_path: the outputs asked for (None: not written; ``-``: stdout).
    """

    def __init__(self, document: dict, json_path: Path | None, jsonl_path: Path | None,
                 csv_path: Path | None) -> None:
        self.document = document
        self.json_path = json_path
        self.jsonl_path = jsonl_path
        self.csv_path = csv_path
        self.entries: dict[int, dict] = {}  # by input index, kept only for --json
        self.resumed_entries: list[dict] = []  # from the outputs being resumed, kept only for --json
        self._jsonl: TextIO | None = None
        self._csv: TextIO | None = None

    @property
    def incremental(self) -> list[tuple[str, Path]]:
        """The outputs written as files finish: (option, path)."""
        return [(name, path) for name, path in (("--jsonl", self.jsonl_path), ("--csv", self.csv_path))
                if path is not None]

    def resume(self) -> set[str]:
        """Keep what the outputs already hold; return the ``path_key`` of every file analysed without error.

        A file counts as done when every incremental output holds it without an error. The
        outputs are rewritten with exactly those files (failed files, files cut short and files
        missing from another output go, to be analysed again), then reopened for appending.

        Raises:
            OutputError: an output is not a dawemo report for this model, window and hop.
        """
        from dawemo.emotion import report

        done_sets = [self._done_in(name, path) for name, path in self.incremental]
        done = set.intersection(*done_sets) if done_sets else set()
        for number, (name, path) in enumerate(self.incremental):
            if path.is_file():
                # Entry by entry, so a catalogue's outputs never sit in memory whole.
                keep = number == 0 and self.json_path is not None
                report.atomic_write(path, lambda file: self._rewrite(name, path, done, file, keep))
        self._open(append=True)
        return done

    def _rewrite(self, name: str, path: Path, done: set[str], file: IO, keep: bool) -> None:
        """Copy the entries of ``path`` that are ``done`` to ``file``; keep them for --json if ``keep``."""
        from dawemo.emotion import report

        if name == "--jsonl":
            file.write(report.json_line(report.header(self.document)))
        else:
            file.write(report.csv_text([report.csv_columns(self.document)]))
        for entry in self._read(name, path):
            if entry["error"] is not None or path_key(entry["path"]) not in done:
                continue
            if name == "--jsonl":
                file.write(report.json_line(entry))
            else:
                file.write(report.csv_text(report.csv_entry_rows(self.document, entry)))
            if keep:
                self.resumed_entries.append(entry)

    def _read(self, name: str, path: Path):
        """The entries of one existing output (after the header line of a JSON Lines file)."""
        from dawemo.emotion import report

        if name == "--jsonl":
            lines = report.iter_jsonl(path)
            next(lines, None)
            return lines
        return report.iter_csv_entries(path, self.document)

    def _done_in(self, name: str, path: Path) -> set[str]:
        """Keys of the files ``path`` holds without error (empty when it does not exist yet)."""
        from dawemo.emotion import report

        if not path.is_file() or path.stat().st_size == 0:
            return set()
        try:
            if name == "--jsonl":
                lines = report.iter_jsonl(path)
                previous = next(lines, None)
                if previous is not None and not report.same_analysis(previous, self.document):
                    raise OutputError(f"--resume: {path} was written with another model, window or hop; "
                                      "write to a new file or run without --resume")
                return {path_key(e["path"]) for e in lines if e["error"] is None}
            return {path_key(e["path"]) for e in report.iter_csv_entries(path, self.document) if e["error"] is None}
        except (ValueError, KeyError, TypeError) as error:
            reason = str(error) if isinstance(error, ValueError) else f"not a dawemo report ({one_line(error)})"
            raise OutputError(f"--resume: cannot resume {name} {path}: {reason}") from None
        except OSError as error:
            raise OutputError(f"--resume: cannot read {name} {path}: {error.strerror or error}") from None

    def start(self) -> set[str]:
        """Start the incremental outputs afresh (header line, header row); nothing is done yet."""
        self._open(append=False)
        return set()

    def _open(self, append: bool) -> None:
        from dawemo.emotion import report

        if self.jsonl_path is not None:
            self._jsonl = self._open_one(self.jsonl_path, append)
            if not append or self._jsonl.tell() == 0:
                self._write(self._jsonl, report.json_line(report.header(self.document)))
        if self.csv_path is not None:
            self._csv = self._open_one(self.csv_path, append)
            if not append or self._csv.tell() == 0:
                self._write(self._csv, report.csv_text([report.csv_columns(self.document)]))

    @staticmethod
    def _open_one(path: Path, append: bool) -> TextIO:
        if str(path) == "-":
            return sys.stdout
        return open(path, "a" if append else "w", encoding="utf-8", newline="")

    @staticmethod
    def _write(file: IO, text: str) -> None:
        file.write(text)
        file.flush()

    def add(self, index: int, entry: dict) -> None:
        """One finished file: append it to the incremental outputs, keep it for --json.

        Raises:
            OSError: an output cannot be written (disk full...).
        """
        from dawemo.emotion import report

        # Ctrl-C between the two appends would leave a file in one output and not the other, and
        # --resume would then skip it in both: take the interrupt once both are written.
        with _interrupt_after():
            if self._jsonl is not None:
                self._write(self._jsonl, report.json_line(entry))
            if self._csv is not None:
                self._write(self._csv, report.csv_text(report.csv_entry_rows(self.document, entry)))
        if self.json_path is not None:
            self.entries[index] = entry

    def json_document(self) -> dict:
        """The whole JSON document: files resumed from before, then this run's in input order."""
        document = dict(self.document)
        document["files"] = list(self.resumed_entries) + [self.entries[i] for i in sorted(self.entries)]
        return document

    def close(self) -> None:
        for file in (self._jsonl, self._csv):
            if file is not None and file is not sys.stdout:
                file.close()
        self._jsonl = self._csv = None


@contextlib.contextmanager
def _interrupt_after():
    """Hold SIGINT for the duration of the block (main thread only) and raise it afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt


# ----------------------------------------------------------------------------------------------
# Progress


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour); ``?`` when unknown."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class BatchProgress:
    """One progress display for a batch: files done, audio hours done, rate and time left.

    On a terminal: a ``tqdm`` bar over the audio (in seconds), moved as blocks are analysed,
    also for a single long file (shown after a second). Elsewhere (a log): one line per finished
    file, ``[3/10] name.wav  31:12/1:12:00 audio, 95x real time, 0:26 left``; nothing for one file.

    Args:
        total_files: files to analyse in this run.
        total_audio_s: their length from the headers (unknown ones count 0 until they finish).
        enabled: False shows nothing (--quiet); messages still print.
        stream: defaults to sys.stderr at call time (so pytest's capture sees it).
    """

    def __init__(self, total_files: int, total_audio_s: float, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total_files = total_files
        self.total_s = total_audio_s
        self.files_done = 0
        self.failed = 0
        self.audio_done_s = 0.0  # finished files
        self._partial: dict[int, float] = {}  # seconds analysed of files still running
        self._estimates: dict[int, float] = {}
        self._started = time.monotonic()
        self.bar = None
        self.lines = enabled and not self.stream.isatty() and total_files > 1
        if enabled and self.stream.isatty() and total_files > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=max(total_audio_s, 1e-9), file=self.stream, delay=1.0, mininterval=0.25,
                            bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}]",
                            dynamic_ncols=True, leave=True)
            self.bar.set_description_str(self._summary(), refresh=False)

    def expect(self, index: int, duration_s: float | None) -> None:
        """The length a file's header gives (what its progress is capped at)."""
        self._estimates[index] = duration_s or 0.0

    def _done_s(self) -> float:
        return self.audio_done_s + sum(self._partial.values())

    def _summary(self) -> str:
        done_s = self._done_s()
        elapsed = time.monotonic() - self._started
        rate = done_s / elapsed if elapsed > 0 else 0.0
        text = (f"{self.files_done}/{self.total_files} files, {format_duration(done_s)}/"
                f"{format_duration(self.total_s)} audio, {rate:.0f}x real time")
        return text + (f", {self.failed} failed" if self.failed else "")

    def _move_bar(self) -> None:
        if self.bar is not None:
            self.bar.set_description_str(self._summary(), refresh=False)
            self.bar.update(min(self._done_s(), self.bar.total) - self.bar.n)

    def advance(self, index: int, done_s: float) -> None:
        """``done_s`` seconds of file ``index`` analysed so far."""
        estimate = self._estimates.get(index, 0.0)
        self._partial[index] = min(done_s, estimate)
        self._move_bar()

    def finish(self, index: int, name: str, failed: bool) -> None:
        """File ``index`` finished (analysed or failed)."""
        self._partial.pop(index, None)
        self.audio_done_s += self._estimates.get(index, 0.0)
        self.files_done += 1
        self.failed += failed
        self._move_bar()
        if self.lines:
            done_s = self._done_s()
            elapsed = time.monotonic() - self._started
            left_s = (self.total_s - done_s) * elapsed / done_s if done_s > 0 else float("inf")
            print(f"[{self.files_done}/{self.total_files}] {name}  {self._summary().split(', ', 1)[1]}, "
                  f"{format_duration(left_s)} left", file=self.stream, flush=True)

    def message(self, text: str, stream: TextIO | None = None) -> None:
        """A full line (an error, or a summary on stdout) that stays visible above the bar."""
        if self.bar is not None:
            self.bar.write(text, file=stream or self.stream)
        else:
            print(text, file=stream or self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------------------------
# The main process's side


class BatchRun:
    """Receives finished files from a runner: writes the outputs, prints errors and summaries, moves the bar.

    Args:
        document: the report header.
        outputs: where entries go.
        progress: the batch's progress display.
        tasks: the files of this run, to name them.
        text_summary: print each analysed file's console summary (no output was asked for).
        prog: the program name for error lines.
    """

    def __init__(self, document: dict, outputs: BatchOutputs, progress: BatchProgress, tasks: list[FileTask],
                 text_summary: bool, prog: str = "dawemo") -> None:
        self.document = document
        self.outputs = outputs
        self.progress_display = progress
        self.names = {task.index: task.display_path for task in tasks}
        self.plots = {task.index: task.plot_path for task in tasks}
        self.text_summary = text_summary
        self.prog = prog
        self.failed = 0
        self.write_failed = False

    def progress(self, index: int, done_s: float) -> None:
        self.progress_display.advance(index, done_s)

    def done(self, index: int, entry: dict, plot_error: str | None) -> None:
        from dawemo.emotion import report

        failed = entry["error"] is not None
        self.failed += failed
        if failed:
            self.progress_display.message(f"{self.prog}: error: {entry['path']}: {entry['error']}")
        if plot_error is not None:
            self.write_failed = True
            self.progress_display.message(f"{self.prog}: error: cannot write figure {self.plots.get(index)}: "
                                          f"{plot_error}")
        try:
            self.outputs.add(index, entry)
        except OSError as error:
            raise OutputError(f"cannot write the outputs: {error.strerror or error}") from None
        if self.text_summary and not failed:
            self.progress_display.message(report.format_text_summary(self.document, entry), stream=sys.stdout)
        name = Path(self.names.get(index, entry["path"])).name or entry["path"]
        self.progress_display.finish(index, name, failed)
