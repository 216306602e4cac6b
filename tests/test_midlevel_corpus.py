"""Procedural mid-level contrast corpus: real FluidSynth renders of a tiny corpus, checked by signal."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.training import midlevel_corpus as mc

SEED = 3
PAIRS_PER_QUALITY = 2

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not mc.SOUNDFONT_PATH.exists(),
    reason=f"needs the fluidsynth binary and {mc.SOUNDFONT_PATH} (apt-get install fluidsynth fluid-soundfont-gm)",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 2-pairs-per-quality corpus rendered once for the module."""
    out_dir = tmp_path_factory.mktemp("corpus")
    manifest = mc.generate_corpus(out_dir, PAIRS_PER_QUALITY, SEED)
    return out_dir, manifest, mc.load_manifest(manifest)


def records_of(records, quality):
    return [r for r in records if r.quality == quality]


def rms_db(x):
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20)


def envelope(x, frame=512):
    n = len(x) // frame
    return np.sqrt(np.mean(np.asarray(x[: n * frame], np.float64).reshape(n, frame) ** 2, axis=1))


def envelope_fill(x):
    """Mean over max of the RMS envelope: low for short detached notes, high for held ones."""
    env = envelope(x)
    return env.mean() / env.max()


def pitch_class_energy(x, exponent=2, sample_rate=mc.SAMPLE_RATE, n_fft=8192, hop=2048):
    """(12,) spectral power (exponent 2) or magnitude (1) per pitch class (C = 0), 60 Hz - 2 kHz."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** exponent
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    band = (freqs > 60) & (freqs < 2000)
    pitch_class = (np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) + 9) % 12
    return np.bincount(pitch_class, weights=power[:, band].sum(axis=0), minlength=12)


def spectral_flux(x, n_fft=1024, hop=256):
    """Onset strength per hop: summed rise of the log spectrum (sees new notes under held ones)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n_fft)[::hop]
    log_magnitude = np.log(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) + 1e-4)
    return np.maximum(np.diff(log_magnitude, axis=0), 0).sum(axis=1)


def pulse_clarity(x, tempo_bpm, hop=256, sample_rate=mc.SAMPLE_RATE):
    """Autocorrelation of the onset strength at one and two beats: high for a steady pulse."""
    onsets = spectral_flux(x, hop=hop)
    onsets -= onsets.mean()
    autocorrelation = np.correlate(onsets, onsets, "full")[len(onsets) - 1:]
    autocorrelation /= autocorrelation[0]
    beat_lag = 60 / tempo_bpm * sample_rate / hop
    lags = [int(round(beat_lag * k)) for k in (1, 2)]
    return max(autocorrelation[lag - 1:lag + 2].max() for lag in lags)


# ---- composition (no rendering)


@pytest.mark.parametrize("quality", C.MIDLEVEL_NAMES)
def test_plans_are_deterministic_and_share_tempo_and_instruments(quality):
    first, again = mc.plan_pair(quality, 5, SEED), mc.plan_pair(quality, 5, SEED)
    assert first.style == again.style and first.variant == again.variant
    assert first.more.notes == again.more.notes and first.less.notes == again.less.notes
    assert 60 <= first.style.tempo_bpm <= 170
    # Both sides use the same instruments (parts map to fixed programs in the shared style).
    melodic_parts = {n.part for n in first.more.notes + first.less.notes} - {"drums"}
    assert melodic_parts <= set(first.style.programs)
    assert first.more.notes != first.less.notes or first.more.regions != first.less.regions \
        or not np.array_equal(first.more.beat_times_s, first.less.beat_times_s)


def test_minorness_pair_changes_only_the_scale():
    plan = mc.plan_pair("minorness", 0, SEED)
    assert plan.more.notes == plan.less.notes
    assert all(r.scale == mc.MAJOR for r in plan.less.regions)
    minor_thirds = {r.scale[2] for r in plan.more.regions}
    assert minor_thirds == {3}  # the third degree is lowered everywhere in the minor clip


def test_articulation_pair_changes_only_note_lengths():
    plan = mc.plan_pair("articulation", 0, SEED)
    more, less = plan.more.notes, plan.less.notes
    assert [(n.part, n.onset_beats, n.degree) for n in more] == [(n.part, n.onset_beats, n.degree) for n in less]
    pitched = [(a, b) for a, b in zip(more, less) if a.part != "drums"]
    assert all(a.duration_beats < b.duration_beats for a, b in pitched)
    assert max(a.duration_beats * plan.style.beat_s for a, _ in pitched) <= 0.15


# ---- rendering


def test_renderer_check_names_a_missing_soundfont(tmp_path):
    with pytest.raises(FileNotFoundError, match="soundfont"):
        mc.generate_corpus(tmp_path, 1, SEED, soundfont=tmp_path / "missing.sf2")


@needs_fluidsynth
def test_manifest_lists_every_quality_with_existing_clips(corpus):
    out_dir, manifest, records = corpus
    assert manifest == out_dir / mc.MANIFEST_NAME
    assert [r.quality for r in records] == [q for q in C.MIDLEVEL_NAMES for _ in range(PAIRS_PER_QUALITY)]
    assert len({r.pair_id for r in records}) == len(records)
    header = manifest.read_text().splitlines()[0].split(",")
    assert {"pair_id", "quality", "more_path", "less_path", "tempo_bpm", "key", "program_names"} <= set(header)
    assert mc.load_manifest(out_dir) == records  # the folder works as well as the file
    for r in records:
        assert r.more_path.is_file() and r.less_path.is_file()
        assert 60 <= r.tempo_bpm <= 170 and r.key in mc.NOTE_NAMES and r.program_names


@needs_fluidsynth
def test_clips_are_4s_mono_22050_float_and_not_silent(corpus):
    from pedalboard.io import AudioFile

    for r in corpus[2]:
        for path in (r.more_path, r.less_path):
            with AudioFile(str(path)) as f:
                assert (f.samplerate, f.num_channels, f.frames) == (22050, 1, 88200)
                samples = f.read(f.frames)[0]
            assert np.all(np.isfinite(samples))
            peak_db = 20 * np.log10(np.max(np.abs(samples)))
            assert peak_db == pytest.approx(r.peak_dbfs, abs=0.05)
            assert rms_db(samples) > r.peak_dbfs - 35  # music, not a click in silence
            # Sound all through the clip, not only at its start: every second has signal.
            seconds = samples.reshape(4, -1)
            assert min(rms_db(s) for s in seconds) > r.peak_dbfs - 45


@needs_fluidsynth
def test_same_seed_regenerates_identical_files(corpus, tmp_path):
    out_dir, manifest, records = corpus
    again = mc.load_manifest(mc.generate_corpus(tmp_path, PAIRS_PER_QUALITY, SEED))
    assert (tmp_path / mc.MANIFEST_NAME).read_bytes() == manifest.read_bytes()
    for first, second in zip(records, again):
        assert first.more_path.read_bytes() == second.more_path.read_bytes()
        assert first.less_path.read_bytes() == second.less_path.read_bytes()


@needs_fluidsynth
def test_the_two_clips_of_a_pair_differ_at_the_same_peak_level(corpus):
    for r in corpus[2]:
        more, less = mc.read_wav(r.more_path), mc.read_wav(r.less_path)
        difference_db = rms_db(more - less) - rms_db(less)
        assert difference_db > -20, r.pair_id
        assert np.max(np.abs(more)) == pytest.approx(np.max(np.abs(less)), rel=1e-3)


@needs_fluidsynth
def test_staccato_clip_has_a_sparser_envelope_than_legato(corpus):
    for r in records_of(corpus[2], "articulation"):
        staccato, legato = mc.read_wav(r.more_path), mc.read_wav(r.less_path)
        assert envelope_fill(staccato) < envelope_fill(legato) - 0.05, r.pair_id
        assert envelope(staccato).std() / envelope(staccato).mean() > envelope(legato).std() / envelope(legato).mean()


@needs_fluidsynth
def test_minor_clip_differs_in_pitch_content_not_loudness(corpus):
    names = {name: pc for pc, name in enumerate(mc.NOTE_NAMES)}
    for r in records_of(corpus[2], "minorness"):
        minor, major = mc.read_wav(r.more_path), mc.read_wav(r.less_path)
        assert abs(rms_db(minor) - rms_db(major)) < 3.0, r.pair_id
        tonic = names[r.key]

        def minor_vs_major_degrees(x):  # (flat 3rd + flat 6th) / (major 3rd + major 6th)
            energy = np.roll(pitch_class_energy(x), -tonic)
            return (energy[3] + energy[8]) / (energy[4] + energy[9])

        assert minor_vs_major_degrees(minor) > 2 * minor_vs_major_degrees(major), r.pair_id


@needs_fluidsynth
def test_steady_clip_has_a_clearer_pulse_than_the_drifting_one(corpus):
    for r in records_of(corpus[2], "rhythm_stability"):
        steady, drifting = mc.read_wav(r.more_path), mc.read_wav(r.less_path)
        assert pulse_clarity(steady, r.tempo_bpm) > pulse_clarity(drifting, r.tempo_bpm) + 0.1, r.pair_id


@needs_fluidsynth
def test_tonally_stable_clip_fits_one_key_better(corpus):
    def key_fit(x):  # share of pitch-class magnitude inside the best major or harmonic-minor key
        energy = pitch_class_energy(x, exponent=1)  # magnitude: a few loud partials weigh less
        keys = [[(k + i) % 12 for i in scale] for scale in (mc.MAJOR, mc.HARMONIC_MINOR) for k in range(12)]
        return max(energy[key].sum() for key in keys) / energy.sum()

    margins = []
    for r in records_of(corpus[2], "tonal_stability"):
        margins.append(key_fit(mc.read_wav(r.more_path)) - key_fit(mc.read_wav(r.less_path)))
        assert margins[-1] > 0, r.pair_id
    assert np.mean(margins) > 0.03
