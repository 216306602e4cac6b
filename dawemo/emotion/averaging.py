"""Change-aware segment averaging: steady on one piece, quick on a change of music.

A listener does not hear a piece's mode, melody or rhythm change every 2 s, but the network's
per-segment logits wobble about as much within one piece as they differ between pieces (for
melodiousness and tonal stability; about half as much for the others). Plain averaging over a
longer window steadies them but delays every change by half the window.

``SteadyAverage`` keeps a running mean of the segment logits with a long time constant
(``steady_s``) and measures how far each new segment lies from it, in units of the usual spread
of segments within one piece. A segment within that spread moves the mean slowly; one beyond
``change_from`` spreads pulls harder, and one beyond ``change_to`` replaces the mean outright.
Each feature's distance is weighted by how well it separates pieces (between-piece / within-piece
spread, squared), so the noisiest features do not trigger jumps. The averaging acts on logits,
before the sigmoid: features and emotions stay exactly what the model's layer says of them.

The spreads are properties of the model, measured on the training excerpts (no ratings) and kept
in its metadata (``segment_spread``); ``dawemo.training.spread`` measures them.
"""

from __future__ import annotations

import numpy as np

CHANGE_FROM = 1.25  # spreads: below this a segment is the same music
CHANGE_TO = 2.25  # spreads: from this on the mean jumps to the new segment


class SteadyAverage:
    """Streaming stage over segment logits (``process``/``reset``); output i depends on inputs 0..i.

    Args:
        within: (n,) spread of each logit within one piece (root-mean-square of per-piece std).
        between: (n,) spread of the per-piece mean logits between pieces.
        steady_s: time constant of the running mean while the music stays the same.
        stride_s: seconds between segments.
        change_from, change_to: distances (in within-piece spreads) where the pull starts and
            where the mean jumps.
    """

    def __init__(self, within, between, steady_s: float, stride_s: float,
                 change_from: float = CHANGE_FROM, change_to: float = CHANGE_TO) -> None:
        self.within = np.asarray(within, dtype=np.float64)
        between = np.asarray(between, dtype=np.float64)
        if self.within.shape != between.shape or np.any(~np.isfinite(self.within)) or np.any(self.within <= 0):
            raise ValueError("segment spreads must be positive, one per logit")
        if not np.isfinite(steady_s) or steady_s < 0:
            raise ValueError(f"steady_s must be >= 0, got {steady_s}")
        if not change_to > change_from >= 0:
            raise ValueError(f"need 0 <= change_from < change_to, got {change_from}, {change_to}")
        separation = (between / self.within) ** 2
        self.weights = separation / separation.sum()
        self.slow_rate = 1.0 if steady_s <= stride_s else stride_s / steady_s
        self.change_from, self.change_to = change_from, change_to
        self.reset()

    def reset(self) -> None:
        self.mean: np.ndarray | None = None

    def distance(self, logits: np.ndarray) -> float:
        """How far one segment's logits lie from the running mean, in within-piece spreads."""
        if self.mean is None:
            return 0.0
        z = (np.asarray(logits, dtype=np.float64) - self.mean) / self.within
        return float(np.sqrt(np.sum(self.weights * z * z)))

    def process(self, logits: np.ndarray) -> np.ndarray:
        """(n_segments, n) segment logits in time order -> (n_segments, n) averaged logits."""
        logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
        out = np.empty_like(logits)
        for i, segment in enumerate(logits):
            if self.mean is None:
                self.mean = segment.copy()
            else:
                distance = self.distance(segment)
                pull = min(1.0, max(0.0, (distance - self.change_from) / (self.change_to - self.change_from)))
                rate = self.slow_rate + (1.0 - self.slow_rate) * pull
                self.mean += rate * (segment - self.mean)
            out[i] = self.mean
        return out
