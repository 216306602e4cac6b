"""A 2-hour performance at accelerated pace: memory, automation integrity, MIDI rate limits.

    python bench/long_run.py [--hours 2]

Loops music through the engine on the audio's own clock (as fast as the CPU allows) with the
default preset and the automation recorder, then checks: resident memory over time, that the
recorded MIDI file parses with one event stream per lane and no lane exceeds its max rate, and
that the timeline holds every update.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dawemo.cli.demo import write_demo_clip  # noqa: E402
from dawemo.engine import STREAM_CLOCK, EmotionEngine  # noqa: E402
from dawemo.outputs.preset_file import load_preset  # noqa: E402
from dawemo.emotion.model import EmotionModel  # noqa: E402
from dawemo.outputs.recorder import AutomationRecorder  # noqa: E402
from dawemo.inputs.sources import FileSource  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    import mido

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    target_s = args.hours * 3600
    preset = load_preset("default")
    model = EmotionModel()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_demo_clip(Path(folder) / "music.wav")
        midi_path, timeline_path = Path(folder) / "run.mid", Path(folder) / "run.csv"
        memory = []
        started = time.monotonic()
        with AutomationRecorder(midi_path, timeline_path, 120.0, lanes=preset.lanes, start_time_s=0.0) as recorder, \
                FileSource(clip, realtime=False, loop=True, buffer_s=30.0) as source:
            with EmotionEngine(source, model, preset=preset, recorder=recorder, clock=STREAM_CLOCK) as engine:
                next_sample = 0.0
                while engine.stream_time_s < target_s:
                    time.sleep(0.5)
                    now_s = engine.stream_time_s
                    if now_s >= next_sample:
                        memory.append((now_s, rss_mb()))
                        next_sample += 300.0
            stats = engine.stats()  # after the engine stopped: the counts then match what was recorded
        wall_s = time.monotonic() - started
        song = mido.MidiFile(midi_path)
        seconds_per_tick = 60.0 / (120.0 * song.ticks_per_beat)
        worst_rate = {}
        events = 0
        for lane, track in zip(preset.lanes, song.tracks[1:]):
            ticks = np.cumsum([m.time for m in track])
            cc_ticks = np.array([t for t, m in zip(ticks, track) if m.type == "control_change"])
            events += len(cc_ticks)
            times = cc_ticks * seconds_per_tick
            if len(times) > 1:
                worst_rate[lane.name] = float(1.0 / np.diff(times).min())
            assert all(0 <= m.value <= 127 and m.channel == lane.channel for m in track if m.type == "control_change")
        with open(timeline_path) as f:
            rows = sum(1 for _ in csv.reader(f)) - 1
    mem = np.array(memory)
    after_warmup = mem[mem[:, 0] >= 600] if np.any(mem[:, 0] >= 600) else mem
    print(json.dumps({
        "audio_hours": stats.stream_time_s / 3600, "wall_s": wall_s, "speed_x_realtime": stats.stream_time_s / wall_s,
        "updates": stats.updates, "timeline_rows": rows, "cc_events_recorded": events,
        "cc_events_sent_by_engine": stats.cc_events,
        "rss_mb": {"first": float(mem[0, 1]), "after_10_min": float(after_warmup[0, 1]),
                   "end": float(mem[-1, 1]), "max": float(mem[:, 1].max()),
                   "growth_after_10_min_mb": float(after_warmup[-1, 1] - after_warmup[0, 1])},
        "max_lane_rate_hz": max(worst_rate.values()), "lane_rate_limit_hz": max(l.max_rate_hz for l in preset.lanes),
        "tracks": len(song.tracks),
    }, indent=1))


if __name__ == "__main__":
    main()
