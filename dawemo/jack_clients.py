"""One JACK client opened or closed at a time in this process.

jack2's client library is not safe when two threads of one process open clients, or open one
while another closes, at the same moment: seen here as a segfault when the input rejoined a
restarted server while another client of the process opened. The live path's JACK parts (the
input, the MIDI port, the machine sound, the listings) each reopen from their own thread when a
server returns, so they do every open and close under this lock. A close that hangs on a dead
server must not hold the others up for ever, so waiting is bounded; after the bound the caller
goes ahead.

Like ``constants`` and ``faults``, this module imports nothing of dawemo's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

WAIT_S = 3.0  # the longest any part waits for another's open or close

_lock = threading.Lock()


@contextlib.contextmanager
def jack_client_lock(wait_s: float = WAIT_S) -> Iterator[bool]:
    """Hold the process's JACK client lock; yields False when it was not had within ``wait_s``."""
    acquired = _lock.acquire(timeout=wait_s)
    try:
        yield acquired
    finally:
        if acquired:
            _lock.release()
