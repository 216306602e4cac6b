"""The fault matrix of the live path: one row per fault, injected for real into ``dawemo run``.

    python bench/faults.py [--only jack-stop,disk-full,...] [--repeat 1] [--json out.json]

Live faults (tests/fault_rig.py: private jackd, a JACK peer playing music and receiving CC,
dawemo recording a MIDI file and a timeline): the JACK server stopped and killed, the recording's
filesystem filled (space freed after 3 s, or never), the MIDI port's program gone, both cores
eaten by other processes for 10 s, Ctrl-C while the server is down. Start faults (a subprocess
each, tests/test_missing_parts.py's namespaces): no JACK library, no ALSA sequencer, no audio
device, a corrupt preset, a corrupt model.

Columns: detected after (s) — fault to dawemo's line naming it; recovered after (s) — cause
removed to "... is back"; CC gap (s) — longest silence of CC at the receiver around the fault
(JACK rows include the 2 s the server was down); readable — the .mid and the timeline parse,
during and after; lost (s) — music before the fault missing from the timeline; unsaved (s) —
music after the fault that never reached the disk; stop (s) — SIGINT to exit.
Needs Linux, root (mount namespaces), jackd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fault_rig  # noqa: E402

START_FAULTS = {
    # name: (argv after `dawemo`, parts hidden)
    "no JACK library: devices": (["devices"], ("jack",)),
    "no JACK library: run --jack-input": (["run", "--jack-input", "system:capture_1", "-q"], ("jack",)),
    "no ALSA sequencer: run --virtual-port": (["run", "--file", "{clip}", "--virtual-port", "x", "--midi-api", "alsa",
                                               "-q"], ("sound",)),
    "no audio device: run --input default": (["run", "--input", "default", "-q", "--duration-s", "1"], ("sound",)),
    "corrupt preset at start": (["run", "--file", "{clip}", "-q", "--preset", "{bad_preset}"], ()),
    "corrupt model at start": (["run", "--file", "{clip}", "-q", "--model", "{bad_model}"], ()),
}


def start_fault_rows() -> list[dict]:
    from test_missing_parts import in_namespace

    from dawemo.cli.demo import write_demo_clip

    folder = Path(tempfile.mkdtemp(prefix="dawemo-start-faults-"))
    files = {"clip": str(write_demo_clip(folder / "clip.wav")), "bad_preset": str(folder / "bad.toml"),
             "bad_model": str(folder / "bad.onnx")}
    Path(files["bad_preset"]).write_text('[preset]\nname = "bad"\n\n[[lane]]\nsource = "valence"\ncc = 300\n')
    Path(files["bad_model"]).write_bytes(bytes(range(256)) * 40)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "XDG_RUNTIME_DIR": str(folder), "PULSE_SERVER": "unix:/none",
           "JACK_NO_START_SERVER": "1"}
    rows = []
    for name, (argv, hide) in START_FAULTS.items():
        command = [sys.executable, "-m", "dawemo.cli.main", *[part.format(**files) for part in argv]]
        if hide:
            command = in_namespace(command, hide)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        elapsed = time.monotonic() - started
        lines = [line for line in (done.stderr + done.stdout).splitlines() if "error" in line or "note:" in line]
        rows.append({"fault": name, "detected_s": round(elapsed, 2), "exit": done.returncode,
                     "traceback": "Traceback" in done.stderr, "line": (lines or [""])[0][:150]})
    return rows


def device_row() -> dict:
    """Device input gone: tests/test_device_faults.py's real scenario (an ALSA jack PCM whose server
    stops and returns), run by pytest; its summary line gives the times."""
    import re

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/test_device_faults.py", "-k", "server_goes_away"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    match = re.search(r"recovering ([\d.]+) s after the server stopped; ok ([\d.]+) s and audio ([\d.]+) s",
                      done.stdout)
    if match is None:
        return {"fault": "device-input-gone", "error": (done.stdout + done.stderr)[-500:]}
    return {"fault": "device-input-gone", "detected_s": float(match.group(1)), "recovered_s": float(match.group(2)),
            "audio_again_s": float(match.group(3))}


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated live scenarios (default: all, then the start faults)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per live scenario; the median is shown")
    parser.add_argument("--json", type=Path, help="write every run's row here")
    args = parser.parse_args()
    why = fault_rig.can_run()
    if why:
        print(f"faults: cannot run here: {why}", file=sys.stderr)
        return 2
    names = args.only.split(",") if args.only else list(fault_rig.SCENARIOS)
    every: list[dict] = []
    print(f"{'fault':<26} {'detected':>9} {'recovered':>10} {'CC gap':>7} {'readable':>9} {'lost':>6} "
          f"{'unsaved':>8} {'stop':>6}")
    for name in names:
        runs = []
        for _ in range(args.repeat):
            row = fault_rig.run_scenario(name)
            row.pop("tail", None)
            runs.append(row)
            every.append(row)

        def median(key):
            values = [run[key] for run in runs if isinstance(run.get(key), (int, float)) and run.get(key) is not None]
            return statistics.median(values) if values else None

        readable = all(run.get("readable") for run in runs)
        print(f"{name:<26} {_fmt(median('detected_s')):>9} {_fmt(median('recovered_s')):>10} "
              f"{_fmt(median('cc_gap_s')):>7} {_fmt(readable):>9} {_fmt(median('lost_s')):>6} "
              f"{_fmt(median('unsaved_after_s')):>8} {_fmt(median('stop_s')):>6}", flush=True)
    if not args.only:
        device = device_row()
        every.append(device)
        print(f"{'device-input-gone':<26} {_fmt(device.get('detected_s')):>9} {_fmt(device.get('recovered_s')):>10} "
              f"{'-':>7} {'-':>9} {'-':>6} {'-':>8} {'-':>6}   (a DeviceSource on ALSA's jack PCM; "
              "tests/test_device_faults.py)", flush=True)
        print(f"\n{'start fault':<40} {'said after':>10} {'exit':>5}  line")
        for row in start_fault_rows():
            every.append(row)
            flag = "  TRACEBACK" if row["traceback"] else ""
            print(f"{row['fault']:<40} {row['detected_s']:>10.2f} {row['exit']:>5}  {row['line']}{flag}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
