"""Offline render speed and memory (issue targets: a 10-minute render >= 100x real time on one core,
start-up included; peak resident memory that does not grow with length, < 500 MB for 2 hours).

    python bench/render_speed.py [--minutes 10] [--long-minutes 120] [--root DIR ...] [--json OUT]

Synthesises the music and the machine sound (44.1 kHz stereo each by default; --music-rate 22050
--music-channels 1 for music at the model's rate) into --files, 30 s at a time, so the generator
never holds a whole file. Then runs ``dawemo render`` as a subprocess per chain, start-up
included: pinned to one core (taskset -c CPU where it exists), OMP/BLAS threads 1 (the model
runs ONNX Runtime with one thread itself). Each run reports wall-clock x real time, CPU seconds
(and x real time by CPU time, which other load on the machine disturbs less) and peak resident
memory (os.wait4's ru_maxrss of that child alone); with --repeats, the least of each. The long
file is rendered once, with the first chain, for its peak memory. --root picks the source tree
to run (PYTHONPATH), so a worktree of an older commit gives the numbers before a change:

    git worktree add /tmp/dawemo-before <commit before the change>
    python bench/render_speed.py --root /tmp/dawemo-before --root .

Last, for the current tree, the chain processing alone in process (--chain-seconds of audio in
4096-sample blocks; 0 skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import chord_progression  # noqa: E402

PIECE_S = 30.0  # synthesised per write: bounded memory for any length
CHAINS = ("tension-bites", "tender-space", "energy-motion")


def synthesise(path: Path, seconds: float, rate: int, channels: int, seed: int) -> Path:
    """A chord progression with a little noise, written piece by piece; kept if already there."""
    from pedalboard.io import AudioFile

    if path.exists():
        with AudioFile(str(path)) as existing:
            if (existing.samplerate, existing.num_channels, existing.frames) == (rate, channels, int(seconds * rate)):
                return path
    partial = path.with_suffix(".partial.wav")
    with AudioFile(str(partial), "w", float(rate), channels) as out:
        done, piece = 0, 0
        total = int(seconds * rate)
        while done < total:
            n = min(int(PIECE_S * rate), total - done)
            out.write(chord_progression(n / rate, rate, channels=channels, seed=seed + piece)[:, :n])
            done, piece = done + n, piece + 1
    partial.rename(path)
    return path


def run_render(root: Path, music: Path, machine: Path, chain: str, out: Path, cpu: int = 0) -> dict:
    """One ``dawemo render`` from ``root``'s sources on core ``cpu``: wall s, CPU s, peak RSS MB."""
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", ORT_NUM_THREADS="1")
    command = [sys.executable, "-m", "dawemo.cli.main", "render", str(music), str(machine), "-o", str(out),
               "--chain", chain, "-q"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu)] + command
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own usage, not all children's
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"render from {root} failed ({process.returncode}):\n{text}")
    return {"wall_s": wall_s, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def chain_alone(seconds: float) -> dict[str, float]:
    """Chain processing alone (no analysis, no files), in process, 4096-sample blocks: x real time."""
    from dawemo.machine.chain import load_chain
    from dawemo.machine.processor import MachineChain
    from dawemo.outputs.mapping import update_values

    audio = chord_progression(seconds, 44100, channels=2, seed=5)
    speeds = {}
    for name in CHAINS:
        processor = MachineChain(load_chain(name), 44100)
        for k in range(int(seconds / 0.5)):
            processor.push(update_values([0.5] * 7, [3.0 + 4.0 * (k % 2)] * 8), k * 0.5)
        started = time.process_time()
        for i in range(0, audio.shape[1], 4096):
            processor.process(audio[:, i:i + 4096])
        speeds[name] = seconds / (time.process_time() - started)
    return speeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the speed test (default %(default)s)")
    parser.add_argument("--long-minutes", type=float, default=120.0,
                        help="length of the memory test; 0 skips it (default %(default)s)")
    parser.add_argument("--chains", nargs="+", default=list(CHAINS))
    parser.add_argument("--root", type=Path, action="append",
                        help="source tree to run (repeatable; default: this one)")
    parser.add_argument("--files", type=Path, default=Path(tempfile.gettempdir()) / "dawemo-bench",
                        help="where the synthesised inputs are kept between runs (default %(default)s)")
    parser.add_argument("--music-rate", type=int, default=44100)
    parser.add_argument("--music-channels", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each short render; the fastest counts (default %(default)s)")
    parser.add_argument("--cpu", type=int, default=0, help="the core the renders are pinned to (default %(default)s)")
    parser.add_argument("--chain-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    roots = [root.resolve() for root in (args.root or [ROOT])]
    args.files.mkdir(parents=True, exist_ok=True)
    music_kind = f"{args.music_rate // 1000}k{args.music_channels}ch"
    lengths = [("short", args.minutes)] + ([("long", args.long_minutes)] if args.long_minutes > 0 else [])
    inputs = {}
    for label, minutes in lengths:
        music = synthesise(args.files / f"music-{minutes:g}min-{music_kind}.wav", minutes * 60, args.music_rate,
                           args.music_channels, seed=100)
        machine = synthesise(args.files / f"machine-{minutes:g}min.wav", minutes * 60, 44100, 2, seed=500)
        inputs[label] = (music, machine, minutes)
    print(f"music {args.music_rate} Hz, {args.music_channels} channel(s); machine sound 44100 Hz stereo; "
          f"one core{'' if shutil.which('taskset') else ' (no taskset here: not pinned)'}, start-up included",
          flush=True)
    results: dict = {"music": music_kind, "roots": {}}
    with tempfile.TemporaryDirectory(dir=args.files) as scratch:
        out = Path(scratch) / "out.wav"
        for root in roots:
            entry = results["roots"].setdefault(str(root), {})
            for label, (music, machine, minutes) in inputs.items():
                for chain in args.chains if label == "short" else args.chains[:1]:
                    runs = [run_render(root, music, machine, chain, out, args.cpu)
                            for _ in range(max(1, args.repeats) if label == "short" else 1)]
                    run = {key: min(r[key] for r in runs) for key in runs[0]}
                    run["x_realtime"] = minutes * 60 / run["wall_s"]
                    run["x_realtime_cpu"] = minutes * 60 / run["cpu_s"]
                    entry[f"{minutes:g}min {chain}"] = run
                    print(f"{str(root):28s} {minutes:5g} min {chain:14s} {run['x_realtime']:6.1f}x real time "
                          f"({run['wall_s']:6.1f} s wall; CPU {run['cpu_s']:6.1f} s: {run['x_realtime_cpu']:6.1f}x)  "
                          f"peak RSS {run['peak_rss_mb']:7.0f} MB", flush=True)
    if args.chain_seconds > 0:
        results["chain_alone_x_realtime"] = chain_alone(args.chain_seconds)
        print("chain alone, in process:", ", ".join(f"{name} {speed:.0f}x"
                                                    for name, speed in results["chain_alone_x_realtime"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
