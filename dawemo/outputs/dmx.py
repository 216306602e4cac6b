"""DMX output over Art-Net or sACN (E1.31): one universe per destination, sent at a steady frame rate.

DMX receivers expect a constant stream of whole frames, not sends on change: ``DmxSender`` keeps
the universe's 512 channels and its own thread sends the whole frame every ``1 / refresh_hz``
seconds (default 44 Hz, the rate of a full DMX512 line), whatever changed. ``set(due_s, changes)``
only queues channel values to take effect at ``due_s`` (the tick's time plus the destination's
``delay_ms``); each frame carries every change due by its send time. Frames go unicast to the
destination's address (an x.x.x.255 or multicast address works too).

Packets:
* sACN: the ``sacn`` package's ``DataPacket`` (E1.31-2016 root, framing and DMP layers; sequence
  numbers, priority, a fixed CID per sender; three "stream terminated" packets on close).
* Art-Net: an ArtDmx packet (Art-Net 4, OpDmx 0x5000, protocol 14, sequence 1-255, 15-bit
  port-address, even length). Written here (``artdmx_packet``, 18 bytes of header): the Python
  Art-Net packages either are GPL (pyartnet, asyncio-bound) or send from their own blocking
  socket and thread with the sequence number off (stupidArtnet); the tests check these packets
  with stupidArtnet's receiver and OLA's.

Errors (unreachable, refused, unresolvable) are reported in ``health`` and retried
(``dawemo.outputs.udp``); the frame clock never waits for the network.
"""

from __future__ import annotations

import math
import struct
import threading
import time
import uuid
from collections import deque

from dawemo.faults import Health, HealthReport
from dawemo.outputs.udp import UdpLink, use_realtime_scheduling

ARTNET_PORT = 6454
SACN_PORT = 5568
DMX_CHANNELS = 512
DEFAULT_REFRESH_HZ = 44.0  # a full DMX512 frame on the wire takes ~22.7 ms
MAX_REFRESH_HZ = 100.0
MAX_ARTNET_UNIVERSE = 32767  # 15-bit port-address: net (7 bits), sub-net (4), universe (4)
MAX_SACN_UNIVERSE = 63999
MAX_QUEUED_CHANGES = 8192
_ARTDMX_HEAD = b"Art-Net\x00" + struct.pack("<H", 0x5000) + struct.pack(">H", 14)


def artdmx_packet(universe: int, sequence: int, data: bytes) -> bytes:
    """An ArtDmx packet: ``universe`` 0-32767 (port-address), ``sequence`` 0-255 (0: off), 2-512 channels."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    return (_ARTDMX_HEAD + bytes((sequence & 0xFF, 0)) + struct.pack("<H", universe)
            + struct.pack(">H", len(data)) + bytes(data))


def dmx_bytes(value: int, bits: int) -> bytes:
    """A channel value as DMX bytes: one (8-bit) or coarse then fine (16-bit)."""
    return bytes((value,)) if bits == 8 else bytes((value >> 8, value & 0xFF))


class DmxSender:
    """One DMX universe to one destination at a steady frame rate; a context manager (thread, socket).

    Args:
        name: the destination's name in the preset (for messages).
        protocol: "artnet" or "sacn".
        host, port: where frames go.
        universe: Art-Net port-address 0-32767 or sACN universe 1-63999.
        refresh_hz: frames per second.
        priority: sACN priority 0-200 (receivers merge sources by it).
    """

    def __init__(self, name: str, protocol: str, host: str, port: int, universe: int,
                 refresh_hz: float = DEFAULT_REFRESH_HZ, priority: int = 100) -> None:
        if protocol not in ("artnet", "sacn"):
            raise ValueError(f"protocol must be 'artnet' or 'sacn', got {protocol!r}")
        self.name = name
        self.protocol = protocol
        self.universe = universe
        self.refresh_hz = float(refresh_hz)
        self.report = HealthReport(where=f"{host}:{port}")
        what = f"{'Art-Net' if protocol == 'artnet' else 'sACN'} '{name}' (universe {universe})"
        self.link = UdpLink(host, port, self.report, what)
        self.frame = bytearray(DMX_CHANNELS)
        self.frames_sent = 0
        self.realtime = False  # whether the frame clock got real-time scheduling
        self.frame_times_s: deque[float] = deque(maxlen=4096)  # send times of the latest frames (bench, tests)
        self._sequence = 0
        self._pending: deque[tuple[float, list[tuple[int, bytes]]]] = deque(maxlen=MAX_QUEUED_CHANGES)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sacn_packet = None
        if protocol == "sacn":
            from sacn.messages.data_packet import DataPacket

            self._sacn_packet = DataPacket(cid=tuple(uuid.uuid4().bytes), sourceName="dawemo", universe=universe,
                                           priority=priority)
        self.on_frame = None  # optional callable(send_time_s, frame bytes), from the sender thread

    @property
    def health(self) -> Health:
        return self.report.health

    def __enter__(self) -> "DmxSender":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"dawemo-dmx-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the frame clock (sACN: tell receivers the stream ends), close the socket."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        if self._sacn_packet is not None and not self.link.waiting:
            self._sacn_packet.option_StreamTerminated = True
            for _ in range(3):  # E1.31 6.2.6: three packets with the terminated bit
                self.link.send(self._packet())
        self.link.close()

    def set(self, due_s: float, changes: list[tuple[int, int, int]]) -> None:
        """Queue ``(channel 1-512, bits 8 or 16, value)`` changes for the frames from ``due_s`` on."""
        if not changes:
            return
        encoded = [(channel - 1, dmx_bytes(value, bits)) for channel, bits, value in changes]
        with self._lock:
            self._pending.append((due_s, encoded))

    def _apply_due(self, now_s: float) -> None:
        with self._lock:
            while self._pending and self._pending[0][0] <= now_s:
                for offset, data in self._pending.popleft()[1]:
                    self.frame[offset:offset + len(data)] = data

    def _packet(self) -> bytes:
        self._sequence = (self._sequence + 1) & 0xFF
        if self._sacn_packet is None:
            return artdmx_packet(self.universe, self._sequence or 1, self.frame)
        self._sacn_packet.sequence = self._sequence
        self._sacn_packet._dmxData = tuple(self.frame)  # 512 ints in range: the checked setter costs 10x
        return bytes(self._sacn_packet.getBytes())

    def _run(self) -> None:
        self.realtime = use_realtime_scheduling()
        period_s = 1.0 / self.refresh_hz
        next_s = time.monotonic()
        while not self._stop.is_set():
            wait_s = next_s - time.monotonic()
            if wait_s > 0 and self._stop.wait(wait_s):
                break
            now_s = time.monotonic()
            self._apply_due(now_s)
            if self.link.send(self._packet(), now_s):
                self.frames_sent += 1
                self.frame_times_s.append(now_s)
                if self.on_frame is not None:
                    self.on_frame(now_s, bytes(self.frame))
            next_s += period_s
            if now_s - next_s > period_s:  # fell behind (machine busy): go on from now, no burst
                next_s = now_s + period_s


def frame_interval_stats_ms(times_s: list[float]) -> dict[str, float]:
    """Mean and p99 deviation of frame intervals from their mean, in ms (for benches and tests)."""
    intervals = [b - a for a, b in zip(times_s, times_s[1:])]
    if not intervals:
        return {"mean_ms": math.nan, "p99_jitter_ms": math.nan}
    mean = sum(intervals) / len(intervals)
    deviations = sorted(abs(i - mean) for i in intervals)
    return {"mean_ms": 1000 * mean, "p99_jitter_ms": 1000 * deviations[min(len(deviations) - 1,
                                                                            int(0.99 * len(deviations)))]}
