"""``dawemo bench``: cost per update of the shipped model against the paper-size reference VGG.

The reference is the architecture of Chowdhury et al. 2019 (VGG-style, ~3.9 M parameters) over a
full 10 s window (149 bands x 313 frames), recomputed at every update as in the paper's inference
code; it is built here with random weights, which cost the same as trained ones.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from dawemo import constants as C

# (out_channels, kernel, stride, max-pool after) for the paper-size VGG.
REFERENCE_LAYERS = (
    (64, 5, 2, False), (64, 3, 1, True),
    (128, 3, 1, False), (128, 3, 1, True),
    (256, 3, 1, False), (256, 3, 1, True),
    (384, 3, 1, False), (512, 3, 1, False), (256, 1, 1, False),
)


def reference_vgg_onnx(n_bands: int = C.N_BANDS, n_frames: int = 313, seed: int = 0) -> tuple[bytes, int]:
    """Serialized ONNX of the paper-size VGG (BatchNorm folded into the convolutions), and its parameter count."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, n_params, current, in_ch = [], [], 0, "input", 1
    for i, (out_ch, kernel, stride, pool) in enumerate(REFERENCE_LAYERS):
        w = (rng.standard_normal((out_ch, in_ch, kernel, kernel)) * np.sqrt(2 / (in_ch * kernel ** 2))).astype(np.float32)
        b = np.zeros(out_ch, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        n_params += w.size + 3 * out_ch  # conv weights + BatchNorm scale/shift + bias as trained
        nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[kernel, kernel],
                                      strides=[stride, stride], pads=[kernel // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        current = f"r{i}"
        if pool:
            nodes.append(helper.make_node("MaxPool", [current], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            current = f"p{i}"
        in_ch = out_ch
    w = rng.standard_normal((in_ch, 7)).astype(np.float32) * 0.05
    inits.append(numpy_helper.from_array(w, "head"))
    n_params += w.size + 7 + 8 * 7 + 8
    nodes += [helper.make_node("GlobalAveragePool", [current], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("MatMul", ["flat", "head"], ["midlevel"])]
    graph = helper.make_graph(nodes, "reference_vgg", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                      [1, 1, n_bands, n_frames])],
                              [helper.make_tensor_value_info("midlevel", TensorProto.FLOAT, [1, 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString(), n_params


def _time_per_call(fn, n_calls: int) -> np.ndarray:
    times = []
    for _ in range(n_calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000.0


REFERENCE_WINDOW_S = 10.0  # the paper-size VGG's input, 149 x 313


def run_benchmark(model_path=None, window_s: float = REFERENCE_WINDOW_S, hop_s: float = C.DEFAULT_HOP_S,
                  n_updates: int = 100, threads: int = 1) -> dict:
    """Milliseconds per update for the shipped model (streaming) and the reference (recomputed window)."""
    import onnxruntime as ort

    from dawemo.emotion.tracker import EmotionTracker
    from dawemo.emotion.frontend import SpectrogramFrontEnd, normalize_segments
    from dawemo.emotion.model import EmotionModel

    model = EmotionModel(model_path, threads=threads, use_gpu=False)
    tracker = EmotionTracker(model, window_s, hop_s)
    rng = np.random.default_rng(0)
    hop_samples = int(round(tracker.hop_s * model.sample_rate))
    audio = (0.1 * rng.standard_normal(int((window_s + (n_updates + 5) * tracker.hop_s) * model.sample_rate))).astype(np.float32)
    warm = int(window_s * model.sample_rate)
    tracker.process(audio[:warm])  # fill the window first: steady-state cost is what a live rig pays
    position = [warm]

    def ours():
        tracker.process(audio[position[0] : position[0] + hop_samples])
        position[0] += hop_samples

    ours_ms = _time_per_call(ours, n_updates)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    window_frames = int(round(window_s * model.frames_per_s))
    reference_bytes, reference_params = reference_vgg_onnx(model.n_bands, window_frames)
    reference = ort.InferenceSession(reference_bytes, options, providers=["CPUExecutionProvider"])
    front_end = SpectrogramFrontEnd()
    frames = front_end.process(audio[:warm])
    position = [warm]

    def reference_update():
        nonlocal frames
        new = front_end.process(audio[position[0] : position[0] + hop_samples])
        position[0] += hop_samples
        frames = np.concatenate([frames, new])[-window_frames:]
        x = normalize_segments(frames).T[None, None]
        reference.run(None, {"input": np.ascontiguousarray(x)})

    reference_ms = _time_per_call(reference_update, max(20, n_updates // 3))
    params = _onnx_param_count(model.path)

    def stats(ms):
        return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                "mean_ms": float(ms.mean())}

    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": threads, "onnxruntime": ort.__version__},
        "settings": {"window_s": tracker.window_s, "hop_s": tracker.hop_s, "updates": n_updates},
        "shipped": {"name": model.name, "version": model.version, "parameters": params,
                    "segments_per_update": tracker.hop_segments, **stats(ours_ms)},
        "reference": {"name": "paper-size VGG, window recomputed each update", "parameters": reference_params,
                      "input_shape": [1, 1, model.n_bands, window_frames], **stats(reference_ms)},
        "speedup_median": float(np.median(reference_ms) / np.median(ours_ms)),
    }


def _onnx_param_count(path) -> int:
    import onnx
    from onnx import numpy_helper

    return int(sum(numpy_helper.to_array(t).size for t in onnx.load(str(path)).graph.initializer))


def format_report(result: dict) -> str:
    s, r = result["shipped"], result["reference"]
    return "\n".join([
        f"window {result['settings']['window_s']:.2f} s, hop {result['settings']['hop_s']:.3f} s, "
        f"{result['machine']['threads']} ONNX Runtime thread(s)",
        f"shipped   {s['parameters']:>9,d} params  {s['median_ms']:7.2f} ms/update (p90 {s['p90_ms']:.2f})",
        f"reference {r['parameters']:>9,d} params  {r['median_ms']:7.2f} ms/update (p90 {r['p90_ms']:.2f})",
        f"speed-up  {result['speedup_median']:.1f}x",
    ])


if __name__ == "__main__":
    print(json.dumps(run_benchmark("/tmp/random.onnx", n_updates=30), indent=1))
