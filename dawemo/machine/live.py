"""The live machine sound on JACK: input ports -> chain (parameters following the emotion) -> output ports.

The JACK callback only copies: input blocks (or, for a chain that starts with an instrument,
incoming MIDI events) into one buffer, output blocks out of another. A worker thread runs the
chain between them (pedalboard releases the GIL while it processes), so a slow block costs an
output underrun (counted, filled with silence), never a stalled JACK graph. The output lags the
input by ``latency_periods`` JACK periods.

The worker also watches the server: when it stops or is killed (JACK tells its clients) or hangs
(no audio cycle for ``stall_s``), ``health`` turns ``recovering``, and the worker joins a server of
the same name again when one returns (or the hung one resumes), with the same client name, ports
and connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from dawemo import faults
from dawemo.faults import Health, HealthReport
from dawemo.inputs.ring_buffer import FrameRing
from dawemo.inputs.sources import AudioSourceError, _match_present, _server_label, match_jack_ports, open_jack_client
from dawemo.jack_clients import close_client_bounded, release_jack_client
from dawemo.machine.chain import Chain
from dawemo.machine.plugins import is_external
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import DEFAULT_HOP_S

log = logging.getLogger(__name__)

CHANNELS = 2
PURPOSE = "the live machine sound"
INPUT, OUTPUT, MIDI = "input", "output", "midi"  # the kinds of connection the machine makes
NAME_GRACE_S = 2.0  # how long a rejoin waits for the old client to free the machine's name
# All sound off, all notes off, on every channel: what an instrument gets first after a rejoin.
SILENCE_MIDI = tuple(bytes([0xB0 | channel, control, 0]) for channel in range(16) for control in (120, 123))


class _Ports(NamedTuple):
    """One JACK client's ports and the rings its process callback copies through (bound to that
    callback, so an old client that runs a late cycle never touches the new client's rings)."""

    inputs: list
    outputs: list
    midi: object | None
    in_ring: FrameRing | None
    out_ring: FrameRing
    period: int


class JackMachine:
    """A context manager: a JACK client ``dawemo-machine`` with in_1/in_2 and out_1/out_2.

    A chain that starts with an instrument gets a MIDI input port ``midi_in`` instead of audio
    inputs; its notes are played by the instrument at the start of the next period the worker renders.

    Faults: ``health`` (``dawemo.faults.Health``, where = the JACK server) is ``recovering`` from
    the moment the server stops or stops cycling until it is rejoined; ``degraded`` after a rejoin
    while some of ``inputs``/``outputs``/``midi_inputs`` match no port yet (retried every
    ``retry_interval_s``); ``failed`` when the chain raises (then ``error`` holds the message too and
    the outputs play silence). A rejoin starts from silence: audio buffered before the outage and
    the plugins' tails (reverb, delay, held notes) are dropped. ``rejoins`` counts the rejoins.
    Connections that other programs made to the machine's ports are theirs to re-make.

    Args:
        chain: the plugin chain.
        inputs: JACK output ports to take the machine sound from (names or patterns), or None.
        outputs: JACK input ports to play to (e.g. ``system:playback_*``), or None.
        hop_s: the model's update interval (each new value is ramped in over it).
        latency_periods: JACK periods of output delay that absorb the worker's scheduling.
        midi_inputs: JACK MIDI output ports that play the chain's instrument (names or patterns).
        rejoin: rejoin a server that returns; False makes a lost server ``failed``.
        stall_s: seconds without an audio cycle after which the server is taken for gone.
        retry_interval_s: seconds between attempts to rejoin or to make missing connections.
    """

    def __init__(self, chain: Chain, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 hop_s: float = DEFAULT_HOP_S, client_name: str = "dawemo-machine", server_name: str | None = None,
                 latency_periods: int = 2, midi_inputs: Sequence[str] | None = None, rejoin: bool = True,
                 stall_s: float = 0.5, retry_interval_s: float = 0.25) -> None:
        self.chain = chain
        self.inputs, self.outputs = list(inputs or []), list(outputs or [])
        self.midi_inputs = list(midi_inputs or [])  # JACK MIDI ports that play the chain's instrument
        self._midi_events: deque[tuple[int, bytes]] = deque()  # (offset in its period, bytes), from the callback
        self._midi_first: tuple[bytes, ...] = ()  # played before those, at the start of the next period
        self.hop_s = hop_s
        self.client_name, self.server_name = client_name, server_name
        self.latency_periods = latency_periods
        self.rejoin = rejoin
        self.stall_s = float(stall_s)
        self.retry_interval_s = float(retry_interval_s)
        self.processor: MachineChain | None = None
        self.underrun_frames = 0
        self.rejoins = 0
        self.error: str | None = None  # the message of a failure, as before ``health`` existed
        self.report = HealthReport(where=_server_label(server_name))
        self.port_names: list[str] = []
        self.connected: dict[str, list[str]] = {}  # kind -> the other ends connected now
        self._patterns = {INPUT: [] if chain.is_instrument else self.inputs, OUTPUT: self.outputs,
                          MIDI: self.midi_inputs if chain.is_instrument else []}
        self._missing: dict[str, list[str]] = {}  # kind -> patterns that matched no port at the last try
        self._client = None
        self._ports: _Ports | None = None
        self._generation = 0  # counts the clients opened; a late shutdown call of an old one is ignored
        self._cycles = 0  # process callbacks so far, to notice a server that stopped cycling
        self._progress = (0, 0.0)  # (cycles, when they last grew)
        self._gone: str | None = None  # why the server is taken for gone; set by a JACK thread too
        self._shut_down = False  # the server told the current client it shut down (see _let_go)
        self._dead_clients: list = []  # clients let go of, kept so that nothing finalizes them
        self._failed = False
        self._next_try_s = 0.0
        self._lost_s = 0.0  # when the server was taken for gone
        self._name = client_name  # the name JACK gave the machine's client at open
        self._dropped_before = 0  # input frames dropped by the rings of earlier clients
        self._last_values: Mapping[str, float] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    @property
    def health(self) -> Health:
        return self.report.health

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "JackMachine":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        client = open_jack_client(self.client_name, self.server_name, PURPOSE)
        try:
            found = {kind: match_jack_ports(patterns, self._available(client, kind))
                     for kind, patterns in self._patterns.items()}
            self.processor = MachineChain(self.chain, client.samplerate, hop_s=self.hop_s)
            self._join(client, found)
        except BaseException:
            self._ports = None
            client.close()
            raise
        self._missing = {}
        self._name = client.name
        self.report.ok()
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_chain, name="dawemo-machine", daemon=True)
        self._worker.start()

    def _join(self, client, found: Mapping[str, list[str]]) -> None:
        """Register the ports on ``client`` with empty rings, activate it and connect ``found``."""
        rate, period = client.samplerate, client.blocksize
        instrument = self.chain.is_instrument
        capacity = max(8 * period, int(2 * rate))
        out_ring = FrameRing(capacity, CHANNELS)
        out_ring.write(np.zeros((CHANNELS, self.latency_periods * period), np.float32))
        if self._ports is not None and self._ports.in_ring is not None:
            self._dropped_before += self._ports.in_ring.overrun_frames
        self._ports = _Ports(
            inputs=[] if instrument else [client.inports.register(f"in_{k + 1}") for k in range(CHANNELS)],
            outputs=[client.outports.register(f"out_{k + 1}") for k in range(CHANNELS)],
            midi=client.midi_inports.register("midi_in") if instrument else None,
            in_ring=None if instrument else FrameRing(capacity, CHANNELS), out_ring=out_ring, period=period)
        self._midi_events.clear()
        self._shut_down = False
        self._generation += 1
        generation = self._generation
        ports = self._ports
        client.set_process_callback(lambda frames: self._process(frames, ports))
        client.set_shutdown_callback(lambda status, reason: self._shutdown(generation, reason))
        client.activate()
        self.connected = {kind: [] for kind in self._patterns}
        for kind, names in found.items():
            self._connect(client, kind, names)
        self._client = client
        self._progress = (self._cycles, time.monotonic())
        self._gone = None
        self.port_names = [port.name for port in ports.inputs + ports.outputs] + \
            ([ports.midi.name] if ports.midi is not None else [])

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:  # first, so that it cannot open a client behind our back
            self._worker.join(timeout=1.0)  # longer only while it waits on a hung server
            self._worker = None
        client, self._client = self._client, None
        if client is not None:
            self._let_go(client)

    def _let_go(self, client) -> None:
        """Close ``client``, or only forget it when its server shut down (``release_jack_client``)."""
        release_jack_client(client, self._shut_down, self._dead_clients)

    # -- connections ----------------------------------------------------------------------------

    @staticmethod
    def _available(client, kind: str) -> list[str]:
        """The ports of the server the machine may connect to for ``kind``."""
        if kind == INPUT:
            ports = client.get_ports(is_audio=True, is_output=True)
        elif kind == OUTPUT:
            ports = client.get_ports(is_audio=True, is_input=True)
        else:
            ports = client.get_ports(is_midi=True, is_output=True)
        return [port.name for port in ports]

    def _connect(self, client, kind: str, names: Sequence[str]) -> None:
        """Connect the machine's ports to ``names``: audio ports in turn to in/out_1, _2, _1..."""
        done, ports = self.connected[kind], self._ports
        for name in names:
            if name in done:
                continue
            index = len(done) % CHANNELS
            if kind == INPUT:
                client.connect(name, ports.inputs[index])
            elif kind == OUTPUT:
                client.connect(ports.outputs[index], name)
            else:
                client.connect(name, ports.midi)
            done.append(name)

    def _connect_missing(self) -> None:
        self._next_try_s = time.monotonic() + self.retry_interval_s
        try:
            for kind, patterns in list(self._missing.items()):
                found, missing = _match_present(patterns, self._available(self._client, kind))
                self._connect(self._client, kind, found)
                if missing:
                    self._missing[kind] = missing
                else:
                    del self._missing[kind]
        except Exception as error:  # the server may go again meanwhile; the stall check notices that
            log.debug("re-making the machine's JACK connections: %s", error)
        self._report_connections()

    def _report_connections(self) -> None:
        if self._missing:
            patterns = [pattern for kind in self._missing.values() for pattern in kind]
            self.report.set(faults.DEGRADED, "rejoined the JACK server; waiting for port(s) "
                            + ", ".join(repr(pattern) for pattern in patterns))
        else:
            self.report.ok()

    # -- the two threads ------------------------------------------------------------------------

    def _process(self, frames: int, ports: _Ports) -> None:
        """JACK's real-time thread: copy in, copy out (with this client's ports), wake the worker."""
        self._cycles += 1
        if self._gone is not None:  # a late cycle of a client given up on (a hung server resumed)
            for port in ports.outputs:
                port.get_array().fill(0.0)
            return
        if ports.midi is not None:
            for offset, data in ports.midi.incoming_midi_events():
                self._midi_events.append((offset, bytes(data)))
        else:
            ports.in_ring.write([port.get_array() for port in ports.inputs])
        outputs = [port.get_array() for port in ports.outputs]
        got = ports.out_ring.read_into(outputs)
        if got < frames:
            for out in outputs:
                out[got:] = 0.0
            self.underrun_frames += frames - got
        self._wake.set()

    def _shutdown(self, generation: int, reason: str) -> None:
        # A JACK thread: only note it; the worker does the rest.
        if generation != self._generation:
            return
        self._shut_down = True
        if self._gone is None and not self._stop.is_set():
            self._lose_server(f"the JACK server shut down ({reason})")
            self._wake.set()

    def _run_chain(self) -> None:
        """The worker: runs the chain while the server cycles, else rejoins it."""
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            if self._gone is None:
                self._check_stall()
            if self._gone is not None:
                if not self.rejoin:
                    return
                self._try_rejoin()
                continue
            if self._missing and time.monotonic() >= self._next_try_s:
                self._connect_missing()
            try:
                self._render()
            except Exception as error:  # noqa: BLE001 - a failing plugin is reported, the graph keeps running
                self._fail(f"machine chain failed: {str(error).splitlines()[0] if str(error) else repr(error)}")
                return

    def _render(self) -> None:
        ports = self._ports
        if ports.midi is not None:  # render ahead of the output, with the notes received so far
            target_frames = self.latency_periods * ports.period
            while ports.out_ring.available_frames < target_frames and not self._stop.is_set():
                ports.out_ring.write(self.processor.process_midi(self._take_midi(ports.period), ports.period))
        else:
            while ports.in_ring.available_frames >= ports.period and not self._stop.is_set():
                ports.out_ring.write(self.processor.process(ports.in_ring.read(ports.period)))

    def _check_stall(self) -> None:
        """Take the server for gone when no audio cycle ran for ``stall_s`` (killed, or hung)."""
        cycles, since_s = self._progress
        now_s = time.monotonic()
        if self._cycles != cycles:
            self._progress = (self._cycles, now_s)
        elif now_s - since_s >= self.stall_s:
            self._lose_server(f"no audio cycle from the JACK server for {now_s - since_s:.1f} s (stopped or hung)")

    def _lose_server(self, reason: str) -> None:
        # The first attempt waits too: jack2 frees the dead clients of this process at the next
        # client open, and one whose threads are still busy with the shutdown crashes the process.
        self._lost_s = time.monotonic()
        self._next_try_s = self._lost_s + self.retry_interval_s
        self._gone = reason
        if self._failed:  # the chain has failed for good already; that stays the news
            return
        if self.rejoin:
            self.report.set(faults.RECOVERING, reason + "; rejoining when it returns")
        else:
            self.error = reason
            self.report.set(faults.FAILED, reason + "; restart dawemo once the server is back")

    def _try_rejoin(self) -> None:
        """One attempt (at most every ``retry_interval_s``) to join a server of the same name again."""
        now_s = time.monotonic()
        if now_s < self._next_try_s:
            return
        self._next_try_s = now_s + self.retry_interval_s
        if self._client is not None:
            self._let_go(self._client)
            self._client = None
        self._generation += 1  # a late shutdown call of the old client is ignored from here on
        self._shut_down = False
        try:
            client = open_jack_client(self.client_name, self.server_name, PURPOSE)
        except AudioSourceError:
            return
        if client.name != self._name and now_s - self._lost_s < NAME_GRACE_S:
            # The old client still holds the name (a hung server closes it late): not yet.
            close_client_bounded(client)
            return
        try:
            if float(client.samplerate) != self.processor.sample_rate:
                self.processor = MachineChain(self.chain, client.samplerate, hop_s=self.hop_s)
                if self._last_values is not None:
                    self.processor.push(self._last_values)
            else:
                self._forget_sound()
            found, missing = {}, {}
            for kind, patterns in self._patterns.items():
                found[kind], missing[kind] = _match_present(patterns, self._available(client, kind))
            self._join(client, found)
        except Exception as error:
            self._let_go(client)
            self._client = None
            self.report.set(faults.RECOVERING, f"rejoining the JACK server failed ({error}); retrying")
            return
        self._missing = {kind: patterns for kind, patterns in missing.items() if patterns}
        self.rejoins += 1
        self._report_connections()
        if self._stop.is_set():  # close() gave up waiting for this attempt
            self._client = None
            close_client_bounded(client)

    def _forget_sound(self) -> None:
        """Drop what the chain holds of the audio from before an outage: tails, delay lines, notes.

        pedalboard resets an external (VST3/AU) plugin on the main thread only, and one asked from
        another thread stays silent until then; such a plugin keeps its tail, and an instrument is
        sent all sound off and all notes off instead.
        """
        for slot, plugin in zip(self.chain.plugins, self.processor.plugins):
            if not is_external(slot.spec):
                plugin.reset()
        if self.chain.is_instrument:
            self._midi_first = SILENCE_MIDI

    def _take_midi(self, period: int) -> list:
        """MIDI received since the last period, placed at the same offsets in the period rendered next."""
        import mido

        start_s = self.processor.time_s
        events = [(start_s, mido.Message.from_bytes(data)) for data in self._midi_first]
        self._midi_first = ()
        while self._midi_events:
            offset, data = self._midi_events.popleft()
            try:
                events.append((start_s + min(offset, period - 1) / self.processor.sample_rate,
                               mido.Message.from_bytes(data)))
            except ValueError:  # system exclusive or running status: not for the instrument
                continue
        return events

    def _fail(self, message: str) -> None:
        """The chain raised: the outputs play silence from now on; the performer must restart."""
        self.error = message
        self._failed = True
        self.report.set(faults.FAILED, message + "; the machine sound is silent until dawemo restarts",
                        where=f"chain '{self.chain.name}'")

    # -- control --------------------------------------------------------------------------------

    def push(self, values: Mapping[str, float]) -> None:
        """A model update; applied at the start of the next block the chain processes."""
        self._last_values = values
        processor = self.processor
        if processor is not None:
            processor.push(values)

    @property
    def dropped_input_frames(self) -> int:
        ports = self._ports
        current = ports.in_ring.overrun_frames if ports is not None and ports.in_ring is not None else 0
        return self._dropped_before + current
