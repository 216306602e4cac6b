"""The dawemo Bridge plugin's VST3 build in a real host (pedalboard), read by dawemo's BridgeSource.

pedalboard calls the plugin's process() from this thread, so each test drives the host and reads
the bridge in turn; the jalv tests (test_daw_bridge_jalv.py) run host and reader concurrently.
What pedalboard cannot show: the plugin's MIDI output (it returns no MIDI from effects) - checked
here through the plugin's own counters, and leaving a host for real under jalv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge_helpers import build_bridge, unique_name
from dawemo.bridge_shm import BridgeSegment, list_bridges
from dawemo.inputs.bridge import BridgeSource
from dawemo.outputs.bridge_midi import BridgeMidiOut

pedalboard = pytest.importorskip("pedalboard")


@pytest.fixture(scope="module")
def build() -> Path:
    return build_bridge()


@pytest.fixture
def plugin(build, monkeypatch):
    """The VST3 in pedalboard, named <unique>-N; yields (plugin, the active instance's name)."""
    prefix = unique_name("pb")
    monkeypatch.setenv("DAWEMO_BRIDGE_NAME", prefix)
    loaded = pedalboard.load_plugin(str(build / "vst3" / "DawemoBridge.vst3"))
    loaded.process(np.zeros((2, 512), np.float32), 48000, buffer_size=512, reset=False)
    mine = [info for info in list_bridges() if info.name.startswith(prefix + "-")]
    assert mine and all(info.format == "VST3" for info in mine)
    active = [info.name for info in mine if info.active]
    assert len(active) == 1, mine
    yield loaded, active[0]
    del loaded


def stereo_noise(frames: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (2, frames)).astype(np.float32)


def read_all(source: BridgeSource) -> np.ndarray:
    out = []
    while (block := source.read(0.0)) is not None and block.size:
        out.append(block)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def test_audio_arrives_bit_exact_and_passes_through_unchanged(plugin):
    host, name = plugin
    x = stereo_noise(48000, seed=1)
    segment = BridgeSegment(name)
    with BridgeSource(name, target_rate=48000, wait=False) as source:
        start = segment.u64("audio_write")
        y = host.process(x, 48000, buffer_size=512, reset=False)
        end = segment.u64("audio_write")
        got = read_all(source)
    assert np.array_equal(y, x), "the plugin changed the audio"
    assert end - start >= x.shape[1]
    # Both channels, as the plugin wrote them into shared memory: find x in the new frames.
    capacity = segment.audio_capacity
    ring = np.stack([segment.audio[:, i % capacity] for i in range(start, end)], axis=1)
    offset = next(i for i in range(ring.shape[1] - x.shape[1] + 1) if np.array_equal(ring[:, i:i + 64], x[:, :64]))
    assert np.array_equal(ring[:, offset:offset + x.shape[1]], x)
    # What the engine gets: the channel mean, at the host's rate (no resampling), bit for bit.
    assert source.sample_rate == 48000 and source.dropped_frames == 0
    assert np.array_equal(got[offset:offset + x.shape[1]], x.mean(axis=0, dtype=np.float32))
    transport = source.transport
    assert transport is not None and transport.sample_rate == 48000 and transport.frames <= 512
    segment.close()


def test_no_reader_overwrites_and_a_late_reader_gets_no_stale_audio(plugin):
    host, name = plugin
    segment = BridgeSegment(name)
    capacity = segment.audio_capacity
    old = stereo_noise(capacity * 2, seed=2)  # twice the ring, nobody reading: the plugin just overwrites
    assert np.array_equal(host.process(old, 48000, buffer_size=512, reset=False), old)
    with BridgeSource(name, target_rate=48000, wait=False) as source:
        assert read_all(source).size == 0, "a new reader must start at the newest frame"
        new = np.full((2, 4096), 0.25, np.float32)
        host.process(new, 48000, buffer_size=512, reset=False)
        got = read_all(source)
        assert got.size >= 4096 and np.all(got[-4096:] == 0.25)
        # Falling behind: 1.5 rings unread -> exactly the overwritten frames are counted as lost.
        before = segment.u64("audio_write")
        host.process(stereo_noise(capacity + capacity // 2, seed=3), 48000, buffer_size=512, reset=False)
        behind = segment.u64("audio_write") - before
        got = read_all(source)
        assert source.dropped_frames == behind - capacity
        assert got.size == capacity
    segment.close()


def test_restart_with_new_rate_and_block_size_counts_the_gap_and_resamples(plugin):
    host, name = plugin
    with BridgeSource(name, target_rate=22050, wait=False) as source:
        host.process(stereo_noise(48000, seed=4), 48000, buffer_size=512, reset=False)
        read_all(source)
        restarts = source.restarts
        tone = np.tile(np.sin(2 * np.pi * 441 * np.arange(44100) / 44100).astype(np.float32), (2, 1))
        out = host.process(tone, 44100, buffer_size=64, reset=True)  # host stops, new rate and block size
        assert np.array_equal(out, tone)
        got = read_all(source)
        assert source.restarts > restarts
        assert source.sample_rate == 44100
        assert source.transport.sample_rate == 44100 and source.transport.frames <= 64
        assert source.host_gap_frames >= 0 and source.dropped_frames == 0
        # No stale audio: after the restart only the new tone (resampled to 22050 Hz) arrives.
        tail = got[-11025:]
        assert 0.6 < np.sqrt(np.mean(tail[2000:] ** 2)) < 0.8  # a full-scale sine's RMS, not noise's 0.58
        spectrum = np.abs(np.fft.rfft(tail[1000:1000 + 8192]))
        assert abs(np.argmax(spectrum) * 22050 / 8192 - 441) < 5


def test_cc_go_into_the_plugin_and_leave_in_the_next_block_in_order(plugin):
    host, name = plugin
    with BridgeSource(name, target_rate=48000, wait=False) as source, BridgeMidiOut(source=source) as midi:
        host.process(np.zeros((2, 512), np.float32), 48000, buffer_size=512, reset=False)
        source.read(0.0)
        segment = midi.segment
        emitted = segment.u64("midi_emitted")
        midi.send([(0.0, 0, 0, 20 + i, i) for i in range(100)])
        assert segment.u64("midi_write") - segment.u64("midi_read") == 100
        host.process(np.zeros((2, 512), np.float32), 48000, buffer_size=512, reset=False)
        assert segment.u64("midi_read") == segment.u64("midi_write")
        assert segment.u64("midi_emitted") - emitted == 100 and segment.u64("midi_host_refused") == 0
        slots = [segment.midi[i % segment.midi_capacity] for i in range(segment.u64("midi_write") - 100,
                                                                         segment.u64("midi_write"))]
        assert [list(slot["data"]) for slot in slots] == [[0xB0, 20 + i, i] for i in range(100)]
        with pytest.raises(ValueError):
            midi.send([(0.0, 0, 16, 1, 1)])


def test_a_second_dawemo_cannot_write_the_same_bridges_midi(plugin, tmp_path):
    host, name = plugin
    with BridgeMidiOut(name) as midi:
        assert midi.health.ok
        code = ("from dawemo.outputs.bridge_midi import BridgeMidiOut\n"
                f"m = BridgeMidiOut({name!r}).__enter__(); print(m.health.state, m.health.message)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.stdout.startswith("recovering") and "used by another dawemo" in result.stdout
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("ok"), result.stdout + result.stderr


def test_segments_go_when_the_host_unloads_the_plugin(build, monkeypatch):
    prefix = unique_name("gone")
    monkeypatch.setenv("DAWEMO_BRIDGE_NAME", prefix)
    code = ("import pedalboard, numpy as np, os, sys\n"
            f"p = pedalboard.load_plugin({str(build / 'vst3' / 'DawemoBridge.vst3')!r})\n"
            "p.process(np.zeros((2, 512), np.float32), 48000)\n"
            f"print(sorted(n for n in os.listdir('/dev/shm') if {prefix!r} in n))\n"
            "del p\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ))
    assert f"dawemo-bridge-{prefix}-" in result.stdout, result.stderr
    assert not [n for n in os.listdir("/dev/shm") if prefix in n]
