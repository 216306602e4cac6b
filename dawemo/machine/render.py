"""``dawemo render``: a machine-sound file through a chain, its parameters following a music file's emotions.

The music is analysed exactly as ``dawemo analyze`` does; the update at time t (the window ending
at t) drives the parameters from t on, and the first update also holds from the start, so the
machine sound does not begin at the chain's neutral settings. The output has the machine file's
length, sample rate and at least two channels. The parameter curves actually applied are written
as CSV.

Two passes, both streamed, so memory does not grow with the length of the files: the music is
decoded block by block, mixed to mono, resampled and analysed (``analyse_music``, keeping only the
updates: 128 bytes each); then the machine sound is decoded, rendered and written block by block,
and the curves with it (``render_timeline``). The block size does not change the output.
"""

from __future__ import annotations

import array
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dawemo import constants as C
from dawemo.emotion.tracker import EmotionTracker, EmotionUpdate
from dawemo.inputs.audio_io import path_problem, to_mono, wav_truncation
from dawemo.inputs.sources import StreamingResampler
from dawemo.machine.chain import Chain
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import update_values

DEFAULT_BLOCK_SIZE = 1 << 16  # samples per rendering block: 1.5 s at 44.1 kHz, 0.5 MB in stereo
ANALYSIS_BLOCK_S = 6.0  # music decoded and analysed at a time (the model's batch grows with it)
ANALYSIS_BLOCK_SAMPLES = 1 << 19  # ... and at most this many samples, all channels together (2 MB)
SILENCE_LEVEL = 1e-6  # music with no sample above this (-120 dBFS) is silent, as for ``analyze``

Progress = Callable[[str, float, float], None]  # (stage, audio seconds done, audio seconds in all)


class RenderError(Exception):
    """A render that cannot be done (unreadable input, unwritable output); one line."""


@dataclass
class RenderResult:
    output_path: Path
    curves_path: Path | None
    mix_path: Path | None
    duration_s: float
    sample_rate: float
    updates: int
    seconds: float  # wall time of the whole render, analysis included
    note: str | None = None  # e.g. why the parameters did not move (silent or very short music)

    @property
    def realtime_factor(self) -> float:
        return self.duration_s / max(self.seconds, 1e-9)


def default_curves_path(output_path: Path) -> Path:
    return output_path.with_name(output_path.stem + ".curves.csv")


MIDI_SUFFIXES = (".mid", ".midi")
INSTRUMENT_RATE = 44100.0
RELEASE_TAIL_S = 1.0  # rendered after the last MIDI event, so released notes fade out


class _AudioMachine:
    """A machine-sound audio file, read block by block and run through the chain's effects."""

    def __init__(self, path: Path) -> None:
        from pedalboard.io import AudioFile

        try:
            self.reader = AudioFile(str(path))
        except Exception as error:  # noqa: BLE001 - decoders raise many kinds; one line for the user
            raise RenderError(f"{path}: cannot decode audio: {str(error).splitlines()[0]}") from None
        self.path = path
        self.rate, self.frames = float(self.reader.samplerate), int(self.reader.frames)
        self.channels = max(2, self.reader.num_channels)  # a mono machine sound is rendered in stereo

    def render(self, processor: MachineChain, frames: int) -> np.ndarray:
        try:
            block = self.reader.read(frames)
        except Exception as error:  # noqa: BLE001
            raise RenderError(f"{self.path}: cannot decode audio: {str(error).splitlines()[0]}") from None
        if block.shape[1] < frames:  # a decoder may report a few frames more than it delivers
            block = np.pad(block, ((0, 0), (0, frames - block.shape[1])))
        if not np.all(np.isfinite(block)):
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        if block.shape[0] < self.channels:
            block = np.repeat(block[:1], self.channels, axis=0)
        return processor.process(block)

    def close(self) -> None:
        self.reader.close()


class _MidiMachine:
    """A MIDI file played by the chain's instrument (notes, controllers, pitch bend)."""

    def __init__(self, path: Path) -> None:
        import mido

        try:
            midi = mido.MidiFile(str(path))
        except (OSError, ValueError, EOFError, KeyError, IndexError) as error:
            raise RenderError(f"{path}: cannot read MIDI file: {error}") from None
        self.events, time_s = [], 0.0
        for message in midi:  # mido yields delta times in seconds, tempo changes applied
            time_s += message.time
            if not message.is_meta and message.type in ("note_on", "note_off", "control_change", "pitchwheel",
                                                         "program_change", "aftertouch", "polytouch"):
                self.events.append((time_s, message))
        self.rate, self.channels = INSTRUMENT_RATE, 2
        self.frames = int(round((time_s + RELEASE_TAIL_S) * self.rate))
        self._next = 0
        self._done = 0

    def render(self, processor: MachineChain, frames: int) -> np.ndarray:
        end_s = (self._done + frames) / self.rate
        first = self._next
        while self._next < len(self.events) and self.events[self._next][0] < end_s:
            self._next += 1
        self._done += frames
        return processor.process_midi(self.events[first:self._next], frames, self.channels)

    def close(self) -> None:
        pass


@dataclass
class EmotionTimeline:
    """A music file's model updates, compact (128 bytes each): update i at ``times_s[i]``.

    Attributes:
        times_s: (n,) update times in seconds.
        midlevel: (n, 7) mid-level features in [0, 1].
        emotions: (n, 8) emotions on the 1-9 scale.
        duration_s: length of the music analysed.
        note: why there are no updates (silent or very short music), else None.
    """

    times_s: np.ndarray
    midlevel: np.ndarray
    emotions: np.ndarray
    duration_s: float = 0.0
    note: str | None = None

    def __len__(self) -> int:
        return len(self.times_s)

    def values(self, index: int) -> dict[str, float]:
        """Update ``index`` as the {source: value} dict ``MachineChain.push`` takes."""
        return update_values(self.midlevel[index], self.emotions[index])

    @classmethod
    def from_updates(cls, updates: list[EmotionUpdate], duration_s: float = 0.0,
                     note: str | None = None) -> "EmotionTimeline":
        n_mid, n_emo = len(C.MIDLEVEL_NAMES), len(C.EMOTION_NAMES)
        return cls(np.array([u.time_s for u in updates], dtype=np.float64).reshape(-1),
                   np.array([u.midlevel for u in updates], dtype=np.float64).reshape(-1, n_mid),
                   np.array([u.emotions for u in updates], dtype=np.float64).reshape(-1, n_emo), duration_s, note)


class _HalfRateResampler:
    """``StreamingResampler`` for exactly 2:1 (44.1 -> 22.05 kHz): the same samples, bit for bit, 4x faster.

    At a 2:1 ratio pedalboard's windowed-sinc resampler is a fixed FIR filter followed by keeping
    every other sample: output ``k`` is ``g[0] x[2k - d] + g[1] x[2k + 1 - d] + ...``, summed in
    float32 from the first tap on. Here the sum is done in that order too, one tap at a time over
    a whole block (numpy, contiguous even and odd input samples), instead of one output sample at
    a time. The taps ``g`` and the delay ``d`` are measured from pedalboard itself (two impulses
    through a fresh resampler) and the result is checked against it, bit for bit, on noise fed
    in uneven blocks; ``measured`` returns None (use pedalboard's) if anything differs. Output
    sample 0 lines up with input sample 0 and the stream gives ``floor(n / 2)`` samples, as
    pedalboard's does; block sizes do not change the output.
    """

    CHUNK = 32768  # output samples summed at a time (kept in cache)

    def __init__(self, taps: np.ndarray, delay: int) -> None:
        self._taps = [np.float32(t) for t in np.asarray(taps, dtype=np.float32)]
        self._delay = delay
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(self._delay, dtype=np.float32)  # input not yet used, delay zeros first
        self._inputs = 0
        self._outputs = 0

    @classmethod
    def measured(cls, source_rate: float, target_rate: float) -> "_HalfRateResampler | None":
        """One giving pedalboard's output from ``source_rate`` to ``target_rate`` exactly, or None
        (not 2:1, or a pedalboard whose resampler is not such a filter)."""
        if float(source_rate) != 2.0 * float(target_rate):
            return None
        from pedalboard.io import StreamResampler

        def whole(x: np.ndarray) -> np.ndarray:
            resampler = StreamResampler(float(source_rate), float(target_rate), 1)
            return np.concatenate([resampler.process(x[None, :])[0], resampler.process()[0]])

        try:
            probe, impulses = np.zeros(8192, dtype=np.float32), (2000, 5001)
            probe[list(impulses)] = 1.0
            response = whole(probe)
            if len(response) != len(probe) // 2:
                return None
            taps: dict[int, float] = {}  # j - d -> tap, from y[k] = g[p + d - 2k]
            for p in impulses:
                near = np.arange(max(0, p // 2 - 1000), min(len(response), p // 2 + 1000))
                for k in near[response[near] != 0.0]:
                    taps[p - 2 * int(k)] = response[k]
            if not taps or max(taps) - min(taps) > 1024:
                return None
            delay = -min(taps)
            g = np.zeros(max(taps) + delay + 1, dtype=np.float32)
            for j, value in taps.items():
                g[j + delay] = value
            resampler = cls(g, delay)
            noise = np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.5
            ours = np.concatenate([resampler.process(noise[:7001]), resampler.process(noise[7001:7002]),
                                   resampler.process(noise[7002:]), resampler.flush()])
            if not np.array_equal(ours, whole(noise)):
                return None
            resampler.reset()
            return resampler
        except Exception:  # noqa: BLE001 - any surprise: pedalboard's own resampler is used
            return None

    def _run(self, final: bool) -> np.ndarray:
        n_taps = len(self._taps)
        if final:  # zeros after the end, as pedalboard's flush, up to floor(inputs / 2) outputs
            wanted = self._inputs // 2 - self._outputs
            pad = 2 * (wanted - 1) + n_taps - len(self._buffer)
            if wanted <= 0:
                return np.zeros(0, dtype=np.float32)
            if pad > 0:
                self._buffer = np.concatenate([self._buffer, np.zeros(pad, dtype=np.float32)])
        buffer = self._buffer
        count = 0 if len(buffer) < n_taps else (len(buffer) - n_taps) // 2 + 1
        if final:
            count = min(count, wanted)
        if count <= 0:
            return np.zeros(0, dtype=np.float32)
        used = buffer[:2 * (count - 1) + n_taps]
        phases = (np.ascontiguousarray(used[0::2]), np.ascontiguousarray(used[1::2]))
        out = np.empty(count, dtype=np.float32)
        scratch = np.empty(min(count, self.CHUNK), dtype=np.float32)
        taps = self._taps
        for start in range(0, count, self.CHUNK):
            n = min(self.CHUNK, count - start)
            total, product = out[start:start + n], scratch[:n]
            np.multiply(phases[0][start:start + n], taps[0], out=total)
            for j in range(1, n_taps):
                offset = start + j // 2
                np.multiply(phases[j % 2][offset:offset + n], taps[j], out=product)
                np.add(total, product, out=total)
        self._buffer = buffer[2 * count:]
        self._outputs += count
        return out

    def process(self, mono: np.ndarray) -> np.ndarray:
        """Resample the next (n,) block; returns the (m,) float32 output it completes."""
        mono = np.asarray(mono, dtype=np.float32).ravel()
        self._inputs += len(mono)
        self._buffer = np.concatenate([self._buffer, mono])
        return self._run(final=False)

    def flush(self) -> np.ndarray:
        """The rest of the output at the end of the stream."""
        return self._run(final=True)


def _decode_failure(path: Path, error: Exception) -> RenderError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return RenderError(f"{path}: cannot decode audio ({reason})")


def analyse_music(path: Path, model, window_s: float = C.DEFAULT_WINDOW_S, hop_s: float = C.DEFAULT_HOP_S,
                  progress: Progress | None = None, block_frames: int | None = None) -> EmotionTimeline:
    """The updates ``dawemo analyze`` gives for ``path``, with the file decoded and analysed block by block.

    Each block is mixed to mono, resampled to the model's rate (``StreamingResampler``: the
    stream gives what one whole-file resampling does) and fed to ``EmotionTracker``; only the
    updates are kept. Silent or too short music gives no updates and a ``note``. ``block_frames``
    (default: ``ANALYSIS_BLOCK_S``, at most ``ANALYSIS_BLOCK_SAMPLES`` in all) does not change them.

    Raises:
        RenderError: missing, empty, unreadable or non-finite audio (one line).
    """
    from pedalboard.io import AudioFile

    path = Path(path)
    problem = path_problem(path) or wav_truncation(path)
    if problem:
        raise RenderError(problem)
    try:
        reader = AudioFile(str(path))
    except Exception as error:  # noqa: BLE001 - decoders raise many kinds; one line for the user
        raise _decode_failure(path, error) from None
    tracker = EmotionTracker(model, window_s, hop_s)
    rows = array.array("d")  # time, 7 mid-level, 8 emotions per update
    samples, loud = 0, False
    with reader:
        if reader.frames == 0 or reader.num_channels == 0:
            raise RenderError(f"{path}: contains no audio frames")
        resampler = (_HalfRateResampler.measured(reader.samplerate, model.sample_rate)
                     or StreamingResampler(reader.samplerate, model.sample_rate))
        total_s = reader.frames / reader.samplerate
        if block_frames is None:
            block_frames = max(1, min(int(ANALYSIS_BLOCK_S * reader.samplerate),
                                      ANALYSIS_BLOCK_SAMPLES // reader.num_channels))

        def feed(mono: np.ndarray) -> None:
            nonlocal samples, loud
            if not np.all(np.isfinite(mono)):
                raise RenderError(f"{path}: audio contains NaN or infinite samples")
            samples += len(mono)
            loud = loud or bool(np.any(np.abs(mono) > SILENCE_LEVEL))
            for update in tracker.process(mono):
                rows.append(update.time_s)
                rows.extend(np.asarray(update.midlevel, dtype=np.float64).tolist())
                rows.extend(np.asarray(update.emotions, dtype=np.float64).tolist())

        while reader.tell() < reader.frames:
            try:
                block = reader.read(block_frames)
            except Exception as error:  # noqa: BLE001
                raise _decode_failure(path, error) from None
            if block.shape[1] == 0:  # a decoder may report more frames than it delivers
                break
            feed(resampler.process(to_mono(block)))
            if progress is not None:
                progress("analyse", min(reader.tell() / reader.samplerate, total_s), total_s)
        feed(resampler.flush())
    duration_s = samples / model.sample_rate
    if samples == 0:
        raise RenderError(f"{path}: contains no audio frames")
    n_mid, n_emo = len(C.MIDLEVEL_NAMES), len(C.EMOTION_NAMES)
    table = np.frombuffer(rows, dtype=np.float64).reshape(-1, 1 + n_mid + n_emo).copy()
    # As analyze_samples: too short or silent music has no emotions to follow.
    min_s = ((model.segment_frames - 1) * model.hop_size + model.frame_size) / model.sample_rate
    note = None
    if duration_s < min_s:
        note = f"too short: {duration_s:.2f} s of audio, needs at least {min_s:.2f} s"
    elif not loud:
        note = "audio is silent (no sample above -120 dBFS)"
    if note is not None:
        table = table[:0]
        note = f"{path}: {note}; parameters stay at the chain's fixed values"
    return EmotionTimeline(table[:, 0], table[:, 1:1 + n_mid], table[:, 1 + n_mid:], duration_s, note)


def render_with_updates(machine_path: Path, chain: Chain, updates: list[EmotionUpdate], output_path: Path,
                        hop_s: float = C.DEFAULT_HOP_S, block_size: int = DEFAULT_BLOCK_SIZE,
                        mix_music: Path | None = None, mix_path: Path | None = None,
                        curves_path: Path | None = None,
                        progress: Progress | None = None) -> tuple[MachineChain, float, float]:
    """``render_timeline`` for a list of updates; returns (processor, duration_s, rate)."""
    return render_timeline(machine_path, chain, EmotionTimeline.from_updates(updates), output_path, hop_s,
                           block_size, mix_music, mix_path, curves_path, progress)


def render_timeline(machine_path: Path, chain: Chain, timeline: EmotionTimeline, output_path: Path,
                    hop_s: float = C.DEFAULT_HOP_S, block_size: int = DEFAULT_BLOCK_SIZE,
                    mix_music: Path | None = None, mix_path: Path | None = None,
                    curves_path: Path | None = None,
                    progress: Progress | None = None) -> tuple[MachineChain, float, float]:
    """Render ``machine_path`` (audio, or MIDI for a chain that starts with an instrument) through
    ``chain`` driven by ``timeline``, block by block; returns (processor, duration_s, rate).

    Each block's updates are pushed just before it (the first also at time 0), so the processor
    holds a few updates at a time; the curves are written as the blocks are done.
    """
    from pedalboard.io import AudioFile

    problem = path_problem(machine_path)
    if problem:
        raise RenderError(problem)
    is_midi = machine_path.suffix.lower() in MIDI_SUFFIXES
    if is_midi != chain.is_instrument:
        raise RenderError(f"{machine_path}: a MIDI file needs a chain that starts with an instrument plugin"
                          if is_midi else f"chain '{chain.name}' starts with an instrument: give it a MIDI file "
                                          f"(.mid) to play, not audio")
    source = _MidiMachine(machine_path) if is_midi else _AudioMachine(machine_path)
    music_reader = None
    try:
        rate, frames, channels = source.rate, source.frames, source.channels
        processor = MachineChain(chain, rate, hop_s=hop_s, record_curves=curves_path is not None)
        # (time, update index): the first update also holds from the start.
        schedule = ([(0.0, 0)] if len(timeline) else []) + [(float(t), i) for i, t in enumerate(timeline.times_s)]
        pushed = 0
        if mix_path is not None:
            music_reader = AudioFile(str(mix_music)).resampled_to(rate)
        try:
            writer = _open_writer(output_path, rate, channels)
            mix_writer = _open_writer(mix_path, rate, channels) if mix_path is not None else None
            curves = CurvesWriter(curves_path, processor.lane_names) if curves_path is not None else None
        except Exception as error:  # noqa: BLE001
            raise RenderError(f"cannot write output: {str(error).splitlines()[0]}") from None
        with writer:
            done = 0
            while done < frames:
                n = min(block_size, frames - done)
                # Updates reach the processor a little ahead of their time, never after it.
                ahead_s = (done + n) / rate + 1.0
                while pushed < len(schedule) and schedule[pushed][0] < ahead_s:
                    time_s, index = schedule[pushed]
                    processor.push(timeline.values(index), time_s)
                    pushed += 1
                wet = source.render(processor, n)
                writer.write(wet)
                if curves is not None:
                    curves.write(*processor.take_curves())
                if mix_writer is not None:
                    music = music_reader.read(n) if music_reader.tell() < music_reader.frames else None
                    mixed = wet.copy()
                    if music is not None and music.shape[1]:
                        music = music if music.shape[0] >= channels else np.repeat(music[:1], channels, axis=0)
                        mixed[:, : music.shape[1]] += music[:channels]
                    mix_writer.write(mixed)
                done += n
                if progress is not None:
                    progress("render", done / rate, frames / rate)
            if mix_writer is not None:
                mix_writer.close()
            if curves is not None:
                curves.close()
    finally:
        if music_reader is not None:
            music_reader.close()
        source.close()
    return processor, frames / rate, rate


def _open_writer(path: Path, rate: float, channels: int):
    """WAV/AIFF as 32-bit float, so resonant or distorted peaks above full scale are kept, not clipped."""
    from pedalboard.io import AudioFile

    floating = Path(path).suffix.lower() in (".wav", ".aif", ".aiff")
    return AudioFile(str(path), "w", rate, channels, **({"bit_depth": 32} if floating else {}))


class CurvesWriter:
    """CSV written as a render goes: time_s, then one column per lane (``Plugin.parameter``) in its units."""

    def __init__(self, path: Path, lane_names: list[str]) -> None:
        self._handle = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["time_s"] + list(lane_names))

    def write(self, times_s: np.ndarray, values: np.ndarray) -> None:
        """Rows: (n,) times and (n, lanes) values."""
        self._writer.writerows([f"{t:.4f}"] + [f"{v:.6g}" for v in row]
                               for t, row in zip(times_s.tolist(), values.tolist()))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "CurvesWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_curves(path: Path, processor: MachineChain) -> None:
    """The curves ``processor`` recorded, as CSV (see ``CurvesWriter``)."""
    with CurvesWriter(path, processor.lane_names) as writer:
        writer.write(*processor.curves())


def render(music_path: Path, machine_path: Path, chain: Chain, output_path: Path, model=None,
           window_s: float = C.DEFAULT_WINDOW_S, hop_s: float = C.DEFAULT_HOP_S,
           block_size: int = DEFAULT_BLOCK_SIZE, mix_path: Path | None = None, curves_path: Path | None = None,
           progress: Progress | None = None) -> RenderResult:
    """Analyse ``music_path``, then render ``machine_path`` through ``chain``; raises RenderError.

    ``progress(stage, done_s, total_s)`` is called as the audio goes by: stage "analyse" over
    the music, then "render" over the machine sound.
    """
    from dawemo.emotion.model import EmotionModel

    started = time.perf_counter()
    model = model or EmotionModel()
    try:  # a bad window or hop is the caller's error, found before any decoding
        hop = EmotionTracker(model, window_s, hop_s).hop_s
    except ValueError as error:
        raise RenderError(str(error)) from None
    timeline = analyse_music(Path(music_path), model, window_s, hop_s, progress)
    curves_path = default_curves_path(output_path) if curves_path is None else curves_path
    _, duration_s, rate = render_timeline(machine_path, chain, timeline, output_path, hop, block_size, music_path,
                                          mix_path, curves_path, progress)
    return RenderResult(output_path, curves_path, mix_path, duration_s, rate, len(timeline),
                        time.perf_counter() - started, timeline.note)
