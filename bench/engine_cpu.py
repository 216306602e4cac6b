"""CPU share of one core used by ``dawemo run`` alone, live on a real JACK server (target <= 10 %).

    python bench/engine_cpu.py [--duration-s 60] [--period 512]

A player client in this process plays music (looped Soundtracks excerpts, else the demo clip);
``dawemo run --jack-input ... --virtual-port ...`` runs in its own process at default settings
and sends CC to a receiving client here. The CPU time of the dawemo process (user + system,
from /proc) over the measured span is divided by the wall time. The first 5 s (model loading,
first window) are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dawemo import constants as C  # noqa: E402
from dawemo.inputs.audio_io import load_audio  # noqa: E402
from dawemo.cli.demo import demo_clip  # noqa: E402
from dawemo.inputs.jack_server import DummyJackServer  # noqa: E402
from dawemo.inputs.sources import StreamingResampler  # noqa: E402
from dawemo.training.soundtracks import DEFAULT_ROOT  # noqa: E402
from jack_helpers import JackPlayer, Receiver, unique, wait_until  # noqa: E402


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def music() -> np.ndarray:
    audio = DEFAULT_ROOT / "audio"
    if audio.is_dir():
        files = sorted(audio.glob("*.mp3"))[:6]
        return np.concatenate([load_audio(f) for f in files])
    return demo_clip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--period", type=int, default=512)
    args = parser.parse_args()
    signal = music()
    with DummyJackServer(sample_rate=48000, period_frames=args.period) as server:
        receiver = Receiver(unique("synth"))
        player = JackPlayer([StreamingResampler(C.SAMPLE_RATE, server.sample_rate).process(signal).astype(np.float32)],
                            name=unique("daw"))
        port = unique("dawemo-cc")
        process = subprocess.Popen([sys.executable, "-m", "dawemo.cli.main", "run", "--jack-input", f"{player.name}:out_1",
                                    "--virtual-port", port, "--midi-api", "jack", "-q",
                                    "--duration-s", str(args.duration_s + 10)], stderr=subprocess.PIPE, text=True)
        try:
            import jack

            patchbay = jack.Client(unique("patchbay"), no_start_server=True)
            wait_until(lambda: bool(patchbay.get_ports(port, is_midi=True, is_output=True)), 30, "dawemo's port")
            patchbay.connect(patchbay.get_ports(port, is_midi=True, is_output=True)[0], receiver.name)
            patchbay.close()
            time.sleep(5.0)
            cpu0, wall0, count0 = process_cpu_s(process.pid), time.monotonic(), len(receiver.received)
            time.sleep(args.duration_s)
            cpu1, wall1, count1 = process_cpu_s(process.pid), time.monotonic(), len(receiver.received)
        finally:
            process.terminate()
            err = process.communicate(timeout=30)[1]
            player.close()
            receiver.close()
    result = {"duration_s": args.duration_s, "jack_period": args.period,
              "dawemo_process_cpu_percent_of_one_core": 100 * (cpu1 - cpu0) / (wall1 - wall0),
              "cc_messages_received": count1 - count0, "exit_code": process.returncode}
    print(f"dawemo run used {result['dawemo_process_cpu_percent_of_one_core']:.1f} % of one core over "
          f"{args.duration_s:.0f} s ({result['cc_messages_received']} CC messages received)")
    print(json.dumps(result))
    if err.strip():
        print(err.strip()[-500:], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
