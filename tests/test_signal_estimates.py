"""Signal estimates of the mid-level qualities: they must order the independent probe pairs, and the
ranking loss built on them must push logits the way the estimates point."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.emotion.frontend import spectrogram
from dawemo.training.signal_estimates import ESTIMATES_OF, band_centres_hz, estimate_matrix, signal_estimates

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe_audio as pa  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("quality", [q for q in C.MIDLEVEL_NAMES if ESTIMATES_OF[q]])
def test_first_estimate_orders_the_probe_pairs(quality):
    """The training target of each quality is higher on the probe clip with more of it, in at least
    7 of 8 pairs (the probes' synthesis is independent of the estimators)."""
    centres_hz = band_centres_hz()
    name = ESTIMATES_OF[quality][0]
    differences = [signal_estimates(spectrogram(pair.more), centres_hz)[name]
                   - signal_estimates(spectrogram(pair.less), centres_hz)[name] for pair in pa.probe_pairs(quality)]
    assert sum(d > 0 for d in differences) >= 7, (quality, name, differences)


def test_estimate_matrix_has_no_melodiousness_estimate_and_ignores_gain():
    rng = np.random.default_rng(0)
    t = np.arange(6 * C.SAMPLE_RATE) / C.SAMPLE_RATE
    clip = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.01 * rng.standard_normal(len(t)))
    quiet, loud = estimate_matrix([spectrogram(0.01 * clip.astype(np.float32)), spectrogram(clip.astype(np.float32))])
    melodiousness = C.MIDLEVEL_NAMES.index("melodiousness")
    assert np.isnan(quiet[melodiousness]) and np.isnan(loud[melodiousness])
    others = [k for k in range(len(C.MIDLEVEL_NAMES)) if k != melodiousness]
    np.testing.assert_allclose(quiet[others], loud[others], rtol=1e-3, atol=1e-3)


def test_estimate_ranking_loss_follows_the_estimates():
    torch = pytest.importorskip("torch", reason="needs the train extra")
    from dawemo.training.train import estimate_ranking_loss

    estimates = torch.tensor([[np.nan] + [-1.0] * 6, [np.nan] + [1.0] * 6, [np.nan] + [1.1] * 6])
    logits = torch.zeros(3, 7, requires_grad=True)
    loss = estimate_ranking_loss(logits, estimates, margin=0.5)
    loss.backward()
    # Windows 1 and 2 (clearly more than window 0) are pushed up, window 0 down; the pair (1, 2) is
    # within the margin and melodiousness has no estimate, so neither moves anything.
    assert torch.all(logits.grad[1, 1:] < 0) and torch.all(logits.grad[2, 1:] < 0) and torch.all(logits.grad[0, 1:] > 0)
    assert torch.all(logits.grad[:, 0] == 0)
    torch.testing.assert_close(logits.grad[1], logits.grad[2])
    assert np.isclose(loss.item(), np.log(2))
