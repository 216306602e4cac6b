"""The shipped model's explanations: exact, and plausible where the paper gives strong evidence."""

from __future__ import annotations

import numpy as np
import pytest

from dawemo import constants as C
from dawemo.model import EmotionModel, default_model_path

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="shipped model not built")


def test_happy_shares_the_papers_strongest_signs():
    """Chowdhury et al. 2019: happy rises with tonal stability and rhythm complexity, falls with
    dissonance and minorness."""
    model = EmotionModel(use_gpu=False)
    happy = dict(zip(model.midlevel_names, model.emotion_weights[list(model.emotion_names).index("happy")]))
    assert happy["tonal_stability"] > 0 and happy["rhythm_complexity"] > 0, happy
    assert happy["dissonance"] < 0 and happy["minorness"] < 0, happy


def test_graph_emotions_are_exactly_the_explained_linear_map():
    """What the ONNX graph outputs equals bias + sum(weight x feature) from the metadata."""
    model = EmotionModel(use_gpu=False)
    rng = np.random.default_rng(0)
    segments = rng.normal(0, 1, size=(3, 1, C.N_BANDS, C.SEGMENT_FRAMES)).astype(np.float32)
    _, midlevel, emotions = model.session.run(None, {"segments": segments})
    np.testing.assert_allclose(emotions, model.emotions_from_midlevel(midlevel), atol=1e-4)
    np.testing.assert_allclose(model.contributions(midlevel).sum(axis=1) + model.emotion_bias, emotions, atol=1e-4)
