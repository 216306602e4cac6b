"""From audio to emotions over time: the one processing chain for files and live streams.

``EmotionTracker`` is a streaming stage (``process``/``reset``): audio in any block size ->
spectrogram frames -> network segments (each computed once) -> the window's mean logits ->
change-aware averaging (``dawemo.emotion.averaging``) -> an update every hop.
Feeding a file whole or block by block gives the same updates. ``ClipAnalyzer`` adds what a
whole file needs (timeline, clip summary, length and silence checks) without holding its audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dawemo import constants as C
from dawemo.emotion.averaging import SteadyAverage
from dawemo.emotion.frontend import SpectrogramFrontEnd
from dawemo.emotion.model import EmotionModel


@dataclass
class EmotionUpdate:
    """One model update: the window ending at ``time_s``."""

    time_s: float
    midlevel: np.ndarray  # (7,) in [0, 1]
    emotions: np.ndarray  # (8,) on the 1-9 scale
    window_s: float  # audio actually covered (shorter than the window during the first seconds)


@dataclass
class Analysis:
    """A whole signal's timeline and clip summary."""

    duration_s: float
    updates: list[EmotionUpdate] = field(default_factory=list)
    summary_midlevel: np.ndarray | None = None
    summary_emotions: np.ndarray | None = None


class EmotionTracker:
    """Streaming emotion analysis of mono audio at the model's sample rate.

    Args:
        model: the ONNX model.
        window_s: audio span each update describes (its segments are averaged).
        hop_s: time between updates; rounded to whole segment strides (0.48 s).
        steady_s: time constant of the change-aware averaging while the music stays the same;
            0 (or a model without measured segment spreads) gives each window's mean alone.
    """

    def __init__(self, model: EmotionModel, window_s: float = C.DEFAULT_WINDOW_S,
                 hop_s: float = C.DEFAULT_HOP_S, steady_s: float = C.DEFAULT_STEADY_S) -> None:
        self.model = model
        self.front_end = SpectrogramFrontEnd(model.sample_rate, model.frame_size, model.hop_size)
        stride_s = model.segment_stride_frames / model.frames_per_s
        segment_s = model.segment_frames / model.frames_per_s
        if not np.isfinite(window_s) or window_s < segment_s:
            raise ValueError(f"window_s must be at least one segment ({segment_s:.2f} s), got {window_s}")
        if not np.isfinite(hop_s) or hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        self.hop_segments = max(1, int(round(hop_s / stride_s)))
        self.hop_s = self.hop_segments * stride_s
        self.window_frames = int(round(window_s * model.frames_per_s))
        self.window_s = self.window_frames / model.frames_per_s
        # Segments per full window: those whose frames all lie inside the window.
        self.window_segments = 1 + (self.window_frames - model.segment_frames) // model.segment_stride_frames
        if not np.isfinite(steady_s) or steady_s < 0:
            raise ValueError(f"steady_s must be 0 (off) or positive, got {steady_s}")
        self.steady = None
        if steady_s > 0 and model.segment_spread is not None:
            self.steady = SteadyAverage(*model.segment_spread, steady_s, stride_s)
        self.steady_s = steady_s if self.steady is not None else 0.0
        self.reset()

    def reset(self) -> None:
        self.front_end.reset()
        self._frames = np.zeros((0, self.front_end.n_bands), dtype=np.float32)
        self._frames_offset = 0  # global index of self._frames[0]
        self._logits: list[np.ndarray] = []  # the last window's segment logits
        self.segments_done = 0
        self.logit_sum = np.zeros(len(self.model.midlevel_names))
        if self.steady is not None:
            self.steady.reset()

    def _segment_end_time_s(self, segment_index: int) -> float:
        last_frame = segment_index * self.model.segment_stride_frames + self.model.segment_frames - 1
        return (last_frame * self.model.hop_size + self.model.frame_size) / self.model.sample_rate

    def process(self, samples: np.ndarray) -> list[EmotionUpdate]:
        """Feed mono samples; return the updates whose windows they completed."""
        new_frames = self.front_end.process(samples)
        self._frames = np.concatenate([self._frames, new_frames])
        seg_frames, stride = self.model.segment_frames, self.model.segment_stride_frames
        n_total_frames = self._frames_offset + len(self._frames)
        n_ready = 0 if n_total_frames < seg_frames else 1 + (n_total_frames - seg_frames) // stride
        first_new = self.segments_done
        if n_ready <= first_new:
            return []
        starts = np.arange(first_new, n_ready) * stride - self._frames_offset
        logits = self.model.logits_at(self._frames, starts)
        updates = []
        for i, segment_logits in enumerate(logits):
            index = first_new + i
            self._logits.append(segment_logits)
            self.logit_sum += segment_logits
            if len(self._logits) > self.window_segments:
                self._logits.pop(0)
            if self.steady is not None:  # every segment, so the result does not depend on the hop's phase
                self._steady_logits = self.steady.process(np.mean(self._logits, axis=0))[0]
            if (index + 1) % self.hop_segments == 0:
                updates.append(self._update(index))
        self.segments_done = n_ready
        # Keep only the frames that future segments (and their level context) still need.
        keep_from = max(0, n_ready * stride - (self.model.history_frames - seg_frames) - self._frames_offset)
        self._frames = self._frames[keep_from:]
        self._frames_offset += keep_from
        return updates

    def _update(self, index: int) -> EmotionUpdate:
        logits = self._steady_logits if self.steady is not None else np.mean(self._logits, axis=0)
        midlevel = self.model.midlevel_from_logits(logits)
        span_frames = (len(self._logits) - 1) * self.model.segment_stride_frames + self.model.segment_frames
        return EmotionUpdate(self._segment_end_time_s(index), midlevel,
                             self.model.emotions_from_midlevel(midlevel), span_frames / self.model.frames_per_s)

    def summary(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mid-level features and emotions of everything processed since ``reset()``."""
        if self.segments_done == 0:
            return None
        midlevel = self.model.midlevel_from_logits(self.logit_sum / self.segments_done)
        return midlevel, self.model.emotions_from_midlevel(midlevel)


class ClipAnalyzer:
    """A whole signal's timeline and clip summary, fed block by block (memory does not grow with length).

    ``process`` feeds mono blocks at the model's sample rate in any size; ``finish`` returns the
    ``Analysis``. The clip summary is the mean of every segment's logits, kept as a running sum,
    so feeding a file whole or in blocks gives the same analysis.

    Args:
        model: the ONNX model.
        window_s, hop_s, steady_s: as for ``EmotionTracker``.
    """

    def __init__(self, model: EmotionModel, window_s: float = C.DEFAULT_WINDOW_S,
                 hop_s: float = C.DEFAULT_HOP_S, steady_s: float = C.DEFAULT_STEADY_S) -> None:
        self.model = model
        self.tracker = EmotionTracker(model, window_s, hop_s, steady_s)
        self.updates: list[EmotionUpdate] = []
        self.n_samples = 0
        self.heard = False  # some sample above -120 dBFS

    @property
    def duration_s(self) -> float:
        """Seconds of audio fed so far."""
        return self.n_samples / self.model.sample_rate

    def process(self, samples: np.ndarray) -> None:
        """Feed mono samples, shape (n,), at the model's sample rate."""
        samples = np.asarray(samples, dtype=np.float32)
        self.n_samples += len(samples)
        self.heard = self.heard or bool(np.any(np.abs(samples) > 1e-6))
        self.updates += self.tracker.process(samples)

    def finish(self) -> Analysis:
        """The analysis of everything fed.

        Raises:
            ValueError: the signal is shorter than one segment or silent.
        """
        model = self.model
        min_s = ((model.segment_frames - 1) * model.hop_size + model.frame_size) / model.sample_rate
        if self.duration_s < min_s:
            raise ValueError(f"too short: {self.duration_s:.2f} s of audio, needs at least {min_s:.2f} s")
        if not self.heard:
            raise ValueError("audio is silent (no sample above -120 dBFS)")
        analysis = Analysis(self.duration_s, list(self.updates))
        analysis.summary_midlevel, analysis.summary_emotions = self.tracker.summary()
        return analysis


def analyze_samples(samples: np.ndarray, model: EmotionModel, window_s: float = C.DEFAULT_WINDOW_S,
                    hop_s: float = C.DEFAULT_HOP_S, steady_s: float = C.DEFAULT_STEADY_S) -> Analysis:
    """Analyse a whole mono signal at the model's sample rate.

    Raises:
        ValueError: the signal is shorter than one segment or silent.
    """
    samples = np.asarray(samples, dtype=np.float32)
    clip = ClipAnalyzer(model, window_s, hop_s, steady_s)
    block = 60 * model.sample_rate  # bounded working memory; blocks do not change the result
    for start in range(0, len(samples), block):
        clip.process(samples[start : start + block])
    return clip.finish()
