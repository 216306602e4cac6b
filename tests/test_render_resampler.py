"""The render's 2:1 resampler gives pedalboard's samples bit for bit, in any block sizes."""

import numpy as np
import pytest

from dawemo.inputs.sources import StreamingResampler
from dawemo.machine.render import _HalfRateResampler


def test_only_for_two_to_one():
    assert _HalfRateResampler.measured(48000, 22050) is None
    assert _HalfRateResampler.measured(22050, 22050) is None
    assert _HalfRateResampler.measured(44100, 22050) is not None


@pytest.mark.parametrize("n", [0, 1, 63, 64, 129, 5001, 200_003])
def test_half_rate_equals_pedalboard_exactly(n):
    x = (np.random.default_rng(n).standard_normal(n) * 0.4).astype(np.float32)
    reference = StreamingResampler(44100, 22050)
    expected = np.concatenate([reference.process(x), reference.flush()])
    resampler = _HalfRateResampler.measured(44100, 22050)
    for block in (max(n, 1), 9999, 777, 1):
        if block == 1 and n > 6000:
            continue
        resampler.reset()
        got = np.concatenate([resampler.process(x[i:i + block]) for i in range(0, n, block)] + [resampler.flush()])
        assert got.dtype == np.float32 and np.array_equal(got, expected)
