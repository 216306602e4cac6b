"""The spectrogram front-end: streaming equals batch, gain invariance, no train/serve skew."""

from __future__ import annotations

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.emotion.frontend import (SpectrogramFrontEnd, log_filterbank, network_input, normalize_segments,
                             segment_starts, spectrogram)


def tones(duration_s: float, freqs_hz=(220.0, 330.0, 440.0), seed: int = 0) -> np.ndarray:
    t = np.arange(int(duration_s * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) for f in freqs_hz)
    return (0.1 * x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def test_filterbank_matches_the_paper_layout():
    bank = log_filterbank()
    assert bank.shape == (C.FRAME_SIZE // 2 + 1, C.N_BANDS) == (1025, 149)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-5)  # every band normalised
    peaks_hz = bank.argmax(axis=0) * C.SAMPLE_RATE / C.FRAME_SIZE
    # Centres above Nyquist (11.025 kHz at 22.05 kHz) collapse onto the last bins, as in the paper.
    assert np.all(np.diff(peaks_hz) > 0) and peaks_hz[0] < 40 and 10000 < peaks_hz[-1] < C.SAMPLE_RATE / 2
    # Above ~600 Hz the bands are 24 per octave.
    high = peaks_hz[peaks_hz > 1000]
    ratios = high[1:] / high[:-1]
    np.testing.assert_allclose(np.median(ratios), 2 ** (1 / 24), rtol=0.01)


def test_a_tone_lands_in_the_band_of_its_pitch():
    frames = spectrogram(0.5 * np.sin(2 * np.pi * 1000 * np.arange(C.SAMPLE_RATE) / C.SAMPLE_RATE))
    centre_hz = log_filterbank().argmax(axis=0) * C.SAMPLE_RATE / C.FRAME_SIZE
    loudest = frames.mean(axis=0).argmax()
    assert abs(np.log2(centre_hz[loudest] / 1000)) < 1 / 24


@pytest.mark.parametrize("block", [1, 100, 705, 2048, 4097])
def test_streaming_frames_equal_batch_frames(block):
    x = tones(3.0)
    whole = SpectrogramFrontEnd().process(x)
    front_end = SpectrogramFrontEnd()
    front_end.process(np.ones(5000, np.float32))  # state from an earlier stream...
    front_end.reset()  # ...is gone after reset
    streamed = np.concatenate([front_end.process(x[i : i + block]) for i in range(0, len(x), block)])
    assert whole.shape == streamed.shape == (1 + (len(x) - C.FRAME_SIZE) // C.HOP_SIZE, C.N_BANDS)
    np.testing.assert_allclose(streamed, whole, rtol=1e-4, atol=1e-6)


def test_normalisation_removes_any_gain():
    frames = spectrogram(tones(4.0))
    starts = segment_starts(len(frames))
    reference = network_input(frames, starts)
    for gain_db in (-40.0, -20.0, 6.0, 20.0):
        scaled = network_input(frames * 10 ** (gain_db / 20), starts)
        np.testing.assert_allclose(scaled, reference, atol=1e-4)
    # ...but level changes inside the context are kept when the context is longer than a segment.
    louder_end = frames.copy()
    louder_end[-48:] *= 10
    a = normalize_segments(frames[-96:], frames[-200:])
    b = normalize_segments(louder_end[-96:], louder_end[-200:])
    assert abs(b.mean() - a.mean()) > 0.1


def test_network_input_depends_only_on_the_past():
    """A segment's input (with its level context) is the same whether or not later audio exists."""
    frames = spectrogram(tones(12.0))
    starts = segment_starts(len(frames))
    full = network_input(frames, starts, context_frames=313)
    for k, start in enumerate(starts):
        cut = frames[: start + C.SEGMENT_FRAMES]
        np.testing.assert_array_equal(network_input(cut, np.array([start]), context_frames=313)[0], full[k])
    assert full.shape == (len(starts), 1, C.N_BANDS, C.SEGMENT_FRAMES)


def test_segment_grid():
    assert len(segment_starts(C.SEGMENT_FRAMES - 1)) == 0
    starts = segment_starts(313)
    assert starts[0] == 0 and np.all(np.diff(starts) == C.SEGMENT_STRIDE_FRAMES)
    assert starts[-1] + C.SEGMENT_FRAMES <= 313 < starts[-1] + C.SEGMENT_FRAMES + C.SEGMENT_STRIDE_FRAMES
