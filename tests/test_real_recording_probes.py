"""Real-recording probes: do the shipped model's features follow soundtrack excerpts changed so that
they hold more, or less, of one quality?

The changes are those of ``bench/real_transforms.py``, written independently of the training changes
(``dawemo/training/rhythm_branch.py``, ``dawemo/training/pair_refine.py``), on every 8th of the last
100 excerpts: both branches made their training pairs from the first 200 only. The excerpts are
copyrighted and not in the repository; without ``../shared/data/soundtracks`` these tests skip.
``python bench/real_transforms.py`` gives the same table on all 100.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

# (quality, change) pairs of bench/real_transforms.CHANGES that the shipped model follows on all 100
# excerpts (model card). Not here: the feedback delay (79 % right, +0.047: below the bar on the full set).
FOLLOWED = [("melodiousness", "pieces reversed"), ("melodiousness", "clarinet line added"), ("rhythm_stability", "tape wander"),
            ("rhythm_complexity", "off-grid echo"), ("articulation", "expander"),
            ("dissonance", "semitone copy vs octave copy"), ("tonal_stability", "key alternating by a tritone"),
            ("tonal_stability", "tonic drone vs tritone drone"), ("minorness", "minor vs major triad pad")]


@pytest.fixture(scope="module")
def excerpts():
    from dawemo.inputs.audio_io import load_audio
    from dawemo.training.soundtracks import find_root

    try:
        root = find_root(None)
    except FileNotFoundError:
        pytest.skip("needs ../shared/data/soundtracks (copyrighted excerpts, not in the repository)")
    names = sorted(p.stem for p in (root / "audio").glob("*.mp3"))[200:300:8]
    return {name: load_audio(root / "audio" / f"{name}.mp3") for name in names}


@pytest.mark.slow
@pytest.mark.soundtracks
@pytest.mark.parametrize("quality,change", FOLLOWED)
def test_features_follow_changed_real_recordings(excerpts, quality: str, change: str) -> None:
    import real_transforms as rt

    from dawemo.emotion.model import EmotionModel, default_model_path

    if not default_model_path().is_file():
        pytest.skip("shipped model not found")
    model = EmotionModel(use_gpu=False)
    column = model.midlevel_names.index(quality)
    (_, make), = [entry for entry in rt.CHANGES[quality] if entry[0] == change]
    deltas = []
    for name, x in excerpts.items():
        more, less = make(x, np.random.default_rng(int(name)))
        deltas.append(rt.summary(model, more)[column] - rt.summary(model, less)[column])
    right = np.mean(np.array(deltas) > 0)
    assert right >= 0.75 and np.mean(deltas) >= 0.05, f"{quality}, {change}: {np.round(deltas, 3).tolist()}"
