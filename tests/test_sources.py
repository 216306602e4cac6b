"""Audio sources of the live path: files, a real JACK server, and pedalboard's device input for real.

The device input (``DeviceSource`` over ``pedalboard.io.AudioStream``) is exercised through two
real ALSA PCMs that need no sound card (see docs/audio-input.md): the built-in ``file`` PCM whose
``infile`` is a named pipe fed in real time, and the ``jack`` PCM of libasound2-plugins against a
private ``jackd -d dummy``. Those run in a child process: ALSA reads its configuration from the
environment, and a fault inside pedalboard must fail one test, not end the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from conftest import chord_progression, write_audio
from jack_helpers import JackPlayer
from dawemo.inputs.audio_io import load_audio
from dawemo.inputs.ring_buffer import FrameRing
from dawemo.inputs.sources import (
    AudioSourceError,
    DeviceSource,
    FileSource,
    JackSource,
    StreamingResampler,
    level_dbfs,
    list_audio_devices,
    match_jack_ports,
    open_source,
    resolve_device_name,
)

JACK_RATE = 48000
ALSA_PLUGIN_FOLDERS = ("/usr/lib/x86_64-linux-gnu/alsa-lib", "/usr/lib/aarch64-linux-gnu/alsa-lib",
                       "/usr/lib64/alsa-lib", "/usr/lib/alsa-lib")
needs_jackd = pytest.mark.skipif(shutil.which("jackd") is None,
                                 reason="needs jackd (Debian package jackd2, installed by scripts/test.sh)")
needs_linux_alsa = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/usr/share/alsa/alsa.conf").exists(),
    reason="the device-input tests drive ALSA PCMs (Linux, /usr/share/alsa from libasound2-data)")


def tones(frequencies_hz, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.2) -> np.ndarray:
    """Sum of sines with whole cycles per second, so it loops seamlessly every second."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return sum(amplitude * np.sin(2 * np.pi * f * t) for f in frequencies_hz).astype(np.float32)


def tone_purity(samples: np.ndarray, sample_rate: int, frequencies_hz) -> float:
    """Share of the energy of the last whole second of ``samples`` in the bins of ``frequencies_hz``.

    The tones have whole cycles per second, so a 1 s window holds them exactly in their bins; a gap,
    click or repeated block spreads energy elsewhere and lowers the share.
    """
    window = samples[-sample_rate:]
    assert len(window) == sample_rate, f"need 1 s of audio, got {len(samples)} samples"
    power = np.abs(np.fft.rfft(window)) ** 2
    tone_bins = [int(round(f)) for f in frequencies_hz]  # 1 Hz per bin for a 1 s window
    return float(power[tone_bins].sum() / power.sum())


def collect(source, seconds: float, timeout_s: float = 0.1) -> np.ndarray:
    """Read ``source`` promptly for ``seconds`` and concatenate what arrived."""
    blocks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        block = source.read(timeout_s)
        if block is not None:
            assert block.dtype == np.float32 and block.ndim == 1
            blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


# ---------------------------------------------------------------------------------------------
# Ring buffer and resampler


def test_ring_wraps_keeps_order_and_drops_newest_when_full():
    ring = FrameRing(capacity_frames=10, channels=2)
    stream = np.arange(2 * 40, dtype=np.float32).reshape(2, 40)
    assert ring.write(stream[:, :7]) == 7
    assert np.array_equal(ring.read(max_frames=5), stream[:, :5])
    assert ring.write([stream[0, 7:15], stream[1, 7:15]]) == 8  # per-channel arrays, wrapping
    assert ring.available_frames == 10
    assert ring.write(stream[:, 15:18]) == 0 and ring.overrun_frames == 3  # full: newest dropped
    assert np.array_equal(ring.read(), stream[:, 5:15])
    assert ring.read().shape == (2, 0)
    assert ring.write(stream[:, 18:30]) == 10 and ring.overrun_frames == 5  # partly fits
    assert np.array_equal(ring.read(), stream[:, 18:28])


def test_ring_read_into_copies_across_the_wrap_into_given_arrays():
    ring = FrameRing(capacity_frames=10, channels=2)
    stream = np.arange(2 * 20, dtype=np.float32).reshape(2, 20)
    ring.write(stream[:, :8])
    ring.read(max_frames=6)
    ring.write(stream[:, 8:15])  # wraps: 9 frames stored, starting at index 6
    outputs = [np.full(12, -1.0, np.float32), np.full(12, -1.0, np.float32)]
    assert ring.read_into(outputs) == 9
    assert np.array_equal(outputs[0][:9], stream[0, 6:15]) and np.array_equal(outputs[1][:9], stream[1, 6:15])
    assert np.all(outputs[0][9:] == -1.0)  # beyond what was there: untouched, the caller fills silence
    assert ring.available_frames == 0 and ring.read_into(outputs) == 0


def test_streamed_resampling_equals_one_shot_and_has_no_clicks():
    source_rate, target_rate = 44100, 22050
    t = np.arange(3 * source_rate) / source_rate
    sine = (0.5 * np.sin(2 * np.pi * 997.0 * t)).astype(np.float32)
    one_shot = StreamingResampler(source_rate, target_rate)
    whole = np.concatenate([one_shot.process(sine), one_shot.flush()])

    streamed, rng, start = StreamingResampler(source_rate, target_rate), np.random.default_rng(1), 0
    blocks = []
    while start < len(sine):
        size = int(rng.integers(1, 3000))  # odd sizes: block edges fall between output samples
        blocks.append(streamed.process(sine[start:start + size]))
        start += size
    blocks.append(streamed.flush())
    joined = np.concatenate(blocks)
    assert len(joined) == len(whole) == 3 * target_rate
    np.testing.assert_allclose(joined, whole, atol=1e-6)

    # Against the ideal sine at the target rate (away from the stream's first and last samples):
    ideal = 0.5 * np.sin(2 * np.pi * 997.0 * np.arange(len(joined)) / target_rate)
    inner = slice(200, -200)
    assert np.max(np.abs(joined[inner] - ideal[inner])) < 0.01
    # A click at a block boundary would show as a jump in the second difference.
    assert np.max(np.abs(np.diff(joined[inner], 2))) <= 1.05 * np.max(np.abs(np.diff(ideal[inner], 2)))


def test_equal_rates_pass_blocks_through():
    resampler = StreamingResampler(22050, 22050)
    block = np.linspace(-1, 1, 100, dtype=np.float32)
    assert np.array_equal(resampler.process(block), block) and resampler.flush().size == 0


def test_level_dbfs():
    assert level_dbfs(np.zeros(100, np.float32)) == -120.0
    assert level_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0)
    sine = tones([1000], 22050, amplitude=1.0)
    assert level_dbfs(sine) == pytest.approx(-3.01, abs=0.01)


# ---------------------------------------------------------------------------------------------
# File source


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("source_clips")
    return {
        "stereo_44k": write_audio(folder / "stereo_44k.wav", chord_progression(2.0, 44100, channels=2), 44100),
        "mono_22k": write_audio(folder / "mono_22k.flac", chord_progression(1.0, 22050, seed=2), 22050),
    }


@pytest.mark.parametrize("clip", ["stereo_44k", "mono_22k"])
def test_file_source_fast_gives_exactly_load_audio(clips, clip):
    expected = load_audio(clips[clip])
    with FileSource(clips[clip], realtime=False, block_s=0.05) as source:
        assert source.sample_rate == (44100 if clip == "stereo_44k" else 22050)
        assert source.channels == (2 if clip == "stereo_44k" else 1)
        blocks = []
        while not source.finished:
            blocks.append(source.read())
        assert source.read() is None and source.finished
        assert source.dropped_frames == 0 and source.level_dbfs > -60
    assert np.array_equal(np.concatenate(blocks), expected)


def test_file_source_realtime_is_paced_by_the_clock(clips):
    path = clips["stereo_44k"]  # 2.0 s
    start = time.monotonic()
    with FileSource(path, realtime=True) as source:
        blocks = []
        while not source.finished:
            block = source.read(timeout_s=0.5)
            if block is not None:
                blocks.append(block)
    elapsed_s = time.monotonic() - start
    assert 1.9 <= elapsed_s <= 2.6, f"a 2 s file played in {elapsed_s:.2f} s"
    assert len(blocks) >= 10, "real-time blocks should be small, not the whole file at the end"
    assert np.array_equal(np.concatenate(blocks), load_audio(path)) and source.dropped_frames == 0

    start = time.monotonic()
    with FileSource(path, realtime=False) as source:
        while not source.finished:
            source.read()
    assert time.monotonic() - start < 0.5


def test_file_source_loops(clips):
    expected = load_audio(clips["mono_22k"])  # 1.0 s
    with FileSource(clips["mono_22k"], realtime=False, loop=True, block_s=0.3) as source:
        joined = np.concatenate([source.read() for _ in range(9)])  # 2.7 s
        assert not source.finished
    assert len(joined) == 9 * round(0.3 * 22050)
    assert np.array_equal(joined[:len(expected)], expected)
    assert np.array_equal(joined[len(expected):2 * len(expected)], expected)


def test_file_source_drops_what_a_stalled_consumer_missed(clips):
    with FileSource(clips["stereo_44k"], realtime=True, buffer_s=0.25) as source:
        time.sleep(0.8)
        block = source.read()
        assert len(block) == round(0.25 * 22050)  # what the buffer held
        # ~0.55 s skipped, counted at the file's native rate:
        assert 0.45 * 44100 < source.dropped_frames < 0.8 * 44100
        assert not source.finished


def test_file_source_errors_are_clear(tmp_path, generated_clips):
    with pytest.raises(AudioSourceError, match="no such file"):
        FileSource(tmp_path / "missing.wav").open()
    with pytest.raises(AudioSourceError, match="is a directory"):
        FileSource(tmp_path).open()
    with pytest.raises(AudioSourceError, match="empty"):
        FileSource(generated_clips.bad["empty"]).open()
    with pytest.raises(AudioSourceError, match="cannot decode"):
        FileSource(generated_clips.bad["not_audio"]).open()
    with pytest.raises(AudioSourceError, match="not open"):
        FileSource(generated_clips.good["chords"]).read()


# ---------------------------------------------------------------------------------------------
# Device input: name matching and the reader thread, with a stand-in for pedalboard's stream


def test_device_names_match_exactly_then_by_unique_substring():
    names = ["MacBook Pro Microphone", "BlackHole 2ch", "BlackHole 16ch", "Loopback Audio"]
    assert resolve_device_name("BlackHole 2ch", names) == "BlackHole 2ch"
    assert resolve_device_name("loopback", names) == "Loopback Audio"
    assert resolve_device_name("16CH", names) == "BlackHole 16ch"
    with pytest.raises(AudioSourceError, match="ambiguous.*'BlackHole 2ch'.*'BlackHole 16ch'"):
        resolve_device_name("blackhole", names)
    with pytest.raises(AudioSourceError, match="no audio input device matches 'VB-CABLE'.*'Loopback Audio'"):
        resolve_device_name("VB-CABLE", names)
    with pytest.raises(AudioSourceError, match=r"\(none found\)"):
        resolve_device_name("anything", [])


class FakeStream:
    """Stand-in for ``pedalboard.io.AudioStream`` (input only), behaving as pedalboard 0.9.26 does."""

    input_device_names = ["Built-in Microphone", "BlackHole 2ch"]
    output_device_names = ["Built-in Output"]
    default_input_device_name = "Built-in Microphone"
    device_channels = 2  # JUCE opens at most what the device has
    instances: list["FakeStream"] = []

    def __init__(self, input_device_name, output_device_name, sample_rate, buffer_size, num_input_channels):
        assert output_device_name is None
        self.input_device_name, self.buffer_size = input_device_name, buffer_size
        self.requested_channels = num_input_channels
        self.num_input_channels = min(num_input_channels, self.device_channels)
        self.sample_rate = float(sample_rate or 44100)
        self.ignore_dropped_input = False
        self.running = self.exited = False
        self.pending: deque = deque()  # (block or exception, frames dropped before it)
        self.dropped_input_frame_count = 0
        FakeStream.instances.append(self)

    def push(self, item, dropped: int = 0) -> None:
        self.pending.append((item, dropped))

    def __enter__(self):
        assert self.requested_channels == self.num_input_channels, "started with a channel mismatch"
        self.running = True
        return self

    def __exit__(self, *exc):
        self.running, self.exited = False, True

    def close(self):
        pass

    def read(self, num_samples: int = 0):
        assert self.running, "read() on a stopped stream would restart the device"
        if not self.pending:
            return np.zeros((self.num_input_channels, 0), np.float32)
        item, dropped = self.pending.popleft()
        if isinstance(item, Exception):
            raise item
        self.dropped_input_frame_count = 0
        return item

    def set_dropped(self, frames: int) -> None:
        self.dropped_input_frame_count = frames


@pytest.fixture
def fake_stream_class():
    FakeStream.instances = []
    return FakeStream


def test_device_source_reader_copies_blocks_and_counts_drops(fake_stream_class):
    with DeviceSource("blackhole", channels=2, target_rate=44100, stream_class=fake_stream_class) as source:
        stream = fake_stream_class.instances[-1]
        assert source.name == "device:BlackHole 2ch" and stream.ignore_dropped_input
        assert stream.buffer_size % 2 == 1 and stream.buffer_size >= 0.5 * 192000  # big odd FIFO
        assert source.read(timeout_s=0.05) is None
        left = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
        stream.push(np.stack([left, -left / 2]))
        stream.set_dropped(300)
        block = source.read(timeout_s=1.0)
        np.testing.assert_allclose(block, left / 4, atol=1e-7)  # channel mean
        time.sleep(0.05)
        assert source.dropped_frames == 300
        stream.push(RuntimeError("1234 frames of audio data were dropped since the last call to read()."))
        stream.push(np.ones((2, 10), np.float32))
        assert source.read(timeout_s=1.0) is not None and source.dropped_frames == 1534
    assert stream.exited


def test_device_source_reopens_with_the_device_channel_count(fake_stream_class):
    with DeviceSource(None, channels=8, stream_class=fake_stream_class) as source:
        assert source.name == "device:Built-in Microphone"
        assert source.channels == 2 and len(fake_stream_class.instances) == 2  # asked again with 2


def test_device_source_ring_overrun_and_reader_errors_surface_on_read(fake_stream_class):
    with DeviceSource("Built-in", channels=2, buffer_s=0.01, sample_rate=44100,
                      stream_class=fake_stream_class) as source:
        stream = fake_stream_class.instances[-1]
        stream.push(np.zeros((2, 1000), np.float32))  # the ring holds 441 frames
        block = source.read(timeout_s=1.0)
        assert source.dropped_frames == 1000 - 441 and len(block) < 441
        stream.push(OSError("device unplugged"))
        with pytest.raises(AudioSourceError, match="capture failed: device unplugged"):
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                source.read(timeout_s=0.05)
    assert stream.exited


def test_device_source_missing_device_lists_inputs(fake_stream_class):
    with pytest.raises(AudioSourceError, match="no audio input device matches 'Scarlett'.*'BlackHole 2ch'"):
        DeviceSource("Scarlett", stream_class=fake_stream_class).open()


# ---------------------------------------------------------------------------------------------
# JACK


@pytest.fixture(scope="module")
def jack_server():
    """A private ``jackd -d dummy`` shared by this module's JACK tests (named in JACK_DEFAULT_SERVER)."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian package jackd2; scripts/test.sh installs it)")
    from dawemo.inputs.jack_server import DummyJackServer

    with DummyJackServer(sample_rate=JACK_RATE, period_frames=1024) as server:
        yield server


@needs_jackd
def test_jack_source_receives_the_played_signal_resampled(jack_server):
    frequencies_hz = (440, 1250)
    player = JackPlayer([tones(frequencies_hz, JACK_RATE)])
    try:
        with JackSource(connect=f"{player.name}:out_1", buffer_s=1.0) as source:
            assert source.sample_rate == JACK_RATE and source.channels == 1
            assert source.port_names == ["dawemo:in_1"] and source.connected == [f"{player.name}:out_1"]
            received = collect(source, 1.6)
            assert source.dropped_frames == 0
            assert source.level_dbfs == pytest.approx(-14.0, abs=1.0)  # two 0.2 sines: RMS 0.2
    finally:
        player.close()
    assert len(received) >= 22050
    assert tone_purity(received, 22050, frequencies_hz) > 0.995


@needs_jackd
def test_jack_source_stereo_bus_by_pattern_and_stall_drops_without_crashing(jack_server):
    player = JackPlayer([tones([500], JACK_RATE), tones([2000], JACK_RATE)])
    try:
        with JackSource(connect=player.name, buffer_s=0.25) as source:  # matches out_1 and out_2
            assert source.channels == 2 and source.port_names == ["dawemo:in_1", "dawemo:in_2"]
            collect(source, 0.3)
            assert source.dropped_frames == 0
            time.sleep(0.8)  # the consumer stalls for longer than the ring holds
            stalled = source.read()
            assert len(stalled) == pytest.approx(0.25 * 22050, abs=64)
            assert 0.3 * JACK_RATE < source.dropped_frames < 0.8 * JACK_RATE
            dropped = source.dropped_frames
            after = collect(source, 1.2)  # still running, and prompt reads drop nothing more
            assert source.dropped_frames == dropped
    finally:
        player.close()
    assert tone_purity(after, 22050, (500, 2000)) > 0.995


@needs_jackd
def test_jack_errors_name_the_problem(jack_server, monkeypatch):
    with pytest.raises(AudioSourceError, match="no JACK audio output port matches 'NoSuchDAW:out'.*system:capture_1"):
        JackSource(connect="NoSuchDAW:out").open()
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(AudioSourceError, match="no JACK server"):
        JackSource().open()


def test_jack_port_matching():
    ports = ["system:capture_1", "system:capture_2", "Ardour:Master/audio_out 1", "Ardour:Master/audio_out 2"]
    assert match_jack_ports(["system:capture_1"], ports) == ["system:capture_1"]
    assert match_jack_ports(["ardour:master"], ports) == ports[2:]
    assert match_jack_ports(["capture_2", "system"], ports) == ["system:capture_2", "system:capture_1"]
    with pytest.raises(AudioSourceError, match="available: system:capture_1; system:capture_2"):
        match_jack_ports(["Bitwig"], ports)


@needs_jackd
def test_list_audio_devices_includes_jack_ports(jack_server):
    devices = list_audio_devices()
    assert {"inputs", "outputs", "default_input", "jack", "errors"} <= devices.keys()
    assert "system:capture_1" in devices["jack"]["sources"]
    assert devices["jack"]["sample_rate"] == JACK_RATE


def test_open_source_specs(clips):
    assert isinstance(open_source(f"file:{clips['mono_22k']}", realtime=False), FileSource)
    assert isinstance(open_source(str(clips["mono_22k"])), FileSource)
    jack_source = open_source("jack:system:capture_1, system:capture_2")
    assert isinstance(jack_source, JackSource) and jack_source.connect == ["system:capture_1", "system:capture_2"]
    assert isinstance(open_source("jack"), JackSource) and open_source("jack").connect == []
    assert open_source("device:BlackHole").device_name == "BlackHole"
    assert open_source("BlackHole 2ch").device_name == "BlackHole 2ch"
    assert open_source("default").device_name is None


# ---------------------------------------------------------------------------------------------
# Device input for real: pedalboard's AudioStream on two ALSA PCMs that need no sound card

# Runs in a child process: captures from DeviceSource(argv[1]) for argv[2] seconds at target
# rate argv[3], saves the mono audio to argv[4] (.npy) and prints what the source reported;
# argv[5] is the rate to ask the device for (0: its default).
CAPTURE_SCRIPT = """
import json, sys, time, numpy as np
from dawemo.inputs.sources import DeviceSource
device, seconds, target_rate, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sample_rate = float(sys.argv[5]) or None
with DeviceSource(device, sample_rate=sample_rate, channels=2, target_rate=target_rate) as source:
    blocks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        block = source.read(0.1)
        if block is not None:
            blocks.append(block)
    report = dict(name=source.name, sample_rate=source.sample_rate, channels=source.channels,
                  dropped=source.dropped_frames)
np.save(out, np.concatenate(blocks))
print(json.dumps(report))
"""


def run_capture(device: str, seconds: float, target_rate: int, out: Path, env: dict, sample_rate: float = 0,
                timeout_s: float = 30):
    """Run CAPTURE_SCRIPT in a child process; returns (report, mono audio)."""
    arguments = [device, str(seconds), str(target_rate), str(out), str(sample_rate)]
    result = subprocess.run([sys.executable, "-c", CAPTURE_SCRIPT, *arguments],
                            env=env, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, f"capture failed ({result.returncode}): {result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1]), np.load(out)


def alsa_env(config_text: str, folder: Path) -> dict:
    """Environment whose ALSA configuration adds ``config_text`` to the system's."""
    config = folder / "dawemo-test-asound.conf"
    config.write_text(config_text)
    env = dict(os.environ)
    env["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{config}"
    return env


@needs_linux_alsa
def test_device_source_captures_exact_samples_from_an_alsa_file_pcm(tmp_path):
    """ALSA's built-in ``file`` PCM reads capture data from ``infile``; a named pipe written in real time
    paces it like a sound card (a regular file is read in a few ms: that gave "silence" before)."""
    sample_rate, period_frames = 48000, 512  # JUCE reads 512-frame periods from ALSA by default
    fifo = tmp_path / "capture.pipe"
    os.mkfifo(fifo)
    env = alsa_env(f"""
pcm.dawemo_test_pipe {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{fifo}"
    format "raw"
    hint {{ show on description "dawemo test pipe" }}
}}
""", tmp_path)
    left = tones([440, 1250], sample_rate)
    right = tones([3000], sample_rate)
    interleaved = np.stack([left, right], axis=1).reshape(-1)  # float32 LE frames, as JUCE asks for
    expected = np.mean(np.stack([left, right]), axis=0, dtype=np.float32)
    # The writer must not share a process with pedalboard: opening the stream holds the GIL,
    # and an ALSA thread blocked on an empty pipe is then killed by JUCE.
    keep_open = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # so ALSA's open() of the pipe never blocks
    stop = threading.Event()

    def write_in_real_time():
        # Whole periods per write (4096 bytes, atomic on a pipe) so each ALSA read gets a full
        # period; when the pipe is full (nobody capturing) the writer waits instead of skipping,
        # so the stream stays continuous.
        chunk, written, start = 2 * period_frames, 0, time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - start) * sample_rate) * 2
            while written + chunk <= due:
                offset = written % len(interleaved)
                try:
                    os.write(keep_open, np.take(interleaved, range(offset, offset + chunk), mode="wrap").tobytes())
                except BlockingIOError:
                    break
                written += chunk
            time.sleep(0.002)

    writer = threading.Thread(target=write_in_real_time, daemon=True)
    writer.start()
    try:
        report, received = run_capture("dawemo test pipe", 2.0, sample_rate, tmp_path / "pipe.npy", env,
                                       sample_rate=sample_rate)
    finally:
        stop.set()
        writer.join()
        os.close(keep_open)
    assert report["name"] == "device:dawemo test pipe"
    assert report["sample_rate"] == sample_rate and report["channels"] == 2 and report["dropped"] == 0
    assert len(received) >= 1.8 * sample_rate
    # Gap-free and exact: every sample equals the looping signal at one fixed offset. (Samples
    # within 1e-12 of zero may differ by as much: the device path rounds them; a gap, repeat or
    # shifted block would differ by ~0.1.)
    first_second = received[:sample_rate]
    lag = int(np.argmax(np.fft.irfft(np.fft.rfft(expected).conj() * np.fft.rfft(first_second), n=sample_rate)))
    offset = -lag % sample_rate
    reference = np.take(expected, range(offset, offset + len(received)), mode="wrap")
    wrong = np.flatnonzero(np.abs(received - reference) > 1e-9)
    assert wrong.size == 0, f"{wrong.size} samples differ, first at {wrong[:5]}"


@needs_jackd
@needs_linux_alsa
@pytest.mark.skipif(not any(Path(folder, "libasound_module_pcm_jack.so").exists() for folder in ALSA_PLUGIN_FOLDERS),
                    reason="needs ALSA's JACK PCM (Debian package libasound2-plugins)")
def test_device_source_captures_from_the_alsa_jack_pcm(jack_server, tmp_path):
    """The ``jack`` PCM of libasound2-plugins, as a desktop exposes PipeWire/PulseAudio/JACK to ALSA
    apps; it only opens once dawemo points pedalboard's bundled libasound at the system plugins."""
    player = JackPlayer([tones([440, 1250], JACK_RATE), tones([3000], JACK_RATE)])
    env = alsa_env(f"""
pcm.dawemo_test_jack {{
    type jack
    capture_ports {{ 0 "{player.name}:out_1" 1 "{player.name}:out_2" }}
    playback_ports {{ 0 system:playback_1 1 system:playback_2 }}
    hint {{ show on description "dawemo test jack" }}
}}
""", tmp_path)
    env.pop("ALSA_PLUGIN_DIR", None)  # dawemo.inputs.sources sets it
    try:
        report, received = run_capture("dawemo test jack", 1.5, 22050, tmp_path / "jack.npy", env, timeout_s=45)
    finally:
        player.close()
    assert report["sample_rate"] == JACK_RATE and report["channels"] == 2 and report["dropped"] == 0
    assert tone_purity(received, 22050, (440, 1250, 3000)) > 0.995
