"""The shipped mid-level -> emotion model, run with ONNX Runtime.

The ONNX graph maps normalised spectrogram segments (and, from v6, each segment's rhythm
descriptors over the 8 s ending with it: ``dawemo.emotion.rhythm``) to per-segment mid-level
logits; a window's 7 mid-level features are ``sigmoid(mean of its segments' logits)`` and its 8
emotions are ``emotion_weights @ features + emotion_bias``, both stored in the file's metadata.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from dawemo import constants as C


class ModelError(Exception):
    """The model file is missing or unusable; the message says how to fix it."""


def default_model_path() -> Path:
    """The ONNX file shipped inside the installed package."""
    return Path(str(resources.files("dawemo.models").joinpath(C.MODEL_FILENAME)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class EmotionModel:
    """An ONNX Runtime session plus the metadata needed to explain its answers.

    Args:
        path: ONNX file; the shipped model when None.
        threads: intra-op threads (1 keeps a live rig's DAW cores free).
        use_gpu: try CUDA first when ONNX Runtime offers it.
    """

    def __init__(self, path: str | Path | None = None, threads: int = 1, use_gpu: bool = True) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path else default_model_path()
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path} (reinstall dawemo, or pass --model FILE "
                             "made by 'dawemo train')")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        # onnxruntime-gpu logs an error when CUDA libraries are absent; CPU fallback is expected.
        ort.set_default_logger_severity(4)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map["dawemo"])
        except KeyError:
            raise ModelError(f"{self.path}: not a dawemo model (no 'dawemo' metadata)") from None
        except Exception as error:
            raise ModelError(f"{self.path}: cannot load model ({str(error).splitlines()[0]})") from None
        self.metadata = meta
        self.provider = self.session.get_providers()[0]
        self.name = meta["name"]
        self.version = meta["version"]
        self.midlevel_names = tuple(meta["midlevel_names"])
        self.emotion_names = tuple(meta["emotion_names"])
        self.emotion_weights = np.asarray(meta["emotion_weights"], dtype=np.float64)
        self.emotion_bias = np.asarray(meta["emotion_bias"], dtype=np.float64)
        self.sample_rate = int(meta["sample_rate"])
        self.frame_size = int(meta["frame_size"])
        self.hop_size = int(meta["hop_size"])
        self.n_bands = int(meta["n_bands"])
        self.segment_frames = int(meta["segment_frames"])
        self.segment_stride_frames = int(meta["segment_stride_frames"])
        self.context_frames = int(meta.get("context_frames", self.segment_frames))
        # (within-piece, between-piece) spread of each logit over the training excerpts, for
        # change-aware averaging; None for models measured before it existed.
        spread = meta.get("segment_spread")
        self.segment_spread = (np.asarray(spread["within"], np.float64), np.asarray(spread["between"], np.float64)) \
            if spread else None
        self._input_name = self.session.get_inputs()[0].name
        inputs = {i.name for i in self.session.get_inputs()}
        # v6 and later: the rhythm features come from the onset envelope of the 8 s before each segment.
        self.rhythm = None
        if "rhythm_descriptors" in inputs:
            from dawemo.emotion.rhythm import RhythmDescriber

            self.rhythm = RhythmDescriber(self.frames_per_s, self.sample_rate, self.frame_size,
                                          float(meta["rhythm_branch"]["span_s"]))

    @property
    def frames_per_s(self) -> float:
        return self.sample_rate / self.hop_size

    @property
    def history_frames(self) -> int:
        """Spectrogram frames before a segment's end that its logits depend on."""
        return max(self.context_frames, self.rhythm.span_frames if self.rhythm else 0)

    def segment_logits(self, segments: np.ndarray, rhythm_descriptors: np.ndarray | None = None,
                       batch_size: int = 64) -> np.ndarray:
        """(N, 1, n_bands, segment_frames) normalised segments [+ (N, 5) rhythm descriptors] -> (N, 7) logits."""
        if self.rhythm is not None and rhythm_descriptors is None:
            raise ValueError("this model needs rhythm descriptors: use logits_at()")
        outputs = []
        for i in range(0, len(segments), batch_size):
            feed = {self._input_name: segments[i : i + batch_size]}
            if self.rhythm is not None:
                feed["rhythm_descriptors"] = np.asarray(rhythm_descriptors[i : i + batch_size], np.float32)
            outputs.append(self.session.run(["midlevel_logits"], feed)[0])
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.midlevel_names)), np.float32)

    def logits_at(self, magnitudes: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(N, 7) logits of the segments starting at frames ``starts`` of linear filterbank ``magnitudes``.

        ``magnitudes`` must hold the ``history_frames`` frames before each segment's end that exist.
        """
        from dawemo.emotion.frontend import network_input

        starts = np.asarray(starts, dtype=np.int64)
        segments = network_input(magnitudes, starts, self.segment_frames, self.context_frames)
        descriptors = self.rhythm.describe(magnitudes, starts + self.segment_frames) if self.rhythm else None
        return self.segment_logits(segments, descriptors)

    def clip_logits(self, magnitudes: np.ndarray) -> np.ndarray:
        """(n_segments, 7) logits of every segment of a whole clip's filterbank magnitudes."""
        from dawemo.emotion.frontend import segment_starts

        return self.logits_at(magnitudes, segment_starts(len(magnitudes), self.segment_frames,
                                                         self.segment_stride_frames))

    def midlevel_from_logits(self, mean_logits: np.ndarray) -> np.ndarray:
        """Mean segment logits (..., 7) -> mid-level features in [0, 1]."""
        return sigmoid(np.asarray(mean_logits, dtype=np.float64))

    def emotions_from_midlevel(self, midlevel: np.ndarray) -> np.ndarray:
        """(..., 7) mid-level features -> (..., 8) emotions on the 1-9 rating scale."""
        return np.asarray(midlevel, dtype=np.float64) @ self.emotion_weights.T + self.emotion_bias

    def contributions(self, midlevel: np.ndarray) -> np.ndarray:
        """(7,) features -> (8, 7) signed contribution weight x feature of each feature to each emotion."""
        return self.emotion_weights * np.asarray(midlevel, dtype=np.float64)[None, :]

    def describe(self) -> dict:
        """The model block of an analysis report."""
        return {
            "name": self.name,
            "version": self.version,
            "emotions": list(self.emotion_names),
            "midlevel": list(self.midlevel_names),
            "emotion_weights": self.emotion_weights.tolist(),
            "emotion_bias": self.emotion_bias.tolist(),
        }
