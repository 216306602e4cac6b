"""One fault model for the live path: every part says how it is, the same way.

Each part of the live path (the audio source, the MIDI output, the recorder, the machine sound,
later the bridge and show-control senders) keeps a ``Health``: its state, a one-line message
that names what failed and where (the file, the port, the server), and since when. The part
sets it from whatever thread notices the change (a plain attribute swap, so even a callback of a
JACK thread may do it); the engine polls every part a few times a second, keeps the rest of the
show running, and tells the live view, the app and the timeline about every change.

States:
    ``ok``          working.
    ``recovering``  not working now, trying by itself to come back (a JACK server gone, a port
                    unplugged, a disk full); no action needed if the cause goes away.
    ``degraded``    working, but something is lost or late (input dropping, CPU starved).
    ``failed``      stopped for good; the message says what the performer must do.

Like ``constants``, this module imports nothing of dawemo's, so inputs, outputs and the engine
may all use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

OK = "ok"
RECOVERING = "recovering"
DEGRADED = "degraded"
FAILED = "failed"
STATES = (OK, RECOVERING, DEGRADED, FAILED)


@dataclass(frozen=True)
class Health:
    """How one part is: ``state`` (one of ``STATES``), ``message`` (one line, empty when ok),
    ``where`` (the file, port or server concerned) and ``since_s`` (``time.monotonic()`` when this
    state began)."""

    state: str = OK
    message: str = ""
    where: str = ""
    since_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == OK


@dataclass(frozen=True)
class Fault:
    """A change of one part's health, as the engine reports it: ``part`` names the part
    ("input", "midi", "recording", "machine", "cpu"...); ``time_s`` is on the engine's clock."""

    part: str
    health: Health
    time_s: float

    @property
    def line(self) -> str:
        """One line for a terminal, a status bar or a log: ``midi: recovering: JACK server stopped``."""
        if self.health.ok:
            return f"{self.part}: back"
        where = f" [{self.health.where}]" if self.health.where and self.health.where not in self.health.message else ""
        return f"{self.part}: {self.health.state}: {self.health.message}{where}"


class HealthReport:
    """A part's current ``Health``; parts hold one and set it from any thread.

    ``set`` keeps ``since_s`` while the state stays the same, so a part may repeat itself (a
    retry that fails again) without restarting the clock; a new message with the same state
    replaces the message only.
    """

    def __init__(self, where: str = "") -> None:
        self.where = where
        self._health = Health(OK, "", where, time.monotonic())

    @property
    def health(self) -> Health:
        return self._health

    def set(self, state: str, message: str = "", where: str | None = None) -> Health:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        current = self._health
        where = self.where if where is None else where
        if state == current.state and message == current.message and where == current.where:
            return current
        since_s = current.since_s if state == current.state else time.monotonic()
        self._health = Health(state, message if state != OK else "", where, since_s)
        return self._health

    def ok(self) -> Health:
        return self.set(OK)


def health_of(part) -> Health:
    """The ``health`` of anything that has one, else ok (parts from before this model, stand-ins)."""
    health = getattr(part, "health", None)
    return health if isinstance(health, Health) else Health(OK, "", "", 0.0)
