"""Batch analysis: memory on long files, throughput with 1 and 2 workers, a Dask cluster vs local workers.

Prints:
- peak resident memory of ``dawemo analyze`` on a 10-minute and a 2-hour WAV (44.1 kHz stereo,
  16 bit, synthesised into --work in blocks), and, with ``--before DIR``, of the code in DIR
  (e.g. ``git worktree add /tmp/dawemo-before <commit>``) on the same files;
- batch throughput (audio hours per hour of wall time, whole commands timed, start-up included)
  of ``--jobs 1`` and ``--jobs 2`` on one set of files, and their ratio (target >= 1.8x);
- ``--cluster`` on a local Dask cluster (2 worker processes, 1 thread each, started before
  timing) against ``--jobs 2`` on the same files, timed next to it (target: within 20 %).

Throughput runs are repeated (``--repeats``) and the best kept; the load average is printed, as
other work on the machine slows the parallel runs most.

Run: ``.venv/bin/python bench/batch.py`` (about 8 minutes; ``--skip-long`` leaves out the 2-hour file,
``--parts memory`` measures only memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATE = 44100
CHORDS_HZ = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63), (174.61, 220.00, 261.63), (196.00, 246.94, 293.66))


def synthesise(path: Path, duration_s: float, seed: int = 0, block_s: float = 30.0) -> Path:
    """A stereo chord progression with noise, written in blocks (memory does not grow with length)."""
    from pedalboard.io import AudioFile

    if path.is_file() and path.stat().st_size > 0:
        with AudioFile(str(path)) as existing:
            if abs(existing.frames / existing.samplerate - duration_s) < 0.01:
                return path
    rng = np.random.default_rng(seed)
    bar_s = 3.0 + seed % 3  # files differ a little
    partial = path.with_suffix(".partial.wav")
    with AudioFile(str(partial), "w", RATE, 2, bit_depth=16) as out:
        for start in range(0, int(duration_s * RATE), int(block_s * RATE)):
            n = min(int(block_s * RATE), int(duration_s * RATE) - start)
            t = (start + np.arange(n)) / RATE
            bar = (t // bar_s).astype(int)
            local_s = t - bar * bar_s
            envelope = np.exp(-1.5 * local_s) * (1 - np.exp(-200 * local_s))
            signal = np.zeros(n)
            for voice in range(3):
                freq = np.array([chord[voice] for chord in CHORDS_HZ])[bar % len(CHORDS_HZ)]
                signal += 0.2 * envelope * np.sin(2 * np.pi * freq * local_s)
            signal += 0.003 * rng.standard_normal(n)
            out.write(np.stack([signal, 0.8 * signal]).astype(np.float32))
    partial.replace(path)
    return path


def peak_rss_mb(command: list[str], env: dict, cwd: Path) -> tuple[float, float, int]:
    """Run ``command`` in a wrapper process -> (peak RSS of its largest process in MB, wall s, exit code)."""
    wrapper = ("import resource, subprocess, sys, time, json\n"
               "t = time.perf_counter(); code = subprocess.run(sys.argv[1:]).returncode\n"
               "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "time.perf_counter() - t, code]))\n")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env,
                            cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    kb, wall_s, code = json.loads(result.stdout.strip().splitlines()[-1])
    return kb / 1024, wall_s, code


def tree_peak_rss_mb(command: list[str], env: dict, cwd: Path) -> float:
    """Peak of the summed RSS of ``command`` and all its child processes (sampled every 50 ms), MB."""
    import psutil

    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        total = 0
        for member in [tree, *tree.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total)
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return peak / 2**20


def dawemo(source: Path = REPO) -> tuple[list[str], dict, Path]:
    """The command, environment and folder that run ``dawemo`` from ``source`` (``python -m`` puts
    the current folder first on the path, before PYTHONPATH and the installed package)."""
    env = dict(os.environ, PYTHONPATH=str(source))
    return [sys.executable, "-m", "dawemo.cli.main"], env, source


def timed(command: list[str], env: dict, cwd: Path, repeats: int) -> float:
    """Best wall time of ``repeats`` runs (the least disturbed by other load on the machine)."""
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr[-2000:]}")
        walls.append(time.perf_counter() - started)
    return min(walls)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dawemo-bench-batch"), help="where the audio goes")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare memory with")
    parser.add_argument("--skip-long", action="store_true", help="no 2-hour file")
    parser.add_argument("--files", type=int, default=12, help="files in the throughput set (default %(default)s)")
    parser.add_argument("--file-s", type=float, default=180.0, help="seconds per file in that set")
    parser.add_argument("--parts", default="memory,throughput,cluster",
                        help="what to measure, comma separated (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="throughput runs per setting, best kept")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "out"
    out.mkdir(exist_ok=True)
    command, env, cwd = dawemo()
    print(f"machine: {os.cpu_count()} cores, {load()}; throughput set: {args.files} x {args.file_s:g} s WAV "
          "(44.1 kHz stereo)")

    parts = set(args.parts.split(","))
    # Memory on long files.
    long_files = [("10 min", 600.0)] + ([] if args.skip_long else [("2 h", 7200.0)])
    long_files = long_files if "memory" in parts else []
    for label, duration_s in long_files:
        path = synthesise(args.work / f"long-{int(duration_s)}s.wav", duration_s)
        for name, source in [("now", REPO)] + ([("before", args.before.resolve())] if args.before else []):
            cmd, cmd_env, cmd_cwd = dawemo(source)
            mb, wall_s, code = peak_rss_mb([*cmd, "analyze", str(path), "-q", "--csv", str(out / f"{name}.csv")],
                                           cmd_env, cmd_cwd)
            print(f"peak RSS {label:>6} ({name:>6}): {mb:7.0f} MB  ({wall_s:5.1f} s wall, "
                  f"{duration_s / wall_s:5.0f}x real time, exit {code}, {load()})")

    if "memory" in parts:
        pair = [str(synthesise(args.work / f"long-600s-{seed}.wav", 600.0, seed=seed)) for seed in (1, 2)]
        mb = tree_peak_rss_mb([*command, "analyze", *pair, "-q", "--jobs", "2", "--csv", str(out / "pair.csv")],
                              env, cwd)
        print(f"peak RSS, two 10 min files with --jobs 2, all processes together: {mb:.0f} MB")

    # Throughput, 1 vs 2 workers.
    files = [str(synthesise(args.work / f"set-{i:02d}.wav", args.file_s, seed=i)) for i in range(args.files)]
    audio_h = args.files * args.file_s / 3600
    walls = {}
    for jobs in (1, 2) if "throughput" in parts else ():
        walls[jobs] = timed([*command, "analyze", *files, "-q", "--jobs", str(jobs), "--jsonl",
                             str(out / f"jobs{jobs}.jsonl")], env, cwd, args.repeats)
        print(f"--jobs {jobs}: {walls[jobs]:6.1f} s wall, {audio_h / (walls[jobs] / 3600):6.0f} audio hours per hour "
              f"({load()})")
    if walls:
        # What the machine itself allows: two separate one-worker runs on half the files each, at once.
        halves = [files[: len(files) // 2], files[len(files) // 2 :]]
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            runs = [subprocess.Popen([*command, "analyze", *half, "-q", "--jobs", "1", "--jsonl",
                                      str(out / f"half{i}.jsonl")], env=env, cwd=cwd) for i, half in enumerate(halves)]
            if any(run.wait() != 0 for run in runs):
                raise RuntimeError("a half run failed")
            best = min(best, time.perf_counter() - started)
        print(f"two separate --jobs 1 runs at once, half the files each: {best:6.1f} s wall "
              f"(the machine's own 2-process speed-up: {walls[1] / best:.2f}x) ({load()})")
        print(f"--jobs 2 vs --jobs 1: {walls[1] / walls[2]:.2f}x (target >= 1.8x)")
        same = [json.loads(line) for line in (out / "jobs1.jsonl").read_text().splitlines()[1:]]
        other = {e["path"]: e for e in (json.loads(line) for line in (out / "jobs2.jsonl").read_text().splitlines()[1:])}
        print(f"--jobs 2 gives the same entries as --jobs 1: {all(other[e['path']] == e for e in same)}")

    if "cluster" not in parts:
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        wall_cluster = timed([*command, "analyze", *files, "-q", "--cluster", cluster.scheduler_address,
                              "--jsonl", str(out / "cluster.jsonl")], env, cwd, args.repeats)
        wall_local = timed([*command, "analyze", *files, "-q", "--jobs", "2", "--jsonl", str(out / "jobs2.jsonl")],
                           env, cwd, args.repeats)  # again, under the same load as the cluster run
    print(f"--cluster (local Dask, 2 workers): {wall_cluster:6.1f} s wall, "
          f"{audio_h / (wall_cluster / 3600):6.0f} audio hours per hour; --jobs 2 next to it: {wall_local:6.1f} s; "
          f"cluster takes {wall_cluster / wall_local:.2f}x the time (target <= 1.2x) ({load()})")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
