"""Live-path latency and CPU at default settings, through a real JACK server.

    python bench/live_latency.py [--duration-s 60] [--period 512]

A JACK client plays music (looped Soundtracks excerpts, else the demo clip) into dawemo's JACK
input; dawemo sends CC through a virtual JACK MIDI port to a receiving client. Reported:
- latency from the engine reading an audio block to the CC messages of the update it completed
  arriving at the receiver (excluding the musical window itself), p50/p99;
- the same up to handing the events to the MIDI sender;
- CPU share of one core of the whole process (engine + the test's player and receiver clients).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dawemo import constants as C  # noqa: E402
from dawemo.inputs.audio_io import load_audio  # noqa: E402
from dawemo.cli.demo import demo_clip  # noqa: E402
from dawemo.engine import EmotionEngine  # noqa: E402
from dawemo.inputs.jack_server import DummyJackServer  # noqa: E402
from dawemo.outputs.preset_file import load_preset  # noqa: E402
from dawemo.outputs.midi import MidiOutput  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.inputs.sources import JackSource, StreamingResampler  # noqa: E402
from dawemo.training.soundtracks import DEFAULT_ROOT  # noqa: E402
from jack_helpers import JackPlayer, Receiver, connect  # noqa: E402


def music() -> np.ndarray:
    files = sorted((DEFAULT_ROOT / "audio").glob("*.mp3"))[::25]
    return np.concatenate([load_audio(f) for f in files]) if files else demo_clip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--period", type=int, default=512, help="JACK period in frames (default 512)")
    args = parser.parse_args()
    audio = music()
    batches: list[tuple[float, float | None, int]] = []  # (delivered at, block arrival, n events)
    lock = threading.Lock()
    with DummyJackServer(sample_rate=48000, period_frames=args.period) as server:
        # rtmidi opens/closes JACK clients holding the GIL: do that only while no Python-callback
        # client (player, JACK input) runs, or JACK and the GIL can deadlock.
        receiver = Receiver("synth")
        model = EmotionModel()
        player = None
        try:
            with MidiOutput("dawemo-cc", virtual=True, api="jack") as midi:
                connect(midi.port_name, receiver.name)
                player = JackPlayer([StreamingResampler(C.SAMPLE_RATE, server.sample_rate).process(audio)], name="daw")
                source = JackSource(connect=["daw:out_1"]).__enter__()
                engine = EmotionEngine(source, model, preset=load_preset("default"), midi=midi)
                original = engine._deliver

                def deliver(events, *show_events):  # record which block arrival each batch answers
                    arrival = engine._awaiting_arrival_s
                    original(events, *show_events)
                    if events:
                        with lock:
                            batches.append((time.monotonic(), arrival, len(events)))

                engine._deliver = deliver
                with engine:
                    time.sleep(8.0)  # first window, warm-up
                    engine.stats()
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    time.sleep(args.duration_s)
                    cpu_share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
                    stats = engine.stats()
                time.sleep(0.5)
                source.close()
                player.close()
                player = None
        finally:
            if player is not None:
                player.close()
            receiver.close()
    arrivals = [t for t, _ in receiver.received]
    end_to_end, to_sender, index = [], [], 0
    for delivered, block_arrival, count in batches:
        if block_arrival is not None and index < len(arrivals):
            end_to_end.append(arrivals[index] - block_arrival)
            to_sender.append(delivered - block_arrival)
        index += count
    e2e, sender = np.array(end_to_end) * 1000, np.array(to_sender) * 1000
    print(json.dumps({
        "settings": {"window_s": engine.tracker.window_s, "hop_s": engine.tracker.hop_s,
                     "jack_period_frames": args.period, "jack_rate": 48000, "duration_s": args.duration_s},
        "updates": stats.updates, "dropped_frames": stats.dropped_frames,
        "cc_messages_received": len(arrivals), "cc_messages_sent": sum(b[2] for b in batches),
        "latency_block_to_cc_received_ms": {"p50": float(np.percentile(e2e, 50)), "p99": float(np.percentile(e2e, 99)),
                                            "max": float(e2e.max()), "n": len(e2e)},
        "latency_block_to_sender_ms": {"p50": float(np.percentile(sender, 50)), "p99": float(np.percentile(sender, 99))},
        "cpu_percent_of_one_core": 100 * cpu_share,
    }, indent=1))


if __name__ == "__main__":
    main()
