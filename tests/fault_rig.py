"""Fault scenarios of the live path, with real parts, for tests/test_live_faults.py and bench/faults.py.

Each scenario runs ``dawemo run`` as a child process, as a performer would: a private
``jackd -d dummy`` server, a JACK client standing in for the DAW (it plays the demo clip into
dawemo's input and receives dawemo's CC on a JACK MIDI port), recording to a MIDI file and a
timeline. Then it injects one fault for real — the server stopped or killed, the recording's
filesystem filled, the MIDI port's program gone, both cores eaten by other processes — and
measures from the outside:

    detected_s    fault -> dawemo's stderr line naming it
    recovered_s   cause removed (server back, space freed, port back, hog ended) -> "... is back"
    cc_gap_s      the longest silence of CC at the receiver around the fault
    readable      the .mid (mido) and the timeline (read_timeline) parse, during and after
    lost_s        model updates produced but missing from the timeline, in seconds of music
    stop_s        SIGINT -> the process has exited

A scenario runs inside its own mount namespace (``unshare -m``) with a private ``/dev/shm``: jackd2
allows 8 servers per machine and a SIGKILLed one keeps its slot in /dev/shm, which then goes with
the namespace. Disk faults use a small tmpfs mounted in the same namespace. Needs root (or user
namespaces), jackd and the JACK library.

    python tests/fault_rig.py SCENARIO     # inside the namespace: prints one JSON row
    run_scenario(SCENARIO)                 # from outside: starts the namespace, returns the row
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("jack-stop", "jack-kill", "disk-full", "disk-full-stays", "midi-port-gone", "cpu-hog",
             "stop-while-server-down")
WARM_S = 5.0  # the first window (2.1 s) plus a few updates before the fault


def can_run() -> str | None:
    """Why scenarios cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "fault scenarios need Linux (mount namespaces, jackd)"
    for tool in ("jackd", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"fault scenarios need {tool!r} (jackd: Debian package jackd2)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /dev/shm"], capture_output=True)
    if probe.returncode != 0:
        return "fault scenarios need a private mount namespace (unshare -m as root): " + probe.stderr.decode().strip()
    return None


def run_scenario(name: str, timeout_s: float = 120.0) -> dict:
    """Run one scenario in its own mount namespace and return its row (raises on a rig failure)."""
    command = (f"mount -t tmpfs tmpfs /dev/shm && exec {sys.executable} {Path(__file__).resolve()} {name}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"scenario {name} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


# -- inside the namespace ------------------------------------------------------------------------

class JackServer:
    """``jackd --no-realtime -d dummy`` under a fixed name, stoppable, killable and restartable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until a client can join; returns the time.monotonic() it was ready."""
        import jack

        self.process = subprocess.Popen(["jackd", "--no-realtime", "-n", self.name, "-d", "dummy", "-r", "48000",
                                         "-p", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from dawemo.jack_clients import jack_client_lock, route_libjack_messages

        route_libjack_messages()  # "cannot connect" is expected while it starts
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with jack_client_lock():
                    jack.Client("rig-probe", no_start_server=True, servername=self.name).close()
                return time.monotonic()
            except jack.JackError:
                time.sleep(0.01)
        raise RuntimeError("jackd did not start")

    def stop(self, kill: bool = False) -> float:
        injected = time.monotonic()
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=15)
            self.process = None
        return injected


class Daw:
    """The JACK peer: plays the demo clip on ``out_1``; receives MIDI on ``midi_in``, timestamped."""

    def __init__(self, name: str, server: str, clip, play: bool = True) -> None:
        import jack

        from dawemo.jack_clients import jack_client_lock

        with jack_client_lock():
            self.client = jack.Client(name, no_start_server=True, servername=server)
        self.clip = clip
        self.position = 0
        self.out = self.client.outports.register("out_1") if play else None
        self.midi_in = self.client.midi_inports.register("midi_in")
        self.received: list[float] = []  # arrival times of CC messages
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if self.out is not None:
            start = self.position % len(self.clip)
            block = self.clip[start:start + frames]
            if len(block) < frames:
                block = self.clip.take(range(start, start + frames), mode="wrap")
            self.out.get_array()[:] = block
            self.position += frames
        now = time.monotonic()
        for _, buffer in self.midi_in.incoming_midi_events():
            data = bytes(buffer)
            if len(data) == 3 and (data[0] & 0xF0) == 0xB0:
                self.received.append(now)

    def connect_from(self, pattern: str, timeout_s: float = 5.0) -> bool:
        """Connect the first MIDI output port whose name contains ``pattern`` to ``midi_in``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ports = [p.name for p in self.client.get_ports(is_midi=True, is_output=True) if pattern in p.name]
                if ports:
                    if self.midi_in.name not in [p.name for p in self.client.get_all_connections(ports[0])]:
                        self.client.connect(ports[0], self.midi_in)
                    return True
            except Exception:  # the port may come and go while we look
                pass
            time.sleep(0.02)
        return False

    def close(self) -> None:
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


class Dawemo:
    """``dawemo run`` as a child process; stderr lines kept with their arrival times."""

    def __init__(self, args: list[str], server: str) -> None:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-m", "dawemo.cli.main", "run", *args, "--view-every-s", "0.25"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def first(self, text: str, after_s: float = 0.0, timeout_s: float = 0.0) -> float | None:
        """Arrival time of the first stderr line containing ``text`` at or after ``after_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for at, line in list(self.lines):
                if at >= after_s and text in line:
                    return at
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def stop(self) -> float:
        """SIGINT; seconds until it exited (kills it after 10 s)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return float("inf")
        stopped = time.monotonic() - start
        self._reader.join(timeout=2)
        return stopped

    def updates(self) -> int | None:
        for _, line in reversed(self.lines):
            if line.startswith("stopped after"):
                return int(line.split(": ")[1].split(" updates")[0])
        return None

    def tail(self) -> str:
        return "\n".join(line for _, line in self.lines[-15:])


def _readable(midi_path: Path, timeline_path: Path) -> tuple[bool, list[float], str]:
    """(both files parse, the times of the timeline's value rows, why not)."""
    import mido

    from dawemo.outputs.recorder import read_timeline

    try:
        mido.MidiFile(str(midi_path))
        rows = read_timeline(timeline_path)
    except Exception as error:
        return False, [], f"{type(error).__name__}: {error}"
    return True, [float(row["time_s"]) for row in rows if "event" not in row], ""


def _event_rows(timeline_path: Path) -> list[str]:
    """The fault and recovery lines the engine marked in the timeline."""
    from dawemo.outputs.recorder import read_timeline

    try:
        return [row["event"] for row in read_timeline(timeline_path) if "event" in row]
    except Exception:
        return []


def _since(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 3)


def _longest_gap(times: list[float], start: float, end: float) -> float | None:
    """Longest interval without a CC arrival in [start, end] (the edges count as arrivals)."""
    inside = [t for t in times if start <= t <= end]
    if not inside:
        return round(end - start, 3)
    points = [start, *inside, end]
    return round(max(b - a for a, b in zip(points, points[1:])), 3)


def _fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as out:
        chunk = b"\0" * 65536
        while True:
            try:
                out.write(chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


def scenario(name: str) -> dict:
    import numpy as np

    from dawemo.cli.demo import demo_clip

    work = Path(f"/tmp/dawemo-fault-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    record_dir = work / "rec"
    record_dir.mkdir()
    small_fs = name.startswith("disk-full")
    if small_fs:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(record_dir)], check=True)
    server_name = f"rig-{uuid.uuid4().hex[:6]}"
    server = JackServer(server_name)
    server.start()
    clip = np.tile(demo_clip(48000), 1).astype(np.float32)
    row: dict = {"fault": name}
    existing_port = name == "midi-port-gone"
    daw = Daw("daw", server_name, clip)
    target = Daw("synth", server_name, clip, play=False) if existing_port else daw
    midi_args = ["--midi-port", "synth:midi_in"] if existing_port else ["--virtual-port", "cc"]
    mid, timeline = record_dir / "take.mid", record_dir / "take.csv"
    # Each window alone (--steady-s 0): every hop moves some lane, so a CC silence longer than a hop
    # is a stall, not a steady piece whose unchanged values are (rightly) not sent again.
    dawemo = Dawemo(["--jack-input", "daw:out_1", *midi_args, "--midi-api", "jack", "--steady-s", "0",
                     "--record", str(mid), "--timeline", str(timeline)], server_name)
    try:
        started = dawemo.first("dawemo run:", timeout_s=30)  # the recording's time 0, within ~50 ms
        if started is None:
            raise RuntimeError("dawemo did not start:\n" + dawemo.tail())
        if not existing_port:
            daw.connect_from(":cc")
        time.sleep(WARM_S)
        row.update(_inject(name, server, dawemo, daw, target, clip, record_dir, mid, timeline))
        row["stop_s"] = round(dawemo.stop(), 3)
        ok, times, why = _readable(mid, timeline)
        row["readable"] = row.get("readable", True) and ok
        if why:
            row["unreadable_because"] = why
        updates = dawemo.updates()
        hop_s = 0.48
        injected = row.pop("injected_at")
        fault_at_s = injected - started
        # Lost: music from before the fault missing from the timeline, whose rows are one hop apart:
        # the silence from the last saved row to the fault, and any hole between rows before it.
        before = [time_s for time_s in times if time_s <= fault_at_s]
        holes = [b - a - hop_s for a, b in zip(before, before[1:])]
        row["lost_s"] = round(max([fault_at_s - before[-1] - hop_s, *holes, 0.0]), 2) if before else None
        if updates is not None:
            row["unsaved_after_s"] = round(max(0, updates - len(times)) * hop_s, 2)
        row["updates"], row["timeline_rows"] = updates, len(times)
        row["timeline_events"] = _event_rows(timeline)
        row["tail"] = dawemo.tail()
    finally:
        if dawemo.process.poll() is None:
            dawemo.process.kill()
        for peer in {id(daw): daw, id(target): target}.values():
            peer.close()
        server.stop()
        if small_fs:
            subprocess.run(["umount", "-l", str(record_dir)])
        shutil.rmtree(work, ignore_errors=True)
    return row


def _inject(name, server, dawemo, daw, target, clip, record_dir, mid, timeline) -> dict:
    if name in ("jack-stop", "jack-kill", "stop-while-server-down"):
        last_cc = daw.received[-1] if daw.received else None
        cc_before = len(daw.received)
        injected = server.stop(kill=name == "jack-kill")
        detected = dawemo.first("input: recovering", after_s=injected, timeout_s=5)
        if name == "stop-while-server-down":
            time.sleep(1.0)
            return {"detected_s": _since(detected, injected), "injected_at": injected}
        daw.close()
        time.sleep(2.0)
        ready = server.start()
        new_daw = Daw("daw", server.name, clip)
        connected = new_daw.connect_from(":cc", timeout_s=8)
        back = [dawemo.first(f"{part} is back", after_s=ready, timeout_s=8) for part in ("input", "midi")]
        first_cc = None
        deadline = time.monotonic() + 8
        while first_cc is None and time.monotonic() < deadline:
            first_cc = next((t for t in new_daw.received if t >= ready), None)
            time.sleep(0.02)
        time.sleep(2.0)
        daw.received = new_daw.received  # the scenario's teardown closes the new peer
        daw.client = new_daw.client
        recovered = None if None in back else max(back)
        return {"detected_s": _since(detected, injected), "recovered_s": _since(recovered, ready), "injected_at": injected,
                "cc_gap_s": _since(first_cc, last_cc), "cc_gap_note": "server down 2 s; gap includes it",
                "reconnected": connected, "cc_before": cc_before, "cc_after": len(new_daw.received)}
    if name in ("disk-full", "disk-full-stays"):
        before = len(daw.received)
        filler = _fill(record_dir)
        injected = time.monotonic()
        detected = dawemo.first("dawemo: recording:", after_s=injected - 0.6, timeout_s=5)
        # Long enough for the timeline's last page and the tracks' reserves to run out when it stays.
        time.sleep(3.0 if name == "disk-full" else 20.0)
        readable_during, _, why = _readable(mid, timeline)
        result = {"detected_s": _since(detected, injected), "readable": readable_during, "injected_at": injected}
        if why:
            result["unreadable_during_because"] = why
        if name == "disk-full":
            filler.unlink()
            freed = time.monotonic()
            recovered = dawemo.first("recording is back", after_s=freed, timeout_s=5)
            result["recovered_s"] = _since(recovered, freed)
            time.sleep(1.5)
        end = time.monotonic()
        result["cc_gap_s"] = _longest_gap(daw.received, injected, end)
        result["cc_during_fault"] = len(daw.received) - before
        result["tmp_files_left"] = sorted(p.name for p in record_dir.glob("*.tmp"))
        return result
    if name == "midi-port-gone":
        target.close()
        injected = time.monotonic()
        detected = dawemo.first("midi: recovering", after_s=injected, timeout_s=5)
        time.sleep(2.0)
        new_target = Daw("synth", server.name, clip, play=False)
        returned = time.monotonic()
        recovered = dawemo.first("midi is back", after_s=returned, timeout_s=8)
        first_cc = None
        deadline = time.monotonic() + 8
        while first_cc is None and time.monotonic() < deadline:
            first_cc = next(iter(new_target.received), None)
            time.sleep(0.02)
        time.sleep(1.0)
        target.client = new_target.client
        return {"detected_s": _since(detected, injected), "recovered_s": _since(recovered, returned), "injected_at": injected,
                "cc_gap_s": _since(first_cc, returned), "cc_gap_note": "from the port's return"}
    if name == "cpu-hog":
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
        injected = time.monotonic()
        # The fault line, or (when other load had already set it off) a view line showing it.
        detected = dawemo.first("CPU DEGRADED", after_s=injected, timeout_s=10)
        announced = dawemo.first("cpu: degraded", after_s=injected, timeout_s=0)
        detected = min(x for x in (detected, announced) if x is not None) if (detected or announced) else None
        time.sleep(max(0.0, injected + 10.0 - time.monotonic()))
        for hog in hogs:
            hog.kill()
            hog.wait()
        ended = time.monotonic()
        recovered = dawemo.first("cpu is back", after_s=ended, timeout_s=5)
        time.sleep(1.0)
        return {"detected_s": _since(detected, injected), "recovered_s": _since(recovered, ended), "injected_at": injected,
                "cc_gap_s": _longest_gap(daw.received, injected, ended),
                "cc_during_fault": sum(1 for t in daw.received if injected <= t <= ended)}
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


if __name__ == "__main__":
    print(json.dumps(scenario(sys.argv[1])), flush=True)
