"""Recording live automation to a Standard MIDI File (one track per lane) and a timeline file.

``AutomationRecorder`` writes, while it runs:

* ``midi_path``: a type 1 SMF. Track 0 is the tempo map (name, 4/4, ``tempo_bpm``); then one
  track per lane, named after it, holding that lane's CC events. Event times are seconds since
  ``start_time_s`` converted to ticks at ``tempo_bpm`` (``ppq`` ticks per beat), so the file lines
  up on a DAW timeline set to that tempo, starting at the recording's start.
* ``timeline_path`` (optional): ``time_s`` (same origin) and every emotion/feature value per
  model update, as CSV, or JSON Lines when the name ends in ``.jsonl``.

Crash safety: a writer thread writes to disk every ``flush_interval_s`` (0.5 s), so a
``kill -9`` loses at most that much, and the files on disk are readable at every moment.

* The MIDI file cannot simply be appended to (every track chunk starts with its byte length),
  and rewriting it whole each time would cost O(file) per flush (a 2-hour worst case is ~15 MB,
  i.e. ~100 GB written over a session). Instead each lane track is laid out with room to grow:
  its events, then one padding meta event (sequencer-specific, ``FF 7F``, manufacturer byte
  ``7D`` = non-commercial) that fills the reserved space, then end-of-track. The chunk length
  never changes; new events are written over the start of the padding, followed by a shorter
  padding header. The file stays a valid SMF at every instant: the bytes after the old padding
  header (opaque padding data) are written first, then the old header's own <= 7 bytes, which
  never straddle a 512-byte sector (a small filler meta keeps them aligned), so the switch is a
  single write that neither a kill nor a torn sector can split. fdatasync orders the two steps.
  When a track's reserve runs out, the whole file is rewritten (temp file, fsync, atomic
  ``os.replace``) with each track's reserve doubled, so full rewrites are O(log n). On clean
  close the file is rewritten once more without any padding.
* The timeline is appended in whole lines, one write per flush, then fsync'd; ``read_timeline``
  drops a cut last line, should a kill land in the middle of that write.

Encoded track bytes are kept in memory (about 5 bytes per CC event), never Python objects per
event: 15 lanes x 30 Hz x 2 h = 3.2 M events is ~15 MB.

Disk faults (full disk, quota, I/O error, file too large) never reach the callers after
``__enter__`` (nor at ``__enter__`` for a full disk): what cannot be written stays in memory (the
track bytes above, timeline lines not yet written) and every flush tries again, so once space
returns the files hold everything. Meanwhile the files on disk stay readable: in-place appends
need no new space and go on where a lane has room; a full rewrite that fails removes its temp file
and leaves the previous .mid; a timeline write cut short is truncated back to its last whole line.
``health`` (``dawemo.faults.Health``) is ``recovering`` while writes fail, naming the file and the
cause; if space never returns, ``close`` writes what it can and ends ``failed`` with a message
saying how much was not saved.

Timeline event rows (``record_fault``) mark faults and recoveries. In CSV, an event row is
``time_s``, one empty cell per column, then the event text as one extra last field that the
header does not name (ordinary rows and the header are unchanged; ``csv.DictReader`` puts the
text under the key None). In JSON Lines it is ``{"time_s": ..., "event": "..."}``.
``read_timeline`` returns both kinds as ``{"time_s": float, "event": str}``.

Sent rows (``record_sent``) keep every value sent to an OSC or DMX target (show control): in JSON
Lines ``{"time_s": ..., "lane": "Dimmer", "target": "artnet://10.0.0.5:6454/0/1", "value": 200}``;
in CSV an event row whose text is ``sent `` and that same object as JSON. ``read_timeline``
returns both as ``{"time_s", "lane", "target", "value"}``; ``dawemo replay`` sends them again.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from dawemo.faults import DEGRADED, FAILED, RECOVERING, Health, HealthReport

log = logging.getLogger(__name__)

SECTOR_BYTES = 512  # the padding header is kept inside one sector so its rewrite cannot tear
MIN_RESERVE_BYTES = 16 * 1024  # per lane: ~100 s of 30 Hz CC before the first full rewrite
LOW_SPACE_BYTES = 64 * 1024  # free space below which the recorder warns (degraded)
END_OF_TRACK = b"\x00\xff\x2f\x00"
# Faults of the disk rather than of the request: at __enter__ these start the recorder recovering
# instead of raising (other errors there, e.g. permission denied, are usage errors and raise).
SENT_PREFIX = "sent "  # CSV: an event row with this text prefix is a sent row (record_sent)
DISK_FAULT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def varlen(value: int) -> bytes:
    """SMF variable-length quantity (7 bits per byte, high bit = more follows)."""
    if value < 0 or value > 0x0FFFFFFF:
        raise ValueError(f"variable-length value out of range: {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def meta_event(meta_type: int, data: bytes, delta_ticks: int = 0) -> bytes:
    """A meta event (``FF type len data``) with its delta time."""
    return varlen(delta_ticks) + bytes([0xFF, meta_type]) + varlen(len(data)) + data


def _filler(size: int) -> bytes:
    """A padding meta event of exactly ``size`` (4-131) bytes."""
    data = b"\x7d" + bytes(size - 5) if size > 4 else b""
    return b"\x00\xff\x7f" + varlen(size - 4) + data


def _pad_header(offset: int, end: int) -> bytes | None:
    """Header of a padding meta starting at ``offset`` whose data runs to ``end``, or None.

    None when there is no room for at least one data byte, or when no length encoding fits
    exactly (one length per 7-bit boundary); the caller then shifts by a filler.
    """
    for size_bytes in (1, 2, 3, 4):
        length = end - offset - 3 - size_bytes
        if length < 1:
            return None
        if len(varlen(length)) == size_bytes:
            return b"\x00\xff\x7f" + varlen(length)
    return None


def padding_start(offset: int, end: int) -> tuple[bytes, int, int] | None:
    """Bytes that start a padding region at ``offset`` reaching ``end`` (where end-of-track sits).

    Returns:
        (fillers + padding header + 0x7D data byte, header offset, header length), or None when
        the region is too small. The header never crosses a ``SECTOR_BYTES`` boundary.
    """
    prefix = b""
    for _ in range(4):
        header = _pad_header(offset, end)
        if header is None:
            filler = _filler(4)
        elif offset // SECTOR_BYTES != (offset + len(header) - 1) // SECTOR_BYTES:
            to_boundary = SECTOR_BYTES - offset % SECTOR_BYTES
            filler = _filler(to_boundary if to_boundary >= 4 else to_boundary + 4)
        else:
            return prefix + header + b"\x7d", offset, len(header)
        if offset + len(filler) + 5 > end:
            return None
        prefix += filler
        offset += len(filler)
    return None


def _parse_lane(lane) -> tuple[str, int, tuple[int, ...]]:
    """(name, channel, control or (msb, lsb)) tuple, or an object with ``name``, ``channel`` and
    ``controls`` (like ``dawemo.outputs.mapping.Lane``) or ``control``."""
    if isinstance(lane, (tuple, list)):
        name, channel, control = lane
    else:
        name, channel = lane.name, lane.channel
        control = lane.controls if hasattr(lane, "controls") else lane.control
    controls = tuple(control) if isinstance(control, (tuple, list)) else (control,)
    if not 0 <= int(channel) <= 15 or not all(0 <= int(c) <= 127 for c in controls) or len(controls) not in (1, 2):
        raise ValueError(f"lane {lane!r}: channel must be 0-15 and control 0-127 or (msb, lsb)")
    return str(name), int(channel), tuple(int(c) for c in controls)


class _Track:
    """One lane's encoded events and, while recording, where its padding sits in the file."""

    __slots__ = ("name", "channel", "controls", "events", "written", "last_tick", "event_count", "pad_offset",
                 "pad_header_len", "end_offset", "warned")

    def __init__(self, name: str, channel: int, controls: tuple[int, ...]) -> None:
        self.name, self.channel, self.controls = name, channel, controls
        self.events = bytearray()
        self.written = 0  # bytes of ``events`` in the file on disk; the rest waits for the next flush
        self.last_tick = 0
        self.event_count = 0
        self.pad_offset = self.pad_header_len = self.end_offset = 0
        self.warned = False


class AutomationRecorder:
    """Crash-safe recorder of CC automation (SMF type 1) and model updates (CSV/JSONL), as a context manager.

    Args:
        midi_path: the .mid file to write (replaced if it exists); None records the timeline only.
        timeline_path: optional .csv (default format) or .jsonl file for ``record_update``.
        tempo_bpm: the tempo the file is laid out at; set the DAW project to it.
        lanes: per lane ``(name, channel 0-15, control 0-127 or (msb, lsb))`` or objects with
            ``name``/``channel``/``controls`` (``dawemo.outputs.mapping.Lane``); lane i becomes track
            i + 1, named ``name``.
        columns: timeline value names, in column order; None: the first update's keys.
        ppq: ticks per quarter note.
        flush_interval_s: seconds between writes to disk (what a crash can lose).
        start_time_s: ``time.monotonic()`` value that is time 0 of both files; None: when the
            recorder is entered.
        title: track 0's name.
        time_signature: (numerator, denominator) written to track 0 (a DAW bridge gives the host's).
        min_reserve_bytes: free room per lane track after each full rewrite (at least its size).
    """

    def __init__(self, midi_path: str | Path | None, timeline_path: str | Path | None = None, tempo_bpm: float = 120.0,
                 lanes: Sequence = (), columns: Sequence[str] | None = None, *, ppq: int = 480,
                 flush_interval_s: float = 0.5, start_time_s: float | None = None,
                 title: str = "dawemo automation", min_reserve_bytes: int = MIN_RESERVE_BYTES,
                 time_signature: tuple[int, int] = (4, 4)) -> None:
        if not (math.isfinite(tempo_bpm) and 1.0 <= tempo_bpm <= 1000.0):
            raise ValueError(f"tempo_bpm must be 1-1000, got {tempo_bpm}")
        if not 24 <= ppq <= 0x7FFF:
            raise ValueError(f"ppq must be 24-32767, got {ppq}")
        self.midi_path = Path(midi_path) if midi_path is not None else None
        self.timeline_path = Path(timeline_path) if timeline_path is not None else None
        self.tempo_bpm = float(tempo_bpm)
        self.ppq = ppq
        self.ticks_per_s = ppq * self.tempo_bpm / 60.0
        self.flush_interval_s = flush_interval_s
        self.start_time_s = start_time_s
        self.title = title
        numerator, denominator = (int(part) for part in time_signature)
        if not (1 <= numerator <= 255 and denominator in (1, 2, 4, 8, 16, 32, 64)):
            raise ValueError(f"time_signature must be (1-255, a power of two up to 64), got {time_signature}")
        self.time_signature = (numerator, denominator)
        self.min_reserve_bytes = max(64, min_reserve_bytes)
        self.columns = list(columns) if columns is not None else None
        self.jsonl = self.timeline_path is not None and self.timeline_path.suffix.lower() == ".jsonl"
        self.tracks = [_Track(*_parse_lane(lane)) for lane in lanes]
        self.last_error: str | None = None
        self.full_rewrites = 0
        self.last_rewrite_s = 0.0  # seconds the latest full rewrite of the .mid took
        self._report = HealthReport(str(self.midi_path or self.timeline_path or ""))

        self._lock = threading.Lock()  # guards the pending lists and _latest_s (caller <-> writer)
        self._write_lock = threading.Lock()  # one flush at a time (writer thread, flush(), close)
        self._pending_cc: list[tuple[float, int, int, int, int]] = []
        self._pending_rows: list[str] = []
        self._early_events: list[tuple[float, str]] = []  # CSV event rows before the columns are known
        self._latest_s: float | None = None  # latest time_s recorded (callers' clock)
        self._saved_s: float | None = None  # latest time_s of which everything is on disk
        self._header_done = False
        self._extra_keys_warned = False
        self._midi_fd: int | None = None
        self._timeline_fd: int | None = None
        self._timeline_size = 0  # bytes of whole lines in the timeline file
        self._timeline_unwritten = bytearray()  # lines not yet written (encoded), oldest first
        self._timeline_error: OSError | None = None  # why the latest timeline write failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._track0 = self._encode_track0()

    # -- caller side ---------------------------------------------------------------------------

    def __enter__(self) -> "AutomationRecorder":
        """Create both files (readable from the start) and start the writer thread.

        Raises:
            OSError: a folder cannot be created or a file cannot be opened (permission denied...).
                A full disk does not raise: the recorder starts ``recovering`` and creates the
                files when space returns.
        """
        if self.start_time_s is None:
            self.start_time_s = time.monotonic()
        for path in (self.midi_path, self.timeline_path):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        fault = None
        if self.midi_path is not None:
            try:
                self._rewrite(compact=False)
            except OSError as error:
                if error.errno not in DISK_FAULT_ERRNOS:
                    raise
                fault = (self.midi_path, error)
                # A .mid of an earlier take must not pass for this one (and its space is welcome).
                _remove(self.midi_path)
        if self.timeline_path is not None:
            try:
                self._timeline_fd = os.open(self.timeline_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            except OSError as error:
                if error.errno not in DISK_FAULT_ERRNOS:
                    self._close_files()
                    raise
                fault = fault or (self.timeline_path, error)
            if self.columns is not None:
                self._queue_header()
            try:
                self._write_timeline()
            except OSError as error:
                self._timeline_error = error
                fault = fault or (self.timeline_path, error)
        if fault is not None:
            self._fault(*fault)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="automation-recorder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Final write: the .mid rewritten without padding, the timeline flushed and closed."""
        self.close()

    def close(self) -> None:
        """Stop the writer thread and write the final files; safe to call twice; never raises.

        If the disk stays full, what is not written is lost: ``health`` turns ``failed`` and
        ``last_error`` says how much, and up to when the files hold the recording.
        """
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        with self._write_lock:
            if not self.jsonl and self.columns is None and self._early_events:
                with self._lock:
                    self.columns = []  # events only: a header of time_s alone
                    self._take_early_events()
            self._flush_locked()
            final_error = None
            if self.midi_path is not None:
                try:
                    self._rewrite(compact=True)
                except OSError as error:
                    final_error = error
            midi_complete = self.midi_path is None or final_error is None or (
                self._midi_fd is not None and all(track.written == len(track.events) for track in self.tracks))
            timeline_complete = self.timeline_path is None or (self._timeline_fd is not None
                                                               and not self._timeline_unwritten)
            self._close_files()
            if not midi_complete:
                self._lost(self.midi_path, final_error)
            elif not timeline_complete:
                self._lost(self.timeline_path, self._timeline_error)
            elif final_error is not None:
                # Everything is in the file, still laid out with its padding: a valid SMF all the same.
                self._fail(f"final MIDI write failed ({_cause(final_error)}); {self.midi_path} keeps the whole "
                           "recording with its unused padding")
            elif not self._report.health.ok:
                self._report.ok()
                log.warning("automation recorder: writing again, nothing lost")

    def record_cc(self, time_s: float, lane_index: int, channel: int, control: int, value: int) -> None:
        """Record one CC event (``time_s`` on the ``time.monotonic()`` clock) on lane ``lane_index``."""
        if not 0 <= lane_index < len(self.tracks):
            raise ValueError(f"lane_index {lane_index} out of range (0-{len(self.tracks) - 1})")
        if not (0 <= channel <= 15 and 0 <= control <= 127 and 0 <= value <= 127):
            raise ValueError(f"CC out of range: channel {channel}, control {control}, value {value}")
        time_s = float(time_s)
        with self._lock:
            self._pending_cc.append((time_s, int(lane_index), int(channel), int(control), int(value)))
            self._note_time(time_s)

    def record_ccs(self, events: Iterable) -> None:
        """Record CC events ``(time_s, lane_index, channel, control, value)``, as mapping produces them."""
        for event in events:
            self.record_cc(*event)

    def record_update(self, time_s: float, values: dict) -> None:
        """Record one model update: a timeline row with ``time_s`` and ``values`` {column: number}."""
        if self.timeline_path is None:
            return
        if self.start_time_s is None:
            raise RuntimeError("AutomationRecorder is not entered")
        time_s = float(time_s)
        relative_s = time_s - self.start_time_s
        if self.jsonl:
            line = json.dumps({"time_s": round(relative_s, 4), **{k: _json_value(v) for k, v in values.items()}},
                              allow_nan=False) + "\n"
            with self._lock:
                self._pending_rows.append(line)
                self._note_time(time_s)
            return
        with self._lock:
            if self.columns is None:
                self.columns = list(values)
                self._take_early_events()
            if not self._extra_keys_warned and any(key not in self.columns for key in values):
                self._extra_keys_warned = True
                log.warning("timeline: values %s are not columns and are not recorded",
                            sorted(set(values) - set(self.columns)))
            cells = [f"{relative_s:.4f}"] + [_csv_value(values.get(column)) for column in self.columns]
            self._pending_rows.append(_csv_line(cells))
            self._note_time(time_s)

    def record_fault(self, time_s: float, line: str) -> None:
        """Mark the timeline at ``time_s`` (the clock of ``record_update``) with a fault or recovery line.

        The engine calls this for every change of any part's health (``dawemo.faults.Fault.line``),
        this recorder's own included, so a gap in the timeline says why; the recorder does not mark
        its own faults by itself. The row's format is in the module docstring. No-op without a
        timeline.
        """
        if self.timeline_path is None:
            return
        if self.start_time_s is None:
            raise RuntimeError("AutomationRecorder is not entered")
        time_s = float(time_s)
        relative_s = time_s - self.start_time_s
        text = " ".join(str(line).split())  # one line, whatever the message held
        with self._lock:
            if self.jsonl:
                self._pending_rows.append(json.dumps({"time_s": round(relative_s, 4), "event": text}) + "\n")
            elif self.columns is None:
                self._early_events.append((relative_s, text))
            else:
                self._pending_rows.append(_csv_event_line(relative_s, len(self.columns), text))
            self._note_time(time_s)

    def record_sent(self, time_s: float, lane: str, target: str, value: float | int) -> None:
        """Record one value sent to a show target (``time_s`` on the ``record_update`` clock, when it
        went out); format in the module docstring. No-op without a timeline."""
        if self.timeline_path is None:
            return
        if self.start_time_s is None:
            raise RuntimeError("AutomationRecorder is not entered")
        time_s = float(time_s)
        relative_s = round(time_s - self.start_time_s, 4)
        if isinstance(value, float):
            value = float(f"{value:.7g}")  # what an OSC float32 carries; a shorter line
        sent = {"lane": str(lane), "target": str(target), "value": value}
        with self._lock:
            if self.jsonl:
                self._pending_rows.append(json.dumps({"time_s": relative_s, **sent}) + "\n")
            elif self.columns is None:
                self._early_events.append((relative_s, SENT_PREFIX + json.dumps(sent)))
            else:
                self._pending_rows.append(_csv_event_line(relative_s, len(self.columns),
                                                          SENT_PREFIX + json.dumps(sent)))
            self._note_time(time_s)

    def flush(self) -> None:
        """Write everything recorded so far to disk now (the writer thread does this every flush_interval_s).

        Never raises for disk faults: see ``health``.
        """
        with self._write_lock:
            if self._thread is not None:  # not before __enter__ nor after close
                self._flush_locked()

    @property
    def health(self) -> Health:
        """``ok``; ``recovering`` while writes fail (kept in memory, retried each flush); ``failed``
        when ``close`` could not write everything. ``where`` is the file concerned."""
        return self._report.health

    @property
    def event_count(self) -> int:
        """CC events written (or about to be written) to the tracks."""
        return sum(track.event_count for track in self.tracks)

    # -- writer --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def _note_time(self, time_s: float) -> None:
        """Under ``_lock``: keep the latest time recorded."""
        if self._latest_s is None or time_s > self._latest_s:
            self._latest_s = time_s

    def _take_early_events(self) -> None:
        """Under ``_lock``, once the CSV columns are known: the event rows that waited for them."""
        for relative_s, text in self._early_events:
            self._pending_rows.append(_csv_event_line(relative_s, len(self.columns), text))
        self._early_events.clear()

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.error("automation recorder: %s", message)
        self.last_error = message

    def _kept_s(self) -> float:
        """Seconds of recording (callers' clock) held in memory only."""
        if self._latest_s is None:
            return 0.0
        saved_s = self._saved_s if self._saved_s is not None else self.start_time_s
        return max(0.0, self._latest_s - saved_s)

    def _fault(self, path: Path, error: OSError) -> None:
        """Writes to ``path`` fail: say so (recovering) and keep trying."""
        cause, resumes = _describe(error)
        message = (f"{cause} writing {path} ({_cause(error)}): recording paused, {self._kept_s():.1f} s kept "
                   f"in memory, {resumes}")
        if self._report.health.state != RECOVERING:
            log.error("automation recorder: %s", message)
        self.last_error = message
        self._report.set(RECOVERING, message, str(path))

    def _lost(self, path: Path, error: OSError | None) -> None:
        """At close: part of the recording could not be written (failed)."""
        cause, _ = _describe(error)
        saved_s = (self._saved_s if self._saved_s is not None else self.start_time_s) - self.start_time_s
        written = [str(p) for p in (self.midi_path, self.timeline_path) if p is not None and p.exists()]
        holds = (f"{' and '.join(written)} {'hold' if len(written) > 1 else 'holds'} the first {saved_s:.1f} s"
                 if written else "no file was written")
        message = (f"{cause} writing {path} ({_cause(error)}): the last {self._kept_s():.1f} s of the recording "
                   f"were not saved; {holds}")
        log.error("automation recorder: %s", message)
        self.last_error = message
        self._report.set(FAILED, message, str(path))

    def _flush_locked(self) -> None:
        """Encode what was recorded and write what is not on disk yet; a fault sets ``health``, never raises."""
        with self._lock:
            new_cc, self._pending_cc = self._pending_cc, []
            rows, self._pending_rows = self._pending_rows, []
            latest_s = self._latest_s
            if self.columns is not None and not self.jsonl and not self._header_done:
                self._queue_header()
        if rows:
            self._timeline_unwritten += "".join(rows).encode("utf-8")
        fault = None
        if self.midi_path is not None:
            self._encode(new_cc)
            try:
                self._write_midi()
            except OSError as error:
                fault = (self.midi_path, error)
        if self.timeline_path is not None:
            try:
                self._write_timeline()
                self._timeline_error = None
            except OSError as error:
                self._timeline_error = error
                fault = fault or (self.timeline_path, error)
        if fault is not None:
            self._fault(*fault)
            return
        self._saved_s = latest_s
        low = self._low_space()
        if low is not None:
            if self._report.health.state != DEGRADED:
                self._report.set(DEGRADED, low[0], low[1])
            return
        if not self._report.health.ok:
            self._report.ok()
            log.warning("automation recorder: writing again, nothing lost")

    def _low_space(self) -> tuple[str, str] | None:
        """(message, folder) when a file's filesystem is nearly full, so the performer hears of it
        before writes fail (appends in reserved space and in a page's last bytes go on for a while)."""
        midi_bytes = self._file_bytes(self.midi_path)
        for path in (self.midi_path, self.timeline_path):
            if path is None:
                continue
            try:
                stat = os.statvfs(path.parent)
            except (OSError, AttributeError):  # no statvfs on Windows: writes failing still say it
                return None
            free_bytes = stat.f_bavail * stat.f_frsize
            # A full rewrite of the .mid needs room for a second copy.
            if free_bytes < max(LOW_SPACE_BYTES, midi_bytes):
                return (f"disk almost full at {path.parent} ({free_bytes // 1024} KiB free): recording goes on "
                        "in the space it has; it pauses, keeping what follows in memory, if that runs out",
                        str(path.parent))
        return None

    @staticmethod
    def _file_bytes(path: Path | None) -> int:
        try:
            return path.stat().st_size if path is not None else 0
        except OSError:
            return 0

    def _queue_header(self) -> None:
        if not self.jsonl and not self._header_done:
            self._timeline_unwritten[:0] = _csv_line(["time_s", *self.columns]).encode("utf-8")
            self._header_done = True

    def _write_timeline(self) -> None:
        """Append the unwritten lines, then fsync. A write cut short keeps its whole lines and is
        truncated back to the last of them, so the file never holds a cut line before a later one."""
        if self._timeline_fd is None:  # the disk was full at __enter__
            self._timeline_fd = os.open(self.timeline_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        if not self._timeline_unwritten:
            return
        data = memoryview(bytes(self._timeline_unwritten))
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self._timeline_fd, data[done:], self._timeline_size + done)
        except OSError:
            whole = bytes(data[:done]).rfind(b"\n") + 1
            self._timeline_size += whole
            del self._timeline_unwritten[:whole]
            try:
                os.ftruncate(self._timeline_fd, self._timeline_size)
            except OSError:
                pass  # the next write starts at the same offset with the same bytes
            raise
        # Not counted as written until fsync succeeds: on failure the same bytes go to the same place again.
        os.fsync(self._timeline_fd)
        self._timeline_size += len(data)
        del self._timeline_unwritten[:len(data)]

    def _close_files(self) -> None:
        for name in ("_midi_fd", "_timeline_fd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _encode(self, events: list[tuple[float, int, int, int, int]]) -> dict[int, bytes]:
        """Append events to the tracks' byte caches; returns the new bytes per lane."""
        new: dict[int, bytearray] = {}
        for time_s, lane, channel, control, value in events:
            track = self.tracks[lane]
            if not track.warned and (channel != track.channel or control not in track.controls):
                track.warned = True
                log.warning("lane %r: recording channel %d control %d, not its own channel %d control %s",
                            track.name, channel, control, track.channel, track.controls)
            # Ticks from absolute time (no rounding drift); an event earlier than the previous
            # one on its lane (out-of-order input) is written at the previous one's time.
            tick = max(track.last_tick, int(round(max(0.0, time_s - self.start_time_s) * self.ticks_per_s)))
            chunk = new.setdefault(lane, bytearray())
            chunk += varlen(tick - track.last_tick)
            chunk += bytes((0xB0 | channel, control, value))
            track.last_tick = tick
            track.event_count += 1
        for lane, chunk in new.items():
            self.tracks[lane].events += chunk
        return new

    def _write_midi(self) -> None:
        """Bring the .mid up to date with the tracks: in place where there is room, else rewritten whole.

        When the whole rewrite fails (disk full), the lanes that still have room are appended in
        place anyway, so the file on disk loses as little as possible; the error is raised after.
        """
        if self._midi_fd is None:  # never written (disk full at __enter__) or a rewrite cut short
            self._rewrite(compact=False)
            return
        new = {lane: bytes(track.events[track.written:]) for lane, track in enumerate(self.tracks)
               if track.written < len(track.events)}
        if not new:
            return
        plans = self._plan_appends(new)
        if plans is None:  # a lane's reserve is used up: relayout everything, reserves doubled
            try:
                self._rewrite(compact=False)
                return
            except OSError:
                if self._midi_fd is not None:
                    self._append(self._plan_appends(new, partial=True))
                raise
        self._append(plans)

    def _plan_appends(self, new: dict[int, bytes],
                      partial: bool = False) -> list[tuple[_Track, bytes, int, int]] | None:
        """Per lane with new bytes: (track, bytes to write at its padding, new header offset, length).

        None when some lane has no room left; with ``partial``, the lanes with room.
        """
        plans = []
        for lane, chunk in new.items():
            track = self.tracks[lane]
            start = padding_start(track.pad_offset + len(chunk), track.end_offset)
            if start is None:
                if partial:
                    continue
                return None
            plans.append((track, bytes(chunk) + start[0], start[1], start[2]))
        return plans

    def _append(self, plans) -> None:
        if not plans:
            return
        self._append_step1(plans)
        os.fdatasync(self._midi_fd)
        self._append_step2(plans)
        os.fdatasync(self._midi_fd)

    def _append_step1(self, plans) -> None:
        """Write everything behind each old padding header (still opaque padding data to readers)."""
        for track, data, _, _ in plans:
            _pwrite_all(self._midi_fd, data[track.pad_header_len:], track.pad_offset + track.pad_header_len)

    def _append_step2(self, plans) -> None:
        """Overwrite the old padding headers (<= 7 bytes inside one sector): the switch."""
        for track, data, header_offset, header_len in plans:
            _pwrite_all(self._midi_fd, data[:track.pad_header_len], track.pad_offset)
            track.pad_offset, track.pad_header_len = header_offset, header_len
            track.written = len(track.events)

    def _encode_track0(self) -> bytes:
        tempo_us = int(round(60_000_000 / self.tempo_bpm))
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (meta_event(0x03, self.title.encode("utf-8"))
                + meta_event(0x01, f"dawemo automation recorded {started}, {self.tempo_bpm:g} BPM".encode())
                + meta_event(0x58, bytes([self.time_signature[0], self.time_signature[1].bit_length() - 1, 24, 8]))
                + meta_event(0x51, tempo_us.to_bytes(3, "big"))
                + END_OF_TRACK)

    def _rewrite(self, compact: bool) -> None:
        """Write the whole .mid to a temp file, fsync, and atomically replace the old one.

        ``compact``: no padding (the final file); otherwise each lane gets free room equal to
        its current size (at least MIN_RESERVE_BYTES) and the in-place offsets are reset. When
        any step before the replace fails, the temp file is removed and the old file stays as it was.
        """
        started_s = time.perf_counter()
        temp_path = self.midi_path.with_name(self.midi_path.name + ".tmp")
        layout = []  # (track, pad offset, pad header len, end offset)
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            try:
                _write_all(fd, b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
                           + (1 + len(self.tracks)).to_bytes(2, "big") + self.ppq.to_bytes(2, "big")
                           + b"MTrk" + len(self._track0).to_bytes(4, "big") + self._track0)
                offset = 14 + 8 + len(self._track0)
                for track in self.tracks:
                    name_meta = meta_event(0x03, track.name.encode("utf-8"))
                    body_start = offset + 8
                    pad_at = body_start + len(name_meta) + len(track.events)
                    if compact:
                        tail = END_OF_TRACK
                    else:
                        end = pad_at + max(self.min_reserve_bytes, len(track.events))
                        start, header_offset, header_len = padding_start(pad_at, end)
                        tail = start + bytes(end - pad_at - len(start)) + END_OF_TRACK
                        layout.append((track, header_offset, header_len, end))
                    length = len(name_meta) + len(track.events) + len(tail)
                    _write_all(fd, b"MTrk" + length.to_bytes(4, "big") + name_meta)
                    _write_all(fd, track.events)
                    _write_all(fd, tail)
                    offset = body_start + length
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp_path, self.midi_path)
        except BaseException:
            _remove(temp_path)
            raise
        _fsync_directory(self.midi_path.parent)
        if self._midi_fd is not None:  # the old file is gone: its descriptor must not be written again
            fd, self._midi_fd = self._midi_fd, None
            os.close(fd)
        self.full_rewrites += 1
        self.last_rewrite_s = time.perf_counter() - started_s
        if not compact:
            for track, header_offset, header_len, end in layout:
                track.pad_offset, track.pad_header_len, track.end_offset = header_offset, header_len, end
                track.written = len(track.events)
            self._midi_fd = os.open(self.midi_path, os.O_RDWR)


def _write_all(fd: int, data) -> None:
    """``os.write`` until all of ``data`` is written (a nearly full disk takes part of a write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _cause(error: OSError | None) -> str:
    """The system's words for an error: ``No space left on device``."""
    if error is None:
        return "unknown error"
    return error.strerror or str(error)


def _describe(error: OSError | None) -> tuple[str, str]:
    """(what happened, what happens next) for a fault's message."""
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC:
        return "disk full", "resumes when space returns"
    if code == errno.EDQUOT:
        return "disk quota exceeded", "resumes when space returns"
    if code == errno.EFBIG:
        return "file too large", "retrying"
    if code == errno.EIO:
        return "disk error", "retrying"
    return "cannot write", "retrying"


def _csv_event_line(relative_s: float, columns: int, text: str) -> str:
    """A CSV event row: ``time_s``, one empty cell per column, the text as one extra last field."""
    return _csv_line([f"{relative_s:.4f}", *([""] * columns), text])


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    value = float(value)
    return f"{value:.6g}" if math.isfinite(value) else ""


def _json_value(value):
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


def _csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def read_timeline(path: str | Path) -> list[dict]:
    """Rows of a timeline file (CSV or .jsonl), in file order.

    Ordinary rows are dicts of floats (None for empty cells): ``{"time_s": 0.5, "valence": 6.25, ...}``.
    Event rows (``AutomationRecorder.record_fault``) are ``{"time_s": 12.5, "event": "recording: back"}``;
    tell them apart with ``"event" in row``. Sent rows (``record_sent``) have ``"target" in row``. A last line without its newline (the write a kill
    interrupted) is dropped.
    """
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    if Path(path).suffix.lower() == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = rows[0]
    out = []
    for row in rows[1:]:
        if len(row) == len(header):
            out.append({name: (float(cell) if cell else None) for name, cell in zip(header, row)})
        elif len(row) == len(header) + 1 and row[0] and not any(row[1:-1]):
            if row[-1].startswith(SENT_PREFIX + "{"):
                out.append({"time_s": float(row[0]), **json.loads(row[-1][len(SENT_PREFIX):])})
            else:
                out.append({"time_s": float(row[0]), "event": row[-1]})
    return out
