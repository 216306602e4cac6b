"""Stage controls for ``dawemo run`` from the terminal: single keys on a terminal, command lines
from a pipe (a show-control script, a test).

Keys: ``h`` hold, ``r`` release, ``b`` blackout (panic), ``1``-``9`` mute/unmute lane n (as
listed at start). Lines: ``hold``, ``release``, ``panic`` (or ``blackout``), ``mute NAME``,
``unmute NAME``. Only reads this process's standard input; nothing listens on the network.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

KEY_HELP = "keys: h hold, r release, b blackout, 1-9 mute lane n"


class StageInput:
    """Reads stage commands from ``stream`` on its own thread and calls the engine; a context manager
    (a terminal is put in cbreak mode while it runs and restored after).

    Args:
        engine: the running ``EmotionEngine``.
        say: called with one line per command done (or refused).
        stream: standard input by default.
    """

    def __init__(self, engine, say, stream=None) -> None:
        self.engine = engine
        self.say = say
        self.stream = sys.stdin if stream is None else stream
        self.lanes = engine.lane_names()
        self._terminal = None
        self._thread: threading.Thread | None = None

    @property
    def keys(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> "StageInput":
        if self.stream is None or self.stream.closed:
            return self
        target = self._read_keys if self.keys else self._read_lines
        if self.keys:
            import termios
            import tty

            with contextlib.suppress(termios.error, OSError):
                fd = self.stream.fileno()
                self._terminal = (fd, termios.tcgetattr(fd))
                tty.setcbreak(fd)
        self._thread = threading.Thread(target=target, name="dawemo-stage-input", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._terminal is not None:
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self._terminal[0], termios.TCSADRAIN, self._terminal[1])
            self._terminal = None

    def lane_list(self) -> str:
        return ", ".join(f"{n} {name}" for n, name in enumerate(self.lanes[:9], start=1))

    def _read_keys(self) -> None:
        fd = self.stream.fileno()
        while True:
            try:
                key = os.read(fd, 1).decode("utf-8", "replace").lower()
            except OSError:
                return
            if not key:
                return
            if key == "h":
                self.command("hold")
            elif key == "r":
                self.command("release")
            elif key in ("b", "p"):
                self.command("panic")
            elif key.isdigit() and 1 <= int(key) <= min(9, len(self.lanes)):
                name = self.lanes[int(key) - 1]
                self.command(("unmute " if name in self.engine.stage.muted else "mute ") + name)

    def _read_lines(self) -> None:
        try:
            for line in self.stream:
                if line.strip():
                    self.command(line.strip())
        except (OSError, ValueError):
            pass  # stdin closed or not readable (a service, a test harness): no stage commands from it

    def command(self, line: str) -> None:
        """Do one command line; say what happened."""
        word, _, rest = line.partition(" ")
        word, name = word.lower(), rest.strip()
        if word == "hold":
            self.engine.hold()
            self.say("HOLD: every lane frozen (r releases)")
        elif word == "release":
            self.engine.release()
            self.say(f"RELEASE: following the music (glide {self.engine.stage.glide_s:g} s)")
        elif word in ("panic", "blackout"):
            self.engine.panic()
            self.say("BLACKOUT: every lane at its safe value (r releases)")
        elif word in ("mute", "unmute"):
            if name not in self.lanes:
                self.say(f"no lane named {name!r}; lanes: {', '.join(self.lanes)}")
                return
            self.engine.set_muted(name, word == "mute")
            self.say(f"{word.upper()}: {name}")
        else:
            self.say(f"unknown command {line!r}: hold, release, panic, mute NAME, unmute NAME")
