"""Audio inputs of the live path: a DAW bus through an audio device or JACK, or a file.

Every source is a context manager with one interface (``AudioSource``): the engine's worker
thread calls ``read(timeout_s)`` in a loop and gets the mono float32 audio that arrived since
the previous call, already at ``target_rate`` (the model's 22050 Hz by default).

Real-time discipline (after friture): the code that runs on the audio side (the JACK process
callback, the device reader thread) only copies samples into a preallocated ring
(``dawemo.inputs.ring_buffer.FrameRing``); downmixing, resampling and metering happen in ``read`` on
the consumer's thread. A consumer that falls behind loses the newest audio, counted in
``dropped_frames``; nothing on the audio side waits for it or raises.
"""

from __future__ import annotations

import abc
import glob
import logging
import math
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dawemo import constants as C
from dawemo import faults
from dawemo.faults import Health, HealthReport
from dawemo.inputs.audio_io import path_problem
from dawemo.jack_clients import close_client_bounded, jack_client_lock, release_jack_client, route_libjack_messages
from dawemo.inputs.ring_buffer import FrameRing

log = logging.getLogger(__name__)

FIRST_REJOIN_DELAY_S = 0.25  # after a server shut down, before the first attempt to join one again
SILENCE_DBFS = -120.0  # level reported for digital silence and before any audio
_POLL_S = 0.005  # how often a waiting read() or the device reader looks for new frames


class AudioSourceError(Exception):
    """A source cannot be opened or has failed; the message is one paragraph meant for the user."""


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    if samples.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class StreamingResampler:
    """Mono float32 rate conversion block by block, keeping filter state across blocks.

    Wraps ``pedalboard.io.StreamResampler``: streamed output equals one-shot output exactly, and
    output sample 0 lines up with input sample 0 (the first ~64 input samples are held back as
    look-ahead, so the first blocks come out a little shorter).

    Args:
        source_rate: input rate in Hz.
        target_rate: output rate in Hz; equal rates pass blocks through unchanged.
    """

    def __init__(self, source_rate: float, target_rate: float) -> None:
        self.source_rate = float(source_rate)
        self.target_rate = float(target_rate)
        self._resampler = None
        if self.source_rate != self.target_rate:
            from pedalboard.io import StreamResampler

            self._resampler = StreamResampler(self.source_rate, self.target_rate, 1)

    def process(self, mono: np.ndarray) -> np.ndarray:
        """Resample the next (n,) block; returns the (m,) float32 output it completes."""
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is None:
            return mono
        return self._resampler.process(mono[None, :])[0]

    def flush(self) -> np.ndarray:
        """Return the held-back tail at the end of a stream."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return self._resampler.process()[0]


class AudioSource(abc.ABC):
    """One audio input as a context manager; ``read`` returns mono float32 at ``target_rate``.

    Attributes set by ``open``: ``sample_rate`` (the stream's native rate in Hz) and ``channels``
    (channels captured before the mono downmix). ``level_dbfs`` is the RMS level of the last block
    returned (for meters); ``finished`` becomes true when a file source has delivered its last
    block.

    Args:
        target_rate: rate in Hz of the audio ``read`` returns.
    """

    name = "audio source"

    def __init__(self, target_rate: int = C.SAMPLE_RATE) -> None:
        if target_rate <= 0:
            raise ValueError(f"target_rate must be positive, got {target_rate}")
        self.target_rate = int(target_rate)
        self.sample_rate = 0.0
        self.channels = 0
        self.level_dbfs = SILENCE_DBFS
        self.finished = False

    @property
    @abc.abstractmethod
    def dropped_frames(self) -> int:
        """Input frames (at the native rate) lost because the consumer or the device fell behind."""

    @abc.abstractmethod
    def open(self) -> None:
        """Start capturing; raises AudioSourceError with a message for the user."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop capturing and release the device; safe to call twice."""

    @abc.abstractmethod
    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        """Mono float32 frames at ``target_rate`` that arrived since the last call.

        Waits up to ``timeout_s`` for the first frame; returns None when nothing arrived (or the
        source is finished). The first blocks of a resampled stream may be short or empty while
        the resampler fills its look-ahead.
        """

    def __enter__(self) -> "AudioSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.sample_rate:g} Hz x{self.channels}>"

    def _finish_block(self, mono: np.ndarray) -> np.ndarray:
        """Meter a block that is about to be returned."""
        if mono.size:
            self.level_dbfs = level_dbfs(mono)
        return mono


def _downmix(block: np.ndarray) -> np.ndarray:
    """(channels, n) -> (n,) float32 channel mean, as ``dawemo.inputs.audio_io.to_mono`` does for files."""
    return block[0] if block.shape[0] == 1 else block.mean(axis=0, dtype=np.float32)


class _RingSource(AudioSource):
    """A source whose audio side fills a FrameRing; ``read`` drains, downmixes and resamples it."""

    def __init__(self, buffer_s: float, target_rate: int) -> None:
        super().__init__(target_rate)
        if not buffer_s > 0:
            raise ValueError(f"buffer_s must be positive, got {buffer_s}")
        self.buffer_s = float(buffer_s)
        self._ring: FrameRing | None = None
        self._resampler: StreamingResampler | None = None
        self._error: BaseException | None = None  # set by the audio side, raised by read()

    def _start_ring(self, sample_rate: float, channels: int) -> None:
        self.sample_rate, self.channels = float(sample_rate), int(channels)
        self._ring = FrameRing(max(1, math.ceil(self.buffer_s * self.sample_rate)), self.channels)
        self._resampler = StreamingResampler(self.sample_rate, self.target_rate)
        self._error = None

    def _raise_audio_side_error(self) -> None:
        if self._error is not None:
            error = self._error
            if isinstance(error, AudioSourceError):
                raise error
            raise AudioSourceError(f"{self.name}: capture failed: {error}") from error

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        ring = self._ring
        if ring is None:
            raise AudioSourceError(f"{self.name} is not open; use it in a 'with' statement")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            self._raise_audio_side_error()
            if ring.available_frames:
                break
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return None
            # Polling rather than an Event: setting an Event takes a lock on the audio side.
            time.sleep(min(_POLL_S, remaining_s))
        block = ring.read()
        return self._finish_block(self._resampler.process(_downmix(block)))


# ---------------------------------------------------------------------------------------------
# Devices through pedalboard.io.AudioStream


def resolve_device_name(requested: str, available: Sequence[str], kind: str = "input") -> str:
    """Pick ``requested`` from ``available``: exact name, else the one case-insensitive substring match.

    Raises:
        AudioSourceError: no match or several matches; the message lists the candidates.
    """
    names = list(dict.fromkeys(available))  # JUCE may list a name twice (several device types)
    if requested in names:
        return requested
    needle = requested.casefold()
    matches = [name for name in names if needle in name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listing = "; ".join(repr(name) for name in matches)
        raise AudioSourceError(f"audio {kind} device {requested!r} is ambiguous; it matches: {listing}")
    listing = "; ".join(repr(name) for name in names) if names else "(none found)"
    raise AudioSourceError(f"no audio {kind} device matches {requested!r}; available {kind}s: {listing}")


def _use_system_alsa_plugins() -> str | None:
    """On Linux, point pedalboard's bundled libasound at the system's ALSA plugin folder; returns it.

    pedalboard's manylinux wheel bundles a libasound built to load plugins (the PulseAudio,
    PipeWire and JACK PCMs) from /usr/lib64/alsa-lib. Debian and Ubuntu install them under
    /usr/lib/<triplet>/alsa-lib, so those devices are listed (their names come from config files)
    but fail to open with "no channels". libasound reads ALSA_PLUGIN_DIR once, at the first plugin
    it loads, so this must run before pedalboard opens any device; a value already set is kept.
    """
    if not sys.platform.startswith("linux") or os.environ.get("ALSA_PLUGIN_DIR"):
        return None
    if glob.glob("/usr/lib64/alsa-lib/libasound_module_pcm_*.so"):
        return None  # the bundled default already finds them (Fedora, Arch, openSUSE)
    machine = platform.machine()
    candidates = sorted(glob.glob("/usr/lib/*-linux-gnu*/alsa-lib"), key=lambda path: machine not in path)
    candidates.append("/usr/lib/alsa-lib")
    for folder in candidates:
        if glob.glob(os.path.join(folder, "libasound_module_pcm_*.so")):
            os.environ["ALSA_PLUGIN_DIR"] = folder
            return folder
    return None


def _pedalboard_stream_class():
    """pedalboard.io.AudioStream, or AudioSourceError when this pedalboard cannot record."""
    try:
        from pedalboard.io import AudioStream
    except ImportError as error:
        raise AudioSourceError(f"pedalboard.io.AudioStream is unavailable ({error})") from None
    if not hasattr(AudioStream, "read") or not hasattr(AudioStream, "ignore_dropped_input"):
        raise AudioSourceError("recording from devices needs pedalboard >= 0.9.14 (pip install -U pedalboard)")
    return AudioStream


def _odd_frames(seconds: float, sample_rate: float) -> int:
    """Frames for ``seconds`` at ``sample_rate``, made odd.

    pedalboard sizes its record FIFO from ``buffer_size`` and also asks the device for that
    period; JUCE only adopts a period from the device's list of (even) sizes and otherwise keeps
    the device default. An odd size therefore gives a large FIFO with the device's usual latency.
    """
    return math.ceil(seconds * sample_rate) | 1


class DeviceSource(_RingSource):
    """Audio input device (BlackHole, Loopback, VB-CABLE, an ALSA PCM...) via pedalboard's AudioStream.

    A reader thread polls ``AudioStream.read()`` every few ms (pedalboard releases the GIL there)
    and copies what it gets into the ring; frames pedalboard itself dropped are counted, not
    raised.

    A device that goes away (unplugged, its driver or server gone) raises nothing in pedalboard:
    its stream just stops delivering. When no frame arrives for ``stall_s`` (or the reader
    fails), ``health`` turns ``recovering`` and ``read`` returns None instead of raising (a
    reader failure is raised once, as an AudioSourceError). A stream that resumes within
    ``retry_interval_s`` is kept; otherwise, from the consumer's thread and every
    ``retry_interval_s``, it closes the dead stream and opens the same device again; ``health`` is
    ok again once the reopened stream delivers. ``reopens`` counts the times it came back.

    pedalboard (0.9.26) holds the GIL while it opens or closes a device, so closing a dead stream
    and each attempt that finds the device pause every Python thread for as long as JUCE takes
    (milliseconds for most devices; ALSA's JACK PCM: up to 2 s to close, ~4 s to open); attempts
    that find nothing are cheap. It cannot close a device whose read blocks (ALSA's ``file`` PCM
    on a pipe whose writer pauses): JUCE kills its thread and the process aborts.

    Args:
        device_name: exact input name, or a case-insensitive substring matching exactly one input;
            None for the system default input.
        sample_rate: rate to ask the device for in Hz; None keeps the device default.
        channels: leading input channels to capture (mixed to mono); clamped to what the device has.
        buffer_s: seconds the ring holds for a slow consumer before input is dropped.
        device_buffer_s: seconds pedalboard's own FIFO holds for a slow reader thread.
        target_rate: rate in Hz of the audio ``read`` returns.
        stream_class: the AudioStream class (a stand-in in tests); pedalboard's by default.
        reopen: reopen a device that returns; False makes a lost device an AudioSourceError.
        stall_s: seconds without frames from the open stream after which the device is taken for gone.
        retry_interval_s: seconds between attempts to reopen it (the first comes this long after
            the loss, so that whoever watches ``health`` sees the fault before the close pauses it).
    """

    def __init__(self, device_name: str | None = None, sample_rate: float | None = None, channels: int = 2,
                 buffer_s: float = 2.0, device_buffer_s: float = 0.5, target_rate: int = C.SAMPLE_RATE,
                 stream_class=None, reopen: bool = True, stall_s: float = 0.5,
                 retry_interval_s: float = 0.5) -> None:
        super().__init__(buffer_s, target_rate)
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if not device_buffer_s > 0:
            raise ValueError(f"device_buffer_s must be positive, got {device_buffer_s}")
        if not stall_s > 0 or not retry_interval_s > 0:
            raise ValueError(f"stall_s and retry_interval_s must be positive, got {stall_s} and {retry_interval_s}")
        self.device_name = device_name
        self.requested_sample_rate = sample_rate
        self.requested_channels = int(channels)
        self.device_buffer_s = float(device_buffer_s)
        self.reopen = reopen
        self.stall_s = float(stall_s)
        self.retry_interval_s = float(retry_interval_s)
        self.reopens = 0
        self.report = HealthReport(where=f"audio input '{device_name or 'default'}'")
        self._stream_class = stream_class
        self._stream = None
        self._reader: threading.Thread | None = None
        self._stopping = False
        self._device_dropped = 0
        self._device = ""  # the resolved name, reopened after a loss
        self._device_listed = False  # whether it was in the list of inputs when first opened
        self._gone: str | None = None  # why the device is taken for gone; set by the reader thread
        self._next_try_s = 0.0
        self.name = f"device:{device_name or 'default'}"

    @property
    def health(self) -> Health:
        return self.report.health

    @property
    def dropped_frames(self) -> int:
        ring_overruns = self._ring.overrun_frames if self._ring is not None else 0
        return self._device_dropped + ring_overruns

    def _resolve(self, stream_class) -> tuple[str, bool]:
        """(the input to open, whether it is in the list of inputs)."""
        try:
            names = list(stream_class.input_device_names)
        except Exception as error:
            raise AudioSourceError(f"cannot list audio input devices: {error}") from None
        requested = self.device_name
        if not requested:
            requested = getattr(stream_class, "default_input_device_name", None)
            if not requested:
                listing = "; ".join(repr(name) for name in names) if names else "(none found)"
                raise AudioSourceError(f"there is no default audio input device; choose one of: {listing}")
            if requested not in names:
                return requested, False  # the default may be absent from the list on some back ends
        return resolve_device_name(requested, names), True

    def _construct(self, stream_class, device: str, channels: int):
        # Size the FIFO for the highest common rate when the device picks its own.
        fifo_frames = _odd_frames(self.device_buffer_s, self.requested_sample_rate or 192000)
        try:
            return stream_class(input_device_name=device, output_device_name=None,
                                sample_rate=self.requested_sample_rate, buffer_size=fifo_frames,
                                num_input_channels=channels)
        except Exception as error:
            hint = ""
            if "no channels" in str(error) and sys.platform.startswith("linux"):
                hint = (" (ALSA found no capture channels: the PCM's plugin or server is missing, e.g. no"
                        " JACK/PulseAudio server running, or ALSA_PLUGIN_DIR points at the wrong folder:"
                        f" {os.environ.get('ALSA_PLUGIN_DIR', 'unset')})")
            raise AudioSourceError(f"cannot open audio input {device!r}: {error}{hint}") from None

    def open(self) -> None:
        if self._stream is not None:
            return
        if self._stream_class is None:
            _use_system_alsa_plugins()
        stream_class = self._stream_class or _pedalboard_stream_class()
        device, listed = self._resolve(stream_class)
        self.name = f"device:{device}"
        self._device, self._device_listed = device, listed
        self._device_dropped = 0
        self.report.where = f"audio input '{device}'"
        self.report.ok()
        self._start_stream(stream_class, device, self.requested_channels, new_ring=True)

    def _start_stream(self, stream_class, device: str, channels: int, new_ring: bool) -> None:
        """Open and start ``device`` and the reader thread; a new ring when asked or when the format changed."""
        stream = self._construct(stream_class, device, channels)
        opened_channels = int(stream.num_input_channels)
        if opened_channels < 1:
            raise AudioSourceError(f"audio device {device!r} has no input channels")
        if opened_channels != channels:
            # pedalboard sizes its FIFO for the channels asked for, but the device callback writes
            # every channel the device opened: a mismatch corrupts memory (seen as a segfault on
            # the first read). The stream has not started yet, so ask again with the real count.
            del stream
            stream = self._construct(stream_class, device, opened_channels)
            if int(stream.num_input_channels) != opened_channels:
                raise AudioSourceError(f"audio device {device!r} changed its channel count while opening")
        if new_ring or (float(stream.sample_rate), opened_channels) != (self.sample_rate, self.channels):
            self._start_ring(float(stream.sample_rate), opened_channels)
        stream.ignore_dropped_input = True  # count drops ourselves instead of raising from read()
        try:
            stream.__enter__()
        except Exception as error:
            raise AudioSourceError(f"cannot start audio input {device!r}: {error}") from None
        self._stream = stream
        self._stopping = False
        self._gone = None
        self._error = None
        self._reader = threading.Thread(target=self._read_device, name=f"dawemo-{self.name}", daemon=True)
        self._reader.start()

    def _read_device(self) -> None:
        """Reader thread: move whatever pedalboard has buffered into the ring, and notice a silent stream."""
        stream, ring = self._stream, self._ring
        # A read after a long pause (this thread starved of the GIL) returns what the FIFO kept
        # meanwhile, so only an empty read counts towards the stall.
        last_frames_s = time.monotonic()
        try:
            while not self._stopping:
                dropped = stream.dropped_input_frame_count  # read() resets it
                try:
                    block = stream.read()
                except RuntimeError as error:
                    # How pedalboard reports drops when ignore_dropped_input is off; kept in case a
                    # version or stand-in raises anyway: a drop must never stop the capture.
                    match = re.match(r"\s*(\d+) frames of audio data were dropped", str(error))
                    if match is None:
                        raise
                    self._device_dropped += int(match.group(1))
                    continue
                if dropped:
                    self._device_dropped += int(dropped)
                now_s = time.monotonic()
                if block.shape[-1]:
                    ring.write(block if block.ndim == 2 else block[None, :])
                    last_frames_s = now_s
                    if self._gone is not None or not self.report.health.ok:
                        # A stalled device that resumed before read() closed it, or a reopened one.
                        self._gone = None
                        self.report.ok()
                elif self._gone is None and now_s - last_frames_s >= self.stall_s:
                    self._lost(f"no audio for {now_s - last_frames_s:.1f} s")
                time.sleep(_POLL_S)
        except BaseException as error:  # raised once by read() on the consumer's thread
            self._error = error
            self._lost(f"capture failed: {error}")

    def _lost(self, reason: str) -> None:
        """Reader thread: take the device for gone; read() closes and reopens it unless it resumes first."""
        self._next_try_s = time.monotonic() + self.retry_interval_s
        self._gone = f"audio input {self._device!r} stopped delivering ({reason})"
        if self.reopen:
            self.report.set(faults.RECOVERING, self._gone + "; reopening it when it returns")
        else:
            self.report.set(faults.FAILED, self._gone + "; restart the input to try again")

    def _raise_audio_side_error(self) -> None:
        """Raise the reader's failure once; read() then recovers from it as from a stall."""
        error, self._error = self._error, None
        if isinstance(error, AudioSourceError):
            raise error
        if error is not None:
            raise AudioSourceError(f"{self.name}: capture failed: {error}") from error

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        if self._ring is None:
            raise AudioSourceError(f"{self.name} is not open; use it in a 'with' statement")
        self._raise_audio_side_error()
        if self._gone is not None:
            if not self.reopen:
                raise AudioSourceError(self._gone)
            if not self._try_reopen():
                time.sleep(max(0.0, min(timeout_s, self._next_try_s - time.monotonic())))
                return None
        return super().read(timeout_s)

    def _try_reopen(self) -> bool:
        """One attempt (at most every ``retry_interval_s``) to close the dead stream and open the device again."""
        if time.monotonic() < self._next_try_s:
            return False
        self._stop_stream()
        try:
            stream_class = self._stream_class or _pedalboard_stream_class()
            with LibraryMessagesToLog():  # libjack and alsa-lib would print each failed attempt
                if self._device_listed and self._device not in list(stream_class.input_device_names):
                    raise AudioSourceError(f"audio input {self._device!r} is not listed")
                self._start_stream(stream_class, self._device, self.channels, new_ring=False)
        except Exception as error:  # pedalboard raises several types for a device that is not there
            log.debug("reopening %s: %s", self._device, error)
            self._next_try_s = time.monotonic() + self.retry_interval_s
            return False
        self.reopens += 1
        return True

    def _stop_stream(self) -> None:
        """Stop the reader thread and close the stream; a dead device's stream within a bound."""
        stream, self._stream = self._stream, None
        if self._reader is not None:
            # Stop reading first: pedalboard's read() on a stopped stream restarts the device.
            self._stopping = True
            self._reader.join(timeout=5.0)
            self._reader = None
        if stream is None:
            return
        if self._gone is not None:
            _close_stream_bounded(stream)
            return
        try:
            stream.__exit__(None, None, None)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        self._stop_stream()


def _close_stream_bounded(stream, timeout_s: float = 1.0) -> bool:
    """Stop and close an AudioStream whose device is gone, waiting at most ``timeout_s``; True if closed.

    A close that blocks while releasing the GIL is left to its daemon thread. pedalboard 0.9 holds
    the GIL in ``__exit__``, so there JUCE bounds it: it waits for its audio thread's current
    device wait (up to 2 s on ALSA) and kills that thread after 6 s.
    """
    def close() -> None:
        try:
            stream.__exit__(None, None, None)
            close_method = getattr(stream, "close", None)
            if close_method is not None:
                close_method()
        except Exception as error:
            log.debug("closing the stream of a gone audio input: %s", error)

    closer = threading.Thread(target=close, name="dawemo-device-close", daemon=True)
    closer.start()
    closer.join(timeout_s)
    return not closer.is_alive()


# ---------------------------------------------------------------------------------------------
# JACK


JACK_INSTALL_HINT = "install JACK: jackd2 / JACK2 / PipeWire's pipewire-jack"


def _jack_module(purpose: str):
    """The ``jack`` module (JACK-Client), or AudioSourceError saying what is missing for ``purpose``.

    JACK-Client raises OSError at import when libjack is absent (every Mac and Windows machine
    without JACK), ImportError when the package itself is missing.
    """
    try:
        import jack
    except OSError as error:
        raise AudioSourceError(f"{purpose} needs libjack ({JACK_INSTALL_HINT}): {error}") from None
    except ImportError as error:
        raise AudioSourceError(f"{purpose} needs the JACK-Client package (pip install JACK-Client): {error}") from None
    return jack


def _no_jack_server_message(server_name: str | None) -> str:
    server = f" named {server_name!r}" if server_name else ""
    return (f"no JACK server{server} is running: start one (jackd, qjackctl, or PipeWire with pipewire-jack)"
            " or choose a device input instead")


def open_jack_client(client_name: str, server_name: str | None, purpose: str = "JACK input"):
    """A ``jack.Client`` that never starts a server; AudioSourceError with a clear line otherwise."""
    jack = _jack_module(purpose)
    route_libjack_messages()
    try:
        with jack_client_lock():
            return jack.Client(client_name, no_start_server=True, servername=server_name)
    except jack.JackOpenError:
        raise AudioSourceError(_no_jack_server_message(server_name)) from None


def match_jack_ports(patterns: Sequence[str], available: Sequence[str]) -> list[str]:
    """Ports for each pattern: the exact name, else all case-insensitive substring matches, in order.

    Raises:
        AudioSourceError: a pattern matches nothing; the message lists ``available``.
    """
    chosen: list[str] = []
    for pattern in patterns:
        if pattern in available:
            matches = [pattern]
        else:
            needle = pattern.casefold()
            matches = [name for name in available if needle in name.casefold()]
        if not matches:
            listing = "; ".join(available) if available else "(none)"
            raise AudioSourceError(f"no JACK audio output port matches {pattern!r}; available: {listing}")
        chosen.extend(name for name in matches if name not in chosen)
    return chosen


class JackSource(_RingSource):
    """Registers JACK input ports (``dawemo:in_1``...) and optionally connects them to a bus.

    The process callback only copies each port's block into the ring; xruns are counted in
    ``xruns``. A stereo bus gives two ports, mixed to mono in ``read``.

    When the server goes away (stopped: JACK says so; killed or hung: no audio cycle for
    ``stall_s``), ``health`` turns ``recovering`` and ``read`` returns None instead of raising;
    from the consumer's thread it then tries every ``retry_interval_s`` to join a server of the
    same name again, re-registers the same ports and re-makes the connections (retrying those
    whose ports are not back yet). ``rejoins`` counts the times it came back.

    Args:
        connect: output port(s) to connect: exact names or case-insensitive substrings (e.g.
            ``"Ardour:Master"`` matches both outputs of Ardour's master bus); None connects nothing.
        channels: input ports to register; None means one per matched port (at least one).
            Matched ports beyond ``channels`` wrap around (JACK sums ports on one input).
        client_name: JACK client name; JACK appends a suffix if it is taken.
        server_name: JACK server to join; None uses $JACK_DEFAULT_SERVER or the default server.
        buffer_s: seconds the ring holds for a slow consumer before input is dropped.
        target_rate: rate in Hz of the audio ``read`` returns.
        rejoin: rejoin a server that returns; False makes a lost server an AudioSourceError.
        stall_s: seconds without an audio cycle after which the server is taken for gone.
        retry_interval_s: seconds between attempts to rejoin or to re-make missing connections.
    """

    def __init__(self, connect: str | Sequence[str] | None = None, channels: int | None = None,
                 client_name: str = "dawemo", server_name: str | None = None, buffer_s: float = 2.0,
                 target_rate: int = C.SAMPLE_RATE, rejoin: bool = True, stall_s: float = 0.5,
                 retry_interval_s: float = 0.25) -> None:
        super().__init__(buffer_s, target_rate)
        if channels is not None and channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.connect = [connect] if isinstance(connect, str) else list(connect or [])
        self.requested_channels = channels
        self.client_name = client_name
        self.server_name = server_name
        self.rejoin = rejoin
        self.stall_s = float(stall_s)
        self.retry_interval_s = float(retry_interval_s)
        self.xruns = 0
        self.rejoins = 0
        self.connected: list[str] = []  # the source ports actually connected
        self.report = HealthReport(where=_server_label(server_name))
        self._client = None
        self._ports: list = []
        self._gone: str | None = None  # why the server is taken for gone; set by a JACK thread too
        self._shut_down = False  # the server told the current client it shut down (see release_jack_client)
        self._generation = 0  # of the current client: callbacks of earlier clients are ignored
        self._dead_clients: list = []
        self._missing: list[str] = []  # patterns whose ports were not there at the last try
        self._progress = (0, 0.0)  # (ring.produced_frames, when it last grew)
        self._next_try_s = 0.0
        self.name = f"jack:{client_name}"

    @property
    def health(self) -> Health:
        return self.report.health

    @property
    def dropped_frames(self) -> int:
        return self._ring.overrun_frames if self._ring is not None else 0

    @property
    def port_names(self) -> list[str]:
        """Full names of this source's input ports (``dawemo:in_1``...)."""
        return [port.name for port in self._ports]

    def open(self) -> None:
        if self._client is not None:
            return
        client = open_jack_client(self.client_name, self.server_name)
        try:
            available = [port.name for port in client.get_ports(is_audio=True, is_output=True)]
            sources = match_jack_ports(self.connect, available)
            channels = self.requested_channels or max(1, len(sources))
            self._start_ring(client.samplerate, channels)
            self.xruns = 0
            self._join(client, sources)
        except BaseException:
            client.close()
            self._ports = []
            self._ring = None
            raise
        self.report.ok()

    def _join(self, client, sources: list[str]) -> None:
        """Register the ports on ``client``, activate it and connect ``sources``."""
        self._ports = [client.inports.register(f"in_{index + 1}") for index in range(self.channels)]
        self._generation += 1
        generation = self._generation
        client.set_process_callback(lambda frames: self._process(frames, generation))
        client.set_xrun_callback(self._xrun)
        client.set_shutdown_callback(lambda status, reason: self._shutdown(status, reason, generation))
        client.activate()
        for index, source in enumerate(sources):
            client.connect(source, self._ports[index % self.channels])
        self.connected = sources
        self._client = client
        self._gone = None
        self._shut_down = False
        self._progress = (self._ring.produced_frames, time.monotonic())
        self.name = f"jack:{client.name}"

    def _process(self, frames: int, generation: int = 0) -> None:
        """JACK's real-time thread: copy the ports' blocks into the ring and return."""
        if generation != self._generation:  # a client let go of whose hung server woke up
            return
        try:
            self._ring.write([port.get_array() for port in self._ports])
        except Exception as error:  # surfaced by read(); raising here would stop the callback silently
            self._error = error

    def _xrun(self, delay_us: float) -> None:
        self.xruns += 1

    def _shutdown(self, status, reason: str, generation: int = 0) -> None:
        # A JACK thread: only note it; the consumer's read() does the rest.
        if generation != self._generation:
            return
        self._shut_down = True
        # Not at once: an open in the very moment of the shutdown was seen to crash libjack.
        self._next_try_s = time.monotonic() + FIRST_REJOIN_DELAY_S
        self._gone = f"the JACK server shut down ({reason})"
        self.report.set(faults.RECOVERING, self._gone + "; rejoining when it returns")

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        if self._ring is None:
            raise AudioSourceError(f"{self.name} is not open; use it in a 'with' statement")
        if self._gone is None:
            self._check_stall()
        if self._gone is not None:
            if not self.rejoin:
                raise AudioSourceError(self._gone)
            if not self._try_rejoin():
                time.sleep(min(max(0.0, timeout_s), self.retry_interval_s))
                return None
        elif self._missing and time.monotonic() >= self._next_try_s:
            self._connect_missing()
        return super().read(timeout_s)

    def _check_stall(self) -> None:
        """Take the server for gone when no audio cycle ran for ``stall_s`` (killed, or hung)."""
        produced, since_s = self._progress
        now_s = time.monotonic()
        if self._ring.produced_frames != produced:
            self._progress = (self._ring.produced_frames, now_s)
            return
        if now_s - since_s >= self.stall_s:
            self._gone = f"no audio from the JACK server for {now_s - since_s:.1f} s (stopped or hung)"
            self.report.set(faults.RECOVERING, self._gone + "; rejoining when it returns")

    def _try_rejoin(self) -> bool:
        """One attempt (at most every ``retry_interval_s``) to join the server again."""
        now_s = time.monotonic()
        if now_s < self._next_try_s:
            return False
        self._next_try_s = now_s + self.retry_interval_s
        if self._client is not None:
            release_jack_client(self._client, self._shut_down, self._dead_clients)
            self._client, self._ports = None, []
        try:
            client = open_jack_client(self.client_name, self.server_name)
        except AudioSourceError:
            return False
        try:
            if float(client.samplerate) != self.sample_rate:
                self._start_ring(client.samplerate, self.channels)  # new rate: new ring and resampler
            available = [port.name for port in client.get_ports(is_audio=True, is_output=True)]
            found, self._missing = _match_present(self.connect, available)
            self._join(client, found)
        except Exception as error:
            close_client_bounded(client)
            self._client, self._ports = None, []
            self.report.set(faults.RECOVERING, f"rejoining the JACK server failed ({error}); retrying")
            return False
        self.rejoins += 1
        self._report_connections()
        return True

    def _connect_missing(self) -> None:
        self._next_try_s = time.monotonic() + 4 * self.retry_interval_s
        try:
            available = [port.name for port in self._client.get_ports(is_audio=True, is_output=True)]
            found, self._missing = _match_present(self._missing, available)
            for index, source in enumerate(found, start=len(self.connected)):
                self._client.connect(source, self._ports[index % self.channels])
            self.connected = self.connected + found
        except Exception as error:  # the server may go again meanwhile; read() notices that
            log.debug("re-making JACK connections: %s", error)
        self._report_connections()

    def _report_connections(self) -> None:
        if self._missing:
            self.report.set(faults.DEGRADED, "rejoined the JACK server; waiting for port(s) "
                            + ", ".join(repr(pattern) for pattern in self._missing))
        else:
            self.report.ok()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            if self._gone is None:
                with jack_client_lock():
                    try:
                        client.deactivate()
                    finally:
                        client.close()
            else:
                release_jack_client(client, self._shut_down, self._dead_clients)  # its server is gone
        self._ports = []


def _server_label(server_name: str | None) -> str:
    server = server_name or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    return f"JACK server '{server}'"


def _match_present(patterns: Sequence[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """(ports matching the patterns that match something, patterns that match nothing now)."""
    found: list[str] = []
    missing: list[str] = []
    for pattern in patterns:
        try:
            found.extend(name for name in match_jack_ports([pattern], available) if name not in found)
        except AudioSourceError:
            missing.append(pattern)
    return found, missing


# ---------------------------------------------------------------------------------------------
# Files


class FileSource(AudioSource):
    """Plays an audio file (any format pedalboard reads) as a live input, for rehearsal and tests.

    In real time, blocks are released as the clock advances since ``open``; audio the consumer
    does not collect within ``buffer_s`` is skipped and counted in ``dropped_frames``, as a device
    would. With ``realtime=False`` each ``read`` returns the next ``block_s`` at once. The samples
    equal ``dawemo.inputs.audio_io.load_audio``'s (same decoder and resampler, streamed).

    Args:
        path: the audio file.
        realtime: pace blocks by the clock; False returns them as fast as they are read.
        loop: start over at the end instead of finishing.
        block_s: seconds per block in fast mode; the most one real-time read waits to collect.
        buffer_s: real time only: seconds of unread audio kept before skipping.
        target_rate: rate in Hz of the audio ``read`` returns.
    """

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False, block_s: float = 0.1,
                 buffer_s: float = 2.0, target_rate: int = C.SAMPLE_RATE) -> None:
        super().__init__(target_rate)
        if not block_s > 0 or not buffer_s > 0:
            raise ValueError(f"block_s and buffer_s must be positive, got {block_s} and {buffer_s}")
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self.block_frames = max(1, round(block_s * self.target_rate))
        self.buffer_frames = max(1, round(buffer_s * self.target_rate))
        self.name = f"file:{self.path.name}"
        self._file = None  # the opened AudioFile
        self._reader = None  # the same, resampled to target_rate when needed
        self._start_s = 0.0
        self._position = 0  # output frames released (read or skipped) since open
        self._dropped = 0  # in output frames; converted to native frames by dropped_frames

    @property
    def dropped_frames(self) -> int:
        return round(self._dropped * (self.sample_rate or self.target_rate) / self.target_rate)

    def open(self) -> None:
        if self._file is not None:
            return
        from pedalboard.io import AudioFile

        path = self.path
        problem = path_problem(path)
        if problem:
            raise AudioSourceError(problem)
        try:
            opened = AudioFile(str(path))
        except Exception as error:  # pedalboard raises several types for unreadable files
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise AudioSourceError(f"{path}: cannot decode audio ({reason})") from None
        if opened.frames == 0 or opened.num_channels == 0:
            opened.close()
            raise AudioSourceError(f"{path}: contains no audio frames")
        self._file = opened
        self.sample_rate, self.channels = float(opened.samplerate), int(opened.num_channels)
        # The same streaming resampler load_audio uses, so both give the same samples.
        self._reader = opened if self.sample_rate == self.target_rate else opened.resampled_to(float(self.target_rate))
        self.finished = False
        self._position = self._dropped = 0
        self.level_dbfs = SILENCE_DBFS
        self._start_s = time.monotonic()

    def _at_end(self) -> bool:
        """Whether the reader has delivered the whole file (frames is an estimate for some MP3s)."""
        exact = getattr(self._reader, "exact_duration_known", True)
        return exact and self._reader.tell() >= self._reader.frames

    def _pull(self, frames: int) -> np.ndarray:
        """Next ``frames`` mono output frames (fewer only at the end of a non-looping file)."""
        parts, wanted = [], frames
        while wanted > 0:
            block = self._reader.read(wanted)
            got = block.shape[-1]
            if got:
                parts.append(_downmix(block))
            short = got < wanted  # pedalboard returns fewer frames only at the end
            wanted -= got
            if short or self._at_end():
                if not self.loop or (got == 0 and self._reader.tell() == 0):
                    self.finished = True  # (a file that yields nothing at all must not spin either)
                    break
                self._reader.seek(0)
        self._position += frames - wanted
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        if self._reader is None:
            raise AudioSourceError(f"{self.name} is not open; use it in a 'with' statement")
        if self.finished:
            return None
        if not self.realtime:
            return self._finish_block(self._pull(self.block_frames))
        deadline = time.monotonic() + max(0.0, timeout_s)
        min_frames = max(1, self.block_frames // 10)  # avoid a flood of tiny blocks
        while True:
            now = time.monotonic()
            due = int((now - self._start_s) * self.target_rate) - self._position
            if due >= min_frames:
                break
            if now >= deadline:
                if due <= 0:
                    return None
                break
            next_block_s = self._start_s + (self._position + min_frames) / self.target_rate
            time.sleep(max(0.0, min(deadline, next_block_s) - now))
        if due > self.buffer_frames:
            # The consumer fell behind by more than the buffer: skip, as a device would drop.
            skipped = self._pull(due - self.buffer_frames).size
            self._dropped += skipped
            due -= skipped
            if self.finished:
                return None
        return self._finish_block(self._pull(due))

    def close(self) -> None:
        file, self._file, self._reader = self._file, None, None
        if file is not None:
            file.close()


# ---------------------------------------------------------------------------------------------
# Factory and listing


def open_source(spec: str, **options) -> AudioSource:
    """Build (not yet open) the source ``spec`` names; use the result in a ``with`` statement.

    Specs: ``file:PATH`` (or the path of an existing file), ``jack`` / ``jack:PORT[,PORT...]``
    (connect to those output ports), ``device:NAME`` / ``NAME`` (pedalboard input, exact or unique
    substring), ``default`` or ``device:`` (the system default input). ``options`` go to the
    source's constructor (e.g. ``realtime=False, loop=True`` for files, ``buffer_s``,
    ``target_rate``).
    """
    if spec.startswith("file:"):
        return FileSource(spec[len("file:"):], **options)
    if spec == "jack" or spec.startswith("jack:"):
        ports = [port.strip() for port in spec[len("jack:"):].split(",") if port.strip()]
        return JackSource(connect=ports or None, **options)
    if spec.startswith("device:"):
        return DeviceSource(spec[len("device:"):] or None, **options)
    if spec in ("", "default"):
        return DeviceSource(None, **options)
    if Path(spec).is_file():
        return FileSource(spec, **options)
    return DeviceSource(spec, **options)


class LibraryMessagesToLog:
    """While open, alsa-lib's and libjack's stderr messages go to logging (debug); a context manager.

    alsa-lib prints lines such as "ALSA lib pulse.c:242:(pulse_connect) PulseAudio: Unable to
    connect" when a device's server or driver is missing, and ALSA's JACK device makes libjack
    print "Cannot connect to server socket", on top of dawemo's own one-line error. pedalboard
    bundles its own libasound and ALSA's plugins use the system's, so both copies get the
    handler. Use it around opening or listing devices only: the alsa-lib handler is a Python
    callback, which must not run on the audio threads that start afterwards, so ``__exit__``
    removes it (libjack's stays routed, as ``route_libjack_messages`` leaves it). Linux only.
    """

    def __init__(self) -> None:
        self._libraries: list = []
        self._handler = None

    def __enter__(self) -> "LibraryMessagesToLog":
        if not sys.platform.startswith("linux"):
            return self
        route_libjack_messages()
        import ctypes
        import importlib.util
        import logging

        logger = logging.getLogger("dawemo.alsa")
        # void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
        handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.c_char_p)

        def to_log(file, line, function, err, fmt) -> None:
            logger.debug("alsa-lib %s:%d (%s): %s", (file or b"").decode(errors="replace"), line,
                         (function or b"").decode(errors="replace"), (fmt or b"").decode(errors="replace"))

        self._handler = handler_type(to_log)
        names = ["libasound.so.2"]
        spec = importlib.util.find_spec("pedalboard")
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            names += glob.glob(os.path.join(os.path.dirname(folder), "pedalboard.libs", "libasound*.so*"))
        for name in names:
            try:
                library = ctypes.CDLL(name)
                library.snd_lib_error_set_handler(self._handler)
            except (OSError, AttributeError):
                continue
            self._libraries.append(library)
        return self

    def __exit__(self, *exc) -> None:
        for library in self._libraries:
            library.snd_lib_error_set_handler(None)  # NULL: alsa-lib's default handler again
        self._libraries = []


def list_audio_devices() -> dict:
    """What can feed dawemo, for ``dawemo devices``.

    Returns:
        {"inputs": pedalboard input names, "outputs": pedalboard output names,
        "default_input": name or None, "jack": None when no JACK server runs, else
        {"sample_rate": Hz, "sources": audio output ports (connectable to dawemo),
        "sinks": audio input ports}, "errors": messages of the parts that failed}.
    """
    result: dict = {"inputs": [], "outputs": [], "default_input": None, "jack": None, "errors": []}
    _use_system_alsa_plugins()
    try:
        with LibraryMessagesToLog():
            stream_class = _pedalboard_stream_class()
            result["inputs"] = list(dict.fromkeys(stream_class.input_device_names))
            result["outputs"] = list(dict.fromkeys(stream_class.output_device_names))
            result["default_input"] = stream_class.default_input_device_name or None
    except Exception as error:
        result["errors"].append(f"audio devices: {error}")
    try:
        jack = _jack_module("listing JACK ports")
    except AudioSourceError as error:
        result["errors"].append(str(error))
        return result
    route_libjack_messages()
    try:
        with jack_client_lock():
            client = jack.Client("dawemo-list", no_start_server=True)
    except jack.JackError:
        return result
    try:
        result["jack"] = {
            "sample_rate": client.samplerate,
            "sources": [port.name for port in client.get_ports(is_audio=True, is_output=True)],
            "sinks": [port.name for port in client.get_ports(is_audio=True, is_input=True)],
        }
    finally:
        with jack_client_lock():
            client.close()
    return result
