"""Audio file reading: clear errors for unusable files, including a WAV cut inside its data."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import chord_progression, write_audio
from dawemo.inputs.audio_io import AudioInputError, load_audio


def test_wav_cut_inside_its_data_is_reported_not_zero_filled(tmp_path):
    whole = write_audio(tmp_path / "whole.wav", chord_progression(5.0, 22050), 22050)
    assert len(load_audio(whole)) == 5 * 22050
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioInputError, match="truncated WAV"):
        load_audio(cut)


@pytest.mark.parametrize("bit_depth", [16, 24, 32])
def test_complete_wavs_of_every_depth_load(tmp_path, bit_depth):
    path = write_audio(tmp_path / "x.wav", chord_progression(3.5, 44100, channels=2), 44100, bit_depth=bit_depth)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and abs(len(samples) - 3.5 * 22050) <= 2
