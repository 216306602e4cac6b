"""Log-frequency spectrogram front-end, shared by training and by every runtime path.

The same code turns audio into network input for ``dawemo train``, ``dawemo analyze`` and the
live engine, so there is no train/serve skew.
"""

from __future__ import annotations

import numpy as np

from dawemo import constants as C


def log_filterbank(
    sample_rate: int = C.SAMPLE_RATE,
    frame_size: int = C.FRAME_SIZE,
    fmin_hz: float = C.FMIN_HZ,
    fmax_hz: float = C.FMAX_HZ,
    bands_per_octave: int = C.BANDS_PER_OCTAVE,
) -> np.ndarray:
    """Triangular filters on a logarithmic frequency axis (madmom's unique-filter layout).

    Returns:
        float32 array (frame_size // 2 + 1, n_bands); 149 bands at the defaults.
    """
    bin_hz = np.fft.rfftfreq(frame_size, 1.0 / sample_rate)
    lowest = np.floor(np.log2(fmin_hz / 440.0) * bands_per_octave)
    highest = np.ceil(np.log2(fmax_hz / 440.0) * bands_per_octave)
    centre_hz = 440.0 * 2.0 ** (np.arange(lowest, highest + 1) / bands_per_octave)
    centre_hz = centre_hz[(centre_hz >= fmin_hz) & (centre_hz <= fmax_hz)]
    # Below ~300 Hz several log-spaced centres fall on one FFT bin: keep each bin once.
    bins = np.unique(np.abs(bin_hz[None, :] - centre_hz[:, None]).argmin(axis=1))
    filters = np.zeros((len(bin_hz), len(bins) - 2), dtype=np.float32)
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        rising = np.linspace(0.0, 1.0, centre - start, endpoint=False)
        falling = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
        filters[start:centre, band] = rising
        filters[centre:stop, band] = falling
        filters[start:stop, band] /= filters[start:stop, band].sum()
    return filters


class SpectrogramFrontEnd:
    """Streaming STFT magnitude -> log-frequency filterbank, frame by frame.

    ``process(samples)`` accepts any number of mono samples at ``sample_rate`` and returns the
    filterbank frames completed by them; feeding a file in pieces after ``reset()`` gives exactly
    the frames of feeding it whole. Frame ``i`` covers samples ``[i*hop, i*hop + frame_size)``.
    """

    def __init__(
        self,
        sample_rate: int = C.SAMPLE_RATE,
        frame_size: int = C.FRAME_SIZE,
        hop_size: int = C.HOP_SIZE,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_size = frame_size
        self.hop_size = hop_size
        self.filterbank = log_filterbank(sample_rate, frame_size)
        self.n_bands = self.filterbank.shape[1]
        # The filters are sparse (a few bins each): gather + segment sums instead of a dense BLAS
        # product, which is 100x slower when a multi-threaded BLAS competes with a busy DAW.
        bins, bands = np.nonzero(self.filterbank.T)
        self._filter_bins = bands  # FFT bin of each nonzero weight, grouped by band
        self._filter_weights = self.filterbank[bands, bins]
        self._band_starts = np.searchsorted(bins, np.arange(self.n_bands))
        self._window = np.hanning(frame_size).astype(np.float32)
        self.reset()

    @property
    def frames_per_s(self) -> float:
        return self.sample_rate / self.hop_size

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Filterbank magnitudes of the frames completed by ``samples``.

        Args:
            samples: float mono audio, shape (n,), at ``sample_rate``.
        Returns:
            float32 array (n_frames, n_bands), linear magnitude (not yet logged).
        """
        buffer = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).ravel()])
        n_frames = 0 if len(buffer) < self.frame_size else 1 + (len(buffer) - self.frame_size) // self.hop_size
        if n_frames == 0:
            self._pending = buffer
            return np.zeros((0, self.n_bands), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buffer, self.frame_size)[:: self.hop_size][:n_frames]
        spectrum = np.abs(np.fft.rfft(frames * self._window, axis=1)).astype(np.float32)
        self._pending = buffer[n_frames * self.hop_size :]
        return np.add.reduceat(spectrum[:, self._filter_bins] * self._filter_weights, self._band_starts, axis=1)


def spectrogram(samples: np.ndarray) -> np.ndarray:
    """Filterbank magnitudes of a whole mono signal at the default settings: (n_frames, n_bands)."""
    return SpectrogramFrontEnd().process(samples)


def normalize_segments(magnitudes: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
    """Log-compress and level-normalise spectrogram segments for the network.

    The floor and the reference level come from ``context`` (the segment itself when None): the
    floor sits 60 dB below the context's mean magnitude and the context's mean log value is
    removed, so multiplying the audio by any gain leaves the result unchanged: a DAW bus level
    or a recording's loudness does not move the prediction, while loudness changes inside the
    context remain visible.

    Args:
        magnitudes: (..., n_frames, n_bands) linear filterbank magnitudes; the last two axes
            form one segment.
        context: (..., n_context_frames, n_bands) magnitudes that set the level reference.
    Returns:
        float32 array of the same shape as ``magnitudes``.
    """
    magnitudes = np.asarray(magnitudes, dtype=np.float32)
    context = magnitudes if context is None else np.asarray(context, dtype=np.float32)
    floor = 1e-3 * context.mean(axis=(-2, -1), keepdims=True) + 1e-12
    reference = np.log10(context + floor).mean(axis=(-2, -1), keepdims=True)
    return (np.log10(magnitudes + floor) - reference).astype(np.float32)


def segment_starts(n_frames: int, segment_frames: int = C.SEGMENT_FRAMES,
                   stride_frames: int = C.SEGMENT_STRIDE_FRAMES) -> np.ndarray:
    """Start frames of every complete segment on the global segment grid."""
    if n_frames < segment_frames:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - segment_frames + 1, stride_frames, dtype=np.int64)


def network_input(magnitudes: np.ndarray, starts: np.ndarray, segment_frames: int = C.SEGMENT_FRAMES,
                  context_frames: int = C.CONTEXT_FRAMES) -> np.ndarray:
    """Cut normalised segments for the network: (n_segments, 1, n_bands, segment_frames).

    Each segment's level reference is the ``context_frames`` frames ending with it (fewer at the
    start of a stream), so the result depends only on audio up to the segment's end: streaming
    and batch give the same input.
    """
    segments = [normalize_segments(magnitudes[s : s + segment_frames],
                                   magnitudes[max(0, s + segment_frames - context_frames) : s + segment_frames])
                for s in starts]
    if not segments:
        return np.zeros((0, 1, magnitudes.shape[1], segment_frames), dtype=np.float32)
    return np.stack(segments).transpose(0, 2, 1)[:, None]
