"""Procedurally generated contrast pairs that supervise the mid-level head.

No human mid-level ratings are available, so each pair holds two 4 s clips that share tempo,
key centre, instruments, effects, register and peak level and differ in ONE mid-level quality,
known by construction (``more`` has more of it). Music is composed in scale degrees, rendered
with FluidSynth (General MIDI soundfont), then post-processed with pedalboard effects.

Speed: FluidSynth is started once per batch of clips. Each clip gets a slot in one long MIDI
file; at the end of a slot every channel gets "all sound off", which stops voices at once, so
slots need no silence for release tails (reverb is added afterwards by pedalboard).

Layout of ``out_dir``: ``manifest.csv`` plus ``clips/<quality>/<pair_id>_{more,less}.wav``
(mono float32 WAV, 22050 Hz, 88200 samples).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dawemo import constants as C

SOUNDFONT_PATH = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEFAULT_OUT_DIR = Path("cache") / "midlevel_corpus"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("pair_id", "quality", "more_path", "less_path", "tempo_bpm", "key", "mode",
                    "meter", "program_names", "variant", "effects", "peak_dbfs", "seed")

SAMPLE_RATE = C.SAMPLE_RATE
CLIP_S = 4.0
CLIP_SAMPLES = int(round(CLIP_S * SAMPLE_RATE))  # 88200
PRE_ROLL_S = 0.5  # music (and reverb) already running when the clip starts, as in an excerpt
LEAD_IN_S = 0.04  # program changes settle before the first note (882 samples, a whole ms count)
STOP_MARGIN_S = 0.05  # notes sound a little past the clip end before "all sound off"
SLOT_GAP_S = 0.1  # silence between slots (voices are already stopped)
# FluidSynth dispatches MIDI events at 64-sample block starts and counts time in whole ms. Slots
# that start on both grids (lcm(64, 441 samples = 20 ms) = 28224 samples) time their notes the
# same whatever their position, so a clip hardly depends on the batch it was rendered in (what
# differs, from voices reused inside FluidSynth, is below -35 dB of the clip).
SLOT_ALIGN_SAMPLES = 28224
SLOT_SAMPLES = math.ceil((LEAD_IN_S + PRE_ROLL_S + CLIP_S + STOP_MARGIN_S + SLOT_GAP_S) * SAMPLE_RATE
                         / SLOT_ALIGN_SAMPLES) * SLOT_ALIGN_SAMPLES
SLOT_S = SLOT_SAMPLES / SAMPLE_RATE  # 5.12 s
# The very first note FluidSynth plays starts a few samples late; slot 0 plays a warm-up note
# so that every clip renders the same in any slot.
FIRST_SLOT = 1
MIDI_TICKS_PER_S = 1000  # 500 ticks per beat at 120 BPM: one tick per ms
CLIPS_PER_BATCH = 96  # one FluidSynth run; ~80 MB of float stereo audio

PARTS = ("melody", "chords", "bass", "double", "layer", "drums")
CHANNELS = {"melody": 0, "chords": 1, "bass": 2, "double": 3, "layer": 4, "drums": 9}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)

# General MIDI programs (0-based) with their standard names.
GM_NAMES = {
    0: "Acoustic Grand Piano", 1: "Bright Acoustic Piano", 4: "Electric Piano 1",
    5: "Electric Piano 2", 6: "Harpsichord", 11: "Vibraphone", 12: "Marimba",
    16: "Drawbar Organ", 19: "Church Organ", 21: "Accordion", 22: "Harmonica",
    24: "Acoustic Guitar (nylon)", 25: "Acoustic Guitar (steel)", 26: "Electric Guitar (jazz)",
    27: "Electric Guitar (clean)", 32: "Acoustic Bass", 33: "Electric Bass (finger)",
    34: "Electric Bass (pick)", 35: "Fretless Bass", 38: "Synth Bass 1", 40: "Violin", 41: "Viola",
    42: "Cello", 43: "Contrabass", 46: "Orchestral Harp", 48: "String Ensemble 1",
    49: "String Ensemble 2", 50: "Synth Strings 1", 52: "Choir Aahs", 53: "Voice Oohs",
    54: "Synth Voice", 56: "Trumpet", 57: "Trombone", 58: "Tuba", 60: "French Horn",
    61: "Brass Section", 64: "Soprano Sax", 65: "Alto Sax", 66: "Tenor Sax", 68: "Oboe",
    70: "Bassoon", 71: "Clarinet", 73: "Flute", 75: "Pan Flute", 80: "Lead 1 (square)",
    81: "Lead 2 (sawtooth)", 88: "Pad 1 (new age)", 89: "Pad 2 (warm)", 90: "Pad 3 (polysynth)",
    91: "Pad 4 (choir)",
}
MELODY_PROGRAMS = (0, 1, 4, 5, 6, 11, 12, 16, 21, 22, 24, 26, 27, 40, 41, 53, 54, 56, 60,
                   64, 65, 66, 68, 71, 73, 75, 80, 81)
CHORD_PROGRAMS = (0, 1, 4, 5, 6, 16, 19, 21, 24, 25, 27, 46, 48, 49, 50, 52, 61, 88, 89, 90, 91)
BASS_PROGRAMS = (32, 33, 34, 35, 38, 42, 43, 58, 70, 0)
# Measured on FluidR3_GM (one note at velocity 100): attack to half amplitude >= 150 ms.
# Slow attacks blur short notes and onsets: kept out of staccato and rhythm-defining parts.
SLOW_ATTACK_PROGRAMS = frozenset({19, 43, 49, 52, 89, 90})
# Release (to -30 dB after note-off) >= 400 ms: staccato cannot be heard on them.
LONG_RELEASE_PROGRAMS = frozenset({19, 24, 25, 46, 48, 49, 50, 52, 54, 88, 89, 90, 91, 12})
# Peak level (dBFS) of that note, rounded: louder programs are turned down with CC7 so that
# no part buries the others just because its samples are hot.
PROGRAM_LEVEL_DB = {
    0: -35.5, 1: -36, 4: -30, 5: -30.5, 6: -31.5, 11: -32, 12: -28.5, 16: -31, 19: -30, 21: -32.5,
    22: -34, 24: -27.5, 25: -28.5, 26: -29, 27: -33, 32: -25.5, 33: -27.5, 34: -29.5, 35: -27.5,
    38: -29.5, 40: -29, 41: -32, 42: -32, 43: -29.5, 46: -27, 48: -30, 49: -27, 50: -28.5, 52: -33,
    53: -25, 54: -30, 56: -33, 57: -28, 58: -29, 60: -26, 61: -30.5, 64: -32, 65: -29.5, 66: -28.5,
    68: -30.5, 70: -30, 71: -28, 73: -31.5, 75: -28, 80: -29, 81: -31, 88: -33.5, 89: -31,
    90: -27.5, 91: -30,
}
QUIETEST_PROGRAM_DB = min(PROGRAM_LEVEL_DB.values())
# Voice-like or wind/string leads make the most singable melodies.
SINGING_PROGRAMS = (53, 54, 40, 41, 56, 60, 64, 65, 66, 68, 71, 73, 75, 80, 22, 21)
DRUM_KITS = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808", 32: "Jazz",
             40: "Brush", 48: "Orchestra"}

KICK, SIDE_STICK, SNARE, CLOSED_HAT = 36, 37, 38, 42  # GM drum keys (channel 10)
HIGH_CONGA, LOW_CONGA, CLAVES = 63, 64, 75


@dataclass(frozen=True)
class Note:
    """One note of a score in beats; pitched parts use scale degrees, drums a GM drum key.

    Args:
        degree: scale step above the pair's tonic (7 = an octave up), realised per region.
        chroma: semitones added after realisation (clusters, dissonant doublings).
        shift_beats: timing deviation added to the onset (rhythm instability).
    """

    part: str
    onset_beats: float
    duration_beats: float
    velocity: int
    degree: int = 0
    chroma: int = 0
    drum: int | None = None
    shift_beats: float = 0.0


@dataclass(frozen=True)
class Region:
    """A stretch with one chord: scale-degree root, local tonic offset and scale used to realise."""

    start_beats: float
    end_beats: float
    root_degree: int
    offset_semitones: int
    scale: tuple[int, ...]


@dataclass
class Score:
    """One clip before rendering: notes, their tonal regions and timing."""

    notes: list[Note]
    regions: list[Region]
    beat_times_s: np.ndarray  # onset time of every integer beat (a tempo map)
    bend_cents: dict[str, float] = field(default_factory=dict)
    drive_db: float = 0.0  # distortion on the finished mix ("noisier timbre")


@dataclass(frozen=True)
class Style:
    """Everything the two clips of a pair share."""

    tempo_bpm: float
    tonic_pc: int
    minor: bool
    raised_leading_tone: bool
    beats_per_bar: int
    beats_per_chord: int
    n_beats: int
    tonic_midi: int
    melody_degree: int  # centre of the melody range, in degrees above tonic_midi
    chord_degree: int
    bass_degree: int
    programs: dict  # part -> GM program
    drum_kit: int | None
    has_bass: bool
    accompaniment: str
    bass_pattern: str
    drum_pattern: str
    velocities: dict  # part -> MIDI velocity

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm


@dataclass(frozen=True)
class Effects:
    """pedalboard settings shared by both clips of a pair."""

    room_size: float
    damping: float
    wet_level: float
    dry_level: float
    chorus: tuple[float, float, float] | None  # rate_hz, depth, mix
    compressor: tuple[float, float] | None  # threshold_db, ratio
    lowpass_hz: float | None
    highpass_hz: float | None


@dataclass
class PairPlan:
    """Both clips of one pair with everything they share."""

    pair_id: str
    quality: str
    style: Style
    more: Score
    less: Score
    variant: str
    effects: Effects
    peak_dbfs: float


@dataclass(frozen=True)
class PairRecord:
    """One manifest row; paths are absolute."""

    pair_id: str
    quality: str
    more_path: Path
    less_path: Path
    tempo_bpm: float
    key: str
    mode: str
    meter: str
    program_names: str
    variant: str
    effects: str
    peak_dbfs: float
    seed: int


# --------------------------------------------------------------------------------------------
# Style and harmony


def choose_program(rng: np.random.Generator, options, exclude=()) -> int:
    """A random GM program from ``options`` minus ``exclude`` (falls back to all options)."""
    allowed = [p for p in options if p not in set(exclude)] or list(options)
    return int(rng.choice(allowed))


def choose_programs(rng: np.random.Generator, quality: str) -> dict:
    """Melody, chord and bass programs suited to the contrast of ``quality``."""
    avoid = set()
    if quality in ("articulation", "rhythm_stability", "rhythm_complexity"):
        avoid = SLOW_ATTACK_PROGRAMS | (LONG_RELEASE_PROGRAMS if quality == "articulation" else set())
    melody_options = SINGING_PROGRAMS if quality == "melodiousness" and rng.random() < 0.7 else MELODY_PROGRAMS
    melody = choose_program(rng, melody_options, avoid)
    chords = choose_program(rng, CHORD_PROGRAMS, avoid | {melody})
    bass = choose_program(rng, BASS_PROGRAMS, avoid)
    return {"melody": melody, "chords": chords, "bass": bass, "double": melody, "layer": chords}


def degree_near(pitch_midi: float, tonic_midi: int) -> int:
    """The scale degree whose pitch is closest to ``pitch_midi``."""
    return int(round((pitch_midi - tonic_midi) * 7 / 12))


def choose_style(rng: np.random.Generator, quality: str) -> Style:
    """Random tempo, key, meter, register, instruments and texture for one pair."""
    tempo_bpm = float(rng.integers(60, 171))
    rhythmic = quality in ("rhythm_stability", "rhythm_complexity")
    beats_per_bar = 3 if (not rhythmic and rng.random() < 0.2) else 4
    if beats_per_bar == 3:
        beats_per_chord = 1 if tempo_bpm < 100 else 3
    else:
        beats_per_chord = 1 if tempo_bpm < 80 else 2
    music_s = PRE_ROLL_S + CLIP_S + 0.5
    n_beats = int(math.ceil(music_s / (60.0 / tempo_bpm) / beats_per_bar)) * beats_per_bar
    tonic_pc = int(rng.integers(12))
    tonic_midi = 48 + tonic_pc
    drum_probability = {"rhythm_stability": 0.75, "rhythm_complexity": 0.75, "articulation": 0.3}
    has_drums = rng.random() < drum_probability.get(quality, 0.4)
    accompaniment_options = {
        "articulation": ("repeated", "arpeggio", "alberti", "offbeat"),
        "rhythm_stability": ("repeated", "offbeat"),
        "dissonance": ("block", "repeated", "offbeat"),
        "rhythm_complexity": ("repeated",),  # replaced by the contrast itself
    }.get(quality, ("block", "repeated", "arpeggio", "alberti", "offbeat"))
    programs = choose_programs(rng, quality)
    if programs["chords"] in SLOW_ATTACK_PROGRAMS:  # pads and slow strings hold their chords
        accompaniment_options = ("block",)
    bass_options = ("held", "beats", "root_fifth", "octave_eighths")
    if quality == "rhythm_stability":
        bass_options = ("beats", "root_fifth")  # march-like
    elif programs["bass"] in SLOW_ATTACK_PROGRAMS:
        bass_options = ("held",)
    return Style(
        tempo_bpm=tempo_bpm,
        tonic_pc=tonic_pc,
        minor=quality != "minorness" and rng.random() < 0.3,
        raised_leading_tone=bool(rng.random() < 0.7),
        beats_per_bar=beats_per_bar,
        beats_per_chord=beats_per_chord,
        n_beats=n_beats,
        tonic_midi=tonic_midi,
        melody_degree=degree_near(rng.integers(60, 81), tonic_midi),
        chord_degree=degree_near(rng.integers(53, 63), tonic_midi),
        bass_degree=degree_near(rng.integers(36, 46), tonic_midi),
        programs=programs,
        drum_kit=int(rng.choice(list(DRUM_KITS))) if has_drums else None,
        has_bass=quality == "rhythm_stability" or bool(rng.random() < 0.8),
        accompaniment=str(rng.choice(accompaniment_options)),
        bass_pattern=str(rng.choice(bass_options)),
        drum_pattern="march" if quality == "rhythm_stability" and rng.random() < 0.6 else "groove",
        velocities={"melody": int(rng.integers(85, 111)), "chords": int(rng.integers(55, 81)),
                    "bass": int(rng.integers(70, 96)), "drums": int(rng.integers(60, 101))},
    )


DIATONIC_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (5, 3, 0, 4), (0, 4, 5, 3),
                         (1, 4, 0, 0), (0, 2, 3, 4), (0, 3, 5, 4), (0, 5, 1, 4), (0, 4, 0, 3))
CADENTIAL_PROGRESSIONS = ((0, 3, 4, 0), (0, 1, 4, 0), (0, 3, 4, 0, 0, 4, 0), (0, 4, 0, 3, 4, 0))


def progression(rng: np.random.Generator, style: Style, cadential: bool) -> list[int]:
    """Chord root degrees, one per chord span, cycling a stock progression."""
    bank = CADENTIAL_PROGRESSIONS if cadential else DIATONIC_PROGRESSIONS
    cycle = bank[int(rng.integers(len(bank)))]
    n_chords = int(math.ceil(style.n_beats / style.beats_per_chord))
    return [cycle[i % len(cycle)] for i in range(n_chords)]


def mode_scale(style: Style, root_degree: int, minor: bool) -> tuple[int, ...]:
    """The scale a chord region realises degrees in (harmonic minor over V and vii in minor)."""
    if not minor:
        return MAJOR
    if style.raised_leading_tone and root_degree % 7 in (4, 6):
        return HARMONIC_MINOR
    return NATURAL_MINOR


def diatonic_regions(style: Style, roots: list[int], minor: bool) -> list[Region]:
    """One region per chord, all in the pair's key."""
    span = style.beats_per_chord
    return [Region(i * span, (i + 1) * span, r, 0, mode_scale(style, r, minor)) for i, r in enumerate(roots)]


# Pitch-class sets of every major and harmonic-minor key: what "one key" can hold.
KEY_COLLECTIONS = [frozenset((tonic + step) % 12 for step in scale)
                   for scale in (MAJOR, HARMONIC_MINOR) for tonic in range(12)]


def triad_pitch_classes(root_degree: int, offset_semitones: int, scale: tuple[int, ...]) -> frozenset:
    """Pitch classes (relative to the pair's tonic) of the triad on ``root_degree``."""
    return frozenset((offset_semitones + scale[(root_degree + i) % 7]) % 12 for i in (0, 2, 4))


def outside_one_key(pitch_classes: frozenset) -> bool:
    """True when no major or harmonic-minor key holds all of ``pitch_classes``."""
    return not any(pitch_classes <= key for key in KEY_COLLECTIONS)


def wandering_regions(rng: np.random.Generator, regions: list[Region]) -> list[Region]:
    """The same chords, each moved to another key so that no two neighbours share a key.

    Every chord keeps its function in its own local key (the melody follows that key), but
    each pair of neighbouring chords holds pitch classes that no major or harmonic-minor key
    contains: a chromatic wander with no stable tonic.
    """
    moved, previous = [], frozenset()
    for region in regions:
        options = [(o, s) for o in range(12) for s in (MAJOR, NATURAL_MINOR)]
        for i in rng.permutation(len(options)):
            offset, scale = options[int(i)]
            chord = triad_pitch_classes(region.root_degree, offset, scale)
            if not previous or outside_one_key(previous | chord):
                break
        centred = offset - 12 if offset > 6 else offset  # stay near the original register
        moved.append(replace(region, offset_semitones=centred, scale=scale))
        previous = chord
    return moved


def region_at(regions: list[Region], beats: float) -> Region:
    """The region sounding at ``beats`` (the last one past the end)."""
    for region in regions:
        if beats < region.end_beats:
            return region
    return regions[-1]


def chord_tones(root_degree: int) -> tuple[int, int, int]:
    """Degrees (mod 7) of the triad on ``root_degree``."""
    return (root_degree % 7, (root_degree + 2) % 7, (root_degree + 4) % 7)


def nearest_octave(degree: int, centre: int) -> int:
    """``degree`` moved by octaves (7 steps) to lie closest to ``centre``."""
    return degree + 7 * int(round((centre - degree) / 7))


def voicing(root_degree: int, centre: int) -> list[int]:
    """Close triad around ``centre`` plus the root an octave above its lowest root."""
    tones = sorted(nearest_octave(t, centre) for t in chord_tones(root_degree))
    root = min(t for t in tones if t % 7 == root_degree % 7)
    return sorted(set(tones + [root + 7]))


# --------------------------------------------------------------------------------------------
# Melody

MELODY_PATTERNS = {
    4: ((1, 1, 1, 1), (1, 1, 2), (2, 1, 1), (1, .5, .5, 1, 1), (.5, .5, 1, .5, .5, 1),
        (1.5, .5, 1, 1), (1, 1, 1.5, .5), (.5,) * 8, (2, 2), (.5, .5, .5, .5, 1, 1)),
    3: ((1, 1, 1), (2, 1), (1, .5, .5, 1), (1.5, .5, 1), (.5,) * 6, (1, 2)),
}
SYNCOPATED_PATTERNS = ((.5, 1, 1, 1, .5), (.75, .75, .5, .75, .75, .5), (1.5, 1.5, 1),
                       (.5, 1, .5, .5, 1, .5), (.25, .5, .25, .5, 1, .5, 1), (.75, .75, 1, .5, 1))


def fitting_patterns(patterns, beat_s: float, min_note_s: float, max_note_s: float):
    """Patterns whose notes are neither too fast to hear nor too slow to feel like a melody."""
    fit = [p for p in patterns if min(p) * beat_s >= min_note_s and max(p) * beat_s <= max_note_s]
    return fit or list(patterns)


def phrase_rhythm(rng: np.random.Generator, style: Style, patterns) -> list[tuple[float, float]]:
    """(onset, duration) in beats over the whole clip: bar rhythms in an A A B A phrase."""
    a, b = (patterns[int(i)] for i in rng.integers(len(patterns), size=2))
    plan = (a, a, b, a)
    notes = []
    for bar in range(style.n_beats // style.beats_per_bar):
        onset = bar * style.beats_per_bar
        for duration in plan[bar % 4]:
            notes.append((float(onset), float(duration)))
            onset += duration
    return notes


def snap_to_chord(degree: int, previous: int, root_degree: int) -> int:
    """The chord tone within a step of ``degree``, preferring the one closest to ``previous``."""
    candidates = [d for d in (degree, degree - 1, degree + 1) if d % 7 in chord_tones(root_degree)]
    return min(candidates, key=lambda d: (abs(d - degree), abs(d - previous)))


def stepwise_degrees(rng: np.random.Generator, onsets: list[float], regions: list[Region],
                     centre: int) -> list[int]:
    """A singable line: mostly steps, an arch contour, chord tones on strong beats, one octave range."""
    degree = nearest_octave(regions[0].root_degree + 2 * int(rng.integers(3)), centre)
    degrees = [degree]
    steps = np.array([-2, -1, 0, 1, 2])
    for i, onset in enumerate(onsets[1:], start=1):
        rising = i < len(onsets) / 2
        weights = np.array([.1, .3, .1, .4, .1]) if rising else np.array([.1, .4, .1, .3, .1])
        step = int(rng.choice(steps, p=weights))
        if rng.random() < 0.08:  # an occasional leap of a fourth, filled in by the next steps
            step = int(rng.choice((-3, 3)))
        candidate = degree + step
        if abs(candidate - centre) > 5:
            candidate = degree - step
        region = region_at(regions, onset)
        if float(onset).is_integer() and (onset == region.start_beats or int(onset) % 2 == 0):
            candidate = snap_to_chord(candidate, degree, region.root_degree)
        degree = candidate
        degrees.append(degree)
    return degrees


def leaping_degrees(rng: np.random.Generator, n_notes: int, centre: int) -> list[int]:
    """An unsingable line: every interval a sixth or more, direction at random, a 3-octave range."""
    degree = centre + int(rng.integers(-3, 4))
    degrees = [degree]
    for _ in range(n_notes - 1):
        step = int(rng.integers(5, 12)) * int(rng.choice((-1, 1)))
        if abs(degree + step - centre) > 10:
            step = -step
        degree += step
        degrees.append(degree)
    return degrees


def erratic_rhythm(rng: np.random.Generator, style: Style, n_beats: int) -> list[tuple[float, float]]:
    """Irregular note values with no repeating bar pattern."""
    values = [v for v in (.25, .5, .75, 1, 1.5, 2) if 0.1 <= v * style.beat_s <= 1.6] or [1.0]
    notes, onset = [], 0.0
    while onset < n_beats:
        duration = float(rng.choice(values))
        notes.append((onset, duration))
        onset += duration
    return notes


def melody_notes(rhythm, degrees, style: Style, part: str = "melody") -> list[Note]:
    """Melody notes with a small accent on downbeats."""
    velocity = style.velocities["melody"]
    notes = []
    for (onset, duration), degree in zip(rhythm, degrees):
        accent = 8 if onset % style.beats_per_bar == 0 else 0
        notes.append(Note(part, onset, duration, velocity + accent - 4, degree))
    return notes


def held_tones(regions: list[Region], centre: int, velocity: int) -> list[Note]:
    """No melody: one sustained chord tone per chord, moving as little as possible."""
    notes, previous = [], centre
    for region in regions:
        options = [nearest_octave(t, previous) for t in chord_tones(region.root_degree)]
        previous = min(options, key=lambda d: abs(d - previous))
        notes.append(Note("melody", region.start_beats, region.end_beats - region.start_beats,
                          velocity, previous))
    return notes


# --------------------------------------------------------------------------------------------
# Accompaniment, bass, drums


def grid(start: float, end: float, step: float, offsets=((0.0, None),)) -> list[tuple[float, float | None]]:
    """(onset, duration) of ``offsets`` repeated every ``step`` beats inside [start, end)."""
    out = []
    for base in np.arange(start, end - 1e-9, step):
        out += [(float(base + o), d) for o, d in offsets if base + o < end - 1e-9]
    return out


TRESILLO = ((0.0, .75), (.75, .75), (1.5, .5))  # 3+3+2 sixteenths over two beats
ARPEGGIO_ORDERS = {"arpeggio": (0, 1, 2, 3, 2, 1), "alberti": (0, 2, 1, 2), "triplets": (0, 1, 2, 3, 2, 1)}


def chord_onsets(style: Style, regions: list[Region], pattern: str) -> list[tuple[float, float, int | None]]:
    """(onset, duration, voice index or None for the whole chord) over the clip."""
    end = float(style.n_beats)
    if pattern == "block":
        return [(r.start_beats, r.end_beats - r.start_beats, None) for r in regions]
    if pattern == "repeated":
        return [(t, 1.0, None) for t, _ in grid(0, end, 1.0)]
    if pattern == "offbeat":  # "oom-pah": the chord between the beats
        return [(t, 0.5, None) for t, _ in grid(0.5, end, 1.0)]
    if pattern == "tresillo":
        return [(t, d, None) for t, d in grid(0, end, 2.0, TRESILLO)]
    if pattern not in ARPEGGIO_ORDERS:
        raise ValueError(f"unknown accompaniment pattern {pattern!r}")
    step = 1 / 3 if pattern == "triplets" else 0.5  # triplets: three against the melody's two
    order = ARPEGGIO_ORDERS[pattern]
    return [(t, step, order[i % len(order)]) for i, (t, _) in enumerate(grid(0, end, step))]


def accompaniment(style: Style, regions: list[Region], pattern: str, part: str = "chords") -> list[Note]:
    """Chord notes in ``pattern`` voiced around the chord register."""
    notes = []
    for onset, duration, which in chord_onsets(style, regions, pattern):
        voices = voicing(region_at(regions, onset).root_degree, style.chord_degree)
        chosen = voices if which is None else [voices[min(which, len(voices) - 1)]]
        accent = 6 if onset % style.beats_per_bar == 0 else 0
        notes += [Note(part, onset, duration, style.velocities["chords"] + accent, d) for d in chosen]
    return notes


BASS_PATTERNS = {  # offsets (beats, duration, degrees above the root) repeated every `step` beats
    "beats": (1.0, ((0.0, 1.0, 0),)),
    "root_fifth": (2.0, ((0.0, 1.0, 0), (1.0, 1.0, 4))),
    "octave_eighths": (1.0, ((0.0, 0.5, 0), (0.5, 0.5, 7))),
    "tresillo": (2.0, ((0.0, .75, 0), (.75, .75, 4), (1.5, .5, 0))),
}


def bass_line(style: Style, regions: list[Region], pattern: str) -> list[Note]:
    """Root-based bass in ``pattern`` ("held" or a BASS_PATTERNS name)."""
    velocity = style.velocities["bass"]
    if pattern == "held":
        return [Note("bass", r.start_beats, r.end_beats - r.start_beats, velocity,
                     nearest_octave(r.root_degree, style.bass_degree)) for r in regions]
    step, offsets = BASS_PATTERNS[pattern]
    notes = []
    for base in np.arange(0, style.n_beats, step):
        for offset, duration, interval in offsets:
            onset = float(base + offset)
            root = nearest_octave(region_at(regions, onset).root_degree, style.bass_degree)
            notes.append(Note("bass", onset, duration, velocity, root + interval))
    return notes


# Per bar: (position in beats, drum key, velocity scale).
DRUM_PATTERNS = {
    ("groove", 4): [(0, KICK, 1), (2, KICK, .9), (1, SNARE, .9), (3, SNARE, .9)]
    + [(t, CLOSED_HAT, .6 if t % 1 else .75) for t in np.arange(0, 4, .5)],
    ("groove", 3): [(0, KICK, 1), (1, SIDE_STICK, .7), (2, SIDE_STICK, .7)]
    + [(t, CLOSED_HAT, .6) for t in np.arange(0, 3, .5)],
    ("march", 4): [(t, KICK, 1 if t in (0, 2) else .85) for t in range(4)]
    + [(1, SNARE, .95), (3, SNARE, .95), (3.5, SNARE, .55)] + [(t, CLOSED_HAT, .6) for t in range(4)],
    ("simple", 4): [(t, KICK, 1) for t in range(4)],
    ("complex", 4): [(0, KICK, 1), (.75, KICK, .8), (2.5, KICK, .9), (3.25, KICK, .7),
                     (1, SNARE, .95), (3, SNARE, .95), (1.75, SNARE, .35), (2.25, SNARE, .35), (3.5, SNARE, .4)]
    + [(t, CLOSED_HAT, .75 if t % 1 == 0 else .45) for t in np.arange(0, 4, .25)]
    + [(t, CLAVES, .7) for t in np.arange(0, 4, 2 / 3)]  # quarter triplets: 3 against 2 beats
    + [(t, HIGH_CONGA if i % 2 else LOW_CONGA, .6) for i, t in enumerate((.5, 1.25, 2, 2.75, 3.5))],
}


def drum_notes(style: Style, pattern: str) -> list[Note]:
    """GM drum hits for the whole clip."""
    hits = DRUM_PATTERNS.get((pattern, style.beats_per_bar)) or DRUM_PATTERNS[(pattern, 4)]
    notes = []
    for bar_start in range(0, style.n_beats, style.beats_per_bar):
        for position, key, scale in hits:
            if position < style.beats_per_bar:
                velocity = int(round(style.velocities["drums"] * scale))
                notes.append(Note("drums", float(bar_start + position), 0.2, velocity, drum=key))
    return notes


# --------------------------------------------------------------------------------------------
# Pairs, one builder per quality


def humanise_velocities(rng: np.random.Generator, notes: list[Note]) -> list[Note]:
    """Small velocity variation, drawn once so both clips of a pair share it."""
    jitter = rng.integers(-5, 6, size=len(notes))
    return [replace(n, velocity=int(np.clip(n.velocity + j, 1, 127))) for n, j in zip(notes, jitter)]


def common_parts(rng: np.random.Generator, style: Style, regions: list[Region]) -> list[Note]:
    """Melody, accompaniment, bass and drums as the style asks (all in degrees)."""
    patterns = fitting_patterns(MELODY_PATTERNS[style.beats_per_bar], style.beat_s, 0.14, 1.6)
    rhythm = phrase_rhythm(rng, style, patterns)
    degrees = stepwise_degrees(rng, [o for o, _ in rhythm], regions, style.melody_degree)
    notes = melody_notes(rhythm, degrees, style)
    notes += accompaniment(style, regions, style.accompaniment)
    if style.has_bass:
        notes += bass_line(style, regions, style.bass_pattern)
    if style.drum_kit is not None:
        notes += drum_notes(style, style.drum_pattern)
    return humanise_velocities(rng, notes)


def straight_beat_times(style: Style) -> np.ndarray:
    """Beat onsets at a constant tempo."""
    return np.arange(style.n_beats + 8) * style.beat_s


def drifting_beat_times(rng: np.random.Generator, style: Style) -> np.ndarray:
    """Beat onsets with a wandering tempo and hesitations, same average tempo."""
    n = style.n_beats + 8
    beats = np.arange(n)
    depth = rng.uniform(0.15, 0.3)
    drift = np.zeros(n)
    for _ in range(2):  # slow swells of the tempo
        period_beats = rng.uniform(2.0, 6.0)
        drift += depth * np.sin(2 * np.pi * beats / period_beats + rng.uniform(0, 2 * np.pi))
    drift += rng.normal(0, rng.uniform(0.05, 0.12), size=n)
    hesitation = (rng.random(n) < 0.15) * rng.uniform(0.25, 0.6, size=n)
    durations = np.exp(drift) * (1 + hesitation)
    durations *= style.beat_s / durations.mean()
    return np.concatenate([[0.0], np.cumsum(durations)[:-1]])


def jitter_onsets(rng: np.random.Generator, notes: list[Note], depth_beats: float) -> list[Note]:
    """Independent timing error per part and onset (chord notes stay together)."""
    shifts: dict = {}
    out = []
    for note in notes:
        key = (note.part, note.onset_beats)
        if key not in shifts:
            shifts[key] = float(np.clip(rng.normal(0, depth_beats), -2.5 * depth_beats, 2.5 * depth_beats))
        out.append(replace(note, shift_beats=shifts[key]))
    return out


def next_onsets(notes: list[Note], end_beats: float) -> dict:
    """For each (part, onset), the next onset of the same part (or ``end_beats``)."""
    by_part: dict = {}
    for note in notes:
        by_part.setdefault(note.part, set()).add(note.onset_beats)
    following = {}
    for part, onsets in by_part.items():
        ordered = sorted(onsets) + [end_beats]
        following.update({(part, a): b for a, b in zip(ordered, ordered[1:])})
    return following


def articulate(notes: list[Note], style: Style, staccato_s: float | None) -> list[Note]:
    """Staccato (short notes) when ``staccato_s`` is given, else legato (held to the next onset)."""
    following = next_onsets(notes, float(style.n_beats))
    out = []
    for note in notes:
        if note.part == "drums":
            out.append(note)
            continue
        gap = following[(note.part, note.onset_beats)] - note.onset_beats
        if staccato_s is None:
            duration = gap + 0.05  # a slight overlap makes the line connected
        else:
            duration = min(staccato_s / style.beat_s, 0.35 * gap)
        out.append(replace(note, duration_beats=duration))
    return out


def pair_articulation(rng, style):
    """Same notes: staccato (more) vs held to the next onset (less)."""
    regions = diatonic_regions(style, progression(rng, style, False), style.minor)
    notes = common_parts(rng, style, regions)
    staccato_s = float(rng.uniform(0.07, 0.14))
    times = straight_beat_times(style)
    more = Score(articulate(notes, style, staccato_s), regions, times)
    less = Score(articulate(notes, style, None), regions, times)
    return more, less, f"staccato_{staccato_s * 1000:.0f}ms/legato"


def pair_minorness(rng, style):
    """Same degrees realised in the parallel minor (more) vs major (less)."""
    roots = progression(rng, style, False)
    major, minor = diatonic_regions(style, roots, False), diatonic_regions(style, roots, True)
    for _ in range(10):  # the melody should sing the third or sixth that the mode changes
        notes = common_parts(rng, style, major)
        if sum(n.part == "melody" and n.degree % 7 in (2, 5) for n in notes) >= 3:
            break
    times = straight_beat_times(style)
    leading = "harmonic" if style.raised_leading_tone else "natural"
    return Score(notes, minor, times), Score(notes, major, times), f"{leading}_minor/major"


# Added tones (chord-tone index, semitones) that turn a triad into a cluster.
CLUSTER_TONES = ((0, 1), (0, 6), (1, 1), (2, 1), (0, 2), (0, -1), (2, -1))


def clustered(notes: list[Note], regions: list[Region], additions) -> list[Note]:
    """Chord notes plus seconds/tritones on their chord tones (``additions`` as CLUSTER_TONES)."""
    out = list(notes)
    for note in notes:
        if note.part not in ("chords", "layer"):
            continue
        root = region_at(regions, note.onset_beats).root_degree
        for tone, semitones in additions:
            if note.degree % 7 == chord_tones(root)[tone]:
                out.append(replace(note, chroma=semitones))
    return out


def doubled(notes: list[Note], regions: list[Region], additions) -> list[Note]:
    """Chord notes plus octave doublings: the consonant twin of ``clustered``."""
    out = list(notes)
    for note in notes:
        if note.part not in ("chords", "layer"):
            continue
        root = region_at(regions, note.onset_beats).root_degree
        for tone, _ in additions:
            if note.degree % 7 == chord_tones(root)[tone]:
                out.append(replace(note, degree=note.degree + 7))
    return out


def pair_dissonance(rng, style):
    """Clustered chords, harsh doublings, detuning (more) vs triads with consonant doublings (less)."""
    regions = diatonic_regions(style, progression(rng, style, False), style.minor)
    notes = common_parts(rng, style, regions)
    picks = rng.choice(len(CLUSTER_TONES), size=int(rng.integers(1, 3)), replace=False)
    additions = [CLUSTER_TONES[int(i)] for i in picks]
    variant = ["cluster"]
    if rng.random() < 0.4:  # a detuned unison of the chords beats against them
        notes += [replace(n, part="layer") for n in notes if n.part == "chords"]
        variant.append("detuned")
    more, less = clustered(notes, regions, additions), doubled(notes, regions, additions)
    if rng.random() < 0.6:  # melody doubled at a second/tritone/major seventh vs a third/octave
        line = [n for n in notes if n.part == "melody"]
        harsh, sweet = int(rng.choice((1, 6, -1, 11))), int(rng.choice((2, 7)))
        more = more + [replace(n, part="double", chroma=harsh) for n in line]
        less = less + [replace(n, part="double", degree=n.degree - sweet) for n in line]
        variant.append(f"double{harsh:+d}")
    times = straight_beat_times(style)
    more_score, less_score = Score(more, regions, times), Score(less, regions, times)
    if "detuned" in variant:
        more_score.bend_cents["layer"] = float(rng.uniform(25, 45))
    if rng.random() < 0.2:  # noisier timbre
        more_score.drive_db = float(rng.uniform(6, 14))
        variant.append("drive")
    return more_score, less_score, "+".join(variant) + "/triads"


def pair_rhythm_stability(rng, style):
    """Quantised steady beat (more) vs the same notes with tempo drift and onset jitter (less)."""
    regions = diatonic_regions(style, progression(rng, style, False), style.minor)
    notes = common_parts(rng, style, regions)
    jitter_beats = float(rng.uniform(0.06, 0.12))
    unsteady = jitter_onsets(rng, notes, jitter_beats)
    more = Score(notes, regions, straight_beat_times(style))
    less = Score(unsteady, regions, drifting_beat_times(rng, style))
    return more, less, f"steady/drift+jitter{jitter_beats:.2f}"


def resample_line(line: list[Note], onsets: list[float]) -> list[int]:
    """The degree of ``line`` sounding at each of ``onsets``."""
    degrees = []
    for onset in onsets:
        sounding = [n for n in line if n.onset_beats <= onset + 1e-9]
        degrees.append((sounding[-1] if sounding else line[0]).degree)
    return degrees


def pair_rhythm_complexity(rng, style):
    """Layered syncopation and 3-against-2 (more) vs every part on the quarter notes (less)."""
    regions = diatonic_regions(style, progression(rng, style, False), style.minor)
    patterns = fitting_patterns(SYNCOPATED_PATTERNS, style.beat_s, 0.09, 1.2)
    busy_rhythm = phrase_rhythm(rng, style, patterns)
    degrees = stepwise_degrees(rng, [o for o, _ in busy_rhythm], regions, style.melody_degree)
    busy_line = melody_notes(busy_rhythm, degrees, style)
    quarters = [(float(b), 1.0) for b in range(style.n_beats)]
    plain_line = melody_notes(quarters, resample_line(busy_line, [o for o, _ in quarters]), style)
    busy_chords = str(rng.choice(("triplets", "tresillo", "offbeat")))
    more = busy_line + accompaniment(style, regions, busy_chords)
    less = plain_line + accompaniment(style, regions, "repeated")
    if style.has_bass:
        more += bass_line(style, regions, "tresillo" if busy_chords != "tresillo" else "octave_eighths")
        less += bass_line(style, regions, "beats")
    if style.drum_kit is not None:
        more += drum_notes(style, "complex")
        less += drum_notes(style, "simple")
    times = straight_beat_times(style)
    more_score = Score(humanise_velocities(rng, more), regions, times)
    less_score = Score(humanise_velocities(rng, less), regions, times)
    return more_score, less_score, f"syncopated+{busy_chords}/quarters"


def pair_tonal_stability(rng, style):
    """Diatonic cadences in one key (more) vs the same chords wandering through distant keys (less)."""
    regions = diatonic_regions(style, progression(rng, style, True), style.minor)
    notes = common_parts(rng, style, regions)
    times = straight_beat_times(style)
    return Score(notes, regions, times), Score(notes, wandering_regions(rng, regions), times), \
        "cadences/chromatic_wandering"


def pair_melodiousness(rng, style):
    """Singable stepwise melody (more) vs random leaps or no melody at all (less)."""
    regions = diatonic_regions(style, progression(rng, style, False), style.minor)
    notes = common_parts(rng, style, regions)
    line = [n for n in notes if n.part == "melody"]
    backing = [n for n in notes if n.part != "melody"]
    if rng.random() < 0.6:
        rhythm = erratic_rhythm(rng, style, style.n_beats)
        leaps = leaping_degrees(rng, len(rhythm), style.melody_degree)
        other = melody_notes(rhythm, leaps, style)
        variant = "stepwise/leaps"
    else:
        other = held_tones(regions, style.melody_degree, line[0].velocity)
        variant = "stepwise/no_melody"
    times = straight_beat_times(style)
    return Score(notes, regions, times), Score(backing + other, regions, times), variant


PAIR_BUILDERS = {
    "melodiousness": pair_melodiousness,
    "articulation": pair_articulation,
    "rhythm_stability": pair_rhythm_stability,
    "rhythm_complexity": pair_rhythm_complexity,
    "dissonance": pair_dissonance,
    "tonal_stability": pair_tonal_stability,
    "minorness": pair_minorness,
}


def choose_effects(rng: np.random.Generator) -> Effects:
    """Random reverb plus occasional chorus, compressor and filters."""
    return Effects(
        room_size=float(rng.uniform(0.1, 0.9)),
        damping=float(rng.uniform(0.2, 0.8)),
        wet_level=float(rng.uniform(0.05, 0.3)),
        dry_level=float(rng.uniform(0.7, 1.0)),
        chorus=(float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.2, 0.5)))
        if rng.random() < 0.2 else None,
        compressor=(float(rng.uniform(-30, -12)), float(rng.uniform(2, 6))) if rng.random() < 0.3 else None,
        lowpass_hz=float(rng.uniform(2500, 9000)) if rng.random() < 0.25 else None,
        highpass_hz=float(rng.uniform(40, 250)) if rng.random() < 0.2 else None,
    )


def plan_pair(quality: str, index: int, seed: int) -> PairPlan:
    """Compose both clips of one pair; depends only on (seed, quality, index)."""
    rng = np.random.default_rng([seed, C.MIDLEVEL_NAMES.index(quality), index])
    style = choose_style(rng, quality)
    more, less, variant = PAIR_BUILDERS[quality](rng, style)
    return PairPlan(f"{quality}_{index:04d}", quality, style, more, less, variant,
                    choose_effects(rng), float(rng.uniform(-20, -3)))


# --------------------------------------------------------------------------------------------
# Rendering


def realise(note: Note, regions: list[Region], tonic_midi: int) -> int:
    """MIDI pitch of a note: its degree in the scale of the region it starts in."""
    if note.drum is not None:
        return note.drum
    region = region_at(regions, note.onset_beats)
    octave, step = divmod(note.degree, 7)
    pitch = tonic_midi + region.offset_semitones + 12 * octave + region.scale[step] + note.chroma
    return min(max(pitch, 0), 127)


def timed_notes(score: Score, tonic_midi: int) -> list[tuple[int, int, float, float, int]]:
    """(channel, pitch, onset_s, end_s, velocity), with same-key overlaps trimmed.

    A note-off on a key also ends a newer note on that key, so an earlier note must stop
    before the next one on the same channel and key starts.
    """
    onsets_beats = np.array([max(0.0, n.onset_beats + n.shift_beats) for n in score.notes])
    ends_beats = onsets_beats + np.array([n.duration_beats for n in score.notes])
    beat_index = np.arange(len(score.beat_times_s))
    onsets_s = np.interp(onsets_beats, beat_index, score.beat_times_s).tolist()
    ends_s = np.interp(ends_beats, beat_index, score.beat_times_s).tolist()
    raw = {}
    for note, onset_s, end_s in zip(score.notes, onsets_s, ends_s):
        key = (CHANNELS[note.part], realise(note, score.regions, tonic_midi), round(onset_s, 4))
        if key not in raw or raw[key][1] < end_s:
            raw[key] = (onset_s, end_s, min(max(note.velocity, 1), 127))
    ordered = sorted(raw.items())
    out = []
    for i, ((channel, pitch, _), (onset_s, end_s, velocity)) in enumerate(ordered):
        if i + 1 < len(ordered) and ordered[i + 1][0][:2] == (channel, pitch):
            end_s = min(end_s, ordered[i + 1][1][0] - 0.003)
        out.append((channel, pitch, onset_s, max(end_s, onset_s + 0.01), velocity))
    return out


def channel_volume(program: int) -> int:
    """CC7 value that brings ``program`` down to the level of the quietest one (SF2: -40 log10 cc/127 dB)."""
    excess_db = PROGRAM_LEVEL_DB.get(program, QUIETEST_PROGRAM_DB) - QUIETEST_PROGRAM_DB
    return int(round(127 * 10 ** (-excess_db / 40)))


def slot_events(score: Score, style: Style, slot_start_s: float) -> list[tuple[float, int, object]]:
    """(time_s, order, mido message) of one clip slot: setup, notes, then all sound off."""
    import mido

    events = []
    used = sorted({CHANNELS[n.part] for n in score.notes})
    parts_by_channel = {ch: p for p, ch in CHANNELS.items()}
    for channel in used:
        events.append((slot_start_s, 0, mido.Message("control_change", channel=channel, control=121, value=0)))
        if channel == CHANNELS["drums"]:
            events.append((slot_start_s, 0, mido.Message("program_change", channel=channel, program=style.drum_kit)))
            continue
        part = parts_by_channel[channel]
        events.append((slot_start_s, 0, mido.Message("control_change", channel=channel, control=0, value=0)))
        events.append((slot_start_s, 0, mido.Message("program_change", channel=channel,
                                                      program=style.programs[part])))
        events.append((slot_start_s, 0, mido.Message("control_change", channel=channel, control=7,
                                                      value=channel_volume(style.programs[part]))))
        cents = score.bend_cents.get(part, 0.0)
        if cents:  # default bend range is +-2 semitones
            value = int(np.clip(round(cents / 200 * 8192), -8192, 8191))
            events.append((slot_start_s, 0, mido.Message("pitchwheel", channel=channel, pitch=value)))
    music_start_s = slot_start_s + LEAD_IN_S
    stop_s = music_start_s + PRE_ROLL_S + CLIP_S + STOP_MARGIN_S
    for channel, pitch, onset_s, end_s, velocity in timed_notes(score, style.tonic_midi):
        if music_start_s + onset_s >= stop_s:
            continue
        events.append((music_start_s + onset_s, 2, mido.Message("note_on", channel=channel, note=pitch,
                                                                 velocity=velocity)))
        events.append((min(music_start_s + end_s, stop_s), 1, mido.Message("note_off", channel=channel,
                                                                            note=pitch, velocity=0)))
    for channel in used:
        events.append((stop_s, 3, mido.Message("control_change", channel=channel, control=123, value=0)))
        events.append((stop_s, 3, mido.Message("control_change", channel=channel, control=120, value=0)))
    return events


def warm_up_events() -> list[tuple[float, int, object]]:
    """A quiet short note in slot 0 (see FIRST_SLOT)."""
    import mido

    return [(LEAD_IN_S, 2, mido.Message("note_on", channel=0, note=60, velocity=40)),
            (LEAD_IN_S + 0.1, 1, mido.Message("note_off", channel=0, note=60, velocity=0)),
            (LEAD_IN_S + 0.2, 3, mido.Message("control_change", channel=0, control=120, value=0))]


def write_batch_midi(jobs: list[tuple[Score, Style]], path: Path) -> None:
    """One type-0 MIDI file with every clip of the batch in its own slot."""
    import mido

    events = warm_up_events()
    for slot, (score, style) in enumerate(jobs):
        events += slot_events(score, style, (FIRST_SLOT + slot) * SLOT_S)
    # A final marker so the file (and the render) lasts to the end of the last slot.
    events.append(((FIRST_SLOT + len(jobs)) * SLOT_S, 4, mido.MetaMessage("marker", text="end")))
    events.sort(key=lambda e: (round(e[0] * MIDI_TICKS_PER_S), e[1]))
    midi = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS_PER_S // 2)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    previous_tick = 0
    for time_s, _, message in events:
        tick = int(round(time_s * MIDI_TICKS_PER_S))
        message.time = tick - previous_tick
        track.append(message)
        previous_tick = tick
    midi.save(str(path))


def fluidsynth_command(midi_path: Path, raw_path: Path, soundfont: Path) -> list[str]:
    """Offline render to raw little-endian float stereo, built-in reverb/chorus off."""
    return ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.3", "-r", str(SAMPLE_RATE),
            "-o", "synth.cpu-cores=1", "-O", "float", "-T", "raw", "-E", "little",
            "-F", str(raw_path), str(soundfont), str(midi_path)]


def render_batch(jobs: list[tuple[Score, Style]], work_dir: Path, soundfont: Path) -> list[np.ndarray]:
    """Render clips with one FluidSynth run; returns each slot's mono music (pre-roll + clip)."""
    midi_path, raw_path = work_dir / "batch.mid", work_dir / "batch.raw"
    write_batch_midi(jobs, midi_path)
    result = subprocess.run(fluidsynth_command(midi_path, raw_path, soundfont), capture_output=True, text=True)
    if result.returncode != 0 or not raw_path.exists():
        tail = (result.stderr or result.stdout).strip()[-500:]
        raise RuntimeError(f"fluidsynth failed (exit {result.returncode}): {tail}")
    stereo = np.fromfile(raw_path, dtype="<f4")
    frames = stereo.size // 2
    mono = 0.5 * (stereo[0:2 * frames:2] + stereo[1:2 * frames:2])
    segment_samples = int(round((PRE_ROLL_S + CLIP_S) * SAMPLE_RATE))
    segments = []
    for slot in range(len(jobs)):
        start = (FIRST_SLOT + slot) * SLOT_SAMPLES + int(round(LEAD_IN_S * SAMPLE_RATE))
        segment = mono[start:start + segment_samples]
        segments.append(np.pad(segment, (0, segment_samples - segment.size)).astype(np.float32))
    raw_path.unlink()
    return segments


def effect_board(effects: Effects, drive_db: float):
    """The pedalboard chain of a pair (plus the clip's own drive, if any)."""
    import pedalboard as pb

    chain = []
    if drive_db > 0:
        chain.append(pb.Distortion(drive_db=drive_db))
    if effects.highpass_hz:
        chain.append(pb.HighpassFilter(cutoff_frequency_hz=effects.highpass_hz))
    if effects.lowpass_hz:
        chain.append(pb.LowpassFilter(cutoff_frequency_hz=effects.lowpass_hz))
    if effects.compressor:
        threshold_db, ratio = effects.compressor
        chain.append(pb.Compressor(threshold_db=threshold_db, ratio=ratio, attack_ms=10, release_ms=150))
    if effects.chorus:
        rate_hz, depth, mix = effects.chorus
        chain.append(pb.Chorus(rate_hz=rate_hz, depth=depth, mix=mix))
    chain.append(pb.Reverb(room_size=effects.room_size, damping=effects.damping,
                           wet_level=effects.wet_level, dry_level=effects.dry_level))
    return pb.Pedalboard(chain)


def describe_effects(effects: Effects) -> str:
    """Compact text of an effect chain for the manifest."""
    parts = [f"reverb(room={effects.room_size:.2f},wet={effects.wet_level:.2f})"]
    if effects.chorus:
        parts.append(f"chorus({effects.chorus[0]:.1f}Hz)")
    if effects.compressor:
        parts.append(f"compressor({effects.compressor[0]:.0f}dB,{effects.compressor[1]:.1f}:1)")
    if effects.lowpass_hz:
        parts.append(f"lowpass({effects.lowpass_hz:.0f}Hz)")
    if effects.highpass_hz:
        parts.append(f"highpass({effects.highpass_hz:.0f}Hz)")
    return ";".join(parts)


def finish_clip(segment: np.ndarray, effects: Effects, drive_db: float, peak_dbfs: float) -> np.ndarray:
    """Effects over pre-roll + clip, keep the clip, scale its peak to ``peak_dbfs``."""
    processed = effect_board(effects, drive_db)(segment[None, :], SAMPLE_RATE)[0]
    pre_roll = int(round(PRE_ROLL_S * SAMPLE_RATE))
    clip = processed[pre_roll:pre_roll + CLIP_SAMPLES].astype(np.float64)
    peak = np.max(np.abs(clip))
    if not np.isfinite(peak) or peak < 1e-6:
        raise RuntimeError("rendered clip is silent")
    return (clip * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Mono float32 WAV at SAMPLE_RATE."""
    from pedalboard.io import AudioFile

    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", samplerate=float(SAMPLE_RATE), num_channels=1, bit_depth=32) as f:
        f.write(samples[None, :])


def read_wav(path: str | Path) -> np.ndarray:
    """A corpus clip as float32 (n,)."""
    from pedalboard.io import AudioFile

    with AudioFile(str(path)) as f:
        return f.read(f.frames)[0]


# --------------------------------------------------------------------------------------------
# Corpus


def check_renderer(soundfont: Path) -> None:
    """Raise FileNotFoundError naming the missing piece (Debian: fluidsynth, fluid-soundfont-gm)."""
    if shutil.which("fluidsynth") is None:
        raise FileNotFoundError("fluidsynth not found on PATH (apt-get install fluidsynth)")
    if not Path(soundfont).exists():
        raise FileNotFoundError(f"soundfont {soundfont} not found (apt-get install fluid-soundfont-gm)")


def program_names(style: Style, score_parts: set[str]) -> str:
    """'part:GM name' for every part either clip uses."""
    names = []
    for part in PARTS:
        if part not in score_parts:
            continue
        if part == "drums":
            names.append(f"drums:{DRUM_KITS[style.drum_kit]} kit")
        else:
            names.append(f"{part}:{GM_NAMES[style.programs[part]]}")
    return "|".join(names)


def manifest_row(plan: PairPlan, paths: dict, seed: int) -> dict:
    """The manifest row of one pair (paths relative to the corpus folder)."""
    style = plan.style
    parts = {n.part for n in plan.more.notes} | {n.part for n in plan.less.notes}
    mode = "minor/major" if plan.quality == "minorness" else ("minor" if style.minor else "major")
    return {
        "pair_id": plan.pair_id,
        "quality": plan.quality,
        "more_path": paths["more"],
        "less_path": paths["less"],
        "tempo_bpm": f"{style.tempo_bpm:.0f}",
        "key": NOTE_NAMES[style.tonic_pc],
        "mode": mode,
        "meter": f"{style.beats_per_bar}/4",
        "program_names": program_names(style, parts),
        "variant": plan.variant,
        "effects": describe_effects(plan.effects),
        "peak_dbfs": f"{plan.peak_dbfs:.2f}",
        "seed": str(seed),
    }


def write_manifest(rows: list[dict], path: Path) -> None:
    """Write the CSV atomically, so a crashed run never leaves a manifest of missing clips."""
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def generate_corpus(out_dir: str | Path, pairs_per_quality: int, seed: int, progress=None,
                    soundfont: str | Path = SOUNDFONT_PATH, clips_per_batch: int = CLIPS_PER_BATCH) -> Path:
    """Render ``pairs_per_quality`` contrast pairs for each mid-level quality.

    Args:
        out_dir: corpus folder (created); existing clips of the same names are overwritten.
        pairs_per_quality: pairs per quality (7 qualities, 2 clips per pair).
        seed: the corpus is a deterministic function of (seed, quality, pair index).
        progress: optional callable(done_clips, total_clips).
        soundfont: a General MIDI SF2 file.
        clips_per_batch: clips rendered per FluidSynth run.

    Returns:
        path of ``manifest.csv``.
    """
    soundfont = Path(soundfont)
    check_renderer(soundfont)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [plan_pair(q, i, seed) for q in C.MIDLEVEL_NAMES for i in range(pairs_per_quality)]
    jobs = [(plan, side) for plan in plans for side in ("more", "less")]
    rows, paths = [], {}
    with tempfile.TemporaryDirectory(prefix="midlevel_corpus_") as work:
        for start in range(0, len(jobs), clips_per_batch):
            batch = jobs[start:start + clips_per_batch]
            scores = [(getattr(plan, side), plan.style) for plan, side in batch]
            for (plan, side), segment in zip(batch, render_batch(scores, Path(work), soundfont)):
                relative = Path("clips") / plan.quality / f"{plan.pair_id}_{side}.wav"
                drive_db = getattr(plan, side).drive_db
                try:
                    clip = finish_clip(segment, plan.effects, drive_db, plan.peak_dbfs)
                except RuntimeError as error:
                    raise RuntimeError(f"{plan.pair_id} ({side}): {error}") from None
                write_wav(out_dir / relative, clip)
                paths[(plan.pair_id, side)] = relative.as_posix()
            if progress:
                progress(start + len(batch), len(jobs))
    for plan in plans:
        side_paths = {side: paths[(plan.pair_id, side)] for side in ("more", "less")}
        rows.append(manifest_row(plan, side_paths, seed))
    manifest = out_dir / MANIFEST_NAME
    write_manifest(rows, manifest)
    return manifest


def load_manifest(path: str | Path) -> list[PairRecord]:
    """Pair records of a corpus (``path``: manifest.csv or its folder), clip paths made absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    root = path.parent.resolve()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [PairRecord(
        pair_id=row["pair_id"], quality=row["quality"],
        more_path=root / row["more_path"], less_path=root / row["less_path"],
        tempo_bpm=float(row["tempo_bpm"]), key=row["key"], mode=row["mode"], meter=row["meter"],
        program_names=row["program_names"], variant=row["variant"], effects=row["effects"],
        peak_dbfs=float(row["peak_dbfs"]), seed=int(row["seed"]),
    ) for row in rows]


def level_summary(records: list[PairRecord]) -> dict:
    """Mean RMS and peak (dBFS) per quality and side, to compare the two sides of the pairs."""
    levels: dict = {}
    for record in records:
        for side in ("more", "less"):
            samples = read_wav(getattr(record, f"{side}_path")).astype(np.float64)
            rms_db = 10 * np.log10(np.mean(samples ** 2) + 1e-12)
            peak_db = 20 * np.log10(np.max(np.abs(samples)) + 1e-12)
            levels.setdefault(record.quality, {}).setdefault(side, []).append((rms_db, peak_db))
    return {q: {side: tuple(np.mean(v, axis=0).round(2)) for side, v in sides.items()}
            for q, sides in levels.items()}


def main(out_dir: str | Path = DEFAULT_OUT_DIR, pairs_per_quality: int = 150, seed: int = 0) -> Path:
    """Generate the corpus with a progress line on stderr; returns the manifest path."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        print(f"\rmid-level corpus: {done}/{total} clips, {elapsed:.0f} s", end="", file=sys.stderr)

    manifest = generate_corpus(out_dir, pairs_per_quality, seed, progress=report)
    print(f"\nwrote {manifest} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return manifest


if __name__ == "__main__":
    main()
