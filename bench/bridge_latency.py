"""Latency of the DAW bridge vs today's JACK path, in one run on one JACK server.

    python bench/bridge_latency.py [--duration-s 60] [--period 512]

Both paths at default settings (window, hop, preset), on ``jackd -d dummy`` at 48 kHz:
- jack:   a JACK client plays music into dawemo's JACK input; CC leave through a virtual JACK MIDI
          port (python-rtmidi) to a receiving client (as bench/live_latency.py);
- bridge: the same client plays into jalv hosting the dawemo Bridge LV2 (built with TIMING=1);
          dawemo reads the bridge's shared memory and its CC leave the plugin's MIDI output to the
          same kind of receiving client.
Reported per path, p50/p99 in ms:
- block_to_cc: from the audio block that completed an update entering dawemo's side (JACK: its
  process callback; bridge: the plugin's run(), CLOCK_MONOTONIC stamped in shared memory) to the
  update's first CC arriving at the receiver (excluding the musical window itself);
- read_to_cc: from the engine reading that block to the CC arriving (live_latency's measure);
and, for the bridge, the plugin's audio-thread cost per JACK period under jalv (µs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.live_latency import music  # noqa: E402
from dawemo import constants as C  # noqa: E402
from dawemo.engine import EmotionEngine  # noqa: E402
from dawemo.inputs.bridge import BridgeSource  # noqa: E402
from dawemo.inputs.jack_server import DummyJackServer  # noqa: E402
from dawemo.inputs.sources import JackSource, StreamingResampler  # noqa: E402
from dawemo.outputs.bridge_midi import BridgeMidiOut  # noqa: E402
from dawemo.outputs.preset_file import load_preset  # noqa: E402
from dawemo.outputs.midi import MidiOutput  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from jack_helpers import JackPlayer, Receiver, connect  # noqa: E402


def build_timing_lv2() -> Path:
    import subprocess

    out = Path(tempfile.mkdtemp(prefix="dawemo-bridge-bench-"))
    subprocess.run(["bash", str(ROOT / "bridge" / "build.sh"), str(out), "lv2"], check=True,
                   env={**__import__("os").environ, "TIMING": "1"})
    return out


def percentiles(values_s: list[float]) -> dict:
    ms = np.array(values_s) * 1000.0
    if not len(ms):
        return {"n": 0}
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2),
            "max": round(float(ms.max()), 2), "n": int(len(ms))}


def measure(engine: EmotionEngine, source, entry_of_newest, receiver: Receiver, duration_s: float) -> dict:
    """Run ``engine`` for ``duration_s`` after a warm-up; match each CC batch to its block."""
    reads: list[tuple[float, float | None]] = []  # (when read returned, entry time of its newest block)
    batches: list[tuple[float | None, float, list]] = []  # (block arrival at the engine or None, handed over, CC)
    lock = threading.Lock()
    original_read, original_deliver = source.read, engine._deliver

    def read(timeout_s: float = 0.1):
        block = original_read(timeout_s)
        if block is not None and block.size:
            with lock:
                reads.append((time.monotonic(), entry_of_newest()))
        return block

    def deliver(events, *show_events):
        arrival = engine._awaiting_arrival_s
        handed = time.monotonic()
        original_deliver(events, *show_events)
        if events:  # every batch, so the receiver's messages line up with their batch
            with lock:
                batches.append((arrival, handed, [[0xB0 | e.channel, e.control, e.value] for e in events]))

    source.read, engine._deliver = read, deliver
    with engine:
        time.sleep(6.0)  # first window, warm-up
        with lock:
            batches.clear()
        receiver.received.clear()
        time.sleep(duration_s)
    time.sleep(0.5)
    received = list(receiver.received)
    read_times = np.array([r[0] for r in reads])
    block_to_cc, read_to_cc = [], []
    # Per controller, what arrived is a subsequence of what was sent (an output may coalesce a
    # value away when a newer one for the same controller is due: the JACK path's sender does).
    # Match in order; a message that arrived before its event was handed over cannot answer it.
    per_controller: dict[tuple, list] = {}
    for when, data in received:
        per_controller.setdefault(tuple(data[:2]), []).append((when, data[2]))
    pointers = dict.fromkeys(per_controller, 0)
    for arrival, handed, messages in batches:
        first_at = None
        for index, data in enumerate(messages):
            key = tuple(data[:2])
            arrived = per_controller.get(key, [])
            pointer = pointers.get(key, 0)
            while pointer < len(arrived) and arrived[pointer][0] < handed:
                pointer += 1
            if pointer < len(arrived) and arrived[pointer][1] == data[2]:
                if index == 0:
                    first_at = arrived[pointer][0]
                pointer += 1
            pointers[key] = pointer
        if arrival is None or first_at is None:
            continue
        read_to_cc.append(first_at - arrival)
        at = int(np.searchsorted(read_times, arrival, side="right")) - 1  # the read that arrival followed
        if at >= 0 and reads[at][1] is not None:
            block_to_cc.append(first_at - reads[at][1])
    return {"block_to_cc": block_to_cc, "read_to_cc": read_to_cc,
            "cc_sent": sum(len(m) for _, _, m in batches), "cc_received": len(received),
            "dropped_frames": int(source.dropped_frames)}


def merge(into: dict, part: dict) -> None:
    for key, value in part.items():
        into[key] = into.get(key, [] if isinstance(value, list) else 0) + value


def summary(raw: dict) -> dict:
    out = {key: value for key, value in raw.items() if not isinstance(value, list)}
    out["block_to_cc_ms"] = percentiles(raw["block_to_cc"])
    out["read_to_cc_ms"] = percentiles(raw["read_to_cc"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=120.0, help="measured seconds per path (default 120)")
    parser.add_argument("--period", type=int, default=512, help="JACK period in frames (default 512)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the paths this many times, so both "
                                                              "see the same machine load (default 2)")
    args = parser.parse_args()
    from bridge_helpers import Jalv, unique_name

    lv2 = build_timing_lv2()
    audio = music()
    model = EmotionModel()
    results = {"settings": {"jack_rate": 48000, "jack_period_frames": args.period, "duration_s_per_path": args.duration_s, "rounds": args.rounds,
                            "window_s": C.DEFAULT_WINDOW_S, "hop_s": C.DEFAULT_HOP_S}}
    with DummyJackServer(sample_rate=48000, period_frames=args.period, name=unique_name("wtbridge-bench")) as server:
        signal = StreamingResampler(C.SAMPLE_RATE, server.sample_rate).process(audio)

        raw = {"jack": {}, "bridge": {}}
        costs_ns: list = []
        phase_s = args.duration_s / args.rounds
        for round_ in range(args.rounds):
            # -- today's JACK path ------------------------------------------------------------------
            receiver = Receiver(f"synth{round_}")
            entries: list[float] = []
            with MidiOutput("dawemo-cc", virtual=True, api="jack") as midi:
                connect(midi.port_name, receiver.name)
                player = JackPlayer([signal], name=f"daw{round_}")
                source = JackSource(connect=[f"daw{round_}:out_1"]).__enter__()
                original_process = source._process

                def process(frames, generation=0):  # stamp each block's entry (the bench only)
                    original_process(frames, generation)
                    entries.append(time.monotonic())

                source._process = process
                engine = EmotionEngine(source, model, preset=load_preset("default"), midi=midi)
                merge(raw["jack"], measure(engine, source, lambda: entries[-1] if entries else None, receiver,
                                           phase_s))
                source.close()
                player.client.deactivate()
                player.client.close()
            receiver.close()

            # -- the bridge under jalv ----------------------------------------------------------------
            receiver = Receiver(f"synthb{round_}")
            with Jalv(lv2, "jalv-bench", unique_name("bench")) as host:
                connect("jalv-bench:lv2_events_out", receiver.name)
                player = JackPlayer([signal], name=f"dawb{round_}")
                connect(f"dawb{round_}:out_1", "jalv-bench:lv2_audio_in_1")
                with BridgeSource(host.bridge) as source, BridgeMidiOut(source=source) as midi:
                    engine = EmotionEngine(source, model, preset=load_preset("default"), midi=midi)
                    merge(raw["bridge"], measure(
                        engine, source, lambda: source.transport.mono_ns / 1e9 if source.transport else None,
                        receiver, phase_s))
                    segment = source.segment
                    count = min(segment.u64("cost_write"), len(segment.costs))
                    costs_ns.extend(segment.costs[:count].tolist())  # the last 4096 periods
                player.client.deactivate()
                player.client.close()
            receiver.close()
        results["jack"] = summary(raw["jack"])
        results["bridge"] = summary(raw["bridge"])
        costs_us = np.sort(np.array(costs_ns, np.float64)) / 1000.0
        results["bridge"]["audio_thread_cost_us_per_period"] = {
            "p50": round(float(np.percentile(costs_us, 50)), 2), "p99": round(float(np.percentile(costs_us, 99)), 2),
            "max": round(float(costs_us.max()), 2), "n": int(len(costs_us))}

    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
