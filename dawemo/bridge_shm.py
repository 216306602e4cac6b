"""The dawemo Bridge plugin's shared memory, seen from Python (standard library and numpy only).

The layout is defined, and documented, in one place: ``bridge/BridgeLayout.h`` (version
``LAYOUT_VERSION``). This module mirrors its offsets (tests/test_daw_bridge_layout.py compiles the
header and compares) and gives both dawemo parts that use a bridge what they need:
``BridgeSegment`` (attach by name, read the audio and transport rings, write the MIDI ring,
liveness) and ``list_bridges``. ``dawemo.inputs.bridge.BridgeSource`` reads the audio,
``dawemo.outputs.bridge_midi.BridgeMidiOut`` writes the CC.

The plugin owns the segment; dawemo only attaches, so Python's resource tracker must not unlink
it at exit (before 3.13 it would, for any SharedMemory it saw): attaching never registers it.

Counters are aligned 64-bit words read and written with single numpy loads and stores: atomic on
x86-64 and aarch64. Their ordering relative to the slots relies on x86-64's store and load order
(TSO); on weakly ordered CPUs (Apple silicon) a reader could in theory see a counter before the
samples it covers; the re-check after each copy bounds that to the newest block (see docs/bridge.md).
Every mutating field belongs to one side only (see the header), so no compare-and-swap is needed.

Module of the shared level (like ``faults``): imports nothing of dawemo's.
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

MAGIC = b"DAWEMOBR"
LAYOUT_VERSION = 1
SHM_PREFIX = "dawemo-bridge-"
HEADER_SIZE = 4096
MAX_NAME_LENGTH = 40

TRANSPORT_PLAYING = 1
TRANSPORT_BBT_VALID = 2
STATE_ACTIVE = 1
STATE_CLOSED = 2

# Header offsets (bytes), as in BridgeLayout.h.
OFFSETS = {
    "magic": 0, "version": 8, "header_size": 12, "channels": 16, "audio_capacity": 20,
    "transport_capacity": 24, "midi_capacity": 28, "audio_offset": 32, "transport_offset": 40,
    "midi_offset": 48, "total_size": 56, "owner_pid": 64, "instance_id": 72, "name": 80, "format": 144,
    "cost_offset": 160, "cost_capacity": 168,
    "audio_write": 256, "transport_write": 264, "epoch": 272, "epoch_start_frame": 280,
    "plugin_run_ns": 288, "midi_read": 296, "midi_emitted": 304, "midi_host_refused": 312,
    "state": 320, "max_block": 324, "sample_rate": 328, "cost_write": 336,
    "midi_write": 512, "reader_heartbeat_ns": 520, "reader_pid": 528, "reader_frames": 536,
    "reader_gap_frames": 544, "midi_dropped": 552,
}

TRANSPORT_DTYPE = np.dtype({
    "names": ["frame", "host_frame", "mono_ns", "sample_rate", "bpm", "tick", "bar_start_tick",
              "ticks_per_beat", "bar", "beat", "beats_per_bar", "beat_type", "frames", "flags", "epoch"],
    "formats": ["<u8", "<u8", "<i8", "<f8", "<f8", "<f8", "<f8", "<f8", "<i4", "<i4", "<f4", "<f4", "<u4",
                "<u4", "<u8"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 68, 72, 76, 80, 84, 88],
    "itemsize": 96,
})
MIDI_DTYPE = np.dtype({
    "names": ["cause_frame", "reserved", "size", "data"],
    "formats": ["<u8", "<u4", "u1", ("u1", 3)],
    "offsets": [0, 8, 12, 13],
    "itemsize": 16,
})


class BridgeError(Exception):
    """A bridge cannot be attached or is not a dawemo Bridge of this layout; one line for the user."""


def shm_name(name: str) -> str:
    """The segment's name for ``SharedMemory`` (without the POSIX leading slash)."""
    return SHM_PREFIX + name


_ATTACH_LOCK = threading.Lock()


def _open_shared_memory(segment: str) -> shared_memory.SharedMemory:
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=segment, create=False, track=False)
    # Before 3.13 SharedMemory registers even a segment it only attaches with the resource tracker,
    # which unlinks it when this process exits - the plugin's segment, under the running DAW. Not
    # registering at all (rather than unregistering after) leaves no moment in which a kill -9 of
    # dawemo could remove it, and starts no tracker process.
    with _ATTACH_LOCK:
        register = resource_tracker.register
        resource_tracker.register = lambda name, rtype: None
        try:
            return shared_memory.SharedMemory(name=segment, create=False)
        finally:
            resource_tracker.register = register


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name != "posix":
        return True  # Windows: a mapping disappears with its last handle, so a stale one cannot be found
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Transport:
    """The host's transport during one block, as the bridge saw it."""

    frame: int  # the bridge's audio stream frame at the block's start
    host_frame: int  # host song position in frames
    mono_ns: int  # CLOCK_MONOTONIC ns (time.monotonic_ns() on the same machine) when the block began
    sample_rate: float
    playing: bool
    bbt_valid: bool
    bpm: float
    bar: int
    beat: int
    tick: float
    ticks_per_beat: float
    beats_per_bar: float
    beat_type: float
    frames: int
    epoch: int

    @property
    def position_beats(self) -> float | None:
        """Song position in beats (of ``beat_type`` notes) from bar 1, when the host gives bar/beat."""
        if not self.bbt_valid or self.ticks_per_beat <= 0:
            return None
        return (self.bar - 1) * self.beats_per_bar + (self.beat - 1) + self.tick / self.ticks_per_beat

    @property
    def position_s(self) -> float:
        """Song position in seconds: from bar/beat at the host's tempo, else from the frame position."""
        beats = self.position_beats
        if beats is not None and self.bpm > 0:
            return beats * 60.0 / self.bpm
        return self.host_frame / self.sample_rate if self.sample_rate > 0 else 0.0

    @property
    def quarter_bpm(self) -> float | None:
        """Tempo in quarter notes per minute (a MIDI file's tempo), when the host gives one."""
        if not self.bbt_valid or self.bpm <= 0 or self.beat_type <= 0:
            return None
        return self.bpm * 4.0 / self.beat_type

    def song_zero_monotonic_s(self) -> float:
        """``time.monotonic()`` value at which the song's position 0 (bar 1) was, at constant tempo."""
        return self.mono_ns / 1e9 - self.position_s


@dataclass(frozen=True)
class BridgeInfo:
    """One running bridge, as ``list_bridges`` sees it."""

    name: str
    format: str
    owner_pid: int
    sample_rate: float
    active: bool
    reader_pid: int  # the dawemo attached to it (0: none, or it stopped)
    alive: bool  # the host process exists

    @property
    def label(self) -> str:
        used = f", used by dawemo pid {self.reader_pid}" if self.reader_pid else ""
        state = "active" if self.active else "inactive"
        return f"{self.name} ({self.format}, host pid {self.owner_pid}, {self.sample_rate:g} Hz, {state}{used})"


class BridgeSegment:
    """One attached bridge segment: numpy views on its header fields and rings.

    Args:
        name: the instance name (``bridge-1``, or what the DAW session set).

    Raises:
        BridgeError: no such bridge, or not one of this layout version.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        try:
            self._shm = _open_shared_memory(shm_name(name))
        except FileNotFoundError:
            raise BridgeError(f"no dawemo Bridge named '{name}' is running") from None
        except (OSError, ValueError) as error:
            raise BridgeError(f"cannot attach dawemo Bridge '{name}': {error}") from None
        try:
            self._map()
        except BaseException:
            self.close()
            raise

    def _map(self) -> None:
        buf = self._shm.buf
        if len(buf) < HEADER_SIZE or bytes(buf[0:8]) != MAGIC:
            raise BridgeError(f"'{shm_name(self.name)}' is not a dawemo Bridge segment (or still being created)")
        self._u32 = np.ndarray((HEADER_SIZE // 4,), np.uint32, buf)
        self._u64 = np.ndarray((HEADER_SIZE // 8,), np.uint64, buf)
        self._i64 = np.ndarray((HEADER_SIZE // 8,), np.int64, buf)
        self._f64 = np.ndarray((HEADER_SIZE // 8,), np.float64, buf)
        version = int(self._u32[OFFSETS["version"] // 4])
        if version != LAYOUT_VERSION:
            raise BridgeError(f"dawemo Bridge '{self.name}' uses shared-memory layout {version}; this dawemo "
                              f"reads layout {LAYOUT_VERSION}: install the same version on both sides")
        self.channels = self.u32("channels")
        self.audio_capacity = self.u32("audio_capacity")
        self.transport_capacity = self.u32("transport_capacity")
        self.midi_capacity = self.u32("midi_capacity")
        if len(buf) < self.u64("total_size"):
            raise BridgeError(f"dawemo Bridge '{self.name}': segment smaller than its header says")
        self.audio = np.ndarray((self.channels, self.audio_capacity), np.float32, buf, offset=self.u64("audio_offset"))
        self.transport = np.ndarray((self.transport_capacity,), TRANSPORT_DTYPE, buf,
                                    offset=self.u64("transport_offset"))
        self.midi = np.ndarray((self.midi_capacity,), MIDI_DTYPE, buf, offset=self.u64("midi_offset"))
        self.costs = np.ndarray((self.u32("cost_capacity"),), np.uint32, buf, offset=self.u64("cost_offset"))
        self.instance_id = self.u64("instance_id")
        self.owner_pid = self.i64("owner_pid")
        self.format = bytes(buf[144:160]).split(b"\0")[0].decode("ascii", "replace")

    # -- field access ---------------------------------------------------------------------------

    def u32(self, field: str) -> int:
        return int(self._u32[OFFSETS[field] // 4])

    def u64(self, field: str) -> int:
        return int(self._u64[OFFSETS[field] // 8])

    def i64(self, field: str) -> int:
        return int(self._i64[OFFSETS[field] // 8])

    def set_u64(self, field: str, value: int) -> None:
        self._u64[OFFSETS[field] // 8] = value

    def set_i64(self, field: str, value: int) -> None:
        self._i64[OFFSETS[field] // 8] = value

    @property
    def sample_rate(self) -> float:
        return float(self._f64[OFFSETS["sample_rate"] // 8])

    @property
    def state(self) -> int:
        return self.u32("state")

    @property
    def closed(self) -> bool:
        """The plugin let go of this segment (instance removed or renamed), or its host died."""
        return bool(self.state & STATE_CLOSED) or not _process_alive(self.owner_pid)

    def still_current(self) -> bool:
        """False when the name now belongs to a new segment (the host restarted the plugin)."""
        try:
            other = BridgeSegment(self.name)
        except BridgeError:
            return False
        try:
            return other.instance_id == self.instance_id
        finally:
            other.close()

    def latest_transport(self) -> Transport | None:
        """The newest block's transport record, or None before the first block."""
        written = self.u64("transport_write")
        if written == 0:
            return None
        record = self.transport[(written - 1) % self.transport_capacity].copy()
        if self.u64("transport_write") - (written - 1) >= self.transport_capacity:
            return None  # overwritten while copying (cannot happen unless this thread stalled for long)
        return transport_from_record(record)

    def transport_at(self, frame: int) -> Transport | None:
        """The record of the block that contains stream frame ``frame``, if still in the ring."""
        written = self.u64("transport_write")
        for index in range(written - 1, max(-1, written - 1 - self.transport_capacity), -1):
            record = self.transport[index % self.transport_capacity].copy()
            if int(record["frame"]) <= frame:
                if self.u64("transport_write") - index >= self.transport_capacity:
                    return None
                return transport_from_record(record)
        return None

    def heartbeat(self, frames_read: int | None = None) -> None:
        """Tell the plugin (and ``dawemo bridge list``) this dawemo is alive."""
        self.set_i64("reader_heartbeat_ns", time.monotonic_ns())
        self.set_i64("reader_pid", os.getpid())
        if frames_read is not None:
            self.set_u64("reader_frames", frames_read)

    def release(self) -> None:
        """Say this dawemo let go (it no longer reads)."""
        try:
            if self.i64("reader_pid") == os.getpid():
                self.set_i64("reader_pid", 0)
        except (TypeError, ValueError):
            pass

    def close(self) -> None:
        """Drop the views and unmap (never unlink: the plugin owns the segment)."""
        for attribute in ("_u32", "_u64", "_i64", "_f64", "audio", "transport", "midi", "costs"):
            self.__dict__.pop(attribute, None)
        shm, self._shm = getattr(self, "_shm", None), None
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # a caller still holds a view; the mapping goes with the process
                pass

    @property
    def fd(self) -> int:
        return self._shm._fd if self._shm is not None else -1  # noqa: SLF001

    def info(self) -> BridgeInfo:
        reader = self.i64("reader_pid")
        beat_age_s = (time.monotonic_ns() - self.i64("reader_heartbeat_ns")) / 1e9
        in_use = reader if reader and reader != os.getpid() and beat_age_s < 2.0 and _process_alive(reader) else 0
        return BridgeInfo(self.name, self.format, self.owner_pid, self.sample_rate, bool(self.state & STATE_ACTIVE),
                          in_use, _process_alive(self.owner_pid) and not self.state & STATE_CLOSED)


def transport_from_record(record) -> Transport:
    flags = int(record["flags"])
    return Transport(
        frame=int(record["frame"]), host_frame=int(record["host_frame"]), mono_ns=int(record["mono_ns"]),
        sample_rate=float(record["sample_rate"]), playing=bool(flags & TRANSPORT_PLAYING),
        bbt_valid=bool(flags & TRANSPORT_BBT_VALID), bpm=float(record["bpm"]), bar=int(record["bar"]),
        beat=int(record["beat"]), tick=float(record["tick"]), ticks_per_beat=float(record["ticks_per_beat"]),
        beats_per_bar=float(record["beats_per_bar"]), beat_type=float(record["beat_type"]),
        frames=int(record["frames"]), epoch=int(record["epoch"]))


def bridge_names() -> list[str]:
    """Names of the bridge segments present (Linux: /dev/shm; elsewhere the default names that exist)."""
    if os.path.isdir("/dev/shm"):
        names = [os.path.basename(path)[len(SHM_PREFIX):] for path in glob.glob(f"/dev/shm/{SHM_PREFIX}*")]
        return sorted(name for name in names if name)
    # macOS and Windows cannot list named shared memory: look for the default names.
    found = []
    for number in range(1, 17):
        name = f"bridge-{number}"
        try:
            BridgeSegment(name).close()
        except BridgeError:
            continue
        found.append(name)
    return found


def list_bridges(include_dead: bool = False) -> list[BridgeInfo]:
    """The running bridges (hosts alive), by name; ``include_dead`` adds crashed hosts' leftovers."""
    out = []
    for name in bridge_names():
        try:
            segment = BridgeSegment(name)
        except BridgeError:
            continue
        try:
            info = segment.info()
        finally:
            segment.close()
        if info.alive or include_dead:
            out.append(info)
    return out


def resolve_bridge(requested: str | None, running: list[BridgeInfo]) -> str | None:
    """The bridge to use: ``requested`` exactly, else its one case-insensitive substring match; with
    no name, the only running bridge. None: nothing matches now (wait for it).

    Raises:
        BridgeError: several match (the message lists them).
    """
    names = [info.name for info in running]
    if requested:
        if requested in names:
            return requested
        matches = [name for name in names if requested.casefold() in name.casefold()]
    else:
        matches = names
    if len(matches) > 1:
        what = f"'{requested}' matches" if requested else "no --bridge NAME given and there are"
        raise BridgeError(f"{what} several bridges: {', '.join(matches)}; name one")
    return matches[0] if matches else None
