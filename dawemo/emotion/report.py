"""Analysis reports: the JSON document, its CSV table and the console summary.

JSON document (one per run; numbers at full float precision, so the check
``emotions == emotion_bias + emotion_weights @ midlevel`` holds to ~1e-12)::

    {"dawemo_version", "time_reference": "window_end", "window_s", "hop_s" (as actually used),
     "sample_rate", "segment_s", "segment_stride_s" (the network's input segments),
     "emotion_scale": [1, 9], "midlevel_scale": [0, 1],
     "model": {"name", "version", "emotions": [8], "midlevel": [7],
               "emotion_weights": [[7] x 8], "emotion_bias": [8], "path"},
     "files": [{"path", "duration_s" (null if not decoded), "error": null or "reason",
                "summary": {"emotions": {name: value}, "midlevel": {name: value}} or null,
                "timeline": {"time_s": [...], "window_s": [...],
                             "emotions": {name: [...]}, "midlevel": {name: [...]}} or null}]}

``time_s`` is the END of each analysis window (causal: what a live run shows at that moment);
``window_s`` per point is the audio the point covers, shorter than the window while it fills.

CSV table (UTF-8, comma separated, one header row, ``\\n`` line ends), all files in one table::

    path, kind, time_s, window_s, duration_s, <8 emotions>, <7 mid-level features>, error

- ``kind=summary``: first row of each file. ``time_s``/``window_s`` empty, ``duration_s`` the clip
  length, values = clip summary. A failed file has only this row, with empty values and the
  reason in ``error``.
- ``kind=timeline``: one row per update in time order; ``time_s`` = window end, ``window_s`` =
  audio covered; ``duration_s`` and ``error`` empty.

Numbers are written with Python's shortest round-trip repr, so the CSV equals the JSON exactly.
Filter with e.g. ``df[df.kind == "timeline"]`` in pandas.

JSON Lines (``--jsonl``, written as each file finishes): the first line is the document without
``files`` (the header); every further line is one ``files[]`` entry, in the order the files
finished. ``read_jsonl`` turns it back into the JSON document. The CSV table is also appended
file by file, each file's rows in one write; with several workers files appear in the order
they finished.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from dawemo import __version__
from dawemo import constants as C

TIME_REFERENCE = "window_end"
CSV_KINDS = ("summary", "timeline")


@dataclass
class FileReport:
    """The outcome for one input: an analysis or a one-line error."""

    path: str
    duration_s: float | None
    error: str | None
    analysis: object | None  # dawemo.emotion.tracker.Analysis when error is None


# ----------------------------------------------------------------------------------------------
# Building the document


def model_block(model) -> dict:
    """``model.describe()`` plus the model file's path."""
    block = model.describe()
    block["path"] = str(model.path)
    return block


def new_document(model, window_s: float, hop_s: float, steady_s: float) -> dict:
    """An empty report for ``model`` analysed with the window, hop and change-aware averaging
    (``steady_s``, 0: off) actually used (seconds)."""
    return {
        "dawemo_version": __version__,
        "model": model_block(model),
        "time_reference": TIME_REFERENCE,
        "window_s": float(window_s),
        "hop_s": float(hop_s),
        # Change-aware averaging of the timeline (dawemo.emotion.averaging); clip summaries do not use it.
        "steady_s": float(steady_s),
        "sample_rate": int(model.sample_rate),
        "segment_s": model.segment_frames / model.frames_per_s,
        "segment_stride_s": model.segment_stride_frames / model.frames_per_s,
        "emotion_scale": list(C.EMOTION_SCALE),
        "midlevel_scale": list(C.MIDLEVEL_SCALE),
        "files": [],
    }


def _named(names: list[str], values: np.ndarray) -> dict[str, float]:
    """(k,) values -> {name: float}."""
    return {name: float(v) for name, v in zip(names, values)}


def _named_series(names: list[str], values: np.ndarray) -> dict[str, list[float]]:
    """(n_times, k) values -> {name: [n_times floats]}."""
    return {name: values[:, i].astype(float).tolist() for i, name in enumerate(names)}


def file_entry(result: FileReport, emotion_names: list[str], midlevel_names: list[str]) -> dict:
    """One ``files[]`` item of the JSON document."""
    entry = {"path": result.path,
             "duration_s": None if result.duration_s is None else float(result.duration_s),
             "error": result.error, "summary": None, "timeline": None}
    if result.error is not None or result.analysis is None:
        entry["error"] = result.error or "no analysis"
        return entry
    analysis = result.analysis
    updates = analysis.updates
    emotions = np.array([u.emotions for u in updates], dtype=np.float64).reshape(-1, len(emotion_names))
    midlevel = np.array([u.midlevel for u in updates], dtype=np.float64).reshape(-1, len(midlevel_names))
    entry["summary"] = {"emotions": _named(emotion_names, analysis.summary_emotions),
                        "midlevel": _named(midlevel_names, analysis.summary_midlevel)}
    entry["timeline"] = {"time_s": [float(u.time_s) for u in updates],
                         "window_s": [float(u.window_s) for u in updates],
                         "emotions": _named_series(emotion_names, emotions),
                         "midlevel": _named_series(midlevel_names, midlevel)}
    return entry


def add_file(document: dict, result: FileReport) -> dict:
    """Append ``result`` to the document's files; return its entry."""
    model = document["model"]
    entry = file_entry(result, model["emotions"], model["midlevel"])
    document["files"].append(entry)
    return entry


def contributions(document: dict, entry: dict) -> np.ndarray:
    """(8, 7) signed weight x feature of the clip summary: how much each feature adds to each emotion."""
    model = document["model"]
    midlevel = np.array([entry["summary"]["midlevel"][name] for name in model["midlevel"]])
    return np.asarray(model["emotion_weights"]) * midlevel[None, :]


def dominant_emotion(document: dict, entry: dict) -> str:
    """The highest of the discrete emotions (anger, fear, happy, sad, tender) in the clip summary."""
    emotions = entry["summary"]["emotions"]
    candidates = [name for name in C.DISCRETE_EMOTION_NAMES if name in emotions] or list(emotions)
    return max(candidates, key=lambda name: emotions[name])


# ----------------------------------------------------------------------------------------------
# Writing


def _default_file_mode() -> int:
    """Permission bits a plain ``open(path, "w")`` would give (mkstemp makes 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write ``path`` through a temporary file in its folder, then rename over it.

    An interrupted or failed ``write(file)`` leaves any previous ``path`` untouched and no
    temporary file behind.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                    prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp_name, _default_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _write_text(target: str | Path, write: Callable[[IO], None]) -> None:
    """``write`` to stdout for ``-``, else atomically to the file."""
    if str(target) == "-":
        write(sys.stdout)
        sys.stdout.flush()
    else:
        atomic_write(target, write)


def write_json(document: dict, target: str | Path) -> None:
    """The document as indented JSON (``-``: stdout); NaN is refused, not written as invalid JSON."""
    def write(file: IO) -> None:
        json.dump(document, file, indent=2, allow_nan=False)
        file.write("\n")

    _write_text(target, write)


def csv_columns(document: dict) -> list[str]:
    """Header of the CSV table (see the module docstring)."""
    model = document["model"]
    return ["path", "kind", "time_s", "window_s", "duration_s", *model["emotions"], *model["midlevel"], "error"]


def csv_entry_rows(document: dict, entry: dict) -> Iterator[list]:
    """One file's rows of the CSV table: the summary row, then the timeline rows."""
    emotion_names, midlevel_names = document["model"]["emotions"], document["model"]["midlevel"]
    duration = "" if entry["duration_s"] is None else entry["duration_s"]
    if entry["error"] is not None:
        yield [entry["path"], "summary", "", "", duration, *[""] * (len(emotion_names) + len(midlevel_names)),
               entry["error"]]
        return
    summary = entry["summary"]
    yield [entry["path"], "summary", "", "", duration,
           *(summary["emotions"][n] for n in emotion_names),
           *(summary["midlevel"][n] for n in midlevel_names), ""]
    timeline = entry["timeline"]
    for i, time_s in enumerate(timeline["time_s"]):
        yield [entry["path"], "timeline", time_s, timeline["window_s"][i], "",
               *(timeline["emotions"][n][i] for n in emotion_names),
               *(timeline["midlevel"][n][i] for n in midlevel_names), ""]


def csv_rows(document: dict) -> Iterator[list]:
    """Rows of the CSV table, file by file: the summary row, then the timeline rows."""
    for entry in document["files"]:
        yield from csv_entry_rows(document, entry)


def csv_text(rows: Iterator[list]) -> str:
    """CSV rows as text, as ``write_csv`` writes them."""
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_csv(document: dict, target: str | Path) -> None:
    """The CSV table (``-``: stdout)."""
    def write(file: IO) -> None:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(csv_columns(document))
        writer.writerows(csv_rows(document))

    _write_text(target, write)


def header(document: dict) -> dict:
    """The document without its files: the first line of a JSON Lines report."""
    return {key: value for key, value in document.items() if key != "files"}


def json_line(item: dict) -> str:
    """One JSON Lines line (with its newline); NaN is refused."""
    return json.dumps(item, allow_nan=False) + "\n"


def same_analysis(a: dict, b: dict) -> bool:
    """Whether two document headers describe the same model (weights and all), window, hop and rate."""
    def key(document: dict) -> tuple:
        model = {k: v for k, v in document["model"].items() if k != "path"}
        return (json.dumps(model, sort_keys=True), document["window_s"], document["hop_s"], document["sample_rate"])

    return key(a) == key(b)


def ends_with_newline(path: str | Path) -> bool:
    """Whether a text file is empty or ends with a newline (what a cut-short last write does not)."""
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return True
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """A JSON Lines report, line by line: the header first, then the file entries.

    A last line cut short by an interruption (no newline at the end of the file) is left out:
    lines are written whole, and JSON text never contains a raw newline.

    Raises:
        ValueError: not a dawemo JSON Lines report (no header line, or a line that is not JSON).
    """
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            if not raw.endswith(b"\n"):
                return  # cut short while being written
            try:
                item = json.loads(raw)
            except ValueError:
                raise ValueError(f"{path}: line {number} is not JSON") from None
            if number == 1 and (not isinstance(item, dict) or "model" not in item or "path" in item):
                raise ValueError(f"{path}: not a dawemo JSON Lines report (no header line)")
            yield item


def read_jsonl(path: str | Path) -> dict:
    """A JSON Lines report as the JSON document (files in the order they finished)."""
    lines = iter_jsonl(path)
    document = next(lines, None)
    if document is None:
        raise ValueError(f"{path}: empty, not a dawemo JSON Lines report")
    document["files"] = list(lines)
    return document


def iter_csv_entries(path: str | Path, document: dict) -> Iterator[dict]:
    """A CSV table written for ``document``'s model, as ``files[]`` entries, file by file.

    The rows of a file cut short by an interruption (the table does not end with a newline)
    are left out.

    Raises:
        ValueError: the header row is not the one ``document`` writes, or rows out of order.
    """
    emotion_names, midlevel_names = document["model"]["emotions"], document["model"]["midlevel"]
    columns = csv_columns(document)
    cut = not ends_with_newline(path)
    entry = None
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        if next(reader, None) != columns:
            raise ValueError(f"{path}: its columns are not the ones this model writes")
        for row in reader:
            if len(row) != len(columns):  # only a cut last row can be short
                cut = True
                break
            values = dict(zip(columns, row))
            if values["kind"] == "summary":
                if entry is not None:
                    yield entry
                entry = {"path": values["path"],
                         "duration_s": float(values["duration_s"]) if values["duration_s"] else None,
                         "error": values["error"] or None, "summary": None, "timeline": None}
                if entry["error"] is None:
                    entry["summary"] = {"emotions": {n: float(values[n]) for n in emotion_names},
                                        "midlevel": {n: float(values[n]) for n in midlevel_names}}
                    entry["timeline"] = {"time_s": [], "window_s": [], "emotions": {n: [] for n in emotion_names},
                                         "midlevel": {n: [] for n in midlevel_names}}
            elif entry is not None and entry["timeline"] is not None and values["path"] == entry["path"]:
                timeline = entry["timeline"]
                timeline["time_s"].append(float(values["time_s"]))
                timeline["window_s"].append(float(values["window_s"]))
                for group, names in (("emotions", emotion_names), ("midlevel", midlevel_names)):
                    for n in names:
                        timeline[group][n].append(float(values[n]))
            else:
                raise ValueError(f"{path}: a timeline row of {values['path']} does not follow its summary row")
    if entry is not None and not cut:
        yield entry


# ----------------------------------------------------------------------------------------------
# Console summary


def _explain(names: list[str], values: np.ndarray, features: dict[str, float], sign: float, top: int) -> str:
    """The ``top`` largest contributions of one sign as ``feature 0.71 -> -0.24``."""
    order = [i for i in np.argsort(-sign * values) if sign * values[i] > 0][:top]
    return ", ".join(f"{names[i]} {features[names[i]]:.2f} -> {values[i]:+.2f}" for i in order) or "none"


def format_text_summary(document: dict, entry: dict, top: int = 3) -> str:
    """A few lines for one analysed file: emotions (highest first), mid-level values, and why the
    dominant emotion has its value (bias + the features that push it up and down)."""
    model = document["model"]
    emotions, features = entry["summary"]["emotions"], entry["summary"]["midlevel"]
    n_points = len(entry["timeline"]["time_s"])
    dominant = dominant_emotion(document, entry)
    row = model["emotions"].index(dominant)
    contrib = contributions(document, entry)[row]
    ranked = sorted(emotions, key=lambda name: -emotions[name])
    lines = [
        f"{entry['path']}  ({entry['duration_s']:.1f} s, {n_points} timeline points: "
        f"{document['window_s']:.1f} s windows every {document['hop_s']:.2f} s)",
        "  emotions (1-9):   " + "  ".join(f"{name} {emotions[name]:.2f}" for name in ranked),
        "  mid-level (0-1):  " + "  ".join(f"{name} {features[name]:.2f}" for name in model["midlevel"]),
        f"  dominant: {dominant} {emotions[dominant]:.2f} = bias {model['emotion_bias'][row]:.2f} "
        f"{contrib.sum():+.2f} from features (feature value -> contribution)",
        "    pushed up by:   " + _explain(model["midlevel"], contrib, features, +1.0, top),
        "    pushed down by: " + _explain(model["midlevel"], contrib, features, -1.0, top),
    ]
    return "\n".join(lines)
