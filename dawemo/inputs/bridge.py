"""Audio from a dawemo Bridge plugin inside the DAW, through shared memory (``dawemo run --bridge``).

The plugin's audio thread copies every block (up to 2 channels, at the host's rate) with the
host's transport into a ring in shared memory and never waits for dawemo (see
``bridge/BridgeLayout.h``). ``BridgeSource.read`` drains that ring on the engine's thread:
downmix, resample to ``target_rate``, meter. Either side may start first and either may restart:
while no bridge of that name runs (or its host stops calling it), ``health`` is ``recovering``,
``read`` returns None, and it looks for the bridge again every ``retry_interval_s``.

Counted: ``dropped_frames`` (audio the plugin overwrote before dawemo read it: dawemo fell
behind), ``host_gap_frames`` and ``restarts`` (the host stopped and restarted the plugin, e.g.
for a new sample rate or block size: the time it was off, at the new rate).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from dawemo import constants as C
from dawemo import faults
from dawemo.bridge_shm import BridgeError, BridgeSegment, Transport, list_bridges, resolve_bridge
from dawemo.faults import Health, HealthReport
from dawemo.inputs.sources import AudioSource, AudioSourceError, StreamingResampler

log = logging.getLogger(__name__)

_POLL_S = 0.002  # how often a waiting read() looks for new frames (the plugin's blocks are ~1-10 ms)
DEGRADED_AFTER_GAP_S = 2.0  # health stays degraded this long after dawemo lost audio


class BridgeSource(AudioSource):
    """The audio a dawemo Bridge plugin sends, as a live input.

    Args:
        bridge: instance name (exact, or a unique case-insensitive part); None takes the only
            running bridge (and waits for one when none runs).
        target_rate: rate in Hz of the audio ``read`` returns.
        wait: when no matching bridge runs at ``open``, wait for it (``recovering``) instead of
            raising AudioSourceError.
        stall_s: seconds without a block from the host after which the bridge is taken for
            stopped (``recovering``) until blocks come again.
        retry_interval_s: seconds between looks for a bridge that is gone or not there yet.
    """

    def __init__(self, bridge: str | None = None, target_rate: int = C.SAMPLE_RATE, wait: bool = True,
                 stall_s: float = 0.5, retry_interval_s: float = 0.1) -> None:
        super().__init__(target_rate)
        self.requested = bridge
        self.wait = wait
        self.stall_s = float(stall_s)
        self.retry_interval_s = float(retry_interval_s)
        self.segment: BridgeSegment | None = None
        self.report = HealthReport(where=f"bridge '{bridge or 'any'}'")
        self.overrun_frames = 0
        self.host_gap_frames = 0
        self.restarts = 0
        self.attaches = 0
        self.transport: Transport | None = None  # the host's transport in the newest block read
        self.position = 0  # the bridge stream's frames read (its audio_write when caught up)
        self.channels = 2
        self._opened = False
        self._epoch = 0
        self._resampler: StreamingResampler | None = None
        self._next_try_s = 0.0
        self._progress = (0, 0.0)  # (audio_write, monotonic s it last grew)
        self._last_gap_s = -1e9
        self._stalled = False
        self._last_block_end_ns = 0
        self.name = f"bridge:{bridge or 'any'}"

    # -- AudioSource -----------------------------------------------------------------------------

    @property
    def health(self) -> Health:
        return self.report.health

    @property
    def dropped_frames(self) -> int:
        return self.overrun_frames

    @property
    def bridge_name(self) -> str | None:
        return self.segment.name if self.segment is not None else None

    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        if not self._try_attach(force=True):
            if not self.wait or self.report.health.state == faults.FAILED:  # e.g. ambiguous name
                self._opened = False
                raise AudioSourceError(self.report.health.message)
        if self.sample_rate == 0:
            self.sample_rate = 48000.0  # until a bridge tells its rate

    def close(self) -> None:
        self._opened = False
        self._detach()

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        if not self._opened:
            raise AudioSourceError(f"{self.name} is not open; use it in a 'with' statement")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            if self.segment is None or not self._check_alive():
                if not self._try_attach():
                    time.sleep(min(max(0.0, deadline - time.monotonic()), self.retry_interval_s))
                    return None
            block = self._drain()
            if block is not None:
                return self._finish_block(block)
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def wait_for_transport(self, timeout_s: float = 2.0) -> Transport | None:
        """The host's transport of the newest block, waiting up to ``timeout_s`` for a bridge and a
        block (without consuming audio); None when none came."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.segment is None or self.segment.closed:
                self._try_attach()
            if self.segment is not None:
                transport = self.segment.latest_transport()
                if transport is not None and transport.epoch == self.segment.u64("epoch"):
                    return transport
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def recorder_timing(self, default_bpm: float, timeout_s: float = 2.0) -> dict | None:
        """``AutomationRecorder`` keyword arguments that put a recording on the DAW's timeline: the
        host's tempo (in quarter notes) and time signature, and time 0 at the song's start, so the
        first event lands at the host's song position. None when no block came within ``timeout_s``."""
        transport = self.wait_for_transport(timeout_s)
        if transport is None:
            return None
        timing = {"tempo_bpm": transport.quarter_bpm or default_bpm, "start_time_s": transport.song_zero_monotonic_s()}
        if transport.bbt_valid and transport.beats_per_bar >= 1 and transport.beat_type in (1, 2, 4, 8, 16, 32):
            timing["time_signature"] = (int(round(transport.beats_per_bar)), int(transport.beat_type))
        timing["position_s"] = transport.position_s
        return timing

    # -- attaching ------------------------------------------------------------------------------

    def _try_attach(self, force: bool = False) -> bool:
        now_s = time.monotonic()
        if not force and now_s < self._next_try_s:
            return False
        self._next_try_s = now_s + self.retry_interval_s
        try:
            running = list_bridges()
            name = resolve_bridge(self.requested, running)
        except BridgeError as error:  # several match: the user must name one
            self.report.set(faults.FAILED, str(error))
            return False
        if name is None:
            listing = ", ".join(info.name for info in running) or "none"
            what = f"dawemo Bridge '{self.requested}'" if self.requested else "a dawemo Bridge"
            self.report.set(faults.RECOVERING, f"waiting for {what} to run in the DAW (running: {listing})")
            return False
        try:
            segment = BridgeSegment(name)
        except BridgeError as error:
            self.report.set(faults.RECOVERING, f"{error}; retrying")
            return False
        self._detach()
        self.segment = segment
        self.attaches += 1
        self.channels = segment.channels
        self._epoch = segment.u64("epoch")
        self.position = segment.u64("audio_write")  # from now on: no stale audio
        self._set_rate(segment.sample_rate or self.sample_rate or 48000.0)
        self._progress = (self.position, time.monotonic())
        self._stalled = False
        self._last_block_end_ns = 0
        segment.heartbeat(self.position)
        self.name = f"bridge:{name}"
        self.report.where = f"bridge '{name}'"
        self.report.ok()
        log.info("attached to dawemo Bridge '%s' (%s, %g Hz)", name, segment.format, self.sample_rate)
        return True

    def _detach(self) -> None:
        segment, self.segment = self.segment, None
        if segment is not None:
            segment.release()
            segment.close()

    def _check_alive(self) -> bool:
        """False (and detached) when the plugin let go of the segment or its host died."""
        segment = self.segment
        if segment.closed:
            self.report.set(faults.RECOVERING, f"dawemo Bridge '{segment.name}' went away (removed, renamed "
                            "or its host stopped); waiting for it to return")
            self._detach()
            self._next_try_s = 0.0
            return False
        return True

    def _set_rate(self, rate: float) -> None:
        self.sample_rate = float(rate)
        self._resampler = StreamingResampler(self.sample_rate, self.target_rate)

    # -- reading --------------------------------------------------------------------------------

    def _drain(self) -> np.ndarray | None:
        """Copy what the plugin wrote since the last call; mono at target_rate, or None if nothing."""
        segment = self.segment
        written = segment.u64("audio_write")
        now_s = time.monotonic()
        segment.heartbeat(self.position)
        if written == self.position:
            self._check_stall(segment, now_s)
            return None
        self._progress = (written, now_s)
        if self._stalled:
            self._stalled = False
            self.report.ok()
        pieces: list[np.ndarray] = []
        epoch = segment.u64("epoch")
        if epoch != self._epoch:
            start = max(self.position, min(segment.u64("epoch_start_frame"), written))
            if start > self.position:  # the old stream's tail, at the old rate
                pieces.append(self._convert(self._copy(segment, self.position, start)))
            self._restart(segment, epoch, start)
        if written > self.position:
            pieces.append(self._convert(self._copy(segment, self.position, written)))
        self.transport = segment.latest_transport()
        if self.transport is not None:
            self._last_block_end_ns = self.transport.mono_ns + int(self.transport.frames / max(1.0, self.sample_rate) * 1e9)
        segment.heartbeat(self.position)
        if self.report.health.state == faults.DEGRADED and now_s - self._last_gap_s > DEGRADED_AFTER_GAP_S:
            self.report.ok()
        pieces = [piece for piece in pieces if piece.size]
        if not pieces:
            return np.zeros(0, np.float32)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _copy(self, segment: BridgeSegment, start: int, end: int) -> np.ndarray:
        """(channels, n) frames [start, end) of the ring; frames overwritten before or during the
        copy are left out and counted."""
        capacity = segment.audio_capacity
        if end - start > capacity:
            self._lose(end - start - capacity)
            start = end - capacity
        at, n = start % capacity, end - start
        first = min(n, capacity - at)
        block = np.empty((segment.channels, n), np.float32)
        block[:, :first] = segment.audio[:, at:at + first]
        if n > first:
            block[:, first:] = segment.audio[:, :n - first]
        # The plugin may have lapped us while we copied: drop what it overwrote.
        overwritten = segment.u64("audio_write") - capacity - start
        if overwritten > 0:
            self._lose(min(n, overwritten))
            block = block[:, min(n, overwritten):]
        self.position = end
        return block

    def _convert(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] == 0:
            return np.zeros(0, np.float32)
        mono = block[0] if block.shape[0] == 1 else block.mean(axis=0, dtype=np.float32)
        return self._resampler.process(mono)

    def _lose(self, frames: int) -> None:
        self.overrun_frames += int(frames)
        self._last_gap_s = time.monotonic()
        if self.segment is not None:
            self.segment.set_u64("reader_gap_frames", self.overrun_frames + self.host_gap_frames)
        self.report.set(faults.DEGRADED, f"dawemo fell behind the bridge: {self.overrun_frames} frames lost")

    def _restart(self, segment: BridgeSegment, epoch: int, start: int) -> None:
        """The host restarted the plugin (new rate or block size, or off and on): new resampler,
        and the time it was off counted at the new rate."""
        self.restarts += 1
        self._epoch = epoch
        self.position = start
        rate = segment.sample_rate or self.sample_rate
        first = segment.transport_at(start)
        if first is not None and self._last_block_end_ns and first.frame == start:
            self.host_gap_frames += max(0, int(round((first.mono_ns - self._last_block_end_ns) / 1e9 * rate)))
            segment.set_u64("reader_gap_frames", self.overrun_frames + self.host_gap_frames)
        self._set_rate(rate)

    def _check_stall(self, segment: BridgeSegment, now_s: float) -> None:
        produced, since_s = self._progress
        if not self._stalled and now_s - since_s >= self.stall_s:
            self._stalled = True
            self.report.set(faults.RECOVERING, f"dawemo Bridge '{segment.name}' gets no audio from its host "
                            f"for {now_s - since_s:.1f} s (stopped or suspended); waiting")
