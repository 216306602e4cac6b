"""Real JACK peers for tests: a player client, a MIDI receiver, and small helpers."""

from __future__ import annotations

import time
import uuid

import numpy as np

from dawemo.jack_clients import jack_client_lock


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wait_until(condition, timeout_s: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def connect(source: str, destination: str) -> None:
    """Connect two JACK ports with a short-lived patchbay client (closed before any server stops)."""
    import jack

    with jack_client_lock():  # dawemo's JACK parts may open or close clients in this process meanwhile
        patchbay = jack.Client(unique("patchbay"), no_start_server=True)
    try:
        patchbay.connect(source, destination)
    finally:
        with jack_client_lock():
            patchbay.close()


class Receiver:
    """A mido virtual input on the JACK backend that records (arrival monotonic s, bytes)."""

    def __init__(self, client: str, port: str = "in") -> None:
        import mido

        self.received: list[tuple[float, list[int]]] = []
        self.port = mido.Backend("mido.backends.rtmidi/UNIX_JACK").open_input(
            port, virtual=True, client_name=client, callback=self._on_message)
        self.name = f"{client}:{port}"

    def _on_message(self, message) -> None:
        self.received.append((time.monotonic(), message.bytes()))

    def messages(self) -> list[list[int]]:
        return [data for _, data in self.received]

    def wait_for(self, count: int, timeout_s: float = 3.0) -> list[list[int]]:
        wait_until(lambda: len(self.received) >= count, timeout_s, f"{count} MIDI messages at {self.name}")
        return self.messages()

    def close(self) -> None:
        self.port.close()


class JackPlayer:
    """A JACK client playing one looping 1 s signal per output port (``NAME:out_1``...)."""

    def __init__(self, signals: list[np.ndarray], name: str | None = None) -> None:
        import jack

        with jack_client_lock():
            self.client = jack.Client(name or f"player-{uuid.uuid4().hex[:6]}", no_start_server=True)
        self.signals = signals
        self.ports = [self.client.outports.register(f"out_{i + 1}") for i in range(len(signals))]
        self.position = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    @property
    def name(self) -> str:
        return self.client.name

    def _process(self, frames: int) -> None:
        for port, signal in zip(self.ports, self.signals):
            start = self.position % len(signal)
            port.get_array()[:] = np.take(signal, range(start, start + frames), mode="wrap")
        self.position += frames

    def close(self) -> None:
        with jack_client_lock():
            self.client.deactivate()
            self.client.close()
