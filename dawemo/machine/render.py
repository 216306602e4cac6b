"""``dawemo render``: a machine-sound file through a chain, its parameters following a music file's emotions.

The music is analysed exactly as ``dawemo analyze`` does; the update at time t (the window ending
at t) drives the parameters from t on, and the first update also holds from the start, so the
machine sound does not begin at the chain's neutral settings. The machine sound is rendered
block-wise with plugin state kept between blocks; the output has the machine file's length,
sample rate and at least two channels. The parameter curves actually applied are written as CSV.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dawemo import constants as C
from dawemo.emotion.tracker import EmotionTracker, EmotionUpdate, analyze_samples
from dawemo.inputs.audio_io import AudioInputError, load_audio, path_problem
from dawemo.machine.chain import Chain
from dawemo.machine.processor import MachineChain
from dawemo.outputs.mapping import update_values


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
        self.rate, self.frames = float(self.reader.samplerate), int(self.reader.frames)
        self.channels = max(2, self.reader.num_channels)  # a mono machine sound is rendered in stereo

    def render(self, processor: MachineChain, frames: int) -> np.ndarray:
        block = self.reader.read(frames)
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


def render_with_updates(machine_path: Path, chain: Chain, updates: list[EmotionUpdate], output_path: Path,
                        hop_s: float = C.DEFAULT_HOP_S, block_size: int = 4096,
                        mix_music: Path | None = None, mix_path: Path | None = None,
                        curves_path: Path | None = None,
                        progress: Callable[[float], None] | None = None) -> tuple[MachineChain, float, float]:
    """Render ``machine_path`` (audio, or MIDI for a chain that starts with an instrument) through
    ``chain`` driven by ``updates``; returns (processor, duration_s, rate)."""
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
    try:
        rate, frames, channels = source.rate, source.frames, source.channels
        processor = MachineChain(chain, rate, hop_s=hop_s, record_curves=True)
        if updates:
            processor.push(update_values(updates[0].midlevel, updates[0].emotions), 0.0)
        for update in updates:
            processor.push(update_values(update.midlevel, update.emotions), update.time_s)
        music_reader = AudioFile(str(mix_music)).resampled_to(rate) if mix_path is not None else None
        try:
            writer = _open_writer(output_path, rate, channels)
            mix_writer = _open_writer(mix_path, rate, channels) if mix_path is not None else None
        except Exception as error:  # noqa: BLE001
            raise RenderError(f"cannot write output: {str(error).splitlines()[0]}") from None
        with writer:
            done = 0
            while done < frames:
                n = min(block_size, frames - done)
                wet = source.render(processor, n)
                writer.write(wet)
                if mix_writer is not None:
                    music = music_reader.read(n) if music_reader.tell() < music_reader.frames else None
                    mixed = wet.copy()
                    if music is not None and music.shape[1]:
                        music = music if music.shape[0] >= channels else np.repeat(music[:1], channels, axis=0)
                        mixed[:, : music.shape[1]] += music[:channels]
                    mix_writer.write(mixed)
                done += n
                if progress is not None:
                    progress(done / max(frames, 1))
            if mix_writer is not None:
                mix_writer.close()
        if music_reader is not None:
            music_reader.close()
    finally:
        source.close()
    if curves_path is not None:
        write_curves(curves_path, processor)
    return processor, frames / rate, rate


def _open_writer(path: Path, rate: float, channels: int):
    """WAV/AIFF as 32-bit float, so resonant or distorted peaks above full scale are kept, not clipped."""
    from pedalboard.io import AudioFile

    floating = Path(path).suffix.lower() in (".wav", ".aif", ".aiff")
    return AudioFile(str(path), "w", rate, channels, **({"bit_depth": 32} if floating else {}))


def write_curves(path: Path, processor: MachineChain) -> None:
    """CSV: time_s, then one column per lane (``Plugin.parameter``) in the parameter's units."""
    times, values = processor.curves()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s"] + processor.lane_names)
        for t, row in zip(times, values):
            writer.writerow([f"{t:.4f}"] + [f"{v:.6g}" for v in row])


def render(music_path: Path, machine_path: Path, chain: Chain, output_path: Path, model=None,
           window_s: float = C.DEFAULT_WINDOW_S, hop_s: float = C.DEFAULT_HOP_S, block_size: int = 4096,
           mix_path: Path | None = None, curves_path: Path | None = None,
           progress: Callable[[str, float], None] | None = None) -> RenderResult:
    """Analyse ``music_path``, then render ``machine_path`` through ``chain``; raises RenderError."""
    from dawemo.emotion.model import EmotionModel

    started = time.perf_counter()
    model = model or EmotionModel()
    try:  # a bad window or hop is the caller's error, found before any decoding
        hop = EmotionTracker(model, window_s, hop_s).hop_s
    except ValueError as error:
        raise RenderError(str(error)) from None
    try:
        samples = load_audio(music_path, model.sample_rate)
    except AudioInputError as error:
        raise RenderError(str(error)) from None
    updates, note = [], None
    try:
        updates = analyze_samples(samples, model, window_s, hop_s).updates
    except ValueError as error:  # silent or shorter than one segment: the chain plays at its fixed settings
        note = f"{music_path}: {error}; parameters stay at the chain's fixed values"
    if progress is not None:
        progress("analysed", 1.0)
    curves_path = default_curves_path(output_path) if curves_path is None else curves_path
    _, duration_s, rate = render_with_updates(
        machine_path, chain, updates, output_path, hop, block_size, music_path, mix_path, curves_path,
        (lambda fraction: progress("rendering", fraction)) if progress else None)
    return RenderResult(output_path, curves_path, mix_path, duration_s, rate, len(updates),
                        time.perf_counter() - started, note)
