"""The ``dawemo`` command line: one function per subcommand, registered in ``COMMANDS``.

To add a subcommand, write ``configure_<name>(parser)`` (its arguments) and ``run_<name>(args)
-> exit code``, and add a ``Command`` entry to ``COMMANDS``; a subcommand of its own module is
named there with ``elsewhere(module, name)``. Import numpy, onnxruntime, matplotlib and torch
inside the run function only, so that ``dawemo --help`` stays fast.

Exit codes: 0 success, 1 some input file failed (or an unexpected error), 2 usage error,
missing/broken model or unwritable output, 130 interrupted. An unexpected error prints one
``dawemo: error:`` line; set DAWEMO_DEBUG=1 to see its traceback as well.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from dawemo import __version__
from dawemo import constants as C

EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "dawemo"

# Used when pedalboard cannot list its readable formats (it reads these on every platform).
FALLBACK_AUDIO_EXTENSIONS = (".aif", ".aiff", ".flac", ".mp3", ".ogg", ".wav")
PLOT_FORMATS = (".png", ".pdf", ".svg")
# For --help only (the model file's own values are used for the analysis).
SEGMENT_S = C.SEGMENT_FRAMES * C.HOP_SIZE / C.SAMPLE_RATE
SEGMENT_STRIDE_S = C.SEGMENT_STRIDE_FRAMES * C.HOP_SIZE / C.SAMPLE_RATE


@dataclass(frozen=True)
class Command:
    """A subcommand: one-line help, argument setup and the function that runs it (returns the exit code)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""


class UsageError(Exception):
    """A bad option or output path found after parsing; exit code 2."""


# ----------------------------------------------------------------------------------------------
# Small helpers shared by subcommands


def print_error(message: str, stream: TextIO | None = None) -> None:
    """One-line ``dawemo: error: <message>`` on stderr."""
    print(f"{PROG}: error: {message}", file=stream or sys.stderr, flush=True)


def _seconds(text: str, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        kind = "0 or a positive" if zero_allowed else "a positive"
        raise argparse.ArgumentTypeError(f"must be {kind} number of seconds, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    return _seconds(text, zero_allowed=False)


def non_negative_seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    return _seconds(text, zero_allowed=True)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_output_path(path: Path, what: str) -> None:
    """Fail early (before minutes of analysis) when ``path`` cannot be written.

    Raises:
        UsageError: the folder is missing or read-only, or the path is a folder.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"cannot write {what} {path}: it is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {path}: directory {parent} is not writable")


# ----------------------------------------------------------------------------------------------
# analyze


def configure_analyze(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dawemo analyze``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path,
                        help="audio files (any format pedalboard reads: wav, flac, mp3, ogg, aiff, ...) "
                             "or directories, searched recursively for audio files")
    out = parser.add_argument_group(
        "outputs", "Without any, a short summary per file is printed. --jsonl and --csv are written as "
                   "each file finishes, so an interrupted batch keeps what it did (see docs/batch.md).")
    out.add_argument("--json", metavar="OUT", type=Path,
                     help="write clip summaries and timelines of all files as one JSON document when the "
                          "batch ends ('-' for stdout); written atomically")
    out.add_argument("--jsonl", metavar="OUT", type=Path,
                     help="JSON Lines, appended as each file finishes: a header line (the JSON document "
                          "without its files), then one line per file ('-' for stdout)")
    out.add_argument("--csv", metavar="OUT", type=Path,
                     help="one table, appended as each file finishes: a 'summary' row per file, then a "
                          "'timeline' row per update ('-' for stdout)")
    out.add_argument("--plot", metavar="OUT.png", type=Path,
                     help="write a figure per file: emotion and mid-level curves over time and the "
                          "clip summary's feature contributions to each emotion. With one input file "
                          "it is written to OUT.png; with several, to OUT-<file stem>.png next to it "
                          "(-2, -3... appended to repeated stems). .pdf and .svg also work")
    out.add_argument("--resume", action="store_true",
                     help="keep the files that --jsonl/--csv already hold without error and analyse only "
                          "the others (failed ones again); run from the same folder as before")
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--window-s", type=positive_seconds, default=C.DEFAULT_WINDOW_S, metavar="S",
                          help="seconds of audio each timeline point describes, at least one model "
                               f"segment (~{SEGMENT_S:.2f} s) (default {C.DEFAULT_WINDOW_S:g})")
    analysis.add_argument("--hop-s", type=positive_seconds, default=C.DEFAULT_HOP_S, metavar="S",
                          help="seconds between timeline points, rounded to whole segment strides "
                               f"(~{SEGMENT_STRIDE_S:.2f} s) (default {C.DEFAULT_HOP_S:g})")
    analysis.add_argument("--steady-s", type=non_negative_seconds, default=C.DEFAULT_STEADY_S, metavar="S",
                          help="hold the timeline steady on one piece with this time constant and jump on a "
                               f"change of music (default {C.DEFAULT_STEADY_S:g}; 0: each window on its own; "
                               "clip summaries always average the whole file)")
    analysis.add_argument("--model", metavar="FILE", type=Path,
                          help="ONNX model made by 'dawemo train' (default: the shipped model)")
    analysis.add_argument("--threads", type=positive_int, default=1, metavar="N",
                          help="CPU threads for the model, per worker (default 1)")
    workers = parser.add_argument_group("workers")
    workers.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                         help="files analysed at once, each in its own process with its own model "
                              "(default: the cores this machine has)")
    workers.add_argument("--cluster", metavar="ADDRESS",
                         help="run the batch on the workers of a running Dask cluster, e.g. "
                              "tcp://10.0.0.5:8786 (needs the cluster extra; the workers must see the "
                              "files at the same absolute paths)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def audio_extensions() -> tuple[str, ...]:
    """Lower-case file extensions (with dot) that pedalboard can decode here."""
    try:
        from pedalboard.io import get_supported_read_formats

        extensions = tuple(sorted({ext.lower() for ext in get_supported_read_formats()}))
    except Exception:  # older pedalboard without the listing
        extensions = ()
    return extensions or FALLBACK_AUDIO_EXTENSIONS


def find_audio_files(directory: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Audio files under ``directory``, sorted, skipping hidden files and folders (e.g. macOS ``._x.wav``)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(files)
                  if not name.startswith(".") and Path(name).suffix.lower() in extensions]
    return found


def expand_inputs(raw_paths: list[Path], extensions: tuple[str, ...]) -> list[tuple[Path, str | None]]:
    """PATH arguments -> (file, error) items in order, directories expanded, duplicates dropped.

    A file named explicitly is always tried, whatever its extension; a missing path is kept so
    that it gets its own per-file error. A directory without audio becomes one failed item.
    """
    items: list[tuple[Path, str | None]] = []
    seen: set[str] = set()

    def add(path: Path, error: str | None) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            items.append((path, error))

    for path in raw_paths:
        if path.is_dir():
            files = find_audio_files(path, extensions)
            if not files:
                add(path, f"no audio files found in directory (looked for {' '.join(extensions)})")
            for file in files:
                add(file, None)
        else:
            add(path, None)
    return items


def plot_targets(out: Path, inputs: list[Path]) -> list[Path]:
    """Figure path per input: ``out`` for a single input, else ``out-<stem><suffix>`` (unique)."""
    if len(inputs) == 1:
        return [out]
    targets, used = [], set()
    for path in inputs:
        stem = path.stem or "audio"
        candidate, n = f"{out.stem}-{stem}", 1
        while candidate in used:
            n += 1
            candidate = f"{out.stem}-{stem}-{n}"
        used.add(candidate)
        targets.append(out.with_name(candidate + out.suffix))
    return targets


def check_analyze_outputs(args: argparse.Namespace) -> None:
    """Validate the outputs and worker options before any work.

    Raises:
        UsageError: two outputs on stdout, an unknown figure format, an unwritable path, --resume
            without a file to resume, or --jobs with --cluster.
    """
    stdout_outputs = [name for name in ("json", "jsonl", "csv") if getattr(args, name) == Path("-")]
    if len(stdout_outputs) > 1:
        raise UsageError("only one of --json, --jsonl and --csv can write to stdout ('-')")
    for name in ("json", "jsonl", "csv"):
        target = getattr(args, name)
        if target is not None and target != Path("-"):
            check_output_path(target, f"--{name} output")
    if args.plot is not None:
        if args.plot.suffix.lower() not in PLOT_FORMATS:
            raise UsageError(f"--plot {args.plot}: use a file name ending in {', '.join(PLOT_FORMATS)}")
        check_output_path(args.plot, "--plot output")
    if args.resume and not any(getattr(args, name) not in (None, Path("-")) for name in ("jsonl", "csv")):
        raise UsageError("--resume needs --jsonl or --csv written to a file: that is where finished files are kept")
    if args.cluster is not None and args.jobs is not None:
        raise UsageError("--jobs does not apply to --cluster: the cluster's workers set how many files run at once")


def resolve_window(model, window_s: float, hop_s: float, steady_s: float) -> tuple[float, float, float]:
    """Check --window-s/--hop-s against the model; return (window_s, hop_s, steady_s) as actually used
    (steady_s is 0 for a model without measured segment spreads).

    Raises:
        UsageError: the window is shorter than one model segment.
    """
    from dawemo.emotion.tracker import EmotionTracker

    segment_s = model.segment_frames / model.frames_per_s
    if window_s < segment_s:
        raise UsageError(f"--window-s must be at least one model segment ({segment_s:.2f} s), got {window_s:g}")
    try:
        tracker = EmotionTracker(model, window_s, hop_s, steady_s)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return tracker.window_s, tracker.hop_s, tracker.steady_s


def connect_cluster(args: argparse.Namespace, settings):
    """``ClusterWorkers`` for --cluster, not yet connected (enter it to connect), or None.

    Raises:
        UsageError: the cluster extra is missing.
    """
    if args.cluster is None:
        return None
    try:
        from dawemo.cli.cluster import ClusterWorkers
    except ImportError as error:
        raise UsageError(f"--cluster needs the cluster extra: pip install 'dawemo[cluster]' ({error})") from None
    return ClusterWorkers(args.cluster, settings)


def run_analyze(args: argparse.Namespace) -> int:
    """``dawemo analyze``: per-file clip summaries and timelines -> stdout / JSON / JSON Lines / CSV / figures."""
    from dawemo.cli import batch
    from dawemo.emotion import report
    from dawemo.emotion.model import EmotionModel, ModelError
    from dawemo.inputs.audio_io import audio_duration_s

    with contextlib.ExitStack() as stack:
        try:
            check_analyze_outputs(args)
            try:
                model = EmotionModel(args.model, threads=args.threads)
            except ModelError as error:
                raise UsageError(str(error)) from None
            window_s, hop_s, steady_s = resolve_window(model, args.window_s, args.hop_s, args.steady_s)
            settings = batch.AnalysisSettings(str(model.path), window_s, hop_s, args.threads, steady_s=steady_s)
            cluster = connect_cluster(args, settings)
            if cluster is not None:  # before any output is touched
                from dawemo.cli.cluster import ClusterError

                try:
                    stack.enter_context(cluster)
                except ClusterError as error:
                    raise UsageError(str(error)) from None
            document = report.new_document(model, window_s, hop_s, steady_s)
            outputs = batch.BatchOutputs(document, args.json, args.jsonl, args.csv)
            try:
                done = outputs.resume() if args.resume else outputs.start()
            except batch.OutputError as error:
                raise UsageError(str(error)) from None
            except OSError as error:
                raise UsageError(f"cannot open the outputs: {error.strerror or error}") from None
            stack.callback(outputs.close)
        except UsageError as error:
            print_error(str(error))
            return EXIT_USAGE

        items = expand_inputs(args.paths, audio_extensions())
        plots = plot_targets(args.plot, [path for path, _ in items]) if args.plot else [None] * len(items)
        todo = [(index, path, error, plot) for index, ((path, error), plot) in enumerate(zip(items, plots))
                if batch.path_key(str(path)) not in done]
        if len(todo) < len(items) and not args.quiet:
            print(f"{PROG}: resuming: {len(items) - len(todo)} of {len(items)} files are already in the outputs",
                  file=sys.stderr, flush=True)
        tasks = [batch.FileTask(index, os.path.abspath(path), str(path), None if plot is None else str(plot))
                 for index, path, error, plot in todo if error is None]
        durations = {task.index: audio_duration_s(task.path) for task in tasks}
        progress = batch.BatchProgress(len(todo), sum(d or 0.0 for d in durations.values()), enabled=not args.quiet)
        stack.callback(progress.close)
        for index, duration_s in durations.items():
            progress.expect(index, duration_s)
        text_summary = args.json is None and args.jsonl is None and args.csv is None and args.plot is None
        sink = batch.BatchRun(document, outputs, progress, tasks, text_summary, PROG)
        jobs = min(args.jobs or batch.default_jobs(), len(tasks))
        runner = cluster or (batch.LocalWorkers(jobs, settings) if jobs > 1 else batch.InProcess(model, settings))
        try:
            for index, path, error, _ in todo:
                if error is not None:  # a missing path or a folder without audio: no worker needed
                    sink.done(index, batch.failed_entry(batch.FileTask(index, str(path), str(path)), error), None)
            runner.run(tasks, sink)
        except batch.OutputError as error:
            progress.close()
            print_error(str(error))
            return EXIT_USAGE
        except KeyboardInterrupt:
            progress.close()
            kept = " and ".join(str(path) for _, path in outputs.incremental if str(path) != "-")
            if kept:
                print(f"{PROG}: the files finished so far are in {kept}; add --resume to go on", file=sys.stderr)
            raise

    write_failed = sink.write_failed
    if args.json is not None:
        write_failed |= not write_output(args.json, "JSON", lambda t: report.write_json(outputs.json_document(), t))
    if write_failed:
        return EXIT_USAGE
    return EXIT_FILE_FAILED if sink.failed else EXIT_OK


def write_output(target: Path, what: str, write: Callable[[Path], None]) -> bool:
    """Run ``write(target)``; on failure print one line and return False."""
    try:
        write(target)
    except OSError as error:
        print_error(f"cannot write {what} {target}: {error.strerror or error}")
        return False
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else ""
        print_error(f"cannot write {what} {target}: {type(error).__name__}: {reason}")
        return False
    return True


# ----------------------------------------------------------------------------------------------
# dawemo demo / bench / train


def configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="folder to write (default %(default)s)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")


def run_demo(args: argparse.Namespace) -> int:
    """Generate the demo clip and analyse it into JSON, CSV and a figure."""
    from dawemo.cli.demo import write_demo_clip

    clip = write_demo_clip(args.out / "demo.wav")
    print(f"wrote {clip} (30 s: a calm passage that turns tense)")
    argv = ["analyze", str(clip), "--json", str(args.out / "analysis.json"), "--csv", str(args.out / "analysis.csv"),
            "--plot", str(args.out / "analysis.png")]
    if args.model:
        argv += ["--model", str(args.model)]
    code = main(argv)
    if code == 0:
        main(["analyze", str(clip)] + (["--model", str(args.model)] if args.model else []))
        print(f"wrote {args.out}/analysis.json, analysis.csv and analysis.png")
    return code


def configure_bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--window-s", type=positive_seconds, default=10.0,
                        help="window of both models (default 10 s, the reference's input)")
    parser.add_argument("--hop-s", type=positive_seconds, default=C.DEFAULT_HOP_S)
    parser.add_argument("--updates", type=positive_int, default=200, help="updates to time (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime threads (default 1)")


def run_bench(args: argparse.Namespace) -> int:
    """Cost per update of the shipped model against the paper-size VGG reference."""
    import json

    from dawemo.cli.bench import format_report, run_benchmark
    from dawemo.emotion.model import ModelError

    try:
        result = run_benchmark(args.model, args.window_s, args.hop_s, args.updates, args.threads)
    except (ModelError, ValueError) as error:
        print_error(str(error))
        return EXIT_USAGE
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def configure_train(parser: argparse.ArgumentParser) -> None:
    try:
        from dawemo.training.command import configure
    except ImportError:  # the train extra is missing: say so when the command runs
        return
    configure(parser)


def run_train(args: argparse.Namespace) -> int:
    """Train, cross-validate and export the model (needs the ``train`` extra)."""
    try:
        import torch  # noqa: F401

        from dawemo.training.command import run
    except ImportError as error:
        print_error(f"training needs the train extra: pip install 'dawemo[train]' ({error})")
        return EXIT_USAGE
    return run(args)


def configure_app(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app_args", nargs=argparse.REMAINDER, help="options of dawemo-app (see dawemo app --help)")


def run_app(args: argparse.Namespace) -> int:
    try:
        from dawemo.ui.app import main as app_main
    except ImportError as error:
        print(f"{PROG}: error: the desktop app is not installed ({error})", file=sys.stderr)
        return EXIT_USAGE
    return app_main(args.app_args)


def elsewhere(module: str, name: str, *more: object) -> Callable:
    """``module.name``, imported at its first call so that ``dawemo --help`` loads none of it; called
    with the caller's arguments, then ``more`` (helpers of this module, which that one must not import)."""
    def call(*args: object):
        return getattr(importlib.import_module(module), name)(*args, *more)

    call.__name__ = name
    return call


# ----------------------------------------------------------------------------------------------
# Command table and entry point

COMMANDS: dict[str, Command] = {
    "analyze": Command(
        help="emotions and mid-level features of audio files, explained (JSON, CSV, figures)",
        description="Analyse audio files: a clip summary and a timeline of 8 emotions (1-9 rating "
                    "scale) and 7 mid-level features (0-1) per file. Emotions are bias + sum of "
                    "weight x feature, so every value can be explained. Timeline times are the END "
                    "of each analysis window (causal, as in live use). Exit status: 0 all files "
                    "analysed, 1 some file failed (the others are still reported), 2 usage error, "
                    "missing/broken model or unwritable output.",
        configure=configure_analyze,
        run=run_analyze,
    ),
    "run": Command(
        help="live: listen to a device, JACK port, DAW bridge or file and send emotions as MIDI CC",
        description="The live bridge: audio in, emotions out as MIDI CC (mapped by a TOML preset), "
                    "optionally recorded as a type 1 MIDI file plus a timeline. Exit status: 0 "
                    "stopped cleanly, 1 the input failed while running, 2 bad option, missing "
                    "device, port, preset or model.",
        configure=elsewhere("dawemo.cli.live", "configure_run", positive_seconds, non_negative_seconds),
        run=elsewhere("dawemo.cli.live", "run_live", print_error),
    ),
    "replay": Command(
        help="send a recorded show's OSC and DMX values to their targets again, at its own pace",
        description="Replays the OSC and DMX values a timeline ('dawemo run --timeline') recorded, to the "
                    "recorded targets (or --host). Exit status: 0 done or stopped, 2 unreadable timeline, "
                    "nothing to replay or bad option.",
        configure=elsewhere("dawemo.cli.replay", "configure_replay"),
        run=elsewhere("dawemo.cli.replay", "run_replay", print_error),
    ),
    "learn": Command(
        help="send one mapping lane alone, so a DAW's MIDI-learn can bind it",
        configure=elsewhere("dawemo.cli.live", "configure_learn"),
        run=elsewhere("dawemo.cli.live", "run_learn", print_error),
    ),
    "bridge": Command(
        help="the DAW bridge plugin: list running bridges, build it, install it into your plugin folders",
        configure=elsewhere("dawemo.cli.bridge", "configure"),
        run=elsewhere("dawemo.cli.bridge", "run", print_error),
    ),
    "devices": Command(
        help="list audio inputs, JACK ports, MIDI ports and running DAW bridges",
        configure=elsewhere("dawemo.cli.live", "configure_devices"),
        run=elsewhere("dawemo.cli.live", "run_devices"),
    ),
    "plugins": Command(
        help="list a plugin's parameters (built-in effects or a .vst3 path) and the example chains",
        configure=elsewhere("dawemo.cli.machine", "configure_plugins"),
        run=elsewhere("dawemo.cli.machine", "run_plugins"),
    ),
    "render": Command(
        help="render a machine sound through a plugin chain that follows a music file's emotions",
        description="Offline machine sound: MUSIC is analysed as by 'dawemo analyze'; MACHINE is rendered "
                    "through the chain (TOML) with its parameter lanes following the emotions over "
                    "time. Writes OUTPUT, the parameter curves (CSV) and, with --mix, music + machine. "
                    "Exit status: 0 written, 1 an input or output failed, 2 bad option, chain or model.",
        configure=elsewhere("dawemo.cli.machine", "configure_render", positive_seconds),
        run=elsewhere("dawemo.cli.machine", "run_render"),
    ),
    "app": Command(
        help="the desktop app (same as dawemo-app)",
        configure=configure_app,
        run=run_app,
    ),
    "demo": Command(
        help="generate a demo clip and analyse it (JSON, CSV, figure)",
        configure=configure_demo,
        run=run_demo,
    ),
    "bench": Command(
        help="analysis cost per update: shipped model vs the paper-size VGG",
        configure=configure_bench,
        run=run_bench,
    ),
    "train": Command(
        help="rebuild the model from scratch and cross-validate it (needs the train extra)",
        configure=configure_train,
        run=run_train,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per ``COMMANDS`` entry."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Explainable music emotion recognition: mid-level features -> emotions.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.description or command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def report_unexpected(error: BaseException) -> int:
    """Last resort for an error no command foresaw: one line, the traceback only with DAWEMO_DEBUG=1."""
    debug = os.environ.get("DAWEMO_DEBUG", "") not in ("", "0")
    if debug:
        import traceback

        traceback.print_exception(error)
    text = str(error).strip()
    reason = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
    print_error(reason + ("" if debug else " (set DAWEMO_DEBUG=1 for the traceback)"))
    return EXIT_FILE_FAILED


def _parse_and_run(argv: list[str]) -> int:
    if argv[:1] == ["app"]:  # the app parses its own options (dawemo app --file x == dawemo-app --file x)
        return run_app(argparse.Namespace(app_args=argv[1:]))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 after --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _parse_and_run(argv)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout piped into e.g. `head`: stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FILE_FAILED
    except Exception as error:  # a missing system part or a bug: one clear line, never a traceback
        return report_unexpected(error)


if __name__ == "__main__":
    sys.exit(main())
