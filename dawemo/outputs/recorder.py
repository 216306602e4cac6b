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
"""

from __future__ import annotations

import csv
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

log = logging.getLogger(__name__)

SECTOR_BYTES = 512  # the padding header is kept inside one sector so its rewrite cannot tear
MIN_RESERVE_BYTES = 16 * 1024  # per lane: ~100 s of 30 Hz CC before the first full rewrite
END_OF_TRACK = b"\x00\xff\x2f\x00"


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

    __slots__ = ("name", "channel", "controls", "events", "last_tick", "event_count", "pad_offset",
                 "pad_header_len", "end_offset", "warned")

    def __init__(self, name: str, channel: int, controls: tuple[int, ...]) -> None:
        self.name, self.channel, self.controls = name, channel, controls
        self.events = bytearray()
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
        min_reserve_bytes: free room per lane track after each full rewrite (at least its size).
    """

    def __init__(self, midi_path: str | Path | None, timeline_path: str | Path | None = None, tempo_bpm: float = 120.0,
                 lanes: Sequence = (), columns: Sequence[str] | None = None, *, ppq: int = 480,
                 flush_interval_s: float = 0.5, start_time_s: float | None = None,
                 title: str = "dawemo automation", min_reserve_bytes: int = MIN_RESERVE_BYTES) -> None:
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
        self.min_reserve_bytes = max(64, min_reserve_bytes)
        self.columns = list(columns) if columns is not None else None
        self.jsonl = self.timeline_path is not None and self.timeline_path.suffix.lower() == ".jsonl"
        self.tracks = [_Track(*_parse_lane(lane)) for lane in lanes]
        self.last_error: str | None = None
        self.full_rewrites = 0
        self.last_rewrite_s = 0.0  # seconds the latest full rewrite of the .mid took

        self._lock = threading.Lock()  # guards the two pending lists (caller <-> writer)
        self._write_lock = threading.Lock()  # one flush at a time (writer thread, flush(), close)
        self._pending_cc: list[tuple[float, int, int, int, int]] = []
        self._pending_rows: list[str] = []
        self._header_done = False
        self._extra_keys_warned = False
        self._midi_fd: int | None = None
        self._timeline = None
        self._needs_rewrite = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._track0 = self._encode_track0()

    # -- caller side ---------------------------------------------------------------------------

    def __enter__(self) -> "AutomationRecorder":
        """Create both files (readable from the start) and start the writer thread."""
        if self.start_time_s is None:
            self.start_time_s = time.monotonic()
        if self.midi_path is not None:
            self.midi_path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite(compact=False)
        if self.timeline_path is not None:
            self.timeline_path.parent.mkdir(parents=True, exist_ok=True)
            self._timeline = open(self.timeline_path, "w", encoding="utf-8", newline="")
            if self.columns is not None:
                self._write_header()
            self._timeline.flush()
            os.fsync(self._timeline.fileno())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="automation-recorder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Final write: the .mid rewritten without padding, the timeline flushed and closed."""
        self.close()

    def close(self) -> None:
        """Stop the writer thread and write the final files; safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        with self._write_lock:
            self._flush_locked()
            try:
                if self.midi_path is not None:
                    self._rewrite(compact=True)
            except OSError as error:
                self._fail(f"final MIDI write failed: {error}")
            if self._midi_fd is not None:
                os.close(self._midi_fd)
                self._midi_fd = None
            if self._timeline is not None:
                self._timeline.close()
                self._timeline = None

    def record_cc(self, time_s: float, lane_index: int, channel: int, control: int, value: int) -> None:
        """Record one CC event (``time_s`` on the ``time.monotonic()`` clock) on lane ``lane_index``."""
        if not 0 <= lane_index < len(self.tracks):
            raise ValueError(f"lane_index {lane_index} out of range (0-{len(self.tracks) - 1})")
        if not (0 <= channel <= 15 and 0 <= control <= 127 and 0 <= value <= 127):
            raise ValueError(f"CC out of range: channel {channel}, control {control}, value {value}")
        with self._lock:
            self._pending_cc.append((float(time_s), int(lane_index), int(channel), int(control), int(value)))

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
        relative_s = float(time_s) - self.start_time_s
        if self.jsonl:
            line = json.dumps({"time_s": round(relative_s, 4), **{k: _json_value(v) for k, v in values.items()}},
                              allow_nan=False) + "\n"
            with self._lock:
                self._pending_rows.append(line)
            return
        with self._lock:
            if self.columns is None:
                self.columns = list(values)
            if not self._extra_keys_warned and any(key not in self.columns for key in values):
                self._extra_keys_warned = True
                log.warning("timeline: values %s are not columns and are not recorded",
                            sorted(set(values) - set(self.columns)))
            cells = [f"{relative_s:.4f}"] + [_csv_value(values.get(column)) for column in self.columns]
            self._pending_rows.append(_csv_line(cells))

    def flush(self) -> None:
        """Write everything recorded so far to disk now (the writer thread does this every flush_interval_s)."""
        with self._write_lock:
            if self._thread is not None:  # not before __enter__ nor after close
                self._flush_locked()

    @property
    def event_count(self) -> int:
        """CC events written (or about to be written) to the tracks."""
        return sum(track.event_count for track in self.tracks)

    # -- writer --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.error("automation recorder: %s", message)
        self.last_error = message

    def _flush_locked(self) -> None:
        with self._lock:
            new_cc, self._pending_cc = self._pending_cc, []
            rows, self._pending_rows = self._pending_rows, []
            header_needed = self.columns is not None and not self._header_done and not self.jsonl
        try:
            if self.midi_path is not None:
                self._write_midi(self._encode(new_cc))
        except OSError as error:
            self._needs_rewrite = True  # the caches hold everything; the next flush rewrites whole
            self._fail(f"MIDI write failed: {error}")
        if self._timeline is not None and (rows or header_needed):
            try:
                if header_needed:
                    self._write_header()
                self._timeline.write("".join(rows))
                self._timeline.flush()
                os.fsync(self._timeline.fileno())
            except OSError as error:
                self._fail(f"timeline write failed: {error}")

    def _write_header(self) -> None:
        if not self.jsonl and not self._header_done:
            self._timeline.write(_csv_line(["time_s", *self.columns]))
            self._header_done = True

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

    def _write_midi(self, new: dict[int, bytes]) -> None:
        if self._needs_rewrite:
            self._rewrite(compact=False)
            return
        plans = self._plan_appends(new)
        if plans is None:  # a lane's reserve is used up: relayout everything, reserves doubled
            self._rewrite(compact=False)
            return
        self._append_step1(plans)
        os.fdatasync(self._midi_fd)
        self._append_step2(plans)
        os.fdatasync(self._midi_fd)

    def _plan_appends(self, new: dict[int, bytes]) -> list[tuple[_Track, bytes, int, int]] | None:
        """Per lane with new bytes: (track, bytes to write at its padding, new header offset, length).

        None when some lane has no room left.
        """
        plans = []
        for lane, chunk in new.items():
            track = self.tracks[lane]
            start = padding_start(track.pad_offset + len(chunk), track.end_offset)
            if start is None:
                return None
            plans.append((track, bytes(chunk) + start[0], start[1], start[2]))
        return plans

    def _append_step1(self, plans) -> None:
        """Write everything behind each old padding header (still opaque padding data to readers)."""
        for track, data, _, _ in plans:
            os.pwrite(self._midi_fd, data[track.pad_header_len:], track.pad_offset + track.pad_header_len)

    def _append_step2(self, plans) -> None:
        """Overwrite the old padding headers (<= 7 bytes inside one sector): the switch."""
        for track, data, header_offset, header_len in plans:
            os.pwrite(self._midi_fd, data[:track.pad_header_len], track.pad_offset)
            track.pad_offset, track.pad_header_len = header_offset, header_len

    def _encode_track0(self) -> bytes:
        tempo_us = int(round(60_000_000 / self.tempo_bpm))
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (meta_event(0x03, self.title.encode("utf-8"))
                + meta_event(0x01, f"dawemo automation recorded {started}, {self.tempo_bpm:g} BPM".encode())
                + meta_event(0x58, bytes([4, 2, 24, 8]))  # 4/4, 24 clocks per click, 8 32nds per beat
                + meta_event(0x51, tempo_us.to_bytes(3, "big"))
                + END_OF_TRACK)

    def _rewrite(self, compact: bool) -> None:
        """Write the whole .mid to a temp file, fsync, and atomically replace the old one.

        ``compact``: no padding (the final file); otherwise each lane gets free room equal to
        its current size (at least MIN_RESERVE_BYTES) and the in-place offsets are reset.
        """
        started_s = time.perf_counter()
        temp_path = self.midi_path.with_name(self.midi_path.name + ".tmp")
        layout = []  # (track, pad offset, pad header len, end offset)
        with open(temp_path, "wb") as out:
            out.write(b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
                      + (1 + len(self.tracks)).to_bytes(2, "big") + self.ppq.to_bytes(2, "big"))
            out.write(b"MTrk" + len(self._track0).to_bytes(4, "big") + self._track0)
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
                out.write(b"MTrk" + length.to_bytes(4, "big"))
                out.write(name_meta)
                out.write(track.events)
                out.write(tail)
                offset = body_start + length
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_path, self.midi_path)
        _fsync_directory(self.midi_path.parent)
        if self._midi_fd is not None:
            os.close(self._midi_fd)
            self._midi_fd = None
        if not compact:
            self._midi_fd = os.open(self.midi_path, os.O_RDWR)
            for track, header_offset, header_len, end in layout:
                track.pad_offset, track.pad_header_len, track.end_offset = header_offset, header_len, end
        self._needs_rewrite = False
        self.full_rewrites += 1
        self.last_rewrite_s = time.perf_counter() - started_s


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
    """Rows of a timeline file (CSV or .jsonl) as dicts of floats (None for empty cells).

    A last line without its newline (the write a kill interrupted) is dropped.
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
    return [{name: (float(cell) if cell else None) for name, cell in zip(header, row)}
            for row in rows[1:] if len(row) == len(header)]
