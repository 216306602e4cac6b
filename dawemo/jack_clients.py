"""One JACK client opened or closed at a time in this process.

jack2's client library is not safe when two threads of one process open clients, or open one
while another closes, at the same moment: seen here as a segfault when the input rejoined a
restarted server while another client of the process opened. The live path's JACK parts (the
input, the MIDI port, the machine sound, the listings) each reopen from their own thread when a
server returns, so they do every open and close under this lock. A close that hangs on a dead
server must not hold the others up for ever, so waiting is bounded; after the bound the caller
goes ahead.

libjack's message handlers are process-wide too, and replacing one while another thread's libjack
call is printing through it freed the callback under that thread (an abort in a rejoin test). So
they are set once per process, under the same lock (``route_libjack_messages``).

Like ``constants`` and ``faults``, this module imports nothing of dawemo's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

WAIT_S = 3.0  # the longest any part waits for another's open or close

_lock = threading.Lock()
_messages_routed = False


@contextlib.contextmanager
def jack_client_lock(wait_s: float = WAIT_S) -> Iterator[bool]:
    """Hold the process's JACK client lock; yields False when it was not had within ``wait_s``."""
    acquired = _lock.acquire(timeout=wait_s)
    try:
        yield acquired
    finally:
        if acquired:
            _lock.release()


def route_libjack_messages() -> None:
    """Send libjack's stderr chatter ("Cannot connect to server socket", ...) to logging (debug), once.

    Rejoin attempts would otherwise print several lines each; "cannot connect" is an expected answer.
    The handler is process-wide, so it also covers python-rtmidi's JACK client. Nothing happens when
    libjack cannot be loaded: then it prints nothing either.
    """
    global _messages_routed
    if _messages_routed:
        return
    try:
        import jack
    except (ImportError, OSError):  # JACK-Client without libjack
        return
    with jack_client_lock():
        if not _messages_routed:
            libjack_log = logging.getLogger("dawemo.libjack")
            jack.set_error_function(lambda message: libjack_log.debug("%s", message))
            jack.set_info_function(lambda message: libjack_log.debug("%s", message))
            _messages_routed = True


def close_client_bounded(client, timeout_s: float = 1.0) -> bool:
    """Close a JACK client whose server may be gone, waiting at most ``timeout_s``; True if closed.

    libjack may wait on a dead server's socket; a close that hangs is left to its daemon thread
    rather than stalling the live path or Ctrl-C.
    """
    def close() -> None:
        with jack_client_lock():
            try:
                client.deactivate()
            except Exception:
                pass
            try:
                client.close()
            except Exception as error:
                log.debug("closing a JACK client of a gone server: %s", error)

    closer = threading.Thread(target=close, name="dawemo-jack-close", daemon=True)
    closer.start()
    closer.join(timeout_s)
    return not closer.is_alive()


def release_jack_client(client, server_shut_down: bool, keep: list) -> None:
    """Let go of a JACK client whose server went away, without ever crashing the process.

    After a server shut down, jack2's next ``jack_client_open`` in this process (by any part: the
    input, the MIDI port, the machine sound) frees that server's clients itself; deactivating or
    closing one of them afterwards is a use-after-free that kills the process. So a client whose
    server said it shut down is never touched again: its handle is cleared (JACK-Client's close()
    and __del__ do nothing then) and the object is kept in ``keep``. A client whose server only
    stopped cycling (killed unnoticed, or hung) is closed, with a bounded wait.
    """
    if server_shut_down:
        import jack

        client._ptr = jack._ffi.NULL
        keep.append(client)
    else:
        close_client_bounded(client)
