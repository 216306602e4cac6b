"""Audio devices that go away and come back: DeviceSource's faults, with a stand-in and for real.

For real, on ALSA PCMs that need no sound card:

- ALSA's ``jack`` PCM (libasound2-plugins) on a private ``jackd -d dummy``, as in test_sources.py:
  stopping that server (SIGTERM) makes the device go away for good; a server of the same name
  with the same player client brings it back, and the source must open it again.
- ALSA's ``file`` PCM reading a named pipe: a writer that pauses stalls the device, which resumes
  by itself when the writer does; the source must report the stall and keep the stream.

The source runs in a child process with its own ALSA configuration and reads as the engine does;
a watcher thread there polls ``health`` as the engine's watch thread does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from jack_helpers import JackPlayer
from test_sources import ALSA_PLUGIN_FOLDERS, FakeStream, alsa_env, tone_purity, tones
from dawemo.inputs.sources import AudioSourceError, DeviceSource
from dawemo.jack_clients import close_client_bounded

RATE = 48000
FREQUENCIES_HZ = (440, 1250)
needs_linux_alsa = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/usr/share/alsa/alsa.conf").exists(),
    reason="drives ALSA PCMs (Linux, /usr/share/alsa from libasound2-data)")

# ---------------------------------------------------------------------------------------------
# The logic, with a stand-in for pedalboard's stream


class ComingAndGoing(FakeStream):
    """FakeStream whose device can be absent: then opening fails as ALSA's JACK PCM without a server does."""

    present = True
    attempts = 0

    def __init__(self, *args, **kwargs) -> None:
        ComingAndGoing.attempts += 1
        if not ComingAndGoing.present:
            raise ValueError("no channels")
        super().__init__(*args, **kwargs)


def wait_for(condition, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_stalled_stream_is_reported_closed_and_reopened_then_ok_when_audio_flows():
    FakeStream.instances, ComingAndGoing.present, ComingAndGoing.attempts = [], True, 0
    with DeviceSource("BlackHole", stall_s=0.5, retry_interval_s=0.1, target_rate=44100,
                      stream_class=ComingAndGoing) as source:
        first = FakeStream.instances[-1]
        first.push(np.ones((2, 100), np.float32))
        assert source.read(timeout_s=1.0) is not None and source.health.ok
        ComingAndGoing.present = False  # the stream delivers nothing more, and the device is gone
        wait_for(lambda: not source.health.ok)
        assert source.health.state == "recovering" and source.health.where == "audio input 'BlackHole 2ch'"
        assert source.health.message.startswith("audio input 'BlackHole 2ch' stopped delivering (no audio for 0.")
        attempts = ComingAndGoing.attempts
        for _ in range(5):  # returns None, does not raise; tries every 0.1 s
            assert source.read(timeout_s=0.1) is None
        assert first.exited and ComingAndGoing.attempts - attempts >= 3 and source.health.state == "recovering"
        ComingAndGoing.present = True
        wait_for(lambda: source.read(timeout_s=0.05) is None and source.reopens == 1)
        second = FakeStream.instances[-1]
        assert second is not first and second.running and source.health.state == "recovering"
        second.push(np.full((2, 100), 0.5, np.float32))  # ok once the reopened device delivers
        wait_for(lambda: source.health.ok)
        np.testing.assert_allclose(source.read(timeout_s=1.0), 0.5)
    assert second.exited


def test_reader_failure_is_raised_once_then_the_device_is_reopened():
    FakeStream.instances, ComingAndGoing.present = [], True
    with DeviceSource("BlackHole", stall_s=5.0, retry_interval_s=0.1, target_rate=44100,
                      stream_class=ComingAndGoing) as source:
        FakeStream.instances[-1].push(OSError("device unplugged"))
        deadline = time.monotonic() + 2
        with pytest.raises(AudioSourceError, match="capture failed: device unplugged"):
            while time.monotonic() < deadline:
                source.read(timeout_s=0.05)
        assert source.health.state == "recovering" and "capture failed: device unplugged" in source.health.message
        wait_for(lambda: source.read(timeout_s=0.05) is None and source.reopens == 1)
        FakeStream.instances[-1].push(np.ones((2, 10), np.float32))
        assert source.read(timeout_s=1.0) is not None and source.health.ok


def test_without_reopen_a_lost_device_is_an_error():
    FakeStream.instances, ComingAndGoing.present = [], True
    with DeviceSource("BlackHole", stall_s=0.1, reopen=False, stream_class=ComingAndGoing) as source:
        wait_for(lambda: source.health.state == "failed")
        with pytest.raises(AudioSourceError, match="stopped delivering"):
            source.read(timeout_s=0.05)


# ---------------------------------------------------------------------------------------------
# For real: ALSA PCMs in a child process

# The child: DeviceSource(argv[1], sample_rate=argv[4] or the default, retry_interval_s=argv[5]) read
# as the engine reads it; prints "streaming" once audio flows. A watcher polls health every 20 ms.
# It ends once health came back to ok after a fault and ~1.2 s of audio arrived since (saved to
# argv[3]), or after argv[2] seconds, and prints one JSON line: what the watcher saw (monotonic s,
# state, message, since_s), read()'s exceptions, reopens, the watcher's longest pause
# (pedalboard holds the GIL while it opens or closes a device) and when audio came back.
CHILD = """
import json, sys, threading, time
import numpy as np
from dawemo.inputs.sources import DeviceSource, LibraryMessagesToLog
device, run_s, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
sample_rate, retry_interval_s = float(sys.argv[4]) or None, float(sys.argv[5])
seen, pauses, stop = [], [0.0], threading.Event()

def watch(source):
    last_state, last_s = None, time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        pauses[0] = max(pauses[0], now - last_s)
        last_s = now
        health = source.health
        if health.state != last_state:
            seen.append((now, health.state, health.message, health.since_s))
            last_state = health.state
        time.sleep(0.02)

errors, after, streaming, faulted = [], [], False, False
source = DeviceSource(device, sample_rate=sample_rate, channels=2, target_rate=22050,
                      retry_interval_s=retry_interval_s)
with LibraryMessagesToLog():  # as dawemo run opens its input
    source.open()
with source:
    threading.Thread(target=watch, args=(source,), daemon=True).start()
    deadline = time.monotonic() + run_s
    while time.monotonic() < deadline:
        try:
            block = source.read(0.1)
        except Exception as error:
            errors.append(repr(error))
            continue
        faulted = faulted or not source.health.ok
        if block is None or not block.size:
            continue
        if not streaming:
            streaming = True
            print("streaming", flush=True)
        if faulted and source.health.ok:
            after.append((time.monotonic(), block))
            if sum(len(b) for _, b in after) >= 1.2 * 22050:
                break
    stop.set()
np.save(out, np.concatenate([b for _, b in after]) if after else np.zeros(0, np.float32))
print(json.dumps(dict(seen=seen, errors=errors, reopens=source.reopens, max_pause_s=pauses[0],
                      first_audio_after_s=after[0][0] if after else None)), flush=True)
"""


class Child:
    """CHILD running in the background; ``wait_streaming`` then ``result``."""

    def __init__(self, device: str, env: dict, folder: Path, sample_rate: float = 0, retry_interval_s: float = 0.5,
                 run_s: float = 35) -> None:
        self.out = folder / "after.npy"
        arguments = [device, str(run_s), str(self.out), str(sample_rate), str(retry_interval_s)]
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, *arguments], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._streaming = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("streaming"):
                self._streaming.set()

    def wait_streaming(self, timeout_s: float) -> None:
        if not self._streaming.wait(timeout_s):
            self.process.kill()
            raise AssertionError(f"the child never streamed: {self.process.stderr.read()[-2000:]}")

    def result(self, timeout_s: float) -> tuple[dict, np.ndarray]:
        self.process.wait(timeout=timeout_s)
        stderr = self.process.stderr.read()
        assert self.process.returncode == 0, f"child failed ({self.process.returncode}): {stderr[-2000:]}"
        assert stderr == "", stderr[-2000:]  # no traceback, and libjack's and alsa-lib's lines went to logging
        return json.loads(self.lines[-1]), np.load(self.out)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def health_changes(result: dict) -> list[tuple[float, str, str, float]]:
    return [tuple(change) for change in result["seen"]]


def check_detection(result: dict, description: str, gone_s: float) -> None:
    """ok, then recovering within 1 s of ``gone_s`` (as set and as a watcher sees it), then ok."""
    changes = health_changes(result)
    assert [state for _, state, _, _ in changes][:3] == ["ok", "recovering", "ok"], changes
    seen_s, _, message, since_s = changes[1]
    assert re.fullmatch(rf"audio input '{description}' stopped delivering \(no audio for 0\.\d s\);"
                        " reopening it when it returns", message), message
    assert since_s - gone_s <= 1.0 and seen_s - gone_s <= 1.0, (since_s - gone_s, seen_s - gone_s)
    assert result["errors"] == []  # read() returned None while the device was gone


# ---------------------------------------------------------------------------------------------
# ALSA's JACK PCM: the server goes away, and a server of the same name comes back


class Server:
    """A ``jackd -d dummy`` with a fixed name and a player on it, started and stopped at will."""

    def __init__(self, name: str, player_name: str) -> None:
        self.name, self.player_name = name, player_name
        self.server = self.player = None

    def start(self) -> None:
        from dawemo.inputs.jack_server import DummyJackServer

        self.server = DummyJackServer(sample_rate=RATE, period_frames=1024, name=self.name)
        self.server.__enter__()
        self.player = JackPlayer([tones(FREQUENCIES_HZ, RATE)] * 2, name=self.player_name)

    def stop(self) -> None:
        """SIGTERM the server (as a crash or a quit would) under the device in the child process.

        The player, a client of this (the test's) process, is closed first: a client of a server
        that shut down must never be closed, nor garbage-collected, once another client of the
        process has opened (jack2 then frees it itself: a use-after-free that crashed later tests).
        """
        server, player, self.server, self.player = self.server, self.player, None, None
        if player is not None:
            close_client_bounded(player.client)
        if server is not None:
            server.__exit__(None, None, None)

    def close(self) -> None:
        """Player first, then the server: a clean stop."""
        if self.player is not None:
            self.player.client.deactivate()
            self.player.client.close()
            self.player = None
        self.stop()


@pytest.mark.slow
@needs_linux_alsa
@pytest.mark.skipif(shutil.which("jackd") is None, reason="needs jackd (Debian package jackd2)")
@pytest.mark.skipif(not any(Path(folder, "libasound_module_pcm_jack.so").exists() for folder in ALSA_PLUGIN_FOLDERS),
                    reason="needs ALSA's JACK PCM (Debian package libasound2-plugins)")
def test_device_whose_server_goes_away_is_reported_and_reopened_when_it_returns(tmp_path):
    tag = uuid.uuid4().hex[:6]
    server = Server(f"dawemo-faults-{tag}", f"player-{tag}")
    description = f"dawemo fault test {tag}"
    server.start()
    child = None
    try:
        env = alsa_env(f"""
pcm.dawemo_fault_jack {{
    type jack
    capture_ports {{ 0 "{server.player_name}:out_1" 1 "{server.player_name}:out_2" }}
    playback_ports {{ 0 system:playback_1 1 system:playback_2 }}
    hint {{ show on description "{description}" }}
}}
""", tmp_path)
        env.pop("ALSA_PLUGIN_DIR", None)  # dawemo.inputs.sources sets it
        env["JACK_DEFAULT_SERVER"] = server.name  # libjack inside ALSA's PCM finds the server by name
        child = Child(description, env, tmp_path)
        child.wait_streaming(20)  # ALSA's JACK PCM takes ~4 s to open
        time.sleep(0.5)
        stopped_s = time.monotonic()  # CLOCK_MONOTONIC: the child's clock too
        server.stop()
        time.sleep(1.5)  # gone a while: attempts to reopen fail meanwhile, cheaply and quietly
        back_s = time.monotonic()
        server.start()
        ready_s = time.monotonic()
        result, received = child.result(25)
    finally:
        if child is not None:
            child.kill()
        server.close()

    check_detection(result, description, stopped_s)
    assert result["reopens"] == 1
    ok_s, first_audio_s = health_changes(result)[2][3] - ready_s, result["first_audio_after_s"] - ready_s
    # JUCE waits 2 s for the first period of ALSA's JACK PCM at each of pedalboard's two opens
    # (constructor, start): this device reopens in ~4.5 s where a sound card takes milliseconds.
    assert ok_s <= 6.0 and first_audio_s <= 6.0, (ok_s, first_audio_s)
    assert tone_purity(received, 22050, FREQUENCIES_HZ) > 0.99  # the player's signal, not silence
    print(f"\njack PCM: recovering {health_changes(result)[1][3] - stopped_s:.2f} s after the server stopped;"
          f" ok {ok_s:.2f} s and audio {first_audio_s:.2f} s after it was back ({ready_s - back_s:.2f} s to"
          f" start it); longest pause of the watcher {result['max_pause_s']:.2f} s")


# ---------------------------------------------------------------------------------------------
# ALSA's file PCM on a named pipe: the writer pauses and resumes


class PipeWriter:
    """Writes stereo float32 tones into a named pipe in real time; ``paused`` stops the flow."""

    def __init__(self, fifo: Path, period_frames: int = 512) -> None:
        left = right = tones(FREQUENCIES_HZ, RATE)
        self.interleaved = np.stack([left, right], axis=1).reshape(-1)
        self.chunk = 2 * period_frames  # whole periods per write, atomic on a pipe
        self.fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # so ALSA's open() of the pipe never blocks
        self.paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        written, start = 0, time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * RATE) * 2
            if self.paused:
                written = due - due % self.chunk  # what a paused source would have sent is gone
            while not self.paused and written + self.chunk <= due:
                offset = written % len(self.interleaved)
                data = np.take(self.interleaved, range(offset, offset + self.chunk), mode="wrap")
                try:
                    os.write(self.fd, data.tobytes())
                except BlockingIOError:
                    break
                written += self.chunk
            time.sleep(0.002)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.fd)


@pytest.mark.slow
@needs_linux_alsa
def test_device_that_stalls_and_resumes_is_reported_and_kept(tmp_path):
    """A stall shorter than the retry interval: reported, then ok again on the same stream.

    (A longer one cannot be handled: pedalboard cannot close a stream whose read blocks, and the
    process aborts; see DeviceSource.)
    """
    description = f"dawemo fault pipe {uuid.uuid4().hex[:6]}"
    fifo = tmp_path / "capture.pipe"
    os.mkfifo(fifo)
    env = alsa_env(f"""
pcm.dawemo_fault_pipe {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{fifo}"
    format "raw"
    hint {{ show on description "{description}" }}
}}
""", tmp_path)
    writer = PipeWriter(fifo)
    child = None
    try:
        # The first attempt to reopen comes 1.5 s after the loss, long after the writer resumes.
        child = Child(description, env, tmp_path, sample_rate=RATE, retry_interval_s=1.5, run_s=15)
        child.wait_streaming(10)
        time.sleep(0.5)
        paused_s = time.monotonic()
        writer.paused = True
        time.sleep(0.8)
        writer.paused = False
        resumed_s = time.monotonic()
        result, received = child.result(10)
    finally:
        if child is not None:
            child.kill()
        writer.close()

    check_detection(result, description, paused_s)
    assert result["reopens"] == 0
    assert health_changes(result)[2][3] - resumed_s <= 0.5  # ok again as soon as audio flows
    assert tone_purity(received, 22050, FREQUENCIES_HZ) > 0.99
