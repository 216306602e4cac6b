"""Rhythm and articulation probes beyond 4/4 synthesis: other meters and tempi and real instrument
timbres (General MIDI samples through FluidSynth). Real recordings: ``test_real_recording_probes.py``.

Written independently of the training data: no pattern, sound or change here comes from
``dawemo/training/midlevel_corpus.py`` or ``dawemo/training/rhythm_branch.py``. The synthesis is
``probe_audio``'s; the grooves and meters are new.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dawemo import constants as C

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe_audio as pa  # noqa: E402

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TEMPOS_BPM = (68, 100, 138)
# Meter -> (beats per bar, the beats that carry the pulse a listener marches to, accented beats).
METERS = {
    "3/4": (3, (0, 1, 2), (0,)),
    "6/8": (6, (0, 3), (0,)),
    "5/4": (5, (0, 1, 2, 3, 4), (0, 3)),
    "4/4": (4, (0, 1, 2, 3), (0, 2)),
}
# Meter -> layers of a syncopated, cross-rhythmic bar: (voice, onsets in beats of the bar).
CROSS_RHYTHMS = {
    "3/4": [("low", (0, 1.5)), ("back", (0.5, 1.75, 2.5)), ("tick", tuple(np.arange(8) * 0.375))],
    "6/8": [("low", (0, 2, 4)), ("back", (1.5, 3.5, 5.5)), ("tick", (0.5, 1.25, 2.75, 3.25, 4.75, 5.25))],
    "5/4": [("low", (0, 1.5, 3.25)), ("back", (0.75, 2.5, 4.5)), ("tick", tuple(np.arange(7) * 5 / 7))],
    "4/4": [("low", (0, 0.75, 2.5)), ("back", (1.25, 3.5)), ("tick", tuple(np.arange(6) * 2 / 3))],
}
DRUMS = {"low": "kick", "back": "snare", "tick": "hat"}
PITCHED = {"low": "pluck_bass", "back": "epiano", "tick": "bell"}


def model_or_skip():
    from dawemo.emotion.model import EmotionModel, default_model_path

    if not default_model_path().is_file():
        pytest.skip("shipped model not found")
    return EmotionModel(use_gpu=False)


def feature(model, audio: np.ndarray, quality: str) -> float:
    from dawemo.emotion.tracker import analyze_samples

    return float(analyze_samples(audio, model).summary_midlevel[model.midlevel_names.index(quality)])


def pitch_of(voice: str, tonic_midi: int) -> int:
    return {"pluck_bass": tonic_midi - 24, "epiano": tonic_midi, "bell": tonic_midi + 12}.get(voice, 0)


def meter_bar(meter: str, voices: dict, tonic_midi: int) -> list[pa.Note]:
    """One bar with every layer on the meter's pulse (accents on its strong beats)."""
    beats, pulse, accents = METERS[meter]
    notes = []
    for beat in range(beats):
        velocity = 1.0 if beat in accents else 0.7
        if beat in pulse:
            notes.append(pa.Note(beat, 0.3, pitch_of(voices["low"], tonic_midi), velocity, voices["low"]))
        notes.append(pa.Note(beat, 0.2, pitch_of(voices["tick"], tonic_midi), 0.6 * velocity, voices["tick"]))
        if beat not in accents:
            notes.append(pa.Note(beat, 0.3, pitch_of(voices["back"], tonic_midi), 0.8 * velocity, voices["back"]))
    return notes


def cross_bar(meter: str, voices: dict, tonic_midi: int) -> list[pa.Note]:
    """The same voices, each in its own rhythm across the meter's pulse."""
    return [pa.Note(float(onset), 0.2, pitch_of(voices[role], tonic_midi), 0.9 if onset == 0 else 0.7, voices[role])
            for role, onsets in CROSS_RHYTHMS[meter] for onset in onsets]


def synthetic_pairs(quality: str):
    """(label, more, less) over meters, tempi and two timbre families."""
    pairs = []
    for i, meter in enumerate(METERS):
        for j, tempo_bpm in enumerate(TEMPOS_BPM):
            voices = DRUMS if (i + j) % 2 == 0 else PITCHED
            tonic = 57 + 2 * j
            beats = METERS[meter][0]
            seed = 100 * i + j
            steady = pa.loop(meter_bar(meter, voices, tonic), beats, tempo_bpm * 1.4)
            if quality == "rhythm_stability":
                more = pa.render(pa.to_sounds(steady, pa.steady_time_map(tempo_bpm)), np.random.default_rng(seed))
                less = pa.render(pa.to_sounds(steady, pa.rubato_time_map(tempo_bpm, np.random.default_rng([seed, 7]),
                                                                          drift_depth=0.25, jitter_beats=0.08)),
                                 np.random.default_rng(seed))
            else:
                layered = pa.loop(cross_bar(meter, voices, tonic), beats, tempo_bpm)
                plain = pa.loop(meter_bar(meter, voices, tonic), beats, tempo_bpm)
                more, less = pa.render_notes(layered, tempo_bpm, seed), pa.render_notes(plain, tempo_bpm, seed)
            pairs.append((f"{meter} {tempo_bpm} bpm {'drums' if voices is DRUMS else 'pitched'}", more, less))
    return pairs


@pytest.mark.slow
@pytest.mark.parametrize("quality", ["rhythm_stability", "rhythm_complexity"])
def test_rhythm_features_follow_meters_and_tempi(quality: str) -> None:
    model = model_or_skip()
    pairs = synthetic_pairs(quality)
    differences = {label: feature(model, more, quality) - feature(model, less, quality) for label, more, less in pairs}
    right = sum(d > 0 for d in differences.values())
    assert right >= 0.75 * len(pairs) and np.mean(list(differences.values())) > 0.05, (
        f"{quality}: right in {right}/{len(pairs)}: {({k: round(v, 3) for k, v in differences.items()})}")


# --- Real instrument timbres: General MIDI samples rendered by FluidSynth ----------------------

GM_KIT = {"low": 36, "back": 38, "tick": 42}  # kick, snare, closed hi-hat on channel 10
GM_BAND = {"low": (33, 36), "back": (0, 60), "tick": (25, 72)}  # fingered bass, piano, steel guitar


def render_fluidsynth(events: list[tuple[float, str, float]], gm: dict, drums: bool, tmp: Path, name: str) -> np.ndarray:
    """events: (time_s, role, velocity 0-1) -> audio at the model's rate, rendered from a MIDI file."""
    import mido

    from dawemo.inputs.audio_io import load_audio

    ticks_per_s = 960  # at the default 120 bpm MIDI tempo, 480 ticks per beat
    track = mido.MidiTrack()
    channel = 9 if drums else 0
    messages = []
    for role_index, role in enumerate(gm):
        if not drums:
            program, _ = gm[role]
            track.append(mido.Message("program_change", channel=role_index, program=program, time=0))
    for time_s, role, velocity in events:
        ch = channel if drums else list(gm).index(role)
        note = gm[role] if drums else gm[role][1]
        tick = int(round(max(0.0, time_s) * ticks_per_s))
        messages.append((tick, mido.Message("note_on", channel=ch, note=note, velocity=int(30 + 90 * velocity))))
        messages.append((tick + 180, mido.Message("note_off", channel=ch, note=note, velocity=0)))
    last = 0
    for tick, message in sorted(messages, key=lambda m: (m[0], m[1].type == "note_on")):
        track.append(message.copy(time=tick - last))
        last = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi_path, wav_path = tmp / f"{name}.mid", tmp / f"{name}.wav"
    midi.save(midi_path)
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "44100", "-F", str(wav_path), str(SOUNDFONT),
                    str(midi_path)], check=True, capture_output=True, timeout=120)
    return load_audio(wav_path)[: int(pa.CLIP_S * C.SAMPLE_RATE)]


def groove_events(meter: str, tempo_bpm: float, layered: bool, rng: np.random.Generator | None) -> list:
    """A groove's (time_s, role, velocity); ``rng`` drifts and jitters the timing."""
    beats, pulse, accents = METERS[meter]
    beat_s = 60.0 / tempo_bpm
    bar = ([(float(o), role) for role, onsets in CROSS_RHYTHMS[meter] for o in onsets] if layered else
           [(float(b), "low") for b in pulse] + [(float(b), "tick") for b in range(beats)]
           + [(float(b), "back") for b in range(beats) if b not in accents])
    events, t_bar, bar_index = [], 0.0, 0
    while t_bar < pa.CLIP_S:
        stretch = 1.0 if rng is None else 1.0 + 0.25 * np.sin(bar_index * 1.3 + rng.uniform(0, 0.5))
        for onset, role in bar:
            jitter = 0.0 if rng is None else rng.normal(0, 0.06 * beat_s)
            events.append((t_bar + onset * beat_s * stretch + jitter, role, 1.0 if onset == 0 else 0.7))
        t_bar += beats * beat_s * stretch
        bar_index += 1
    return events


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
                    reason="needs fluidsynth and the FluidR3 GM soundfont (apt-get install fluidsynth fluid-soundfont-gm)")
@pytest.mark.parametrize("quality", ["rhythm_stability", "rhythm_complexity"])
def test_rhythm_features_follow_real_instrument_timbres(quality: str, tmp_path: Path) -> None:
    model = model_or_skip()
    differences = {}
    for k, (meter, tempo_bpm, drums) in enumerate([("4/4", 92, True), ("3/4", 120, False), ("6/8", 76, True),
                                                   ("5/4", 132, False)]):
        gm = GM_KIT if drums else GM_BAND
        if quality == "rhythm_stability":
            more_events = groove_events(meter, tempo_bpm, False, None)
            less_events = groove_events(meter, tempo_bpm, False, np.random.default_rng(k))
        else:
            more_events = groove_events(meter, tempo_bpm, True, None)
            less_events = groove_events(meter, tempo_bpm, False, None)
        more = render_fluidsynth(more_events, gm, drums, tmp_path, f"{k}-more")
        less = render_fluidsynth(less_events, gm, drums, tmp_path, f"{k}-less")
        differences[f"{meter} {tempo_bpm} {'kit' if drums else 'band'}"] = (
            feature(model, more, quality) - feature(model, less, quality))
    right = sum(d > 0 for d in differences.values())
    assert right >= 3, f"{quality}: right in {right}/4: {({k: round(v, 3) for k, v in differences.items()})}"
