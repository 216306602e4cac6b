"""The dawemo Bridge plugin for tests: one build per source version (cached), jalv as a host,
and a JACK client that records audio."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BRIDGE_SRC = ROOT / "bridge"
DPF_PATH = Path(os.environ.get("DPF_PATH", "/usr/share/dpf"))


def toolchain_problem() -> str | None:
    if not (DPF_PATH / "distrho" / "DistrhoPluginMain.cpp").is_file():
        return f"DPF not found in {DPF_PATH} (apt-get install dpf-source)"
    if shutil.which(os.environ.get("CXX", "g++")) is None or shutil.which("gcc") is None:
        return "g++/gcc not installed"
    return None


def build_bridge(timing: bool = False) -> Path:
    """Build all three formats once per source version; returns the folder holding
    vst3/DawemoBridge.vst3, clap/DawemoBridge.clap and lv2/DawemoBridge.lv2. Skips the test when
    the toolchain is missing; fails it when the build fails."""
    problem = toolchain_problem()
    if problem:
        pytest.skip(problem)
    digest = hashlib.sha1()
    for path in sorted(BRIDGE_SRC.glob("*")):
        if path.suffix in (".cpp", ".h", ".sh"):
            digest.update(path.name.encode() + path.read_bytes())
    digest.update(b"timing" if timing else b"")
    out = Path(tempfile.gettempdir()) / f"dawemo-bridge-test-{digest.hexdigest()[:12]}"
    if (out / "done").is_file():
        return out
    work = Path(tempfile.mkdtemp(prefix="dawemo-bridge-test-build-"))
    env = dict(os.environ, TIMING="1" if timing else "0")
    for fmt in ("vst3", "clap", "lv2"):
        result = subprocess.run(["bash", str(BRIDGE_SRC / "build.sh"), str(work / fmt), fmt], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"building the bridge ({fmt}) failed:\n{result.stderr[-3000:]}")
    (work / "done").write_text("ok")
    try:
        work.rename(out)
    except OSError:  # another session built it meanwhile
        shutil.rmtree(work, ignore_errors=True)
    return out


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


class Jalv:
    """jalv hosting the bridge's LV2 build on the current JACK server (JACK_DEFAULT_SERVER).

    The bridge instance is named ``<bridge_prefix>-1`` (via $DAWEMO_BRIDGE_NAME)."""

    def __init__(self, lv2_dir: Path, client: str, bridge_prefix: str, extra_env: dict | None = None,
                 state_dir: Path | None = None, bridge: str | None = None) -> None:
        if shutil.which("jalv") is None:
            pytest.skip("jalv not installed (apt-get install jalv)")
        self.client = client
        self.bridge = bridge or f"{bridge_prefix}-1"
        env = dict(os.environ, LV2_PATH=str(lv2_dir), DAWEMO_BRIDGE_NAME=bridge_prefix, **(extra_env or {}))
        # jalv's console reads commands from stdin: keep a pipe open, never write.
        state = ["-l", str(state_dir)] if state_dir is not None else []
        self.process = subprocess.Popen(["jalv", "-x", *state, "-n", client, "urn:dawemo:bridge"], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        import jack

        deadline = time.monotonic() + timeout_s
        probe = jack.Client(unique_name("probe"), no_start_server=True)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"jalv exited: {self.process.stderr.read().decode()[-500:]}")
                names = [port.name for port in probe.get_ports(f"{self.client}:")]
                if f"{self.client}:lv2_events_out" in names and Path(f"/dev/shm/dawemo-bridge-{self.bridge}").exists():
                    return
                time.sleep(0.05)
        finally:
            probe.close()
        raise AssertionError("jalv did not come up within 10 s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin:
            self.process.stdin.close()

    def __enter__(self) -> "Jalv":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class JackRecorder:
    """A JACK client recording its input ports (``NAME:in_1``...) into memory."""

    def __init__(self, name: str, channels: int = 1) -> None:
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.ports = [self.client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self.blocks: list[np.ndarray] = []
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.blocks.append(np.stack([port.get_array().copy() for port in self.ports]))

    def audio(self) -> np.ndarray:
        blocks = list(self.blocks)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(self.ports), 0), np.float32)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
