"""The live machine sound on JACK: input ports -> chain (parameters following the emotion) -> output ports.

The JACK callback only copies: input blocks (or, for a chain that starts with an instrument,
incoming MIDI events) into one buffer, output blocks out of another. A worker thread runs the
chain between them (pedalboard releases the GIL while it processes), so a slow block costs an
output underrun (counted, filled with silence), never a stalled JACK graph. The output lags the
input by ``latency_periods`` JACK periods.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from dawemo.machine.chain import Chain
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import DEFAULT_HOP_S
from dawemo.inputs.ring_buffer import FrameRing
from dawemo.inputs.sources import match_jack_ports, open_jack_client

CHANNELS = 2


class JackMachine:
    """A context manager: a JACK client ``dawemo-machine`` with in_1/in_2 and out_1/out_2.

    A chain that starts with an instrument gets a MIDI input port ``midi_in`` instead of audio
    inputs; its notes are played by the instrument at the start of the next period the worker renders.

    Args:
        chain: the plugin chain.
        inputs: JACK output ports to take the machine sound from (names or patterns), or None.
        outputs: JACK input ports to play to (e.g. ``system:playback_*``), or None.
        hop_s: the model's update interval (each new value is ramped in over it).
        latency_periods: JACK periods of output delay that absorb the worker's scheduling.
    """

    def __init__(self, chain: Chain, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
                 hop_s: float = DEFAULT_HOP_S, client_name: str = "dawemo-machine", server_name: str | None = None,
                 latency_periods: int = 2, midi_inputs: Sequence[str] | None = None) -> None:
        self.chain = chain
        self.inputs, self.outputs = list(inputs or []), list(outputs or [])
        self.midi_inputs = list(midi_inputs or [])  # JACK MIDI ports that play the chain's instrument
        self._midi_events: deque[tuple[int, bytes]] = deque()  # (offset in its period, bytes), from the callback
        self.hop_s = hop_s
        self.client_name, self.server_name = client_name, server_name
        self.latency_periods = latency_periods
        self.processor: MachineChain | None = None
        self._in_ring: FrameRing | None = None
        self.underrun_frames = 0
        self.error: str | None = None
        self._client = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> "JackMachine":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        client = open_jack_client(self.client_name, self.server_name, "the live machine sound")
        try:
            rate, period = client.samplerate, client.blocksize
            sources = match_jack_ports(self.inputs, [p.name for p in client.get_ports(is_audio=True, is_output=True)])
            sinks = match_jack_ports(self.outputs, [p.name for p in client.get_ports(is_audio=True, is_input=True)])
            self.processor = MachineChain(self.chain, rate, hop_s=self.hop_s)
            midi_sources = match_jack_ports(self.midi_inputs, [p.name for p in client.get_ports(is_midi=True,
                                                                                              is_output=True)])
            self._midi_port = client.midi_inports.register("midi_in") if self.chain.is_instrument else None
            self._in_ports = [] if self.chain.is_instrument else \
                [client.inports.register(f"in_{k + 1}") for k in range(CHANNELS)]
            self._out_ports = [client.outports.register(f"out_{k + 1}") for k in range(CHANNELS)]
            capacity = max(8 * period, int(2 * rate))
            self._in_ring = None if self.chain.is_instrument else FrameRing(capacity, CHANNELS)
            self._out_ring = FrameRing(capacity, CHANNELS)
            self._out_ring.write(np.zeros((CHANNELS, self.latency_periods * period), np.float32))
            self._period = period
            client.set_process_callback(self._process)
            client.set_shutdown_callback(lambda status, reason: self._fail(f"the JACK server shut down ({reason})"))
            self._stop.clear()
            self._worker = threading.Thread(target=self._run_chain, name="dawemo-machine", daemon=True)
            self._worker.start()
            client.activate()
            for k, source in enumerate(sources):
                client.connect(source, self._in_ports[k % CHANNELS])
            for k, sink in enumerate(sinks):
                client.connect(self._out_ports[k % CHANNELS], sink)
            for source in midi_sources if self._midi_port is not None else []:
                client.connect(source, self._midi_port)
        except BaseException:
            self._stop.set()
            client.close()
            raise
        self._client = client
        self.port_names = [port.name for port in self._in_ports + self._out_ports] + \
            ([self._midi_port.name] if self._midi_port is not None else [])

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.deactivate()
            finally:
                client.close()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    # -- the two threads ------------------------------------------------------------------------

    def _process(self, frames: int) -> None:
        """JACK's real-time thread: copy in, copy out, wake the worker."""
        if self._midi_port is not None:
            for offset, data in self._midi_port.incoming_midi_events():
                self._midi_events.append((offset, bytes(data)))
        else:
            self._in_ring.write([port.get_array() for port in self._in_ports])
        outputs = [port.get_array() for port in self._out_ports]
        got = self._out_ring.read_into(outputs)
        if got < frames:
            for out in outputs:
                out[got:] = 0.0
            self.underrun_frames += frames - got
        self._wake.set()

    def _run_chain(self) -> None:
        target_frames = self.latency_periods * self._period
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            try:
                if self._midi_port is not None:  # render ahead of the output, with the notes received so far
                    while self._out_ring.available_frames < target_frames and not self._stop.is_set():
                        self._out_ring.write(self.processor.process_midi(self._take_midi(), self._period))
                else:
                    while self._in_ring.available_frames >= self._period and not self._stop.is_set():
                        self._out_ring.write(self.processor.process(self._in_ring.read(self._period)))
            except Exception as error:  # noqa: BLE001 - a failing plugin is reported, the graph keeps running
                self._fail(f"machine chain failed: {str(error).splitlines()[0] if str(error) else error}")
                return

    def _take_midi(self) -> list:
        """MIDI received since the last period, placed at the same offsets in the period rendered next."""
        import mido

        events = []
        start_s = self.processor.time_s
        while self._midi_events:
            offset, data = self._midi_events.popleft()
            try:
                events.append((start_s + min(offset, self._period - 1) / self.processor.sample_rate,
                               mido.Message.from_bytes(data)))
            except ValueError:  # system exclusive or running status: not for the instrument
                continue
        return events

    def _fail(self, message: str) -> None:
        self.error = message

    # -- control --------------------------------------------------------------------------------

    def push(self, values: Mapping[str, float]) -> None:
        """A model update; applied at the start of the next block the chain processes."""
        if self.processor is not None:
            self.processor.push(values)

    @property
    def dropped_input_frames(self) -> int:
        return self._in_ring.overrun_frames if self._in_ring is not None else 0
