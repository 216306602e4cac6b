"""Offline render speed of the shipped example chains (issue target: >= 50x real time).

    python bench/render_speed.py [--seconds 60] [--repeats 3] [--json OUT]

Generates a music clip (22.05 kHz) and a stereo 44.1 kHz machine sound of the same length,
then times ``dawemo.machine.render.render`` end to end (decode, analysis, chain, writing WAV
and curves) for each chain, and the chain processing alone. Prints one line per chain and JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dawemo.machine.chain import load_chain, shipped_chains  # noqa: E402
from dawemo.machine.processor import MachineChain  # noqa: E402
from dawemo.machine.render import render  # noqa: E402
from dawemo.outputs.mapping import update_values  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from tests.conftest import chord_progression, write_audio  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = EmotionModel()
    results = {"seconds": args.seconds, "chains": {}}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        music = write_audio(folder / "music.wav", chord_progression(args.seconds, 22050, seed=2), 22050)
        machine_audio = chord_progression(args.seconds, 44100, channels=2, seed=5)
        machine = write_audio(folder / "machine.wav", machine_audio, 44100)
        for name in shipped_chains():
            chain = load_chain(name)
            totals, chain_only = [], []
            for _ in range(args.repeats):
                result = render(music, machine, chain, folder / "out.wav", model)
                totals.append(result.seconds)
                processor = MachineChain(chain, 44100)
                for k in range(int(args.seconds / 0.5)):
                    processor.push(update_values([0.5] * 7, [3.0 + 4.0 * (k % 2)] * 8), k * 0.5)
                started = time.perf_counter()
                for i in range(0, machine_audio.shape[1], 4096):
                    processor.process(machine_audio[:, i:i + 4096])
                chain_only.append(time.perf_counter() - started)
            entry = {"render_x_realtime": args.seconds / float(np.median(totals)),
                     "chain_only_x_realtime": args.seconds / float(np.median(chain_only)),
                     "render_seconds": totals, "chain_seconds": chain_only}
            results["chains"][name] = entry
            print(f"{name:16s} render {entry['render_x_realtime']:6.0f}x real time "
                  f"(chain alone {entry['chain_only_x_realtime']:6.0f}x)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: {kk: round(vv, 1) for kk, vv in v.items() if "x_" in kk}
                      for k, v in results["chains"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
