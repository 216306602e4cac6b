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
from dawemo.analysis import EmotionUpdate, analyze_samples
from dawemo.audio_io import AudioInputError, load_audio, path_problem
from dawemo.machine.chain import Chain
from dawemo.machine.processor import MachineChain
from dawemo.mapping import update_values


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


def render_with_updates(machine_path: Path, chain: Chain, updates: list[EmotionUpdate], output_path: Path,
                        hop_s: float = C.DEFAULT_HOP_S, block_size: int = 4096,
                        mix_music: Path | None = None, mix_path: Path | None = None,
                        curves_path: Path | None = None,
                        progress: Callable[[float], None] | None = None) -> tuple[MachineChain, float, float]:
    """Render ``machine_path`` through ``chain`` driven by ``updates``; returns (processor, duration_s, rate)."""
    from pedalboard.io import AudioFile

    problem = path_problem(machine_path)
    if problem:
        raise RenderError(problem)
    try:
        reader = AudioFile(str(machine_path))
    except Exception as error:  # noqa: BLE001 - decoders raise many kinds; one line for the user
        raise RenderError(f"{machine_path}: cannot decode audio: {str(error).splitlines()[0]}") from None
    with reader:
        rate, frames = float(reader.samplerate), int(reader.frames)
        channels = max(2, reader.num_channels)
        processor = MachineChain(chain, rate, hop_s=hop_s, record_curves=True)
        if updates:
            processor.push(update_values(updates[0].midlevel, updates[0].emotions), 0.0)
        for update in updates:
            processor.push(update_values(update.midlevel, update.emotions), update.time_s)
        music_reader = None
        if mix_path is not None:
            music_reader = AudioFile(str(mix_music)).resampled_to(rate)
        try:
            writer = _open_writer(output_path, rate, channels)
            mix_writer = _open_writer(mix_path, rate, channels) if mix_path is not None else None
        except Exception as error:  # noqa: BLE001
            raise RenderError(f"cannot write output: {str(error).splitlines()[0]}") from None
        with writer:
            done = 0
            while done < frames:
                block = reader.read(min(block_size, frames - done))
                if block.shape[1] == 0:
                    break
                if not np.all(np.isfinite(block)):
                    block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
                if block.shape[0] < channels:  # mono machine sound: the chain works in stereo
                    block = np.repeat(block[:1], channels, axis=0)
                wet = processor.process(block)
                writer.write(wet)
                if mix_writer is not None:
                    music = music_reader.read(block.shape[1]) if music_reader.tell() < music_reader.frames else None
                    mixed = wet.copy()
                    if music is not None and music.shape[1]:
                        music = music if music.shape[0] >= channels else np.repeat(music[:1], channels, axis=0)
                        mixed[:, : music.shape[1]] += music[:channels]
                    mix_writer.write(mixed)
                done += block.shape[1]
                if progress is not None:
                    progress(done / max(frames, 1))
            if mix_writer is not None:
                mix_writer.close()
        if music_reader is not None:
            music_reader.close()
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
    from dawemo.model import EmotionModel

    started = time.perf_counter()
    model = model or EmotionModel()
    try:
        samples = load_audio(music_path, model.sample_rate)
    except AudioInputError as error:
        raise RenderError(str(error)) from None
    from dawemo.analysis import EmotionTracker

    try:
        EmotionTracker(model, window_s, hop_s)  # a bad window or hop is the caller's error, not the music's
    except ValueError as error:
        raise RenderError(str(error)) from None
    updates, note = [], None
    try:
        updates = analyze_samples(samples, model, window_s, hop_s).updates
    except ValueError as error:  # silent or shorter than one segment: the chain plays at its fixed settings
        note = f"{music_path}: {error}; parameters stay at the chain's fixed values"
    if progress is not None:
        progress("analysed", 1.0)
    hop = updates[1].time_s - updates[0].time_s if len(updates) > 1 else hop_s
    curves_path = default_curves_path(output_path) if curves_path is None else curves_path
    _, duration_s, rate = render_with_updates(
        machine_path, chain, updates, output_path, hop, block_size, music_path, mix_path, curves_path,
        (lambda fraction: progress("rendering", fraction)) if progress else None)
    return RenderResult(output_path, curves_path, mix_path, duration_s, rate, len(updates),
                        time.perf_counter() - started, note)
