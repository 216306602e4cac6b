"""Rhythm over musical time: descriptors of the onset envelope of the last 8 s, and the branch
that turns them into the logits of the rhythm features (and articulation).

A 2 s spectrogram segment holds one or two bars at most; whether a piece is easy to march along
with, or hard to tap along to, shows over several bars. So for each network segment the branch
reads the onset envelope of the ``RHYTHM_SPAN_S`` seconds ending with it (fewer at the start of
a stream) and describes it with a few textbook quantities (pulse clarity, how long the pulse
persists, how much of the onset energy falls on the beat, onset rate, how independently the low
and high registers move, how deep the loudness dips between notes). Each rhythm feature's logit is one learnt linear map of them, so the
branch is as explainable as the emotion layer. Everything depends only on audio up to the
segment's end, so streaming equals batch, and a live update costs one span per new segment
(about 0.2 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dawemo import constants as C

RHYTHM_SPAN_S = 8.0
DESCRIPTOR_NAMES = ("pulse_clarity", "pulse_persistence", "onbeat_share", "onset_rate", "layer_independence",
                    "envelope_depth_db", "gap_share")
MIN_LAG_S, MAX_LAG_S = 0.25, 1.5  # beat periods between 40 and 240 bpm
PHASE_BINS = 16
MEMORY_S = 2.0  # recency weighting inside the span: half of a statistic's weight is on the last 1.4 s
LOW_BAND_MAX_HZ, HIGH_BAND_MIN_HZ = 250.0, 2000.0


def band_centres_hz(sample_rate: int = C.SAMPLE_RATE, frame_size: int = C.FRAME_SIZE) -> np.ndarray:
    from dawemo.emotion.frontend import log_filterbank

    bin_hz = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
    return bin_hz[log_filterbank(sample_rate, frame_size).argmax(axis=0)]


def span_frames(frames_per_s: float, span_s: float = RHYTHM_SPAN_S) -> int:
    return int(round(span_s * frames_per_s))


def _weighted_autocorrelation(envelope: np.ndarray, weight: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation at lags 0..max_lag, each product weighted by the later frame's weight.

    Unbiased: each lag is divided by the weight of its overlap, so long lags are not shrunk.
    """
    mean = np.dot(weight, envelope) / weight.sum()
    centred = envelope - mean
    n = len(centred)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    products = np.fft.irfft(np.conj(np.fft.rfft(centred, size)) * np.fft.rfft(weight * centred, size), size)[: max_lag + 1]
    overlap = np.cumsum(weight[::-1])[::-1][: max_lag + 1]  # sum of weight[k:]
    variance = np.dot(weight, centred * centred) / weight.sum() + 1e-12
    return products / np.maximum(overlap, 1e-12) / variance


def describe_span(magnitudes: np.ndarray, frames_per_s: float, band_weights: np.ndarray,
                  memory_s: float = MEMORY_S) -> np.ndarray:
    """The descriptors of one span of linear filterbank magnitudes (n_frames, n_bands).

    ``band_weights`` (n_bands, 3) averages the bands into the whole, low and high onset envelopes.
    Every statistic weights frames by ``exp(-age / memory_s)`` (age from the span's end): the whole
    span shows the periodicity over several bars, while a change of music moves the descriptors
    within a couple of seconds. Gain-invariant: the log floor follows the span's own level.
    Returns ``DESCRIPTOR_NAMES`` values.
    """
    magnitudes = np.asarray(magnitudes, dtype=np.float32)
    power = np.einsum("ij,ij->i", magnitudes, magnitudes)
    log_mag = np.log10(magnitudes + np.float32(1e-3 * magnitudes.mean() + 1e-12))
    rise = np.maximum(log_mag[1:] - log_mag[:-1], 0.0)
    envelopes = (rise @ band_weights).astype(np.float64)
    n = len(envelopes)
    min_lag, max_lag = int(round(MIN_LAG_S * frames_per_s)), int(round(MAX_LAG_S * frames_per_s))
    max_lag = min(max_lag, n // 2)
    if n < 8 or max_lag <= min_lag or envelopes[:, 0].std() < 1e-12:
        return np.zeros(len(DESCRIPTOR_NAMES))
    # Remove each envelope's 1 s moving average, so that a step in onset strength where the music
    # changes does not pass for a periodicity.
    window = max(1, min(int(round(frames_per_s)), n))
    running = np.cumsum(np.r_[np.zeros((1, 3)), envelopes], axis=0)
    lo = np.clip(np.arange(n) - window // 2, 0, n)
    hi = np.clip(np.arange(n) + window // 2 + 1, 0, n)
    detrended = envelopes - (running[hi] - running[lo]) / (hi - lo)[:, None]
    envelope, low_env, high_env = detrended[:, 0], detrended[:, 1], detrended[:, 2]
    weight = np.exp(-(n - 1 - np.arange(n)) / (memory_s * frames_per_s))
    total = weight.sum()
    # Articulation: how deep the loudness dips between notes (fast envelope minus its 1 s mean), and
    # the share of frames more than 12 dB under the loudest of the 0.5 s around them (gaps).
    energy_db = 10 * np.log10(power[1:].astype(np.float64) + 1e-6 * power.mean() + 1e-20)
    second = max(1, int(round(frames_per_s)))
    kernel = min(second, n)
    smooth_db = np.convolve(energy_db, np.ones(kernel) / kernel, mode="same")
    edge = second // 2 if n > 2 * second else 0
    inner = slice(edge, n - edge)
    depth_db = float(np.sqrt(np.dot(weight[inner], (energy_db - smooth_db)[inner] ** 2) / weight[inner].sum()))
    half = max(1, second // 4)
    padded = np.concatenate([np.full(half, energy_db[0]), energy_db, np.full(half, energy_db[-1])])
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(axis=1)
    gaps = float(np.dot(weight, energy_db < local_max - 12.0) / total)
    autocorr = _weighted_autocorrelation(envelope, weight, n - 1)
    best = min_lag + int(np.argmax(autocorr[min_lag : max_lag + 1]))
    clarity = float(autocorr[best])
    # The period to sub-frame precision (parabola through the peak), then how long it persists:
    # a steady beat keeps its correlation at 2, 3, 4 periods; a drifting or jittered one loses it.
    a, b, c = autocorr[best - 1], autocorr[best], autocorr[min(best + 1, n - 1)]
    curvature = a - 2 * b + c
    # (within half a lag of the peak: the neighbour below the search range may be higher still)
    period = best + (float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0)
    multiples = [autocorr[int(round(k * period))] for k in (2, 3, 4) if k * period < n - frames_per_s]
    persistence = float(np.mean(multiples)) if multiples else clarity
    # Share of onset energy in the 3 of 16 beat-phase bins around the strongest phase.
    phase = ((np.arange(n) / period) % 1.0 * PHASE_BINS).astype(int)
    by_phase = np.bincount(phase, weights=weight * np.maximum(envelope, 0.0), minlength=PHASE_BINS)
    peak = int(np.argmax(by_phase))
    onbeat = float(by_phase[[(peak - 1) % PHASE_BINS, peak, (peak + 1) % PHASE_BINS]].sum() / (by_phase.sum() + 1e-12))
    spread = np.sqrt(np.dot(weight, envelope * envelope) / total)
    peaks = (envelope[1:-1] > 0.5 * spread) & (envelope[1:-1] >= envelope[:-2]) & (envelope[1:-1] > envelope[2:])
    rate = float(np.dot(weight[1:-1], peaks) / total * frames_per_s)
    low_c = low_env - np.dot(weight, low_env) / total
    high_c = high_env - np.dot(weight, high_env) / total
    norm = np.sqrt(np.dot(weight, low_c * low_c) * np.dot(weight, high_c * high_c))
    independence = 0.0 if norm < 1e-12 else 1.0 - float(np.dot(weight, low_c * high_c) / norm)
    return np.array([clarity, persistence, onbeat, rate, independence, depth_db, gaps])


@dataclass
class RhythmBranch:
    """Rhythm features' logits from the descriptors: ``logit = weight @ ((d - mean) / std) + bias``.

    Attributes:
        qualities: the mid-level features it supplies (names from MIDLEVEL_NAMES).
        weight: (n_qualities, n_descriptors); mean, std: (n_descriptors,); bias: (n_qualities,).
    """

    qualities: tuple[str, ...]
    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_metadata(cls, meta: dict) -> "RhythmBranch":
        if tuple(meta["descriptors"]) != DESCRIPTOR_NAMES:
            raise ValueError(f"rhythm branch descriptors {meta['descriptors']} are not {list(DESCRIPTOR_NAMES)}")
        return cls(tuple(meta["qualities"]), *(np.asarray(meta[k], dtype=np.float64)
                                               for k in ("weight", "bias", "mean", "std")))

    def metadata(self, span_s: float = RHYTHM_SPAN_S) -> dict:
        return {"descriptors": list(DESCRIPTOR_NAMES), "span_s": span_s, "qualities": list(self.qualities),
                **{k: np.asarray(getattr(self, k)).round(6).tolist() for k in ("weight", "bias", "mean", "std")}}

    def logits(self, descriptors: np.ndarray) -> np.ndarray:
        """(..., n_descriptors) -> (..., n_qualities)."""
        return ((np.asarray(descriptors) - self.mean) / self.std) @ self.weight.T + self.bias


class RhythmDescriber:
    """Descriptors of the span ending at each given frame, for spectrogram frames held by a caller.

    Args:
        frames_per_s: spectrogram frame rate.
        sample_rate, frame_size: of the front end (for the band split).
        span_s: how much audio before each segment's end the descriptors read.
    """

    def __init__(self, frames_per_s: float = C.SAMPLE_RATE / C.HOP_SIZE, sample_rate: int = C.SAMPLE_RATE,
                 frame_size: int = C.FRAME_SIZE, span_s: float = RHYTHM_SPAN_S) -> None:
        self.frames_per_s = frames_per_s
        self.span_s = span_s
        self.span_frames = span_frames(frames_per_s, span_s)
        centres = band_centres_hz(sample_rate, frame_size)
        groups = [np.ones(len(centres), bool), centres <= LOW_BAND_MAX_HZ, centres >= HIGH_BAND_MIN_HZ]
        self.band_weights = np.stack([g / g.sum() for g in groups], axis=1).astype(np.float32)

    def describe(self, magnitudes: np.ndarray, end_frames: np.ndarray) -> np.ndarray:
        """(len(end_frames), n_descriptors): each span is ``magnitudes[max(0, end - span):end]``.

        ``magnitudes`` must hold the ``span_frames`` frames before each end that exist in the stream.
        """
        return np.array([describe_span(magnitudes[max(0, end - self.span_frames):end], self.frames_per_s,
                                       self.band_weights) for end in np.asarray(end_frames, dtype=int)]
                        ).reshape(-1, len(DESCRIPTOR_NAMES))

    def describe_clip(self, magnitudes: np.ndarray, segment_frames: int = C.SEGMENT_FRAMES,
                      stride_frames: int = C.SEGMENT_STRIDE_FRAMES) -> np.ndarray:
        """Descriptors at every segment end of a whole clip: (n_segments, n_descriptors)."""
        from dawemo.emotion.frontend import segment_starts

        return self.describe(magnitudes, segment_starts(len(magnitudes), segment_frames, stride_frames) + segment_frames)
