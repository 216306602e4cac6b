"""A single-producer single-consumer ring of multichannel float32 frames for audio threads.

The producer (a JACK process callback or a device reader thread) only copies into memory
allocated up front and moves its own write counter; the consumer only moves its read counter.
Neither side takes a lock, so the producer never waits for a slow consumer: when the ring is
full, the newest frames are dropped and counted instead (the producer may not move the read
counter, which belongs to the consumer).

Counters are Python ints that only grow; a counter is stored after the samples it covers are
copied, and single attribute stores are atomic under the GIL, so the consumer never sees a
count whose samples are not there yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class FrameRing:
    """Lock-free SPSC ring of ``channels`` x ``capacity_frames`` float32 samples.

    Args:
        capacity_frames: frames the ring holds before the producer starts dropping.
        channels: samples per frame.
    """

    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames < 1:
            raise ValueError(f"capacity_frames must be at least 1, got {capacity_frames}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.capacity_frames = int(capacity_frames)
        self.channels = int(channels)
        self._samples = np.zeros((self.channels, self.capacity_frames), dtype=np.float32)
        self._written = 0  # frames ever stored; only the producer writes it
        self._read = 0  # frames ever taken; only the consumer writes it
        self.overrun_frames = 0  # frames the producer dropped because the ring was full

    @property
    def produced_frames(self) -> int:
        """Frames the producer has offered so far, kept or dropped: it stops growing when the
        producer stops (a JACK server gone, a device unplugged)."""
        return self._written + self.overrun_frames

    @property
    def available_frames(self) -> int:
        """Frames stored and not yet read."""
        return self._written - self._read

    def write(self, block: np.ndarray | Sequence[np.ndarray]) -> int:
        """Producer: copy a (channels, n) block or one 1-D array per channel; return frames kept.

        Frames that do not fit are dropped (counted in ``overrun_frames``). Allocates nothing
        the size of the audio: only slice views.
        """
        frames = len(block[0])
        written = self._written
        free = self.capacity_frames - (written - self._read)
        kept = frames if frames <= free else free
        if kept > 0:
            start = written % self.capacity_frames
            first = min(kept, self.capacity_frames - start)
            for channel in range(self.channels):
                source = block[channel]
                self._samples[channel, start:start + first] = source[:first]
                if kept > first:
                    self._samples[channel, :kept - first] = source[first:kept]
            self._written = written + kept  # publish only after the copy
        if kept < frames:
            self.overrun_frames += frames - kept
        return kept

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """Consumer: take up to ``max_frames`` (all by default) frames as a new (channels, n) array."""
        available = self._written - self._read
        frames = available if max_frames is None else min(available, max_frames)
        out = np.empty((self.channels, frames), dtype=np.float32)
        if frames:
            self.read_into(out)  # the rows of ``out`` are the per-channel outputs
        return out

    def read_into(self, outputs: Sequence[np.ndarray]) -> int:
        """Consumer: copy up to ``len(outputs[0])`` frames straight into one array per channel.

        Allocates nothing (for a real-time callback filling its output ports); returns frames copied.
        """
        frames = min(self._written - self._read, len(outputs[0]))
        if frames:
            start = self._read % self.capacity_frames
            first = min(frames, self.capacity_frames - start)
            for channel, out in enumerate(outputs):
                out[:first] = self._samples[channel, start:start + first]
                out[first:frames] = self._samples[channel, :frames - first]
            self._read += frames  # release the space only after the copy
        return frames
