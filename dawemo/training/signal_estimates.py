"""Signal estimates of the mid-level qualities on real audio, from the filterbank spectrogram.

Textbook descriptors, one per quality that has one (melodiousness has none). They order the
independent probe pairs of ``tests/probe_audio.py`` right (a test checks this), so on real music
they are a sanity check of what a feature tracks (``bench/feature_validity.py``) and, optionally, a
weak ranking target for training (``TrainConfig.estimate_weight``).
"""

from __future__ import annotations

import numpy as np

from dawemo import constants as C
from dawemo.emotion.frontend import log_filterbank

KEY_PROFILE_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KEY_PROFILE_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
FRAMES_PER_S = C.SAMPLE_RATE / C.HOP_SIZE


def band_centres_hz() -> np.ndarray:
    filters = log_filterbank()
    bin_hz = np.fft.rfftfreq(C.FRAME_SIZE, 1.0 / C.SAMPLE_RATE)
    return bin_hz[filters.argmax(axis=0)]


def key_correlations(chroma: np.ndarray) -> np.ndarray:
    """(2, 12): correlation with the major (row 0) and minor (row 1) profile of each tonic."""
    return np.array([[np.corrcoef(chroma, np.roll(profile, tonic))[0, 1] for tonic in range(12)]
                     for profile in (KEY_PROFILE_MAJOR, KEY_PROFILE_MINOR)])


def signal_estimates(spec: np.ndarray, centres_hz: np.ndarray) -> dict[str, float]:
    """Clip-level estimates from (frames, bands) linear filterbank magnitudes."""
    # Chroma from 200 Hz-2 kHz, where 24 bands per octave resolve semitones.
    tonal = (centres_hz >= 200) & (centres_hz <= 2000)
    pitch_class = np.round(12 * np.log2(centres_hz[tonal] / 440.0) + 69).astype(int) % 12
    chroma = np.bincount(pitch_class, weights=spec[:, tonal].sum(axis=0), minlength=12)
    chroma = chroma / (chroma.sum() + 1e-12)
    keys = key_correlations(chroma)
    log_spec = np.log(spec + 1e-6 * spec.mean() + 1e-12)
    flatness = np.exp(log_spec.mean(axis=1)) / (spec.mean(axis=1) + 1e-12)
    energy_db = 10 * np.log10((spec ** 2).sum(axis=1) + 1e-12)
    second = int(round(FRAMES_PER_S))
    smooth_db = np.convolve(energy_db, np.ones(second) / second, mode="same")
    flux = np.maximum(np.diff(log_spec, axis=0), 0).mean(axis=1)
    onsets = flux - flux.mean()
    lags = np.arange(int(0.25 * FRAMES_PER_S), int(1.5 * FRAMES_PER_S))
    autocorr = np.array([np.dot(onsets[:-lag], onsets[lag:]) for lag in lags]) / (np.dot(onsets, onsets) + 1e-12)
    threshold = np.median(flux) + 1.5 * flux.std()
    peaks = (flux[1:-1] > threshold) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] > flux[2:])
    return {
        "mode (minor - major)": float(keys[1].max() - keys[0].max()),
        "key clarity": float(keys.max()),
        "semitone clash": float(np.sum(chroma * np.roll(chroma, 1)) / np.sum(chroma ** 2)),
        "spectral flatness": float(flatness[second:-second].mean() if len(flatness) > 3 * second else flatness.mean()),
        "loudness envelope depth": float(np.sqrt(np.mean((energy_db - smooth_db)[second:-second] ** 2))),
        "pulse clarity": float(autocorr.max()),
        "onsets per second": float(peaks.sum() / (len(flux) / FRAMES_PER_S)),
    }


# quality -> its estimates, the first being the training target.
ESTIMATES_OF = {
    "minorness": ["mode (minor - major)"],
    "tonal_stability": ["key clarity"],
    "dissonance": ["semitone clash", "spectral flatness"],
    "articulation": ["loudness envelope depth"],
    "rhythm_stability": ["pulse clarity"],
    "rhythm_complexity": ["onsets per second"],
    "melodiousness": [],
}


def estimate_matrix(spectrograms: list[np.ndarray]) -> np.ndarray:
    """(n_clips, 7) each quality's first estimate per clip, in MIDLEVEL_NAMES order (NaN: none)."""
    centres_hz = band_centres_hz()
    rows = []
    for spec in spectrograms:
        estimates = signal_estimates(spec, centres_hz)
        rows.append([estimates[ESTIMATES_OF[q][0]] if ESTIMATES_OF[q] else np.nan for q in C.MIDLEVEL_NAMES])
    return np.array(rows)
