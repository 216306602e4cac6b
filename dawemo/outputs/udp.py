"""The UDP side shared by the OSC and DMX senders: one non-blocking socket per destination, health, retry.

A sender thread owns the socket; nothing here is called from the engine's threads. The socket
is *connected* to the destination so the kernel reports what it learns about it (a closed port
on the receiving machine: "connection refused"; no route: "network unreachable") on a later
send; such an error, a name that does not resolve or a send that raises makes the destination
``recovering`` (``dawemo.faults``) with a one-line message. The socket is then closed and opened
again after ``RETRY_S``; the destination is ``ok`` again when a send succeeds on a socket open
for ``CONFIRM_S`` (a refused datagram fails the next send: the first send on a new socket always
succeeds, so it alone proves nothing, and the health must not flicker).
"""

from __future__ import annotations

import errno
import math
import os
import socket
import time

from dawemo import faults
from dawemo.faults import Health, HealthReport

RETRY_S = 1.0  # a destination in trouble is tried again this often
REALTIME_PRIORITY = 5  # SCHED_FIFO priority for sender threads where allowed: far below JACK's audio (70+)
CONFIRM_S = 0.5  # ... and is ok again after this long without a new error


def use_realtime_scheduling() -> bool:
    """Ask Linux to run the calling thread with real-time (FIFO) priority; True if granted.

    Sender threads sleep until a frame or a delayed value is due; on a busy machine an ordinary
    thread may then wait for a core for several milliseconds. Where the system allows it (root,
    or an "audio" group with rtprio, as JACK set-ups have) they run before ordinary programs;
    elsewhere nothing changes. They sleep between sends, so they never hold a core.
    """
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (OSError, ValueError):
        return False
    return True


def describe_socket_error(error: OSError) -> str:
    """Words for what a send error says about the destination."""
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror or error})"
    if error.errno == errno.ECONNREFUSED:
        return "nothing listens there (connection refused)"
    if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN):
        return f"cannot reach it ({error.strerror})"
    return error.strerror or str(error)


class UdpLink:
    """A connected, non-blocking UDP socket to ``host:port`` that reopens itself after errors.

    Args:
        host, port: the destination (an IP address or a host name, resolved in the caller's thread).
        report: the ``HealthReport`` to set (its ``where`` names the destination).
        what: how messages name the destination, e.g. ``OSC 'visuals'``.
    """

    def __init__(self, host: str, port: int, report: HealthReport, what: str) -> None:
        self.host = host
        self.port = port
        self.report = report
        self.what = what
        self.sent_packets = 0
        self.send_errors = 0
        self.dropped_packets = 0  # the socket's buffer was full: the packet was not sent
        self._socket: socket.socket | None = None
        self._retry_at_s = 0.0
        self._last_error_s = -math.inf
        self._opened_s = -math.inf
        self._last_send_s = -math.inf

    @property
    def health(self) -> Health:
        return self.report.health

    def _open(self) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, socket.AF_INET,
                                                             socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)  # x.x.x.255 destinations
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._opened_s = time.monotonic()

    def send(self, data: bytes, now_s: float | None = None) -> bool:
        """Send one datagram now; False if it did not go out (the reason is in ``health``)."""
        now_s = time.monotonic() if now_s is None else now_s
        if self._socket is None:
            if now_s < self._retry_at_s:
                return False
            try:
                self._open()
            except OSError as error:
                self._problem(error, now_s)
                return False
        self._last_send_s = now_s
        try:
            self._socket.send(data)
        except BlockingIOError:
            self.dropped_packets += 1
            return False
        except OSError as error:
            self._problem(error, now_s)
            return False
        self.sent_packets += 1
        if not self.report.health.ok and min(now_s - self._last_error_s, now_s - self._opened_s) >= CONFIRM_S:
            self.report.ok()
        return True

    @property
    def waiting(self) -> bool:
        """True while the link is down and waiting for its next try."""
        return self._socket is None and self._last_error_s > -math.inf

    def retry_due(self, now_s: float) -> bool:
        """True when the link is down and its next try is due."""
        return self.waiting and now_s >= self._retry_at_s

    def confirm_due(self, now_s: float) -> bool:
        """True when the link is open but not yet confirmed ok, and a send would confirm it."""
        return (self._socket is not None and not self.report.health.ok
                and now_s - self._last_send_s >= CONFIRM_S and now_s - self._opened_s >= CONFIRM_S)

    def _problem(self, error: OSError, now_s: float) -> None:
        self.send_errors += 1
        self._last_error_s = now_s
        self._retry_at_s = now_s + RETRY_S
        self.close()
        self.report.set(faults.RECOVERING, f"{self.what} at {self.host}:{self.port}: "
                                           f"{describe_socket_error(error)}; retrying every {RETRY_S:g} s")

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            except OSError:
                pass
            self._socket = None
