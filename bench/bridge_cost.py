"""The dawemo Bridge plugin's audio-thread cost per block, timed inside run() (TIMING build).

    python bench/bridge_cost.py [--blocks 50000] [--block 512]

Builds the VST3 with TIMING=1 (run() stamps steady_clock at entry and exit into a ring in the
shared memory; the stamps themselves are included) and drives it from pedalboard, a real VST3
host, in 512-frame blocks at 48 kHz, stereo:
- audio: capture + pass-through, no reader attached;
- audio+reader: dawemo's BridgeSource draining the ring from another thread meanwhile;
- audio+reader+midi: the same, with dawemo writing 4 CC per block for the plugin to emit.
Prints p50/p99/p99.9/max in µs per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dawemo.bridge_shm import BridgeSegment, list_bridges  # noqa: E402
from dawemo.inputs.bridge import BridgeSource  # noqa: E402
from dawemo.outputs.bridge_midi import BridgeMidiOut  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=50000, help="blocks per configuration (default 50000)")
    parser.add_argument("--block", type=int, default=512, help="frames per block (default 512)")
    args = parser.parse_args()
    import pedalboard

    out = Path(tempfile.mkdtemp(prefix="dawemo-bridge-cost-"))
    subprocess.run(["bash", str(ROOT / "bridge" / "build.sh"), str(out), "vst3"], check=True,
                   env={**os.environ, "TIMING": "1"})
    prefix = f"cost{uuid.uuid4().hex[:6]}"
    os.environ["DAWEMO_BRIDGE_NAME"] = prefix
    plugin = pedalboard.load_plugin(str(out / "DawemoBridge.vst3"))
    plugin.process(np.zeros((2, args.block), np.float32), 48000, buffer_size=args.block, reset=False)
    name = next(info.name for info in list_bridges() if info.name.startswith(prefix) and info.active)
    segment = BridgeSegment(name)
    chunk_blocks = segment.costs.shape[0] // 2  # read the cost ring before the plugin laps it
    audio = np.random.default_rng(0).uniform(-1, 1, (2, chunk_blocks * args.block)).astype(np.float32)
    results = {"settings": {"block_frames": args.block, "sample_rate": 48000, "channels": 2,
                            "blocks": args.blocks, "host": f"pedalboard {pedalboard.__version__}"}}

    def run(label: str, per_block=None) -> None:
        costs = []
        while len(costs) < args.blocks:
            start = segment.u64("cost_write")
            if per_block is None:
                plugin.process(audio, 48000, buffer_size=args.block, reset=False)
            else:  # one process() call per block, so dawemo's CC are there for every block
                for index in range(chunk_blocks):
                    per_block()
                    plugin.process(audio[:, index * args.block:(index + 1) * args.block], 48000,
                                   buffer_size=args.block, reset=False)
            end = segment.u64("cost_write")
            capacity = segment.costs.shape[0]
            costs.extend(int(segment.costs[i % capacity]) for i in range(max(start, end - capacity), end))
        us = np.array(costs[:args.blocks], np.float64) / 1000.0
        results[label] = {"p50_us": round(float(np.percentile(us, 50)), 3),
                          "p99_us": round(float(np.percentile(us, 99)), 3),
                          "p99.9_us": round(float(np.percentile(us, 99.9)), 3),
                          "max_us": round(float(us.max()), 3), "n": int(len(us))}

    run("audio")
    stop = threading.Event()
    source = BridgeSource(name, target_rate=48000, wait=False).__enter__()

    def drain() -> None:
        while not stop.is_set():
            source.read(0.01)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    run("audio+reader")
    midi = BridgeMidiOut(source=source).__enter__()
    events = [(0.0, lane, 0, 20 + lane, 64) for lane in range(4)]
    run("audio+reader+midi_4cc_per_block", per_block=lambda: midi.send(events))
    results["midi_emitted"] = segment.u64("midi_emitted")
    results["reader_dropped_frames"] = source.dropped_frames
    stop.set()
    reader.join()
    midi.close()
    source.close()
    segment.close()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
