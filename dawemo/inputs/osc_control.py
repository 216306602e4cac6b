"""Stage commands over OSC, for a show controller (QLab, TouchOSC, a lighting desk): off by default.

Only when asked for (``dawemo run --osc-control PORT``) does dawemo listen, and then on 127.0.0.1
unless another address is given (``--osc-control-host``). Addresses:

    /dawemo/hold                 freeze every lane
    /dawemo/release              back to the music (glide)
    /dawemo/panic, /dawemo/blackout   every lane to its safe value
    /dawemo/mute  "Lane name"    mute a lane (a last argument 0 unmutes)
    /dawemo/unmute "Lane name"

A command with a last numeric argument 0 is ignored (hold, release, panic), so a button that sends
1 on press and 0 on release fires once. Messages are parsed by python-osc.
"""

from __future__ import annotations

import threading
from typing import Callable

COMMANDS = ("hold", "release", "panic", "blackout", "mute", "unmute")


class OscControl:
    """Listens for OSC stage commands on ``host:port`` and passes each on as a command line
    (``hold``, ``mute NAME``...) to ``handle``; a context manager (socket and thread).

    Raises OSError on enter when the address cannot be bound (one line says which).
    """

    def __init__(self, handle: Callable[[str], None], port: int, host: str = "127.0.0.1") -> None:
        self.handle = handle
        self.host = host
        self.port = port
        self.server = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "OscControl":
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        dispatcher = Dispatcher()
        for word in COMMANDS:
            dispatcher.map(f"/dawemo/{word}", self._message, word)
        try:
            self.server = BlockingOSCUDPServer((self.host, self.port), dispatcher)
        except OSError as error:
            raise OSError(f"cannot listen for OSC control on {self.host}:{self.port}: "
                          f"{error.strerror or error}") from None
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="dawemo-osc-control", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=2)
            self.server = None

    def _message(self, address: str, fixed: list, *args) -> None:
        word = fixed[0]
        names = [arg for arg in args if isinstance(arg, str)]
        numbers = [arg for arg in args if isinstance(arg, (int, float)) and not isinstance(arg, bool)]
        off = bool(numbers) and numbers[-1] == 0
        if word in ("mute", "unmute"):
            if not names:
                return
            muted = (word == "mute") != off
            self.handle(("mute " if muted else "unmute ") + names[0])
        elif not off:
            self.handle("panic" if word == "blackout" else word)
