"""Shared fixtures: a tiny random-init ONNX model and real audio files, good and bad."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# Triads of a I-vi-IV-V progression in C (Hz), one per 3 s bar.
CHORDS_HZ = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63), (174.61, 220.00, 261.63), (196.00, 246.94, 293.66))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A random-init MidlevelEmotionNet exported to ONNX (the shipped model is still being trained)."""
    torch = pytest.importorskip("torch", reason="exporting the test model needs torch (pip install -e .[train])")
    pytest.importorskip("onnx", reason="exporting the test model needs onnx (pip install -e .[train])")
    from dawemo.training.export import export_onnx
    from dawemo.training.net import MidlevelEmotionNet

    torch.manual_seed(0)
    return export_onnx(MidlevelEmotionNet(), tmp_path_factory.mktemp("model") / "tiny.onnx")


def chord_progression(duration_s: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Plucked triads of a I-vi-IV-V progression with a little noise: (channels, n) float32."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    bar_s = 3.0
    signal = np.zeros_like(t)
    for bar in range(int(np.ceil(duration_s / bar_s))):
        in_bar = (t >= bar * bar_s) & (t < (bar + 1) * bar_s)
        local_s = t[in_bar] - bar * bar_s
        envelope = np.exp(-1.5 * local_s) * (1 - np.exp(-200 * local_s))
        for freq in CHORDS_HZ[bar % len(CHORDS_HZ)]:
            signal[in_bar] += 0.2 * envelope * np.sin(2 * np.pi * freq * local_s)
    signal += 0.003 * np.random.default_rng(seed).standard_normal(len(t))
    # Slightly different gains per channel so a downmix is not trivially one channel.
    gains = np.linspace(1.0, 0.6, channels)[:, None]
    return (gains * signal[None, :]).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, **kwargs) -> Path:
    """Write (channels, n) float32 samples with pedalboard."""
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", float(sample_rate), samples.shape[0], **kwargs) as file:
        file.write(samples)
    return path


def write_clips(directory: Path) -> SimpleNamespace:
    """Write the test inputs under ``directory``.

    Returns:
        namespace with ``root`` (folder of all audio, to pass as a directory), ``good`` and
        ``bad`` ({name: path}), ``empty_dir`` (a folder with no audio) and ``missing`` (a path
        that does not exist). ``bad[name]`` are all files inside ``root`` except the last two.
    """
    root = directory / "clips"
    (root / "nested").mkdir(parents=True)
    good = {
        "chords": write_audio(root / "chords.wav", chord_progression(12.0, 44100, channels=2), 44100),
        "mono_8k": write_audio(root / "mono_8k.wav", chord_progression(4.0, 8000), 8000),
        "surround_96k": write_audio(root / "surround_96k.wav", chord_progression(4.0, 96000, channels=6), 96000),
        "melody_flac": write_audio(root / "nested" / "melody.flac", chord_progression(5.0, 22050, seed=1), 22050),
    }
    bad = {"empty": root / "empty.wav", "not_audio": root / "not_audio.wav", "truncated": root / "truncated.wav"}
    bad["empty"].write_bytes(b"")
    bad["not_audio"].write_text("this is a text file, not audio\n" * 20)
    # Cut inside the RIFF header: nothing decodable is left.
    bad["truncated"].write_bytes(good["chords"].read_bytes()[:30])
    bad["short"] = write_audio(root / "short.wav", chord_progression(2.0, 22050), 22050)
    bad["silent"] = write_audio(root / "silent.wav", np.zeros((1, 22050 * 5), np.float32), 22050)
    with_nan = chord_progression(5.0, 22050)
    with_nan[0, 1000:1010] = np.nan
    bad["nan"] = write_audio(root / "nan.wav", with_nan, 22050, bit_depth=32)  # float WAV keeps the NaNs
    (root / "readme.txt").write_text("not audio, ignored when searching the folder\n")
    empty_dir = directory / "no_audio_here"
    empty_dir.mkdir()
    (empty_dir / "notes.txt").write_text("no audio in this folder\n")
    missing = directory / "does_not_exist.wav"
    bad["empty_dir"], bad["missing"] = empty_dir, missing
    return SimpleNamespace(root=root, good=good, bad=bad, empty_dir=empty_dir, missing=missing)


@pytest.fixture
def generated_clips(tmp_path) -> SimpleNamespace:
    """Real audio files, good and bad, in a fresh folder (see ``write_clips``)."""
    return write_clips(tmp_path)


@pytest.fixture(scope="session")
def session_clips(tmp_path_factory) -> SimpleNamespace:
    """The same files written once per session, for tests that only read them."""
    return write_clips(tmp_path_factory.mktemp("audio"))


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A real small filesystem (tmpfs of ``size``, e.g. "512k") mounted on ``folder``; skips the
    test unless root can mount one here."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    folder.mkdir(exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_disk(disk: Path) -> Path:
    """Write a filler file until the disk refuses (ENOSPC); returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler
