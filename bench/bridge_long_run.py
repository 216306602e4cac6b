"""Dropped audio over a long bridge run: jalv hosting the dawemo Bridge LV2 on ``jackd -d dummy``
at 48 kHz with 64-frame periods, music playing into it, the full live path reading it.

    python bench/bridge_long_run.py [--duration-s 1800] [--period 64]

In real time (the dummy driver paces the periods). Reported: frames the plugin wrote, frames
dawemo read, frames lost because dawemo fell behind (``dropped_frames``; the target is 0), host
gaps and restarts, JACK xruns, CC sent and emitted by the plugin, the engine's updates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.live_latency import music  # noqa: E402
from dawemo import constants as C  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.engine import EmotionEngine  # noqa: E402
from dawemo.inputs.bridge import BridgeSource  # noqa: E402
from dawemo.inputs.jack_server import DummyJackServer  # noqa: E402
from dawemo.inputs.sources import StreamingResampler  # noqa: E402
from dawemo.outputs.bridge_midi import BridgeMidiOut  # noqa: E402
from dawemo.outputs.preset_file import load_preset  # noqa: E402
from jack_helpers import JackPlayer, connect  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--period", type=int, default=64)
    args = parser.parse_args()
    import subprocess

    import jack

    from bridge_helpers import Jalv, unique_name

    lv2 = Path(tempfile.mkdtemp(prefix="dawemo-bridge-long-"))
    subprocess.run(["bash", str(ROOT / "bridge" / "build.sh"), str(lv2), "lv2"], check=True)
    audio = music()
    with DummyJackServer(sample_rate=48000, period_frames=args.period, name=unique_name("wtbridge-long")) as server:
        xruns = []
        watcher = jack.Client(unique_name("xrun-watch"), no_start_server=True)
        watcher.set_xrun_callback(lambda delay: xruns.append(delay))
        watcher.activate()
        with Jalv(lv2, "jalv-long", unique_name("long")) as host:
            player = JackPlayer([StreamingResampler(C.SAMPLE_RATE, server.sample_rate).process(audio)], name="daw")
            connect("daw:out_1", "jalv-long:lv2_audio_in_1")
            with BridgeSource(host.bridge) as source, BridgeMidiOut(source=source) as midi:
                engine = EmotionEngine(source, EmotionModel(), preset=load_preset("default"), midi=midi)
                segment = source.segment
                written0 = segment.u64("audio_write")
                started = time.monotonic()
                with engine:
                    while time.monotonic() - started < args.duration_s:
                        time.sleep(10)
                        print(f"{time.monotonic() - started:7.0f} s: written {segment.u64('audio_write') - written0}, "
                              f"read {source.position - written0}, dropped {source.dropped_frames}, "
                              f"gaps {source.host_gap_frames}, xruns {len(xruns)}", file=sys.stderr, flush=True)
                    stats = engine.stats()
                elapsed = time.monotonic() - started
                result = {
                    "settings": {"rate": 48000, "period_frames": args.period, "duration_s": round(elapsed, 1),
                                 "host": "jalv 1.6 (LV2), jackd2 dummy driver, --no-realtime"},
                    "plugin_frames_written": segment.u64("audio_write") - written0,
                    "expected_frames_at_48k": int(elapsed * 48000),
                    "dawemo_frames_read": source.position - written0,
                    "dawemo_dropped_frames": source.dropped_frames,
                    "host_gap_frames": source.host_gap_frames, "restarts": source.restarts,
                    "reattaches": source.attaches - 1, "jack_xruns": len(xruns),
                    "cc_sent": midi.sent_count, "cc_dropped": midi.dropped_count,
                    "cc_emitted_by_plugin": segment.u64("midi_emitted"), "updates": stats.updates,
                    "engine_latency_ms_p50_p99": [round(stats.latency_ms_p50, 1), round(stats.latency_ms_p99, 1)],
                }
                # Before tearing the JACK clients down: a jackd that hangs on the way out keeps the numbers.
                print(json.dumps(result, indent=1), flush=True)
            player.client.deactivate()
            player.client.close()
        watcher.deactivate()
        watcher.close()


if __name__ == "__main__":
    main()
