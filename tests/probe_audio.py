"""Pure-NumPy probe pairs for the seven mid-level features: each pair differs in one quality.

Written independently of the training corpus: no MIDI files, no soundfont, no FluidSynth.
The instruments are additive tones with per-harmonic envelopes, FM pianos and bells,
Karplus-Strong plucks, PolyBLEP saw pads through a one-pole lowpass, and drums made of noise
and sine sweeps; the music is folk-like tunes, running lines and progressions written here.

A pair is ``(more, less)``: ``more`` has more of the quality as the rater questions of
Aljanaki & Soleymani (2018) define it (``dawemo.constants.MIDLEVEL_QUESTIONS``). Every clip is
mono float32 at 22050 Hz, ``CLIP_S`` long, peak-normalised to ``PEAK_LEVEL``; everything is
seeded, so the same call gives the same samples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dawemo import constants as C

SAMPLE_RATE = C.SAMPLE_RATE
CLIP_S = 9.0
PEAK_LEVEL = 0.5  # -6 dBFS for every clip, so a pair never differs in peak level
FADE_OUT_S = 0.1
PAIRS_PER_QUALITY = 8

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor: its i, iv and v are all minor chords

# Variant axes, cycled per pair: 8 tempos and 8 tonics (C4 D4 A3 F4 G3 Eb4 Bb3 E4).
TEMPOS_BPM = (72, 96, 120, 84, 108, 132, 90, 116)
TONICS_MIDI = (60, 62, 57, 65, 55, 63, 58, 64)


# --------------------------------------------------------------------------------------------
# Score and sound events


@dataclass(frozen=True)
class Note:
    """One score event in beats; ``pitch`` is a MIDI number (drums ignore it)."""

    onset_beats: float
    duration_beats: float
    pitch: int
    velocity: float
    voice: str


@dataclass(frozen=True)
class Sound:
    """One event to render, in seconds."""

    onset_s: float
    duration_s: float
    pitch: int
    velocity: float
    voice: str


@dataclass(frozen=True)
class ProbePair:
    """Two clips that differ in one quality; ``more`` has more of it."""

    quality: str
    tempo_bpm: float
    tonic_midi: int
    timbre: str
    material: int
    more: np.ndarray
    less: np.ndarray

    @property
    def variant(self) -> str:
        return f"{self.tempo_bpm} bpm, tonic {self.tonic_midi}, {self.timbre}, material {self.material}"


def midi_to_hz(pitch: float) -> float:
    """MIDI pitch -> frequency in Hz (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def degree_to_midi(degree: int, tonic_midi: int, scale: tuple[int, ...]) -> int:
    """Scale degree (0 = tonic, 7 = tonic an octave up, -1 = leading tone below) -> MIDI pitch."""
    octave, step = divmod(degree, len(scale))
    return tonic_midi + 12 * octave + scale[step]


# --------------------------------------------------------------------------------------------
# DSP building blocks


def _times_s(duration_s: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Sample times in seconds of a sound lasting ``duration_s``."""
    return np.arange(int(round(duration_s * sample_rate))) / sample_rate


def note_envelope(duration_s: float, attack_s: float, release_s: float,
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Linear attack, hold until note-off at ``duration_s``, linear release after it."""
    t = _times_s(duration_s + release_s, sample_rate)
    rise = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    fall = np.clip(1.0 - (t - duration_s) / max(release_s, 1e-4), 0.0, 1.0)
    return rise * fall


def one_pole_lowpass(x: np.ndarray, cutoff_hz: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """y[n] = (1-a) x[n] + a y[n-1], applied in the frequency domain (NumPy has no lfilter)."""
    a = np.exp(-2.0 * np.pi * cutoff_hz / sample_rate)
    # Zero-pad past the filter's -120 dB tail so the circular FFT product is a linear filter.
    tail = int(np.ceil(np.log(1e-6) / np.log(a))) if a > 1e-6 else 1
    n_fft = 1 << (len(x) + tail - 1).bit_length()
    omega = 2.0 * np.pi * np.fft.rfftfreq(n_fft)
    response = (1.0 - a) / (1.0 - a * np.exp(-1j * omega))
    return np.fft.irfft(np.fft.rfft(x, n_fft) * response, n_fft)[: len(x)]


def polyblep_saw(freq_hz: float, n_samples: int, phase0: float = 0.0,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited-ish sawtooth: a naive ramp with its wrap smoothed by a polynomial step."""
    dt = freq_hz / sample_rate
    phase = (phase0 + dt * np.arange(n_samples)) % 1.0
    y = 2.0 * phase - 1.0
    just_wrapped = phase < dt
    u = phase[just_wrapped] / dt
    y[just_wrapped] -= 2.0 * u - u * u - 1.0
    about_to_wrap = phase > 1.0 - dt
    u = (phase[about_to_wrap] - 1.0) / dt
    y[about_to_wrap] -= u * u + 2.0 * u + 1.0
    return y


# --------------------------------------------------------------------------------------------
# Instruments: (freq_hz, duration_s, velocity, rng) -> samples, note-off at duration_s


def additive_tone(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator,
                  rolloff: float = 1.3, brightness_decay_per_s: float = 1.5, body_decay_per_s: float = 0.3,
                  attack_s: float = 0.015, release_s: float = 0.08, vibrato_depth: float = 0.0) -> np.ndarray:
    """Sum of harmonics whose upper partials die away faster than the fundamental."""
    t = _times_s(duration_s + release_s)
    inst_freq_hz = freq_hz * (1.0 + vibrato_depth * np.sin(2.0 * np.pi * 5.2 * t))
    phase = 2.0 * np.pi * np.cumsum(inst_freq_hz) / SAMPLE_RATE
    n_harmonics = max(1, min(12, int(0.45 * SAMPLE_RATE / freq_hz)))
    phase = phase + rng.uniform(0.0, 2.0 * np.pi)
    partial_env = np.exp(-body_decay_per_s * t)
    brighter_decay = np.exp(-brightness_decay_per_s * t)  # each harmonic up decays this much faster
    # sin(k x) by the Chebyshev recurrence: a few multiplies per harmonic instead of a sine.
    two_cos = 2.0 * np.cos(phase)
    sin_prev, sin_k = np.zeros_like(t), np.sin(phase)
    y = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        y += k ** -rolloff * partial_env * sin_k
        partial_env = partial_env * brighter_decay
        sin_prev, sin_k = sin_k, two_cos * sin_k - sin_prev
    return velocity * note_envelope(duration_s, attack_s, release_s) * y


def fm_tone(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator,
            ratio: float = 1.0, index_peak: float = 2.5, index_floor: float = 0.4, index_decay_s: float = 0.25,
            amp_decay_s: float = 1.6, attack_s: float = 0.004, release_s: float = 0.08) -> np.ndarray:
    """Two-operator FM; ratio 1 gives a harmonic electric piano, ratio 3.5 an inharmonic bell."""
    t = _times_s(duration_s + release_s)
    # Keep sidebands below Nyquist: partials reach about (index + 1) * ratio * freq.
    max_index = max(0.2, (0.45 * SAMPLE_RATE - freq_hz) / (ratio * freq_hz) - 1.0)
    index = min(index_peak, max_index) * np.exp(-t / index_decay_s) + min(index_floor, max_index)
    y = np.sin(2.0 * np.pi * freq_hz * t + index * np.sin(2.0 * np.pi * ratio * freq_hz * t))
    return velocity * note_envelope(duration_s, attack_s, release_s) * np.exp(-t / amp_decay_s) * y


def karplus_strong(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator,
                   t60_s: float = 1.6, brightness_hz: float = 4000.0, release_s: float = 0.05) -> np.ndarray:
    """Plucked string: a noise burst circulating in a delay line with a two-point average."""
    # The averaging filter adds half a sample of delay: run the string at an internal rate where
    # (period + 0.5) samples is exactly one cycle, then resample, so every pitch is in tune.
    period = max(2, int(round(SAMPLE_RATE / freq_hz - 0.5)))
    internal_rate_hz = freq_hz * (period + 0.5)
    total_s = duration_s + release_s
    n_blocks = int(np.ceil(total_s * internal_rate_hz / period)) + 2
    loss_per_period = 10.0 ** (-3.0 / (t60_s * freq_hz))
    string = np.zeros(n_blocks * period)
    burst = one_pole_lowpass(rng.uniform(-1.0, 1.0, period), brightness_hz, int(internal_rate_hz))
    string[:period] = burst - burst.mean()
    string[period:2 * period] = loss_per_period * 0.5 * (string[:period] + np.r_[0.0, string[:period - 1]])
    for k in range(2, n_blocks):  # one vectorised step per period, not per sample
        start = k * period
        string[start:start + period] = loss_per_period * 0.5 * (
            string[start - period:start] + string[start - period - 1:start - 1])
    t = _times_s(total_s)
    y = np.interp(t * internal_rate_hz, np.arange(len(string)), string)
    return velocity * note_envelope(duration_s, 0.001, release_s) * y / (np.abs(burst).max() + 1e-9)


def saw_voice(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator,
              cutoff_hz: float = 2200.0, attack_s: float = 0.03, release_s: float = 0.2,
              detune_cents: float = 7.0) -> np.ndarray:
    """Two detuned PolyBLEP saws through a one-pole lowpass."""
    n_samples = len(_times_s(duration_s + release_s))
    detune = 2.0 ** (detune_cents / 1200.0)
    y = (polyblep_saw(freq_hz * detune, n_samples, rng.uniform()) +
         polyblep_saw(freq_hz / detune, n_samples, rng.uniform()))
    y = one_pole_lowpass(y, cutoff_hz)
    return 0.5 * velocity * note_envelope(duration_s, attack_s, release_s) * y


def kick(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """Sine swept down from ~140 Hz to 45 Hz, plus a short noise click."""
    t = _times_s(0.35)
    sweep_hz = 45.0 + 95.0 * np.exp(-t / 0.03)
    body = np.sin(2.0 * np.pi * np.cumsum(sweep_hz) / SAMPLE_RATE) * np.exp(-t / 0.12)
    click = 0.3 * rng.uniform(-1.0, 1.0, len(t)) * np.exp(-t / 0.003)
    return velocity * (body + click)


def snare(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise (difference of two lowpasses) over a 185 Hz drum-head tone."""
    t = _times_s(0.22)
    noise = rng.uniform(-1.0, 1.0, len(t))
    rattle = one_pole_lowpass(noise, 7000.0) - one_pole_lowpass(noise, 900.0)
    head = 0.5 * np.sin(2.0 * np.pi * 185.0 * t) * np.exp(-t / 0.04)
    return velocity * (1.6 * rattle * np.exp(-t / 0.06) + head)


def hihat(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """High-passed noise (noise minus its lowpass) with a fast decay."""
    t = _times_s(0.09)
    noise = rng.uniform(-1.0, 1.0, len(t))
    return velocity * (noise - one_pole_lowpass(noise, 6000.0)) * np.exp(-t / 0.018)


def woodblock(freq_hz: float, duration_s: float, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """Two inharmonic sine modes with a very short decay."""
    t = _times_s(0.12)
    modes = np.sin(2.0 * np.pi * 1150.0 * t) + 0.5 * np.sin(2.0 * np.pi * 2900.0 * t)
    return velocity * modes * np.exp(-t / 0.022)


Instrument = Callable[[float, float, float, np.random.Generator], np.ndarray]

# Voice name -> (instrument, mix gain). Gains keep a chord note quieter than a lead note.
VOICES: dict[str, tuple[Instrument, float]] = {
    "flute": (functools.partial(additive_tone, rolloff=2.2, brightness_decay_per_s=0.2, body_decay_per_s=0.0,
                                attack_s=0.06, release_s=0.12, vibrato_depth=0.004), 0.8),
    "organ": (functools.partial(additive_tone, rolloff=1.1, brightness_decay_per_s=0.3, body_decay_per_s=0.0,
                                attack_s=0.012, release_s=0.05), 0.5),
    "bass": (functools.partial(additive_tone, rolloff=1.6, brightness_decay_per_s=2.0, body_decay_per_s=1.0,
                               attack_s=0.008, release_s=0.06), 0.7),
    "epiano": (functools.partial(fm_tone, ratio=1.0), 0.45),
    "bell": (functools.partial(fm_tone, ratio=3.5, index_peak=3.0, index_floor=0.2, index_decay_s=0.5,
                               amp_decay_s=0.9), 0.35),
    "pluck": (karplus_strong, 0.6),
    "pluck_bass": (functools.partial(karplus_strong, t60_s=1.2, brightness_hz=1200.0), 0.6),
    "saw_lead": (functools.partial(saw_voice, cutoff_hz=2600.0, attack_s=0.008, release_s=0.05), 0.5),
    "saw_pad": (functools.partial(saw_voice, cutoff_hz=1500.0, attack_s=0.08, release_s=0.3), 0.25),
    "kick": (kick, 1.0),
    "snare": (snare, 0.7),
    "hat": (hihat, 0.6),
    "woodblock": (woodblock, 0.3),
}


# --------------------------------------------------------------------------------------------
# Rendering


def steady_time_map(tempo_bpm: float) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Onsets in beats -> (onsets in seconds, local beat length in seconds) at a fixed tempo."""
    beat_s = 60.0 / tempo_bpm
    return lambda onsets_beats: (onsets_beats * beat_s, np.full(len(onsets_beats), beat_s))


def rubato_time_map(tempo_bpm: float, rng: np.random.Generator, drift_depth: float = 0.3,
                    drift_period_beats: float = 7.0, jitter_beats: float = 0.1,
                    span_beats: float = 64.0) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A tempo that swings +-``drift_depth`` around ``tempo_bpm`` plus random onset jitter.

    Notes that share an onset get the same jitter, so the layers stay together and only the
    timing of the beat becomes irregular, not the texture.
    """
    beat_s = 60.0 / tempo_bpm
    grid_beats = np.linspace(0.0, span_beats, int(span_beats * 64) + 1)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    local_beat_s = beat_s / (1.0 + drift_depth * np.sin(2.0 * np.pi * grid_beats / drift_period_beats + phase))
    elapsed_s = np.r_[0.0, np.cumsum(0.5 * (local_beat_s[1:] + local_beat_s[:-1]) * np.diff(grid_beats))]
    scale = span_beats * beat_s / elapsed_s[-1]  # same mean tempo as the steady version
    elapsed_s, local_beat_s = elapsed_s * scale, local_beat_s * scale

    def warp(onsets_beats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unique_beats, which = np.unique(onsets_beats, return_inverse=True)
        jitter_s = rng.normal(0.0, jitter_beats * beat_s, len(unique_beats))
        onsets_s = np.maximum(np.interp(unique_beats, grid_beats, elapsed_s) + jitter_s, 0.0)
        return onsets_s[which], np.interp(onsets_beats, grid_beats, local_beat_s)

    return warp


def to_sounds(notes: list[Note], time_map: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> list[Sound]:
    """Place score notes in time; a note lasts its beats at the local tempo."""
    if not notes:
        return []
    onsets_s, beat_s = time_map(np.array([n.onset_beats for n in notes]))
    return [Sound(float(t), n.duration_beats * float(b), n.pitch, n.velocity, n.voice)
            for n, t, b in zip(notes, onsets_s, beat_s)]


def render(sounds: list[Sound], rng: np.random.Generator, duration_s: float = CLIP_S) -> np.ndarray:
    """Mix sounds into a clip of ``duration_s``, fade its end, peak-normalise to ``PEAK_LEVEL``."""
    out = np.zeros(int(round(duration_s * SAMPLE_RATE)))
    for sound in sorted(sounds, key=lambda s: (s.onset_s, s.voice, s.pitch)):
        start = int(round(sound.onset_s * SAMPLE_RATE))
        if start >= len(out):
            continue
        instrument, gain = VOICES[sound.voice]
        y = gain * instrument(midi_to_hz(sound.pitch), sound.duration_s, sound.velocity, rng)
        stop = min(len(out), start + len(y))
        out[start:stop] += y[: stop - start]
    n_fade = int(FADE_OUT_S * SAMPLE_RATE)
    out[-n_fade:] *= np.linspace(1.0, 0.0, n_fade)  # no click where the clip is cut
    return (PEAK_LEVEL * out / np.abs(out).max()).astype(np.float32)


def render_notes(notes: list[Note], tempo_bpm: float, seed: int | list[int]) -> np.ndarray:
    """Render score notes at a steady tempo."""
    return render(to_sounds(notes, steady_time_map(tempo_bpm)), np.random.default_rng(seed))


def loop(notes: list[Note], period_beats: float, tempo_bpm: float, duration_s: float = CLIP_S) -> list[Note]:
    """Repeat a pattern every ``period_beats`` until the clip is full."""
    total_beats = duration_s * tempo_bpm / 60.0
    n_repeats = int(np.ceil(total_beats / period_beats))
    return [Note(n.onset_beats + r * period_beats, n.duration_beats, n.pitch, n.velocity, n.voice)
            for r in range(n_repeats) for n in notes if n.onset_beats + r * period_beats < total_beats]


# --------------------------------------------------------------------------------------------
# Musical material (original): tunes as (scale degree or None for a rest, beats), chords as
# root scale degrees, one per half bar of 4/4.

TUNES = (
    # "Walking song": rises by step, turns, comes home through the leading tone.
    ((0, 1), (1, .5), (2, .5), (3, 1), (4, 1), (5, 1), (4, .5), (3, .5), (2, 2),
     (3, 1), (2, .5), (1, .5), (2, 1), (0, 1), (1, 1.5), (-1, .5), (0, 2)),
    # "Lilting air": dotted rhythms, a climb to the upper tonic and a stepwise descent.
    ((4, 1.5), (3, .5), (2, 1), (4, 1), (7, 1.5), (6, .5), (5, 2),
     (5, 1), (4, 1), (3, .5), (2, .5), (1, 1), (2, 1), (1, 1), (0, 2)),
    # "Pentatonic reel": repeated notes and small skips within do-re-mi-sol-la.
    ((0, .5), (0, .5), (1, 1), (2, 1), (4, 1), (5, 1), (4, 1), (2, 2),
     (1, .5), (2, .5), (4, 1), (2, 1), (1, 1), (0, 3), (None, 1)),
)
TUNE_CHORDS = (
    (0, 0, 3, 0, 3, 0, 4, 0),
    (0, 0, 5, 3, 3, 4, 0, 0),
    (0, 0, 3, 0, 4, 0, 0, 0),
)

# Running eighth-note lines for articulation (scale degrees, 16 per two bars).
LINES = (
    (0, 2, 4, 2, 0, 2, 4, 7, 5, 3, 1, 3, 5, 3, 1, -1),
    (0, 1, 2, 3, 4, 3, 2, 1, 2, 3, 4, 5, 6, 5, 4, 2),
    (4, 5, 4, 3, 2, 3, 2, 1, 0, 1, 2, 1, 0, -1, -3, -1),
)

# Diatonic progressions with cadences, two chords a bar (major-key degrees; 1 = ii, 5 = vi).
CADENTIAL_PROGRESSIONS = (
    (0, 3, 4, 0, 5, 1, 4, 0),
    (0, 5, 3, 4, 0, 3, 4, 0),
    (0, 4, 5, 3, 1, 4, 0, 0),
)

N_MATERIALS = 3  # tunes, lines and progressions per kind

DISSONANT_SETS = ((0, 1, 6, 11), (0, 1, 6, 7), (0, 2, 6, 8), (0, 1, 4, 6), (0, 5, 6, 11))


def tune_notes(tune: tuple, tonic_midi: int, scale: tuple[int, ...], voice: str,
               gate: float = 0.92, velocity: float = 0.9) -> list[Note]:
    """A tune as notes; ``gate`` is the sounding fraction of each note's length."""
    notes, onset_beats = [], 0.0
    for degree, length_beats in tune:
        if degree is not None:
            notes.append(Note(onset_beats, gate * length_beats, degree_to_midi(degree, tonic_midi, scale),
                              velocity, voice))
        onset_beats += length_beats
    return notes


def triad_pitch_classes(root_degree: int, tonic_midi: int, scale: tuple[int, ...]) -> list[int]:
    """Diatonic triad on a scale degree, stacked in thirds within the scale."""
    return [degree_to_midi(root_degree + step, tonic_midi, scale) % 12 for step in (0, 2, 4)]


def quality_triad(root_midi: int, minor: bool) -> list[int]:
    """Pitch classes of a major or minor triad on ``root_midi``."""
    return [root_midi % 12, (root_midi + (3 if minor else 4)) % 12, (root_midi + 7) % 12]


def voice_near(pitch_classes: list[int], centre_midi: int) -> list[int]:
    """Close voicing: each pitch class in the octave around ``centre_midi``; same rule for all chords."""
    return sorted(centre_midi - 6 + (pc - (centre_midi - 6)) % 12 for pc in pitch_classes)


def bass_pitch(pitch_class: int, tonic_midi: int) -> int:
    """The root in the octave starting an octave and a fifth below the tonic."""
    low_midi = tonic_midi - 19
    return low_midi + (pitch_class - low_midi) % 12


# --------------------------------------------------------------------------------------------
# Probe pairs per quality: (tempo_bpm, tonic_midi, timbre, material, seed) -> (more, less) clips


def melodiousness_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stepwise tune vs the same rhythm with random chromatic leaps of a fifth or more."""
    tune = TUNES[material]
    sung = tune_notes(tune, tonic_midi, MAJOR_SCALE, timbre)
    rng = np.random.default_rng(seed)
    centre_midi = int(round(np.mean([n.pitch for n in sung])))
    pitch, leapt = centre_midi, []
    for note in sung:
        # Leaps of 7-11 or 13-14 semitones (never an octave) that stay within an octave of the
        # tune's centre, so the register does not change, only the contour.
        landings = [pitch + sign * leap for leap in (7, 8, 9, 10, 11, 13, 14) for sign in (-1, 1)]
        pitch = int(rng.choice([p for p in landings if abs(p - centre_midi) <= 12]))
        leapt.append(Note(note.onset_beats, note.duration_beats, pitch, note.velocity, note.voice))
    period_beats = sum(length for _, length in tune)
    return (render_notes(loop(sung, period_beats, tempo_bpm), tempo_bpm, seed),
            render_notes(loop(leapt, period_beats, tempo_bpm), tempo_bpm, seed))


def articulation_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same eighth-note line staccato (a fifth of each note sounds) vs legato (notes overlap)."""
    line = LINES[material]

    def line_notes(duration_beats: float) -> list[Note]:
        return [Note(0.5 * i, duration_beats, degree_to_midi(d, tonic_midi, MAJOR_SCALE), 0.85, timbre)
                for i, d in enumerate(line)]

    period_beats = 0.5 * len(line)
    return (render_notes(loop(line_notes(0.1), period_beats, tempo_bpm), tempo_bpm, seed),
            render_notes(loop(line_notes(0.56), period_beats, tempo_bpm), tempo_bpm, seed))


def _march_pattern(tonic_midi: int, timbre: str, material: int) -> list[Note]:
    """Two bars of an accented on-the-beat groove, a chord every half bar."""
    roots = [degree_to_midi(d, tonic_midi, MAJOR_SCALE) % 12 for d in TUNE_CHORDS[material][::2]]
    notes = []
    for beat in range(8):
        root = roots[beat // 2]
        accent = 1.0 if beat % 4 == 0 else 0.7
        notes.append(Note(beat, 0.8, bass_pitch(root, tonic_midi), accent, "pluck_bass"))
        if timbre == "drums":
            notes.append(Note(beat, 0.1, 0, accent, "kick" if beat % 2 == 0 else "snare"))
            notes += [Note(beat + off, 0.05, 0, 0.6 * accent if off == 0 else 0.35, "hat") for off in (0, .5)]
        else:
            chord = voice_near(quality_triad(root, minor=False), tonic_midi)
            notes += [Note(beat, 0.45, p, accent, timbre) for p in chord]
    return notes


def rhythm_stability_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A steady accented groove vs the same notes with tempo drift and onset jitter."""
    notes = loop(_march_pattern(tonic_midi, timbre, material), 8.0, tempo_bpm * 1.3)  # extra beats for slow passages
    steady = render(to_sounds(notes, steady_time_map(tempo_bpm)), np.random.default_rng(seed))
    wobbly = render(to_sounds(notes, rubato_time_map(tempo_bpm, np.random.default_rng([seed, 1]))),
                    np.random.default_rng(seed))
    return steady, wobbly


def _groove_voices(timbre: str) -> dict[str, str]:
    """Role -> voice: a drum kit band, or pitched instruments only."""
    if timbre == "drums":
        return {"low": "kick", "back": "snare", "tick": "hat", "clave": "woodblock",
                "bass": "pluck_bass", "chord": "epiano"}
    return {"low": "bass", "back": "pluck", "tick": "bell", "clave": "woodblock",
            "bass": "pluck_bass", "chord": "saw_pad"}


GROOVE_BAR_DEGREES = ((0, 5), (0, 3), (5, 4))  # I-vi, I-IV, vi-V: one chord per bar


def _layered_pattern(tonic_midi: int, timbre: str, material: int, complex_rhythm: bool) -> list[Note]:
    """Two bars of a two-chord vamp, either all instruments on the beat or each in its own rhythm."""
    voices = _groove_voices(timbre)
    bar_degrees = GROOVE_BAR_DEGREES[material]
    bar_roots = [degree_to_midi(d, tonic_midi, MAJOR_SCALE) % 12 for d in bar_degrees]
    minor_bar = [d in (1, 2, 5) for d in bar_degrees]  # ii, iii, vi are minor in a major key

    def root_at(beat: float) -> int:
        return bar_roots[int(beat // 4) % 2]

    def chord_at(beat: float) -> list[int]:
        return voice_near(quality_triad(root_at(beat), minor_bar[int(beat // 4) % 2]), tonic_midi + 2)

    if complex_rhythm:
        rhythms = {
            "low": (0, 1.5, 3, 4, 5.5, 7),  # 3-3-2 tresillo
            "back": (1.25, 2.5, 5.75, 6.75),  # syncopated backbeat with ghost-like pushes
            "tick": tuple(np.arange(12) * 2 / 3),  # triplet quarters: 3 against 2
            "clave": (0, 1.5, 3, 5, 6),  # son clave 3-2
            "bass": (0, 0.75, 1.5, 2.5, 3.5, 4.75, 5.5, 6.25, 7.5),  # anticipations
            "chord": (0.5, 2.5, 3.75, 5.5, 6.25, 7.5),  # off-beat stabs
        }
    else:
        on_beat = tuple(range(8))
        rhythms = {"low": (0, 2, 4, 6), "back": (1, 3, 5, 7), "tick": on_beat, "clave": on_beat,
                   "bass": on_beat, "chord": on_beat}
    notes = []
    for role, onsets_beats in rhythms.items():
        for i, beat in enumerate(onsets_beats):
            beat = float(beat)
            velocity = 0.95 if beat % 4 == 0 else 0.75
            voice = voices[role]
            if role == "chord":
                notes += [Note(beat, 0.4, p, velocity, voice) for p in chord_at(beat)]
            elif role == "bass":
                notes.append(Note(beat, 0.4, bass_pitch(root_at(beat), tonic_midi), velocity, voice))
            elif role in ("tick", "back") and timbre != "drums":
                pitch = chord_at(beat)[i % 3] + (12 if role == "tick" else 0)
                notes.append(Note(beat, 0.3, pitch, 0.8 * velocity, voice))
            elif role == "low" and timbre != "drums":
                notes.append(Note(beat, 0.4, bass_pitch(root_at(beat), tonic_midi) - 12, velocity, voice))
            else:  # drums and the woodblock: unpitched
                notes.append(Note(beat, 0.1, 0, velocity, voice))
    return notes


def rhythm_complexity_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Several syncopated layers with 3-against-2 vs the same instruments all on the beat."""
    layered = loop(_layered_pattern(tonic_midi, timbre, material, True), 8.0, tempo_bpm)
    unison = loop(_layered_pattern(tonic_midi, timbre, material, False), 8.0, tempo_bpm)
    return render_notes(layered, tempo_bpm, seed), render_notes(unison, tempo_bpm, seed)


def _chord_track(chords: list[list[int]], bass_pcs: list[int], tonic_midi: int, timbre: str,
                 arpeggio: bool) -> list[Note]:
    """Chords two beats each (re-struck every beat for decaying timbres), a bass root, an optional arpeggio."""
    restrike = timbre in ("epiano", "pluck")
    notes = []
    for i, (chord, bass_pc) in enumerate(zip(chords, bass_pcs)):
        start = 2.0 * i
        strikes = (start, start + 1) if restrike else (start,)
        for onset_beats in strikes:
            length_beats = 0.95 if restrike else 1.9
            notes += [Note(onset_beats, length_beats, p, 0.8, timbre) for p in chord]
        notes.append(Note(start, 1.8, bass_pitch(bass_pc, tonic_midi), 0.8, "bass"))
        if arpeggio:
            upper = sorted(p + 12 for p in chord)
            notes += [Note(start + 0.5 * k, 0.45, upper[step], 0.7, "pluck")
                      for k, step in enumerate((0, 1, 2, 1))]
    return notes


def dissonance_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clusters and tritones vs consonant triads on the same roots, rhythm, register and timbre."""
    rng = np.random.default_rng(seed)
    degrees = TUNE_CHORDS[material]
    consonant, dissonant, roots = [], [], []
    for degree in degrees:
        pcs = triad_pitch_classes(degree, tonic_midi, MAJOR_SCALE)
        triad = voice_near(pcs, tonic_midi - 2)
        chord = triad + [triad[0] + 12]
        root = degree_to_midi(degree, tonic_midi, MAJOR_SCALE)
        root = min(chord, key=lambda p: (p - root) % 12)  # the voiced root's octave
        cluster = [root + x for x in DISSONANT_SETS[rng.integers(len(DISSONANT_SETS))]]
        cluster = [p + int(round(np.mean(chord) - np.mean(cluster))) for p in cluster]  # same register
        consonant.append(chord)
        dissonant.append(cluster)
        roots.append(pcs[0])
    period_beats = 2.0 * len(degrees)
    return (render_notes(loop(_chord_track(dissonant, roots, tonic_midi, timbre, False), period_beats, tempo_bpm),
                         tempo_bpm, seed),
            render_notes(loop(_chord_track(consonant, roots, tonic_midi, timbre, False), period_beats, tempo_bpm),
                         tempo_bpm, seed))


def wandering_roots(first_root: int, n_chords: int, rng: np.random.Generator) -> list[int]:
    """Roots that move by semitones, tritones and chromatic thirds, never by fourth or fifth."""
    roots = [first_root % 12]
    while len(roots) < n_chords:
        candidate = (roots[-1] + int(rng.choice([1, 3, 4, 6, 8, 9, 11]))) % 12
        if candidate not in roots[-3:]:
            roots.append(candidate)
    return roots


def tonal_stability_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A diatonic progression with cadences vs chords of the same major/minor mix modulating every chord."""
    rng = np.random.default_rng(seed)
    degrees = CADENTIAL_PROGRESSIONS[material]
    is_minor = [d in (1, 2, 5) for d in degrees]  # ii, iii, vi are minor in a major key
    diatonic_roots = [degree_to_midi(d, tonic_midi, MAJOR_SCALE) % 12 for d in degrees]
    # A new random walk for each repeat of the pattern, so the wandering never settles into a loop.
    total_beats = CLIP_S * tempo_bpm / 60.0
    n_chords = int(np.ceil(total_beats / 2.0))
    n_loop = len(degrees)
    stable_roots = [diatonic_roots[i % n_loop] for i in range(n_chords)]
    wander_roots = wandering_roots(tonic_midi, n_chords, rng)
    qualities = [is_minor[i % n_loop] for i in range(n_chords)]
    centre_midi = tonic_midi - 3

    def track(roots: list[int]) -> list[Note]:
        chords = [voice_near(quality_triad(r, m), centre_midi) for r, m in zip(roots, qualities)]
        return _chord_track(chords, roots, tonic_midi, timbre, arpeggio=True)

    return render_notes(track(stable_roots), tempo_bpm, seed), render_notes(track(wander_roots), tempo_bpm, seed)


def minorness_pair(tempo_bpm: float, tonic_midi: int, timbre: str, material: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same tune and chords in the parallel natural minor vs in major."""
    melody_voice, chord_voice = timbre.split("+")
    tune = TUNES[material]
    degrees = TUNE_CHORDS[material]
    period_beats = sum(length for _, length in tune)

    def version(scale: tuple[int, ...]) -> np.ndarray:
        melody = tune_notes(tune, tonic_midi, scale, melody_voice)
        chords = [voice_near(triad_pitch_classes(d, tonic_midi, scale), tonic_midi - 7) for d in degrees]
        roots = [degree_to_midi(d, tonic_midi, scale) % 12 for d in degrees]
        notes = melody + _chord_track(chords, roots, tonic_midi, chord_voice, arpeggio=False)
        return render_notes(loop(notes, period_beats, tempo_bpm), tempo_bpm, seed)

    return version(MINOR_SCALE), version(MAJOR_SCALE)


@dataclass(frozen=True)
class QualityProbe:
    """How to make one quality's pairs and which timbres to cycle through."""

    make_pair: Callable[..., tuple[np.ndarray, np.ndarray]]
    timbres: tuple[str, ...]


PROBES: dict[str, QualityProbe] = {
    "melodiousness": QualityProbe(melodiousness_pair, ("flute", "pluck", "epiano")),
    "articulation": QualityProbe(articulation_pair, ("organ", "saw_lead", "epiano", "pluck")),
    "rhythm_stability": QualityProbe(rhythm_stability_pair, ("drums", "epiano")),
    "rhythm_complexity": QualityProbe(rhythm_complexity_pair, ("drums", "pitched")),
    "dissonance": QualityProbe(dissonance_pair, ("organ", "saw_pad", "epiano")),
    "tonal_stability": QualityProbe(tonal_stability_pair, ("epiano", "saw_pad", "organ")),
    "minorness": QualityProbe(minorness_pair, ("epiano+saw_pad", "pluck+organ", "flute+epiano")),
}


@functools.lru_cache(maxsize=None)
def probe_pairs(quality: str, n_pairs: int = PAIRS_PER_QUALITY) -> tuple[ProbePair, ...]:
    """The probe pairs of one quality, cycling tempo, key, timbre and material (cached, read-only)."""
    probe = PROBES[quality]
    quality_index = C.MIDLEVEL_NAMES.index(quality)
    pairs = []
    for i in range(n_pairs):
        tempo_bpm = TEMPOS_BPM[i % len(TEMPOS_BPM)]
        tonic_midi = TONICS_MIDI[(i + quality_index) % len(TONICS_MIDI)]
        timbre = probe.timbres[i % len(probe.timbres)]
        # Shift the material every third pair so timbre and material do not move in lockstep.
        material = (i + i // 3) % N_MATERIALS
        more, less = probe.make_pair(tempo_bpm, tonic_midi, timbre, material, seed=1000 * quality_index + i)
        more.flags.writeable = False
        less.flags.writeable = False
        pairs.append(ProbePair(quality, tempo_bpm, tonic_midi, timbre, material, more, less))
    return tuple(pairs)


# --------------------------------------------------------------------------------------------
# Model report


def probe_report(model, qualities: tuple[str, ...] = C.MIDLEVEL_NAMES) -> dict:
    """Run the model on every probe pair.

    Args:
        model: a ``dawemo.emotion.model.EmotionModel``.
    Returns:
        quality -> {"pairs", "correct", "accuracy", "mean_difference", "differences"}, where a
        pair is correct when feature(more) > feature(less) and differences are more - less.
    """
    from dawemo.emotion.tracker import analyze_samples

    report = {}
    for quality in qualities:
        column = model.midlevel_names.index(quality)
        differences = []
        for pair in probe_pairs(quality):
            more = analyze_samples(pair.more, model).summary_midlevel[column]
            less = analyze_samples(pair.less, model).summary_midlevel[column]
            differences.append(float(more - less))
        correct = sum(d > 0 for d in differences)
        report[quality] = {
            "pairs": len(differences),
            "correct": int(correct),
            "accuracy": correct / len(differences),
            "mean_difference": float(np.mean(differences)),
            "differences": differences,
        }
    return report


def format_report(report: dict) -> str:
    """A per-quality table: pairs correct and mean difference of the feature (more - less)."""
    lines = [f"{'quality':<18} {'correct':>9} {'accuracy':>9} {'mean diff':>10}"]
    for quality, row in report.items():
        lines.append(f"{quality:<18} {row['correct']:>4}/{row['pairs']:<4} {row['accuracy']:>9.2f} "
                     f"{row['mean_difference']:>+10.3g}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Measurements for checking the synthesis itself (no model)


def frame_rms(x: np.ndarray, frame_size: int = 256, hop_size: int = 128) -> np.ndarray:
    """RMS level of each frame."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), frame_size)[::hop_size]
    return np.sqrt(np.mean(frames ** 2, axis=1))


def sustained_fraction(x: np.ndarray, threshold_db: float = -15.0) -> float:
    """Fraction of 12 ms frames within ``threshold_db`` of the loud (95th percentile) frame level."""
    rms = frame_rms(x, 256, 256)
    return float(np.mean(rms >= np.percentile(rms, 95) * 10.0 ** (threshold_db / 20.0)))


def rms_db(x: np.ndarray) -> float:
    """RMS level of a whole clip in dBFS."""
    return float(20.0 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12))


def onset_times_s(x: np.ndarray, min_rise_db: float = 6.0, min_gap_s: float = 0.07,
                  lowpass_hz: float | None = None) -> np.ndarray:
    """Energy-onset detector: peaks of the frame-to-frame log-energy rise above ``min_rise_db``.

    ``lowpass_hz`` (two one-pole passes) keeps only the low instruments: kick and bass mark the
    beats, so their onsets measure the beat without the off-beat hats.
    """
    hop_size = 128
    if lowpass_hz is not None:
        x = one_pole_lowpass(one_pole_lowpass(np.asarray(x, np.float64), lowpass_hz), lowpass_hz)
    level_db = 20.0 * np.log10(frame_rms(x, 256, hop_size) + 1e-6)
    # Rise over two frames so an attack split across a frame boundary still counts fully.
    rise_db = np.maximum(level_db[2:] - level_db[:-2], 0.0)
    gap_frames = int(min_gap_s * SAMPLE_RATE / hop_size)
    onsets, last = [], -gap_frames
    for i in np.flatnonzero(rise_db >= min_rise_db):
        window = rise_db[max(0, i - gap_frames // 2): i + gap_frames // 2 + 1]
        if rise_db[i] == window.max() and i - last >= gap_frames:
            onsets.append(i)
            last = i
    return (np.array(onsets) + 1) * hop_size / SAMPLE_RATE


def pitch_track_midi(x: np.ndarray, frame_size: int = 2048, hop_size: int = 512,
                     fmin_hz: float = 100.0, fmax_hz: float = 1100.0) -> np.ndarray:
    """Per-frame pitch of a monophonic clip from the autocorrelation peak (NaN in quiet frames)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), frame_size)[::hop_size]
    frames = frames * np.hanning(frame_size)
    spectrum = np.fft.rfft(frames, 2 * frame_size, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame_size]
    lag_min, lag_max = int(SAMPLE_RATE / fmax_hz), int(SAMPLE_RATE / fmin_hz)
    candidates = autocorr[:, lag_min:lag_max]
    # The first lag reaching 90 % of the best peak, climbed to its local maximum: the best peak
    # alone often sits at twice the period (an octave too low).
    lag = np.argmax(candidates >= 0.9 * candidates.max(axis=1, keepdims=True), axis=1)
    rows = np.arange(len(lag))
    for _ in range(lag_max - lag_min):
        climbing = (lag + 1 < candidates.shape[1]) & (candidates[rows, np.minimum(lag + 1, candidates.shape[1] - 1)]
                                                     > candidates[rows, lag])
        if not climbing.any():
            break
        lag = lag + climbing
    lag = lag + lag_min
    pitch = 69.0 + 12.0 * np.log2(SAMPLE_RATE / lag / 440.0)
    rms = np.sqrt(np.maximum(autocorr[:, 0], 0.0))
    voiced = (autocorr[rows, lag] > 0.5 * autocorr[:, 0]) & (rms > 0.1 * rms.max())
    return np.where(voiced, pitch, np.nan)


def median_pitch_step(x: np.ndarray, min_step: float = 0.7) -> float:
    """Median size in semitones of the pitch changes of a monophonic clip (the median shrugs off
    the tracker's occasional octave error)."""
    steps = np.abs(np.diff(pitch_track_midi(x)))
    steps = steps[np.isfinite(steps) & (steps >= min_step)]
    return float(np.median(steps)) if len(steps) else 0.0


def interval_cv(onsets_s: np.ndarray) -> float:
    """Coefficient of variation of inter-onset intervals."""
    intervals_s = np.diff(onsets_s)
    return float(np.std(intervals_s) / np.mean(intervals_s))


# Krumhansl-Kessler key profiles, C major and C minor.
KEY_PROFILE_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KEY_PROFILE_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def chroma(x: np.ndarray, frame_size: int = 4096, fmin_hz: float = 60.0, fmax_hz: float = 1000.0) -> np.ndarray:
    """Clip-level pitch-class profile from STFT magnitudes between ``fmin_hz`` and ``fmax_hz``."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), frame_size)[:: frame_size // 2]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(frame_size), axis=1)).sum(axis=0)
    freqs_hz = np.fft.rfftfreq(frame_size, 1.0 / SAMPLE_RATE)
    keep = (freqs_hz >= fmin_hz) & (freqs_hz <= fmax_hz)
    pitch_class = np.round(12.0 * np.log2(freqs_hz[keep] / 440.0) + 69).astype(int) % 12
    profile = np.bincount(pitch_class, weights=magnitude[keep], minlength=12)
    return profile / profile.sum()


def key_correlations(profile: np.ndarray) -> np.ndarray:
    """(2, 12) correlation of a chroma with the major (row 0) and minor (row 1) profile of each tonic."""
    return np.array([[np.corrcoef(profile, np.roll(template, tonic))[0, 1] for tonic in range(12)]
                     for template in (KEY_PROFILE_MAJOR, KEY_PROFILE_MINOR)])


def key_clarity(x: np.ndarray) -> float:
    """Best correlation with any of the 24 key profiles: high when one key is clear."""
    return float(key_correlations(chroma(x)).max())


def semitone_clash(x: np.ndarray) -> float:
    """How much chroma energy sits next to a semitone neighbour (clusters score high)."""
    profile = chroma(x)
    return float(np.sum(profile * np.roll(profile, 1)) / np.sum(profile ** 2))


def write_probe_wavs(directory: str | Path, qualities: tuple[str, ...] = C.MIDLEVEL_NAMES,
                     pair_index: int = 0) -> list[Path]:
    """Write one pair per quality as ``<quality>_<index>_{more,less}.wav`` for listening."""
    from pedalboard.io import AudioFile

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for quality in qualities:
        pair = probe_pairs(quality)[pair_index]
        for side, samples in (("more", pair.more), ("less", pair.less)):
            path = directory / f"{quality}_{pair_index}_{side}.wav"
            with AudioFile(str(path), "w", SAMPLE_RATE, 1) as f:
                f.write(samples[None, :])
            paths.append(path)
    return paths
