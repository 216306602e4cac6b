"""CC out through a dawemo Bridge plugin's MIDI output: no virtual MIDI port, on every OS.

``BridgeMidiOut`` writes each CC into the bridge's MIDI ring in shared memory (see
``bridge/BridgeLayout.h``); the plugin plays it out of its MIDI output at the start of its next
audio block, so the DAW records it on the plugin's own track. It has ``MidiOutput``'s interface
as far as the engine uses it (``send``, ``health``, ``port_name``, a context manager).

One dawemo writes a bridge's MIDI ring at a time: the writer holds a POSIX record lock on the
segment (released by the system if dawemo dies, so a restarted dawemo takes over at once). While
the bridge is gone, or the ring is full (the host stopped calling the plugin), events are dropped
and counted, never queued for later: automation that comes late is wrong automation.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
import time
from collections.abc import Iterable

from dawemo import faults
from dawemo.bridge_shm import BridgeError, BridgeSegment, list_bridges, resolve_bridge
from dawemo.faults import Health, HealthReport

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)


class BridgeMidiOut:
    """Send CC events out of a dawemo Bridge plugin's MIDI output.

    Args:
        bridge: instance name, or a unique part of one; None: the only running bridge.
        source: the ``BridgeSource`` reading the same bridge, if any: each event then carries the
            audio position it answers (for the latency bench) and follows the source's choice.
        retry_interval_s: seconds between looks for a bridge that is gone or not there yet.
    """

    def __init__(self, bridge: str | None = None, source=None, retry_interval_s: float = 0.1) -> None:
        self.requested = bridge
        self.source = source
        self.retry_interval_s = float(retry_interval_s)
        self.segment: BridgeSegment | None = None
        self.report = HealthReport(where=f"bridge '{bridge or 'any'}' MIDI")
        self.sent_count = 0
        self.dropped_count = 0  # while the bridge was gone or its ring full
        self.attaches = 0
        self._lock = threading.Lock()  # send() comes from the analysis and control threads
        self._next_try_s = 0.0
        self._next_check_s = 0.0
        self._entered = False

    @property
    def port_name(self) -> str:
        return f"bridge:{self.segment.name if self.segment is not None else (self.requested or 'any')}"

    @property
    def health(self) -> Health:
        return self.report.health

    def __enter__(self) -> "BridgeMidiOut":
        self._entered = True
        with self._lock:
            self._try_attach(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._entered = False
            self._detach()

    # -- sending --------------------------------------------------------------------------------

    def send(self, messages: Iterable) -> None:
        """Write CC events ``(time_s, lane, channel, control, value)`` (or mido messages) into the
        ring at once; never blocks on the plugin. Raises ValueError for an out-of-range event."""
        prepared = [_as_bytes(item) for item in messages]
        if not prepared:
            return
        with self._lock:
            segment = self._current()
            if segment is None:
                self.dropped_count += len(prepared)
                return
            capacity = segment.midi_capacity
            written = segment.u64("midi_write")
            cause = self.source.position if self.source is not None else 0
            for data in prepared:
                if written - segment.u64("midi_read") >= capacity:
                    self.dropped_count += 1
                    segment.set_u64("midi_dropped", segment.u64("midi_dropped") + 1)
                    continue
                slot = segment.midi[written % capacity]
                slot["cause_frame"] = cause
                slot["size"] = len(data)
                slot["data"] = (data + [0, 0])[:3]
                written += 1
                segment.set_u64("midi_write", written)  # after the slot: the plugin reads it next
                self.sent_count += 1
            if self.source is None:
                segment.heartbeat()

    def send_cc(self, channel: int, control: int, value: int, time_s: float = -math.inf) -> None:
        self.send([(time_s, -1, channel, control, value)])

    # -- attaching ------------------------------------------------------------------------------

    def _current(self) -> BridgeSegment | None:
        """The attached segment, re-attaching when the plugin went away or restarted."""
        now_s = time.monotonic()
        segment = self.segment
        if segment is not None and now_s >= self._next_check_s:
            self._next_check_s = now_s + self.retry_interval_s
            wanted = self.source.bridge_name if self.source is not None else None
            if segment.closed or (wanted is not None and wanted != segment.name):
                self.report.set(faults.RECOVERING, f"dawemo Bridge '{segment.name}' went away; "
                                "waiting for it to return")
                self._detach()
                segment = None
        if segment is None:
            self._try_attach()
            segment = self.segment
        return segment

    def _try_attach(self, force: bool = False) -> None:
        now_s = time.monotonic()
        if not force and now_s < self._next_try_s:
            return
        self._next_try_s = now_s + self.retry_interval_s
        name = self.source.bridge_name if self.source is not None else None
        if name is None:
            try:
                running = list_bridges()
                name = resolve_bridge(self.requested, running)
            except BridgeError as error:
                self.report.set(faults.FAILED, str(error))
                return
        if name is None:
            self.report.set(faults.RECOVERING, f"waiting for dawemo Bridge '{self.requested or 'any'}' to run")
            return
        try:
            segment = BridgeSegment(name)
        except BridgeError as error:
            self.report.set(faults.RECOVERING, f"{error}; retrying")
            return
        if not _lock_writer(segment):
            pid = segment.i64("reader_pid")
            segment.close()
            self.report.set(faults.RECOVERING, f"dawemo Bridge '{name}' is used by another dawemo"
                            + (f" (pid {pid})" if pid else "") + "; waiting for it to let go")
            return
        # Continue the ring where the previous writer (an earlier dawemo) stopped; drop what it left.
        segment.set_u64("midi_write", max(segment.u64("midi_write"), segment.u64("midi_read")))
        self.segment = segment
        self.attaches += 1
        self.report.where = f"bridge '{name}' MIDI"
        self.report.ok()

    def _detach(self) -> None:
        segment, self.segment = self.segment, None
        if segment is not None:
            segment.close()  # closing the descriptor releases the writer lock


def _lock_writer(segment: BridgeSegment) -> bool:
    """Take the bridge's one-writer lock (byte 0 of the segment); False when another process has it."""
    fd = segment.fd
    if fd < 0 or fcntl is None:
        return True  # Windows: no lock (one dawemo per bridge is up to the user there)
    try:
        if hasattr(fcntl, "F_OFD_SETLK"):
            # An open-file-description lock: unlike lockf, closing another descriptor of the same
            # segment in this process (a bridge listing) does not release it.
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    except OSError:
        return False
    return True


def _as_bytes(item) -> list[int]:
    if hasattr(item, "bytes") and hasattr(item, "type"):  # mido.Message
        data = list(item.bytes())
        if not 1 <= len(data) <= 3:
            raise ValueError(f"only 1-3 byte MIDI messages go through the bridge, got {item!r}")
        return data
    _time_s, _lane, channel, control, value = item
    channel, control, value = int(channel), int(control), int(value)
    if not (0 <= channel <= 15 and 0 <= control <= 127 and 0 <= value <= 127):
        raise ValueError(f"CC event out of range (channel 0-15, control and value 0-127): {item!r}")
    return [0xB0 | channel, control, value]


class MidiFanout:
    """The same events to several outputs (a bridge and a MIDI port); one failing keeps the others
    going. Health: the worst of its outputs'."""

    _ORDER = (faults.OK, faults.DEGRADED, faults.RECOVERING, faults.FAILED)

    def __init__(self, outputs: list) -> None:
        self.outputs = list(outputs)

    @property
    def port_name(self) -> str:
        return " + ".join(str(output.port_name) for output in self.outputs)

    @property
    def health(self) -> Health:
        healths = [faults.health_of(output) for output in self.outputs]
        return max(healths, key=lambda health: self._ORDER.index(health.state)) if healths else Health()

    def send(self, messages: Iterable) -> None:
        messages = list(messages)
        errors = []
        for output in self.outputs:
            try:
                output.send(messages)
            except Exception as error:  # noqa: BLE001 - each output on its own
                errors.append(error)
        if errors:
            raise errors[0]
