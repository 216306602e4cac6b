"""A self-generated demo clip: a calm major-key passage that turns into a tense, dissonant one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dawemo import constants as C


def _note_hz(midi_note: float) -> float:
    return 440.0 * 2.0 ** ((midi_note - 69) / 12)


def _tone(freq_hz: float, duration_s: float, sample_rate: int, brightness: float, decay_s: float) -> np.ndarray:
    """A plucked/struck harmonic tone with an exponential decay."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    harmonics = np.arange(1, 9)
    amplitudes = brightness ** (harmonics - 1)
    amplitudes[harmonics * freq_hz > sample_rate / 2.2] = 0.0
    wave = (amplitudes[:, None] * np.sin(2 * np.pi * freq_hz * harmonics[:, None] * t)).sum(axis=0)
    attack = np.minimum(1.0, t / 0.005)
    return (wave * attack * np.exp(-t / decay_s)).astype(np.float32)


def _place(out: np.ndarray, sound: np.ndarray, start_s: float, sample_rate: int, gain: float) -> None:
    start = int(start_s * sample_rate)
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += gain * sound[: end - start]


def _calm_section(duration_s: float, sample_rate: int) -> np.ndarray:
    """Slow, legato, major: I-vi-IV-V arpeggios with a stepwise tune (70 BPM)."""
    out = np.zeros(int(duration_s * sample_rate), np.float32)
    beat_s = 60.0 / 70
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
    tune = [72, 74, 76, 74, 72, 71, 72, 74, 76, 77, 76, 74, 72, 71, 69, 71]
    n_beats = int(duration_s / beat_s)
    for beat in range(n_beats):
        chord = chords[(beat // 4) % 4]
        for k, note in enumerate(chord):
            _place(out, _tone(_note_hz(note), 3.0, sample_rate, 0.35, 1.2), beat * beat_s + k * beat_s / 3,
                   sample_rate, 0.12)
        _place(out, _tone(_note_hz(tune[beat % len(tune)]), 2.5, sample_rate, 0.5, 1.5), beat * beat_s,
               sample_rate, 0.18)
    return out


def _tense_section(duration_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Fast, loud, dissonant: semitone clusters, tritone stabs and driving noise drums (150 BPM)."""
    out = np.zeros(int(duration_s * sample_rate), np.float32)
    beat_s = 60.0 / 150
    n_beats = int(duration_s / beat_s)
    for beat in range(n_beats):
        root = 38 + (beat // 8) % 3
        for note in (root, root + 1, root + 6, root + 12, root + 13):
            _place(out, _tone(_note_hz(note), beat_s, sample_rate, 0.8, 0.4), beat * beat_s, sample_rate, 0.12)
        hit = rng.standard_normal(int(0.08 * sample_rate)).astype(np.float32)
        hit *= np.exp(-np.arange(len(hit)) / (0.02 * sample_rate))
        _place(out, hit, beat * beat_s, sample_rate, 0.5)
        _place(out, 0.5 * hit, (beat + 0.5) * beat_s, sample_rate, 0.3)
    return np.tanh(2.0 * out)


def demo_clip(sample_rate: int = C.SAMPLE_RATE, section_s: float = 15.0, seed: int = 0) -> np.ndarray:
    """30 s mono float32: 15 s calm/tender, then 15 s tense/angry."""
    rng = np.random.default_rng(seed)
    calm = _calm_section(section_s, sample_rate)
    tense = _tense_section(section_s, sample_rate, rng)
    clip = np.concatenate([calm / np.abs(calm).max() * 0.5, tense / np.abs(tense).max() * 0.8])
    return clip.astype(np.float32)


def write_demo_clip(path: str | Path, sample_rate: int = C.SAMPLE_RATE) -> Path:
    """Write the demo clip as a WAV file and return its path."""
    from pedalboard.io import AudioFile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", sample_rate, 1) as f:
        f.write(demo_clip(sample_rate)[None, :])
    return path
