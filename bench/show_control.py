"""Show control at the issue's load: 15 OSC lanes and 2 DMX universes (Art-Net, sACN) at default settings.

    python bench/show_control.py [--live-s 60] [--accelerated-h 2] [--skip-live]

Prints one JSON object with:

Receive times are the kernel's arrival stamps (SO_TIMESTAMPNS), not when a receiver thread got
to run. Sections:

* ``live``: ``dawemo run`` on a looped music file in real time, in its own process, sending to
  receivers in this process over loopback: the engine process's CPU (user + system from /proc,
  % of one core, first 5 s left out), once with the show preset and once with the same run and no
  outputs (the model alone); receive-side DMX frame-interval jitter (p99 of |interval - mean|)
  per universe; OSC bundles and DMX frames received.
* ``send_jitter``: the same two universes and 15 OSC lanes driven in this process on the engine's
  control-tick schedule for ``--send-s``: send-side frame-interval jitter from the senders' own
  timestamps (what the network gets, without a receiver's thread in the way).
* ``delay``: two OSC destinations, 0 and 100 ms: per message, send time minus due time
  (tick + delay) and the receive-time difference between the two copies minus 100 ms.
* ``accelerated``: a 2-hour show (model updates every 0.48 s of stream time, 120 Hz ticks) pushed
  through the mapper, the OSC/DMX senders and a timeline recorder as fast as it goes; resident
  memory (RSS) sampled every 10 % of stream time, growth from 25 % to 100 %.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dawemo import constants as C  # noqa: E402
from dawemo.outputs.dmx import frame_interval_stats_ms  # noqa: E402
from dawemo.outputs.preset_file import parse_preset  # noqa: E402
from dawemo.outputs.recorder import AutomationRecorder  # noqa: E402
from dawemo.outputs.show import ShowOutputs  # noqa: E402
from dawemo.outputs.stage import StageControl  # noqa: E402

SOURCES = C.EMOTION_NAMES + C.MIDLEVEL_NAMES


def bench_preset(osc_port: int, artnet_port: int, sacn_port: int, delays=(0.0,)) -> str:
    """15 OSC lanes (osc-visuals), 6 Art-Net lanes (lights) on universe 0, 6 sACN lanes on universe 1."""
    text = "[preset]\nname = \"bench\"\n"
    for n, delay in enumerate(delays):
        text += (f"[destination.visuals{n}]\nprotocol = \"osc\"\nhost = \"127.0.0.1\"\nport = {osc_port + n}\n"
                 f"delay_ms = {delay}\n")
    text += (f"[destination.artnet]\nprotocol = \"artnet\"\nhost = \"127.0.0.1\"\nport = {artnet_port}\nuniverse = 0\n"
             f"[destination.sacn]\nprotocol = \"sacn\"\nhost = \"127.0.0.1\"\nport = {sacn_port}\nuniverse = 1\n")
    for n in range(len(delays)):
        for source in SOURCES:
            text += f"[[lane]]\nname = \"{source} {n}\"\nsource = \"{source}\"\nto = \"visuals{n}\"\nosc = \"/dawemo/{source}\"\n"
    for dest in ("artnet", "sacn"):
        for i, source in enumerate(("energy", "valence", "tension", "articulation", "fear", "minorness")):
            kind = "dmx16" if i == 0 else "dmx"
            text += f"[[lane]]\nname = \"{dest} {source}\"\nsource = \"{source}\"\nto = \"{dest}\"\n{kind} = {1 + 2 * i}\n"
    return text


SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each datagram's arrival (CLOCK_REALTIME, ns)


def kernel_time_s(ancillary) -> float:
    """A datagram's arrival time from its SO_TIMESTAMPNS ancillary data."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds * 1e-9
    return time.time()


class UdpCounter:
    """Receives on 127.0.0.1:port in a thread; keeps each datagram's arrival time as the kernel
    stamped it (so a receiver thread that runs late on a busy machine does not count as jitter)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _, ancillary, _, _ = self.sock.recvmsg(2048, 64)
            except socket.timeout:
                continue
            self.times.append(kernel_time_s(ancillary))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def music_file(folder: Path) -> Path:
    from conftest import chord_progression, write_audio

    return write_audio(folder / "music.wav", chord_progression(30.0, C.SAMPLE_RATE), C.SAMPLE_RATE)


def live(duration_s: float, folder: Path) -> dict:
    clip = music_file(folder)
    out = {}
    for label in ("show", "no_outputs"):
        osc, artnet, sacn = UdpCounter(), UdpCounter(), UdpCounter()
        preset = folder / "bench.toml"
        preset.write_text(bench_preset(osc.port, artnet.port, sacn.port))
        args = [sys.executable, "-m", "dawemo.cli.main", "run", "--file", str(clip), "--realtime", "--loop", "-q"]
        if label == "show":
            args += ["--preset", str(preset)]
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(5.0)
            cpu0, wall0 = process_cpu_s(process.pid), time.monotonic()
            mark = {name: len(c.times) for name, c in (("osc", osc), ("artnet", artnet), ("sacn", sacn))}
            time.sleep(duration_s)
            cpu1, wall1 = process_cpu_s(process.pid), time.monotonic()
        finally:
            process.terminate()
            process.wait(10)
        result = {"cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2)}
        if label == "show":
            for name, counter in (("artnet", artnet), ("sacn", sacn)):
                times = counter.times[mark[name]:]
                stats = frame_interval_stats_ms(times)
                result[f"{name}_frames"] = len(times)
                result[f"{name}_receive_interval_mean_ms"] = round(stats["mean_ms"], 3)
                result[f"{name}_receive_jitter_p99_ms"] = round(stats["p99_jitter_ms"], 3)
            result["osc_bundles"] = len(osc.times) - mark["osc"]
        for counter in (osc, artnet, sacn):
            counter.close()
        out[label] = result
    out["show_control_cpu_percent"] = round(out["show"]["cpu_percent_of_one_core"]
                                            - out["no_outputs"]["cpu_percent_of_one_core"], 2)
    return out


class Driver:
    """The engine's control loop on the wall clock: model updates every 0.48 s (random walk), ticks at 120 Hz."""

    def __init__(self, preset, outputs: ShowOutputs) -> None:
        self.outputs = outputs
        self.mapper = outputs.mapper(StageControl(), hop_s=0.48)
        self.values = {name: 5.0 if name in C.EMOTION_NAMES else 0.5 for name in SOURCES}
        self.rng = random.Random(0)

    def run(self, duration_s: float) -> None:
        start = next_s = time.monotonic()
        next_update_s = start
        while time.monotonic() - start < duration_s:
            now = time.monotonic()
            if now >= next_update_s:
                self._walk()
                self.mapper.push(now, self.values)
                next_update_s += 0.48
            self.outputs.send(self.mapper.tick(now, max_backlog_s=0.1))
            next_s += 1 / 120
            time.sleep(max(0.0, next_s - time.monotonic()))

    def _walk(self) -> None:
        for name in SOURCES:
            low, high = (1.0, 9.0) if name in C.EMOTION_NAMES else (0.0, 1.0)
            step = (high - low) * 0.08 * self.rng.uniform(-1, 1)
            self.values[name] = min(high, max(low, self.values[name] + step))


def send_jitter(duration_s: float) -> dict:
    osc, artnet, sacn = UdpCounter(), UdpCounter(), UdpCounter()
    preset = parse_preset(bench_preset(osc.port, artnet.port, sacn.port), "bench.toml")
    with ShowOutputs(preset) as outputs:
        Driver(preset, outputs).run(duration_s)
        result = {}
        for name in ("artnet", "sacn"):
            stats = frame_interval_stats_ms(list(outputs.senders[name].frame_times_s)[-int(duration_s * 40):])
            result[f"{name}_send_interval_mean_ms"] = round(stats["mean_ms"], 3)
            result[f"{name}_send_jitter_p99_ms"] = round(stats["p99_jitter_ms"], 3)
        result["osc_ticks_sent"] = outputs.senders["visuals0"].sent_ticks
    for counter in (osc, artnet, sacn):
        counter.close()
    return result


RECEIVER = """
import json, socket, struct, sys, time, select
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for sock in socks:
    sock.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS: arrival as the kernel saw it
    sock.bind(("127.0.0.1", 0))
print(json.dumps([sock.getsockname()[1] for sock in socks]), flush=True)
times = [[], []]
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    ready, _, _ = select.select(socks, [], [], 0.1)
    for sock in ready:
        _, anc, _, _ = sock.recvmsg(4096, 64)
        seconds, nanoseconds = struct.unpack("qq", anc[0][2][:16])
        times[socks.index(sock)].append(seconds + nanoseconds * 1e-9)
print(json.dumps(times), flush=True)
"""


def delay(duration_s: float) -> dict:
    """OSC to two destinations, 0 and 100 ms; arrivals timed by a receiver in its own process."""
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(duration_s + 2.0)], stdout=subprocess.PIPE,
                                text=True)
    now_port, later_port = json.loads(receiver.stdout.readline())
    text = bench_preset(now_port, 9, 9, delays=(0.0, 100.0)).replace(f"port = {now_port + 1}\n",
                                                                     f"port = {later_port}\n")
    preset = parse_preset(text, "bench.toml")
    errors_ms = []
    with ShowOutputs(preset) as outputs:
        for name in ("visuals0", "visuals1"):
            outputs.senders[name].on_sent = lambda sent_s, due_s, items: errors_ms.append(1000 * (sent_s - due_s))
        for name in ("artnet", "sacn"):
            outputs.senders[name].close()  # only OSC here
        Driver(preset, outputs).run(duration_s)
        time.sleep(0.3)
    now_times, later_times = json.loads(receiver.communicate(timeout=30)[0])
    pairs = [1000 * (b - a) - 100.0 for a, b in zip(now_times, later_times)]
    errors = np.abs(np.array(errors_ms))
    pairs_abs = np.abs(np.array(pairs))
    within = float(np.mean(pairs_abs <= 2.0)) * 100
    return {"messages": len(errors_ms), "send_minus_due_ms_p50": round(float(np.percentile(errors, 50)), 3),
            "send_minus_due_ms_p99": round(float(np.percentile(errors, 99)), 3),
            "send_minus_due_ms_max": round(float(errors.max()), 3),
            "receive_gap_error_ms_p50": round(float(np.percentile(pairs_abs, 50)), 3),
            "receive_gap_error_ms_p99": round(float(np.percentile(pairs_abs, 99)), 3),
            "receive_gap_error_ms_max": round(float(pairs_abs.max()), 3),
            "receive_gap_within_2ms_percent": round(within, 2),
            "packets_now_later": [len(now_times), len(later_times)]}


def accelerated(hours: float, folder: Path) -> dict:
    osc, artnet, sacn = UdpCounter(), UdpCounter(), UdpCounter()
    preset = parse_preset(bench_preset(osc.port, artnet.port, sacn.port), "bench.toml")
    total_s = hours * 3600
    samples = []
    rng = random.Random(1)
    values = {name: 5.0 if name in C.EMOTION_NAMES else 0.5 for name in SOURCES}
    started = time.monotonic()
    timeline = folder / "accelerated.jsonl"
    with ShowOutputs(preset) as outputs, AutomationRecorder(None, timeline, start_time_s=0.0) as recorder:
        mapper = outputs.mapper(StageControl(), hop_s=0.48)
        base = time.monotonic()  # stream time 0 on the monotonic clock: events are due at once
        updates = int(total_s / 0.48)
        sent = 0
        for n in range(updates):
            stream_s = n * 0.48
            for name in SOURCES:
                low, high = (1.0, 9.0) if name in C.EMOTION_NAMES else (0.0, 1.0)
                values[name] = min(high, max(low, values[name] + (high - low) * 0.08 * rng.uniform(-1, 1)))
            mapper.push(base + stream_s, values)
            events = mapper.tick(base + stream_s + 0.47)
            outputs.send(events)
            outputs.record(recorder, events)
            sent += len(events)
            if n % max(1, updates // 10) == 0:
                samples.append((round(100 * n / updates), round(rss_mb(), 1)))
            if n % 200 == 0:
                time.sleep(0.001)  # let the sender threads drain
        samples.append((100, round(rss_mb(), 1)))
    for counter in (osc, artnet, sacn):
        counter.close()
    quarter = next(mb for pct, mb in samples if pct >= 25)
    return {"stream_hours": hours, "wall_s": round(time.monotonic() - started, 1), "values_sent": sent,
            "timeline_mb": round(timeline.stat().st_size / 2**20, 1),
            "rss_mb_by_percent": {f"{pct}%": mb for pct, mb in samples},
            "rss_growth_mb_25_to_100": round(samples[-1][1] - quarter, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-s", type=float, default=60.0)
    parser.add_argument("--send-s", type=float, default=30.0)
    parser.add_argument("--delay-s", type=float, default=20.0)
    parser.add_argument("--accelerated-h", type=float, default=2.0)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    result = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        result["send_jitter"] = send_jitter(args.send_s)
        result["delay"] = delay(args.delay_s)
        if not args.skip_live:
            result["live"] = live(args.live_s, folder)
        result["accelerated"] = accelerated(args.accelerated_h, folder)
    result["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
