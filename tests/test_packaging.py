"""The built wheel ships the model, its card and the presets; the installed package finds the model."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dawemo import constants as C
from dawemo.emotion.model import EmotionModel, ModelError, default_model_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_the_model(tmp_path):
    assert (ROOT / "models" / C.MODEL_FILENAME).is_file(), "the shipped model is missing from models/"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("dawemo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"dawemo/models/{C.MODEL_FILENAME}" in names
    assert "dawemo/models/MODEL_CARD.md" in names
    assert "dawemo/presets/default.toml" in names
    assert not any(name.endswith(".mp3") for name in names)
    # 'dawemo bridge install' builds the plugin from these where no binary ships
    assert {"dawemo/bridge_src/DawemoBridge.cpp", "dawemo/bridge_src/BridgeLayout.h",
            "dawemo/bridge_src/DistrhoPluginInfo.h", "dawemo/bridge_src/build.sh"} <= names
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(f"dawemo/models/{C.MODEL_FILENAME}")
    assert shipped == (ROOT / "models" / C.MODEL_FILENAME).read_bytes()


def test_installed_package_finds_the_shipped_model():
    path = default_model_path()
    assert path.name == C.MODEL_FILENAME and path.is_file()
    model = EmotionModel()
    assert model.midlevel_names == C.MIDLEVEL_NAMES and model.emotion_names == C.EMOTION_NAMES
    assert model.emotion_weights.shape == (8, 7) and model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_missing_or_broken_model_gives_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        EmotionModel(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load model"):
        EmotionModel(broken)
