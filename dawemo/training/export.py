"""Export a trained network to the ONNX file the runtime reads, with all its metadata."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from dawemo import constants as C
from dawemo.training.net import MidlevelEmotionNet, OnnxGraph


def model_metadata(net: MidlevelEmotionNet, name: str, version: str, context_frames: int,
                   extra: dict | None = None) -> dict:
    weight, bias = net.linear_emotion_map()
    meta = {
        "name": name,
        "version": version,
        "midlevel_names": list(C.MIDLEVEL_NAMES),
        "emotion_names": list(C.EMOTION_NAMES),
        "midlevel_scale": list(C.MIDLEVEL_SCALE),
        "emotion_scale": list(C.EMOTION_SCALE),
        "emotion_weights": weight.double().tolist(),
        "emotion_bias": bias.double().tolist(),
        "sample_rate": C.SAMPLE_RATE,
        "frame_size": C.FRAME_SIZE,
        "hop_size": C.HOP_SIZE,
        "frames_per_s": C.SAMPLE_RATE / C.HOP_SIZE,
        "n_bands": C.N_BANDS,
        "fmin_hz": C.FMIN_HZ,
        "fmax_hz": C.FMAX_HZ,
        "bands_per_octave": C.BANDS_PER_OCTAVE,
        "segment_frames": C.SEGMENT_FRAMES,
        "segment_stride_frames": C.SEGMENT_STRIDE_FRAMES,
        "context_frames": int(context_frames),
        "default_window_s": C.DEFAULT_WINDOW_S,
        "default_hop_s": C.DEFAULT_HOP_S,
        "input_normalisation": "log10(mag + 1e-3*mean(context)) minus mean log of context, context = the "
                               "context_frames frames ending with the segment (dawemo.emotion.frontend.network_input)",
    }
    meta.update(extra or {})
    return meta


def export_onnx(net: MidlevelEmotionNet, path: str | Path, name: str = "dawemo-midlevel-emotion",
                version: str = "0", context_frames: int = C.CONTEXT_FRAMES,
                extra_metadata: dict | None = None) -> Path:
    """Write ``net`` as ONNX: input ``segments`` (N, 1, bands, frames) -> ``midlevel_logits`` (N, 7),
    ``midlevel`` (7,) and ``emotions`` (8,) of the window the N segments form.

    Args:
        context_frames: the level-reference span the net was trained with (TrainConfig.context_frames).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    example = torch.zeros(2, 1, C.N_BANDS, C.SEGMENT_FRAMES)
    # The wrapper must be in eval mode too: the exporter restores the wrapper's mode afterwards,
    # which would otherwise put the trained net back into training mode.
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for this graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            OnnxGraph(net).eval(), (example,), str(path),
            input_names=["segments"], output_names=["midlevel_logits", "midlevel", "emotions"],
            dynamic_axes={"segments": {0: "n_segments"}, "midlevel_logits": {0: "n_segments"}},
            opset_version=17, dynamo=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = "dawemo"
    entry.value = json.dumps(model_metadata(net, name, version, context_frames, extra_metadata))
    proto.doc_string = "dawemo mid-level perceptual features -> emotions (after Chowdhury et al. 2019)"
    onnx.save(proto, str(path))
    return path
