"""Start a private JACK server (``jackd -d dummy``) for tests, demos and headless rigs."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import deque

from dawemo.jack_clients import jack_client_lock, route_libjack_messages


def _die_with_parent() -> None:
    """In the child: ask Linux to stop jackd when the process that started it dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class JackServerError(Exception):
    """jackd is missing or did not start; the message says why."""


class DummyJackServer:
    """A ``jackd --no-realtime -d dummy`` server with its own name, as a context manager.

    Clients find it through the ``JACK_DEFAULT_SERVER`` environment variable, which is set while
    the server runs and restored afterwards.

    Args:
        sample_rate: the server's rate in Hz.
        period_frames: frames per JACK cycle.
        name: server name; a unique one by default so parallel test runs do not collide.
    """

    def __init__(self, sample_rate: int = 48000, period_frames: int = 1024, name: str | None = None) -> None:
        self.sample_rate = sample_rate
        self.period_frames = period_frames
        self.name = name or f"dawemo-{uuid.uuid4().hex[:8]}"
        self._process: subprocess.Popen | None = None
        self._previous_env: str | None = None

    def __enter__(self) -> "DummyJackServer":
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackServerError("jackd not found (install Debian/Ubuntu package 'jackd2')")
        self._process = subprocess.Popen(
            [jackd, "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(self.sample_rate),
             "-p", str(self.period_frames)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        # Drain jackd's stderr: it writes a line per xrun, and a full pipe blocks its audio thread
        # (a long run with many xruns stalled the whole server). The tail is kept for errors.
        self._stderr_tail: deque[str] = deque(maxlen=50)
        threading.Thread(target=self._drain_stderr, args=(self._process.stderr,), daemon=True,
                         name=f"jackd-stderr {self.name}").start()
        self._previous_env = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _drain_stderr(self, stream) -> None:
        for line in stream:
            self._stderr_tail.append(line.rstrip())

    def _wait_until_ready(self, timeout_s: float = 10.0) -> None:
        try:
            import jack
        except (ImportError, OSError) as error:  # JACK-Client raises OSError when libjack is missing
            raise JackServerError(f"jackd started, but JACK-Client cannot load libjack: {error}") from None

        route_libjack_messages()  # "cannot connect" is expected while it starts
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                time.sleep(0.1)  # let the drain thread read the last lines
                raise JackServerError(f"jackd exited: {' '.join(self._stderr_tail)[-300:]}")
            try:
                with jack_client_lock():  # other parts of this process may be (re)joining a server
                    jack.Client("dawemo-probe", no_start_server=True, servername=self.name).close()
                return
            except jack.JackError:
                time.sleep(0.1)
        raise JackServerError(f"jackd did not start within {timeout_s:.0f} s")

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                # jackd may take ~6 s to exit after a client died; a SIGKILL before that leaves a
                # stale entry in JACK's machine-wide table of (at most 8) servers.
                self._process.wait(timeout=12)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._previous_env is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = self._previous_env
