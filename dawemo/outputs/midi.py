"""MIDI output for live CC automation: one port, one sender thread, survives port loss.

``MidiOutput`` opens either a *virtual* port other programs connect to (macOS CoreMIDI, Linux
ALSA sequencer or JACK) or an *existing* port found by name (exact or unique substring, e.g. a
loopMIDI port on Windows, a DAW's MIDI input on JACK). ``send`` only enqueues; the sender thread
writes each message when its ``time_s`` (``time.monotonic()`` clock) is due, so a batch computed
ahead for the next ticks goes out on time, and late or untimed messages go out at once.

If the port goes away (the JACK server stops, the target port's program quits, a write raises),
``state`` becomes ``"lost"``, ``on_status`` is told, and the thread tries to re-open the port
every ``retry_interval_s``; meanwhile only the newest value per (channel, control) is kept and
it is sent first on reconnection, so the receiver resumes at the current values. Port trouble
never raises into the caller after ``__enter__`` (``send`` only raises ValueError for an
out-of-range event). A re-created virtual port (e.g. after a JACK server restart) has lost its
connections; whoever patched it (the DAW, a session manager) must connect it again.

python-rtmidi is used directly rather than through mido's port classes: mido names the local
port after the destination (on JACK a name with a colon, which then failed to connect here) and
offers no control over the local client/port names. On JACK a second, port-less client
(``<client_name>-monitor``, JACK-Client module) watches for the server's shutdown, which
python-rtmidi does not report (its sends keep "succeeding" into a dead server).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from typing import Callable, Iterable

try:
    import rtmidi
except ImportError as _error:  # python-rtmidi missing, or (Linux) alsa-lib's libasound.so.2 is not installed
    rtmidi = None
    RTMIDI_PROBLEM: str | None = (f"python-rtmidi cannot load ({_error}); it needs alsa-lib (libasound2) on Linux"
                                  if sys.platform.startswith("linux") else f"python-rtmidi cannot load ({_error})")
else:
    RTMIDI_PROBLEM = None

from dawemo import faults
from dawemo.jack_clients import close_client_bounded, jack_client_lock, release_jack_client, route_libjack_messages
from dawemo.faults import Health

log = logging.getLogger(__name__)

API_IDS = {
    "jack": getattr(rtmidi, "API_UNIX_JACK", None),
    "alsa": getattr(rtmidi, "API_LINUX_ALSA", None),
    "coremidi": getattr(rtmidi, "API_MACOSX_CORE", None),
    "windows": getattr(rtmidi, "API_WINDOWS_MM", None),
}
STATES = ("closed", "open", "lost")
LOOPMIDI_URL = "https://www.tobias-erichsen.de/software/loopmidi.html"
# Sending is paced to at most BURST_MESSAGES per BURST_PAUSE_S (4000 messages/s): a JACK MIDI
# port takes only a few hundred events per cycle, and bursts of thousands were measured here to
# arrive incomplete or garbled (rtmidi's JACK ring buffer overflowing). Live automation needs far
# less (15 lanes x 30 Hz x 2 messages for 14-bit pairs = 900 messages/s).
BURST_MESSAGES = 64
BURST_PAUSE_S = 0.016


class MidiPortError(Exception):
    """A MIDI port or backend cannot be opened; the message says why and what exists instead."""


def default_apis(platform: str = sys.platform) -> list[str]:
    """Backends ``api="auto"`` tries on ``platform``, in order of preference."""
    if platform == "win32":
        return ["windows"]
    if platform == "darwin":
        return ["coremidi", "jack"]
    # A running JACK server (jackd or PipeWire's JACK) is a deliberate pro-audio set-up, and it is
    # what JACK-based DAWs list; the ALSA sequencer is the fallback.
    return ["jack", "alsa"]


def _compiled(api: str) -> bool:
    return rtmidi is not None and API_IDS[api] in rtmidi.get_compiled_api()


JACK_INSTALL_HINT = "install JACK: jackd2 / JACK2 / PipeWire's pipewire-jack"


def _jack_library_problem() -> str | None:
    """Why JACK-Client (``jack``) cannot load here, or None when it can.

    JACK-Client raises OSError at import when libjack is absent (every Mac and Windows machine
    without JACK). python-rtmidi bundles its own libjack, but dawemo's JACK MIDI also needs
    JACK-Client (the server watch), so JACK MIDI counts as unavailable then.
    """
    try:
        import jack  # noqa: F401
    except OSError as error:
        detail = "" if str(error) == "JACK library not found" else f": {error}"
        return f"JACK library not found ({JACK_INSTALL_HINT}){detail}"
    except ImportError as error:
        return f"JACK MIDI needs the JACK-Client package (pip install JACK-Client): {error}"
    return None


def _jack_server_running() -> bool:
    """Ask quietly through JACK-Client: python-rtmidi's own attempt prints libjack errors to stderr."""
    import jack  # _backend_unavailable checked that it loads

    try:
        with jack_client_lock():
            jack.Client("dawemo-probe", no_start_server=True).close()
        return True
    except jack.JackError:
        return False


def _backend_unavailable(api: str, platform: str = sys.platform) -> str | None:
    """Why ``api`` cannot be used here, or None when it can (this may create a short-lived client)."""
    if api not in API_IDS:
        return f"unknown MIDI api {api!r}; choose one of {', '.join(['auto', *API_IDS])}"
    if RTMIDI_PROBLEM is not None:
        return RTMIDI_PROBLEM
    if api != "jack" and not _compiled(api):  # JACK MIDI goes through JACK-Client (JackMidiOut)
        return f"python-rtmidi on this machine has no {api} support"
    if api == "alsa" and not os.path.exists("/dev/snd/seq"):
        # Checked first because alsa-lib prints an error to stderr when the device is missing.
        return "no ALSA sequencer (/dev/snd/seq missing; load snd-seq or use api='jack')"
    if api == "jack":
        # Checked first: without it python-rtmidi's bundled libjack prints to stderr.
        problem = _jack_library_problem()
        if problem is not None:
            return problem
        route_libjack_messages()
        if not _jack_server_running():
            return "no JACK server running (start jackd, or PipeWire with its JACK support)"
        return None  # no python-rtmidi probe: it holds the GIL while it opens a JACK client (JackMidiOut)
    try:
        probe = rtmidi.MidiOut(rtapi=API_IDS[api], name="dawemo-probe")
    except rtmidi.RtMidiError as error:
        if api == "jack":
            return "no JACK server running (start jackd, or PipeWire with its JACK support)"
        return f"{api} MIDI unavailable ({error})"
    probe.delete()
    return None


def _port_names(api: str) -> tuple[list[str], list[str]]:
    """(sources we could read from, destinations we can send to) on a working ``api``."""
    if api == "jack":  # through JACK-Client, for the reason JackMidiOut gives
        import jack

        with jack_client_lock():
            client = jack.Client("dawemo-list", no_start_server=True)
        try:
            return ([port.name for port in client.get_ports(is_midi=True, is_output=True)],
                    [port.name for port in client.get_ports(is_midi=True, is_input=True)])
        finally:
            with jack_client_lock():
                client.close()
    midi_in = rtmidi.MidiIn(rtapi=API_IDS[api], name="dawemo-list")
    midi_out = rtmidi.MidiOut(rtapi=API_IDS[api], name="dawemo-list")
    try:
        return list(midi_in.get_ports()), list(midi_out.get_ports())
    finally:
        midi_in.delete()
        midi_out.delete()


def list_midi_ports(api: str = "auto", platform: str = sys.platform) -> dict:
    """All MIDI ports per working backend.

    Args:
        api: ``"auto"`` (every backend ``default_apis`` names) or one of ``API_IDS``.
        platform: ``sys.platform`` value; injectable for tests.

    Returns:
        ``{"apis": [working backends], "inputs": [...], "outputs": [...], "by_api": {api:
        {"inputs": [...], "outputs": [...]}}, "unavailable": {api: reason}}``. ``outputs`` are
        the ports ``MidiOutput`` can send to by name; ``inputs`` are ports that send MIDI.
    """
    apis = default_apis(platform) if api == "auto" else [api]
    result: dict = {"apis": [], "inputs": [], "outputs": [], "by_api": {}, "unavailable": {}}
    for name in apis:
        reason = _backend_unavailable(name, platform)
        if reason is not None:
            result["unavailable"][name] = reason
            continue
        inputs, outputs = _port_names(name)
        result["apis"].append(name)
        result["by_api"][name] = {"inputs": inputs, "outputs": outputs}
        result["inputs"] += inputs
        result["outputs"] += outputs
    return result


def match_port_name(query: str, names: list[str]) -> str | None:
    """The one port in ``names`` that ``query`` names: exact match, else unique case-insensitive substring.

    Raises:
        MidiPortError: the substring matches several ports (they are listed).
    """
    if query in names:
        return query
    found = [name for name in names if query.lower() in name.lower()]
    if len(found) > 1:
        raise MidiPortError(f"MIDI port name {query!r} is ambiguous; it matches: "
                            + ", ".join(repr(name) for name in found) + " (give more of the name)")
    return found[0] if found else None


class _Entry:
    """One queued message; ``alive`` turns False when sent or dropped (lazy heap deletion)."""

    __slots__ = ("time_s", "key", "data", "alive")

    def __init__(self, time_s: float, key: tuple | None, data: list[int]) -> None:
        self.time_s, self.key, self.data, self.alive = time_s, key, data, True


def _as_message(item) -> tuple[float, tuple | None, list[int]]:
    """A CC event tuple or a mido.Message -> (due time_s, coalescing key, MIDI bytes)."""
    if hasattr(item, "bytes") and hasattr(item, "type"):  # mido.Message: send as soon as possible
        data = list(item.bytes())
        key = ("cc", item.channel, item.control) if item.type == "control_change" else None
        return -math.inf, key, data
    time_s, _lane_index, channel, control, value = item
    channel, control, value = int(channel), int(control), int(value)
    if not (0 <= channel <= 15 and 0 <= control <= 127 and 0 <= value <= 127):
        raise ValueError(f"CC event out of range (channel 0-15, control and value 0-127): {item!r}")
    return float(time_s), ("cc", channel, control), [0xB0 | channel, control, value]


class MidiOutput:
    """A MIDI output port with a sender thread that survives port loss, as a context manager.

    Args:
        port_name: the virtual port's name, or (``virtual=False``) the existing port to send to,
            matched exactly or by unique case-insensitive substring.
        virtual: create a port that other programs connect to (impossible on Windows: use
            loopMIDI and pass its port name instead).
        api: ``"auto"``, ``"jack"``, ``"alsa"``, ``"coremidi"`` or ``"windows"``. ``auto`` takes
            the first working backend of ``default_apis`` (for an existing port: the first whose
            ports match ``port_name``) and keeps it across re-opens.
        client_name: our MIDI client's name (JACK and ALSA show it next to the port).
        queue_size: messages that may wait in the queue; when full, the oldest waiting message
            for the same (channel, control) is dropped (else the earliest due one) and counted.
        retry_interval_s: seconds between re-open attempts while the port is lost.
        check_interval_s: seconds between checks that an open port still exists.
        on_status: called as ``on_status(state, error)`` on every state change, from the sender
            thread (or from ``__enter__`` for the first open); exceptions in it are logged.
        wait_for_port: if the port cannot be opened at ``__enter__``, start in state ``"lost"``
            and keep trying instead of raising ``MidiPortError``.
        platform: ``sys.platform`` value; injectable so tests can check the Windows behaviour.
    """

    def __init__(self, port_name: str = "dawemo", *, virtual: bool = False, api: str = "auto",
                 client_name: str = "dawemo", queue_size: int = 4096, retry_interval_s: float = 1.0,
                 check_interval_s: float = 0.25, on_status: Callable[[str, str | None], None] | None = None,
                 wait_for_port: bool = False, platform: str = sys.platform) -> None:
        if api != "auto" and api not in API_IDS:
            raise MidiPortError(f"unknown MIDI api {api!r}; choose one of {', '.join(['auto', *API_IDS])}")
        if virtual and (platform == "win32" or api == "windows"):
            raise MidiPortError(
                "Windows cannot create virtual MIDI ports. Install loopMIDI (" + LOOPMIDI_URL + "), "
                "create a port there, and pass its name with virtual=False "
                "(e.g. MidiOutput('loopMIDI Port', virtual=False)).")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.requested_name = port_name
        self.virtual = virtual
        self.api_request = api
        self.client_name = client_name
        self.queue_size = queue_size
        self.retry_interval_s = retry_interval_s
        self.check_interval_s = check_interval_s
        self.on_status = on_status
        self.wait_for_port = wait_for_port
        self.platform = platform

        self.state = "closed"
        self.last_error: str | None = None
        self.api: str | None = None  # the backend in use; fixed after the first successful open
        self.port_name: str | None = None  # full name as the system shows it ("dawemo:cc" on JACK)
        self.sent_count = 0
        self.dropped_count = 0  # dropped because the queue was full
        self.skipped_while_lost = 0  # superseded or non-CC messages that fell due while lost
        self.reconnect_count = 0

        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Entry]] = []
        self._by_key: dict[tuple, deque[_Entry]] = {}
        self._pending = 0
        self._order = itertools.count()
        self._stop = False
        self._check_now = False
        self._thread: threading.Thread | None = None
        self._rt = None  # rtmidi.MidiOut while open
        self._monitor = None  # jack.Client watching for server shutdown (JACK only)
        self._server_gone = threading.Event()
        self._target: str | None = None  # destination port name (existing-port mode)
        self._local_jack_port: str | None = None  # our side of the connection to the target
        self._latest_while_lost: dict[tuple, list[int]] = {}
        self._warned_closed = False
        self._lost_since_s = 0.0
        self._dead_clients: list = []  # JACK clients of a shut-down server: never closed (see release_jack_client)

    @property
    def health(self) -> Health:
        """The port's state in the live path's fault model: ``lost`` is ``recovering``."""
        where = f"MIDI port '{self.port_name or self.requested_name}'"
        if self.state != "lost":
            return Health(faults.OK, "", where, 0.0)
        return Health(faults.RECOVERING, f"MIDI port '{self.port_name or self.requested_name}' lost "
                      f"({self.last_error}); re-opening it when it returns", where, self._lost_since_s)

    # -- caller side ---------------------------------------------------------------------------

    def __enter__(self) -> "MidiOutput":
        """Open the port and start the sender thread; raises MidiPortError unless ``wait_for_port``."""
        try:
            self._open()
        except MidiPortError as error:
            if not self.wait_for_port:
                raise
            self._set_state("lost", str(error))
        else:
            self._set_state("open", None)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"midi-out {self.requested_name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Send the last queued value per (channel, control) at once, close the port, stop the thread."""
        self.close()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the sender thread after it drains the queue; safe to call twice."""
        if self._thread is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # a backend call hangs; the daemon thread dies with the process
            log.warning("MIDI sender thread did not stop within %.1f s", timeout_s)
        self._thread = None

    def send(self, messages: Iterable) -> None:
        """Queue messages; never blocks.

        Args:
            messages: CC events ``(time_s, lane_index, channel 0-15, control 0-127, value 0-127)``
                sent when ``time.monotonic()`` reaches ``time_s`` (past times: at once), and/or
                ``mido.Message`` objects, sent at once.

        Raises:
            ValueError: an event is out of range (nothing of this call is queued then).
        """
        prepared = [_as_message(item) for item in messages]
        if not prepared:
            return
        if self._thread is None:
            if not self._warned_closed:
                log.warning("MidiOutput %r is not open; messages are dropped", self.requested_name)
                self._warned_closed = True
            self.dropped_count += len(prepared)
            return
        with self._cond:
            for time_s, key, data in prepared:
                if self._pending >= self.queue_size:
                    self._drop_one(key)
                entry = _Entry(time_s, key, data)
                heapq.heappush(self._heap, (time_s, next(self._order), entry))
                if key is not None:
                    self._by_key.setdefault(key, deque()).append(entry)
                self._pending += 1
            self._cond.notify()

    def send_cc(self, channel: int, control: int, value: int, time_s: float = -math.inf) -> None:
        """Queue one CC (channel 0-15, control and value 0-127) due at ``time_s`` (default: now)."""
        self.send([(time_s, -1, channel, control, value)])

    @property
    def pending_count(self) -> int:
        """Messages waiting in the queue."""
        return self._pending

    # -- queue (called with self._cond held) ---------------------------------------------------

    def _drop_one(self, key: tuple | None) -> None:
        """Make room for one message: the oldest waiting one with ``key``, else the earliest due."""
        same = self._by_key.get(key) if key is not None else None
        while same:
            entry = same.popleft()
            if entry.alive:
                entry.alive = False
                self._pending -= 1
                self.dropped_count += 1
                return
        while self._heap:
            _, _, entry = heapq.heappop(self._heap)
            if entry.alive:
                entry.alive = False
                self._pending -= 1
                self.dropped_count += 1
                return

    def _next_due_s(self) -> float | None:
        while self._heap and not self._heap[0][2].alive:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _pop_due(self, now_s: float, limit: int) -> list[_Entry]:
        due = []
        while len(due) < limit and self._heap and self._heap[0][0] <= now_s:
            _, _, entry = heapq.heappop(self._heap)
            if not entry.alive:
                continue
            entry.alive = False
            self._pending -= 1
            due.append(entry)
            same = self._by_key.get(entry.key)
            if same is not None:
                while same and not same[0].alive:
                    same.popleft()
                if not same:
                    del self._by_key[entry.key]
        return due

    # -- sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        next_check_s = time.monotonic() + self._check_period_s()
        while True:
            with self._cond:
                while True:
                    now_s = time.monotonic()
                    due_s = self._next_due_s()
                    if self._stop or self._check_now or now_s >= next_check_s or (due_s is not None and due_s <= now_s):
                        break
                    wake_s = next_check_s if due_s is None else min(due_s, next_check_s)
                    self._cond.wait(wake_s - now_s)
                stopping = self._stop
                check = self._check_now or now_s >= next_check_s
                self._check_now = False
                due = self._pop_due(math.inf if stopping else now_s, self._pending if stopping else BURST_MESSAGES)
            try:
                if check:
                    self._check()
                    next_check_s = time.monotonic() + self._check_period_s()
                if stopping:
                    # Closing: everything still queued goes out now, but only the last value per
                    # (channel, control), so the receiver ends at the final values without a flood.
                    self._send_paced(self._coalesce(due))
                else:
                    self._deliver(due)
            except Exception as error:  # a bug here must not kill the thread silently
                log.exception("MIDI sender error")
                self._lose(f"unexpected error: {error}")
            if stopping:
                self._close_port()
                self._set_state("closed", self.last_error)
                return
            if len(due) >= BURST_MESSAGES:
                time.sleep(BURST_PAUSE_S)

    @staticmethod
    def _coalesce(entries: list[_Entry]) -> list[_Entry]:
        """Keep the last entry per key (in the position of that last one) and all keyless ones."""
        last = {entry.key: index for index, entry in enumerate(entries) if entry.key is not None}
        return [entry for index, entry in enumerate(entries) if entry.key is None or last[entry.key] == index]

    def _send_paced(self, entries: list[_Entry]) -> None:
        for start in range(0, len(entries), BURST_MESSAGES):
            if start:
                time.sleep(BURST_PAUSE_S)
            self._deliver(entries[start:start + BURST_MESSAGES])

    def _check_period_s(self) -> float:
        return self.check_interval_s if self.state == "open" else self.retry_interval_s

    def _deliver(self, entries: list[_Entry]) -> None:
        for entry in entries:
            if self.state == "open":
                try:
                    self._rt.send_message(entry.data)
                    self.sent_count += 1
                    continue
                except Exception as error:  # rtmidi raises its own types; any failure means lost
                    self._lose(f"send failed: {error}")
            if entry.key is not None:
                if entry.key in self._latest_while_lost:
                    self.skipped_while_lost += 1
                self._latest_while_lost[entry.key] = entry.data
            else:
                self.skipped_while_lost += 1

    def _check(self) -> None:
        if self.state == "open":
            problem = self._port_problem()
            if problem is not None:
                self._lose(problem)
        elif self.state == "lost":
            try:
                self._open()
            except MidiPortError as error:
                if str(error) != self.last_error:
                    log.info("MIDI port %r still unavailable: %s", self.requested_name, error)
                    self.last_error = str(error)
                return
            self.reconnect_count += 1
            self._set_state("open", None)
            # Current values first, so the receiver resumes where the automation is now.
            resync = [_Entry(-math.inf, key, data) for key, data in self._latest_while_lost.items()]
            self._latest_while_lost.clear()
            self._send_paced(resync)

    def _port_problem(self) -> str | None:
        """Why the open port is no longer usable, or None."""
        if self._server_gone.is_set():
            return "JACK server has stopped"
        if self.virtual:
            return None
        try:
            if self._monitor is not None:
                names = [port.name for port in self._monitor.get_ports(is_midi=True, is_input=True)]
            else:
                names = self._rt.get_ports()
        except Exception as error:
            return f"cannot list MIDI ports: {error}"
        if self._target not in names:
            return f"MIDI port {self._target!r} disappeared"
        try:
            self._ensure_jack_connection()
        except Exception as error:
            return f"cannot reconnect to {self._target!r}: {error}"
        return None

    def _lose(self, reason: str) -> None:
        if self.state != "open":
            return
        log.warning("MIDI port %r lost: %s", self.port_name or self.requested_name, reason)
        # While the JACK server lives, its monitor client stays to list ports for re-opening.
        self._close_port(keep_monitor=not self._server_gone.is_set())
        self._set_state("lost", reason)

    def _set_state(self, state: str, error: str | None) -> None:
        if state == "lost" and self.state != "lost":
            self._lost_since_s = time.monotonic()
        self.state, self.last_error = state, error
        if self.on_status is not None:
            try:
                self.on_status(state, error)
            except Exception:
                log.exception("MidiOutput on_status callback failed")

    # -- backend -------------------------------------------------------------------------------

    def _candidate_apis(self) -> list[str]:
        if self.api is not None:
            return [self.api]
        return default_apis(self.platform) if self.api_request == "auto" else [self.api_request]

    def _open(self) -> None:
        """Open the port on the first fitting backend, or raise MidiPortError saying why not."""
        try:
            self._open_any()
        except MidiPortError:
            raise
        except Exception as error:  # listing ports can fail too (rtmidi, jack raise several types)
            self._close_port()
            raise MidiPortError(f"cannot open MIDI port {self.requested_name!r}: {error}") from None

    def _open_any(self) -> None:
        reasons, listed = [], []
        if self._server_gone.is_set():
            self._close_port()
        for api in self._candidate_apis():
            live_monitor = api == "jack" and self._monitor is not None
            reason = None if live_monitor else _backend_unavailable(api, self.platform)
            if reason is not None:
                reasons.append(f"{api}: {reason}")
                continue
            if self.virtual:
                self._open_on(api, None)
                return
            if live_monitor:  # no extra JACK clients appearing every second while waiting
                names = [port.name for port in self._monitor.get_ports(is_midi=True, is_input=True)]
            else:
                names = _port_names(api)[1]
            target = match_port_name(self.requested_name, names)
            if target is None:
                listed.append(f"{api}: " + (", ".join(repr(name) for name in names) or "(none)"))
                continue
            self._open_on(api, target)
            return
        if self.virtual:
            raise MidiPortError(f"cannot create virtual MIDI port {self.requested_name!r}: " + "; ".join(reasons))
        message = f"no MIDI output port matches {self.requested_name!r}."
        if listed:
            message += " Available ports: " + "; ".join(listed) + "."
        if reasons:
            message += " Unavailable backends: " + "; ".join(reasons) + "."
        raise MidiPortError(message)

    def _open_on(self, api: str, target: str | None) -> None:
        """Open on ``api``: a virtual port (``target`` None) or a connection to ``target``."""
        self._close_port(keep_monitor=api == "jack" and not self._server_gone.is_set())
        self._server_gone.clear()
        try:
            if api == "jack" and self._monitor is None:
                self._start_monitor()
            before = self._jack_output_ports()
            if api == "jack":
                self._rt = JackMidiOut(self.client_name)
            else:
                self._rt = rtmidi.MidiOut(rtapi=API_IDS[api], name=self.client_name)
            if target is None:
                self._rt.open_virtual_port(self.requested_name)
                self.port_name = self._find_own_jack_port(before, self.requested_name) or self.requested_name
            else:
                names = self._rt.get_ports()
                if target not in names:  # it went away between listing and opening
                    raise MidiPortError(f"MIDI port {target!r} disappeared while opening")
                self._rt.open_port(names.index(target), "out")
                self.port_name = target
                self._target = target
                self._local_jack_port = self._find_own_jack_port(before, "out")
                self._ensure_jack_connection()
        except MidiPortError:
            self._close_port()
            raise
        except Exception as error:  # rtmidi and jack raise several types
            self._close_port()
            raise MidiPortError(f"cannot open MIDI port {target or self.requested_name!r} on {api}: {error}") from None
        self.api = api

    def _start_monitor(self) -> None:
        problem = _jack_library_problem()
        if problem is not None:
            raise MidiPortError(problem)
        import jack

        with jack_client_lock():
            self._monitor = jack.Client(f"{self.client_name}-monitor", no_start_server=True)

        def server_gone(status, reason) -> None:
            # Runs on a JACK thread: only flag it; the sender thread closes the clients.
            self._server_gone.set()
            with self._cond:
                self._check_now = True
                self._cond.notify()

        self._monitor.set_shutdown_callback(server_gone)

    def _jack_output_ports(self) -> set[str]:
        if self._monitor is None:
            return set()
        return {port.name for port in self._monitor.get_ports(is_midi=True, is_output=True)}

    def _find_own_jack_port(self, before: set[str], short_name: str) -> str | None:
        """The JACK port our client just registered (JACK may have renamed a duplicate client)."""
        if self._monitor is None:
            return None
        new = sorted(self._jack_output_ports() - before)
        mine = [name for name in new if name.endswith(":" + short_name)]
        return (mine or new or [None])[0]

    def _ensure_jack_connection(self) -> None:
        """Re-make our connection to the target if something removed it while both ports exist."""
        local = self._local_jack_port
        if self._monitor is None or local is None or self._target is None:
            return
        connected = [port.name for port in self._monitor.get_all_connections(local)]
        if self._target not in connected:
            self._monitor.connect(local, self._target)

    def _close_port(self, keep_monitor: bool = False) -> None:
        """Release the rtmidi client and (unless ``keep_monitor``) the JACK monitor client.

        After the JACK server dies, both must be closed before any new JACK client is opened:
        libjack then frees every client of the process, and closing one later would crash.
        """
        rt, self._rt = self._rt, None
        server_gone = self._server_gone.is_set()
        if rt is not None:
            try:
                if server_gone and isinstance(rt, JackMidiOut):
                    rt.let_go()
                else:
                    rt.close_port()
                    rt.delete()
            except Exception as error:
                log.debug("closing rtmidi port: %s", error)
        self._local_jack_port = None
        if keep_monitor:
            return
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                if server_gone:
                    release_jack_client(monitor, True, self._dead_clients)
                else:
                    with jack_client_lock():
                        monitor.close()
            except Exception as error:
                log.debug("closing JACK monitor client: %s", error)


class JackMidiOut:
    """One JACK MIDI output port through JACK-Client, with python-rtmidi's ``MidiOut`` methods
    that ``MidiOutput`` uses.

    python-rtmidi holds the GIL while it opens and activates a JACK client; activation waits for
    a JACK cycle, and that cycle waits for every client of this process whose process callback
    needs the GIL (a JACK input, a machine sound): a deadlock that froze the whole process when
    the MIDI port and a JACK input rejoined a restarted server together. JACK-Client releases
    the GIL in every libjack call, so this port can open at any time.

    ``send_message`` only appends to a deque (atomic, never blocks); the process callback moves
    up to ``MAX_EVENTS_PER_CYCLE`` messages a cycle into the port's buffer, in order.
    """

    MAX_EVENTS_PER_CYCLE = 256

    def __init__(self, client_name: str) -> None:
        import jack

        self._jack = jack
        with jack_client_lock():
            self._client = jack.Client(client_name, no_start_server=True)
        self._pending: deque[bytes] = deque()
        self._port = None
        self.overflows = 0  # cycles whose buffer filled up (the rest waits for the next cycle)
        self._client.set_process_callback(self._process)

    def get_ports(self) -> list[str]:
        """Every JACK MIDI input port, ours excluded (where this port can send to)."""
        own = f"{self._client.name}:"
        return [port.name for port in self._client.get_ports(is_midi=True, is_input=True)
                if not port.name.startswith(own)]

    def open_virtual_port(self, name: str) -> None:
        self._port = self._client.midi_outports.register(name)
        self._client.activate()

    def open_port(self, index: int, name: str = "out") -> None:
        target = self.get_ports()[index]
        self._port = self._client.midi_outports.register(name)
        self._client.activate()
        self._client.connect(self._port, target)

    def send_message(self, data) -> None:
        self._pending.append(bytes(data))

    def _process(self, frames: int) -> None:
        """JACK's real-time thread: move the waiting messages into this cycle's buffer."""
        port = self._port
        if port is None:
            return
        port.clear_buffer()
        pending = self._pending
        for _ in range(min(len(pending), self.MAX_EVENTS_PER_CYCLE)):
            data = pending[0]
            try:
                port.write_midi_event(0, data)
            except self._jack.JackError:  # the buffer is full: the rest goes next cycle
                self.overflows += 1
                return
            pending.popleft()

    def close_port(self) -> None:
        client, self._client = self._client, None
        self._port = None
        if client is not None:
            # A client of a server that has gone may hang in libjack: never let that stall the sender.
            close_client_bounded(client)

    def delete(self) -> None:
        self.close_port()

    def let_go(self) -> None:
        """Forget the client of a server that shut down, without closing it (release_jack_client)."""
        client, self._client = self._client, None
        self._port = None
        if client is not None:
            release_jack_client(client, True, JackMidiOut._dead_clients)

    _dead_clients: list = []
