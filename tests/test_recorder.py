"""AutomationRecorder: SMF type 1 and timeline contents, files readable at every instant, kill -9."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from dawemo.outputs.recorder import (END_OF_TRACK, SECTOR_BYTES, AutomationRecorder, padding_start, read_timeline,
                             varlen)

LANES = [("valence", 0, 1), ("energy", 1, 74), ("tension", 2, (20, 52))]


def cc_events(path: Path) -> list[tuple[str, int, int, int, int]]:
    """(track name, absolute tick, channel, control, value) of every CC in a .mid, via mido."""
    events = []
    for track in mido.MidiFile(path).tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "control_change":
                events.append((track.name, tick, message.channel, message.control, message.value))
    return events


def test_smf_type1_named_tracks_tempo_and_cc_times(tmp_path):
    path = tmp_path / "take.mid"
    start_s = 1000.0  # a time.monotonic() value
    sent = [(start_s + 0.0, 0, 0, 1, 64), (start_s + 0.25, 1, 1, 74, 10), (start_s + 0.5, 0, 0, 1, 65),
            (start_s + 1.2345, 2, 2, 20, 100), (start_s + 1.2345, 2, 2, 52, 7), (start_s + 61.003, 1, 1, 74, 127)]
    with AutomationRecorder(path, tempo_bpm=120.0, lanes=LANES, start_time_s=start_s) as recorder:
        recorder.record_ccs(sent)
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == 480
    assert [track.name for track in midi.tracks] == ["dawemo automation", "valence", "energy", "tension"]
    meta = {message.type: message for message in midi.tracks[0] if message.is_meta}
    assert meta["set_tempo"].tempo == mido.bpm2tempo(120.0)
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (4, 4)
    assert not any(message.type == "sequencer_specific" for track in midi.tracks for message in track)

    names = [lane[0] for lane in LANES]
    got = cc_events(path)
    expected = sorted(((names[lane], channel, control, value), time_s - start_s)
                      for time_s, lane, channel, control, value in sent)
    got_sorted = sorted(((name, channel, control, value), tick) for name, tick, channel, control, value in got)
    assert [key for key, _ in got_sorted] == [key for key, _ in expected]
    tick_s = mido.tick2second(1, 480, mido.bpm2tempo(120.0))  # 1/960 s at 120 BPM
    for (_, tick), (_, seconds) in zip(got_sorted, expected):
        assert abs(mido.tick2second(tick, 480, mido.bpm2tempo(120.0)) - seconds) <= tick_s


def test_other_tempo_and_out_of_order_or_early_events(tmp_path):
    path = tmp_path / "take.mid"
    with AutomationRecorder(path, tempo_bpm=90.0, lanes=LANES[:1], start_time_s=10.0, ppq=960) as recorder:
        recorder.record_cc(9.0, 0, 0, 1, 1)  # before the start: at time 0
        recorder.record_cc(12.0, 0, 0, 1, 2)
        recorder.record_cc(11.0, 0, 0, 1, 3)  # out of order: at the previous event's time
        recorder.record_cc(13.0, 0, 0, 1, 4)
    ticks_per_s = 960 * 90 / 60
    assert [(tick, value) for _, tick, _, _, value in cc_events(path)] == [
        (0, 1), (2 * ticks_per_s, 2), (2 * ticks_per_s, 3), (3 * ticks_per_s, 4)]
    assert mido.MidiFile(path).tracks[0][3].tempo == mido.bpm2tempo(90.0)


def test_mapping_lanes_and_cc_events(tmp_path):
    """The mapping module's Lane and CcEvent objects go in as they are."""
    from dawemo.outputs.mapping import CcEvent, Lane

    lanes = [Lane(source="valence", cc=1), Lane(source="tension", channel=3, cc14=20, name="tension fine")]
    path = tmp_path / "mapped.mid"
    with AutomationRecorder(path, lanes=lanes, start_time_s=0.0) as recorder:
        recorder.record_ccs([CcEvent(0.5, 0, 0, 1, 99, 99.0), CcEvent(1.0, 1, 3, 20, 64, 8200.0),
                             CcEvent(1.0, 1, 3, 52, 8, 8200.0)])
    assert cc_events(path) == [("valence", 480, 0, 1, 99), ("tension fine", 960, 3, 20, 64),
                               ("tension fine", 960, 3, 52, 8)]


def test_bad_lanes_and_events_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="channel must be 0-15"):
        AutomationRecorder(tmp_path / "x.mid", lanes=[("a", 16, 1)])
    with pytest.raises(ValueError, match="tempo_bpm"):
        AutomationRecorder(tmp_path / "x.mid", tempo_bpm=0.0)
    with AutomationRecorder(tmp_path / "x.mid", lanes=LANES) as recorder:
        with pytest.raises(ValueError, match="lane_index 3 out of range"):
            recorder.record_cc(0.0, 3, 0, 1, 1)
        with pytest.raises(ValueError, match="CC out of range"):
            recorder.record_cc(0.0, 0, 0, 1, 128)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_timeline_rows(tmp_path, suffix):
    timeline = tmp_path / f"timeline{suffix}"
    with AutomationRecorder(tmp_path / "t.mid", timeline, lanes=LANES, start_time_s=50.0) as recorder:
        recorder.record_update(50.5, {"valence": 6.25, "energy": 3.5, "dissonance": 0.125})
        recorder.record_update(51.0, {"valence": 6.5, "energy": float("nan"), "dissonance": 0.25})
    rows = read_timeline(timeline)
    assert rows == [{"time_s": 0.5, "valence": 6.25, "energy": 3.5, "dissonance": 0.125},
                    {"time_s": 1.0, "valence": 6.5, "energy": None, "dissonance": 0.25}]
    text = timeline.read_text()
    if suffix == ".csv":  # columns from the first update; readable by the csv module as is
        assert list(csv.DictReader(text.splitlines()))[1] == {"time_s": "1.0000", "valence": "6.5", "energy": "",
                                                              "dissonance": "0.25"}
    else:
        assert json.loads(text.splitlines()[1])["energy"] is None


def test_timeline_columns_fixed_and_cut_last_line_dropped(tmp_path):
    timeline = tmp_path / "timeline.csv"
    with AutomationRecorder(tmp_path / "t.mid", timeline, columns=["energy", "valence"], start_time_s=0.0) as recorder:
        recorder.record_update(1.0, {"valence": 1.0, "energy": 2.0, "not_a_column": 3.0})
    assert timeline.read_text().splitlines() == ["time_s,energy,valence", "1.0000,2,1"]
    with open(timeline, "a") as file:  # what a kill in the middle of a write could leave
        file.write("2.0000,2.")
    assert read_timeline(timeline) == [{"time_s": 1.0, "energy": 2.0, "valence": 1.0}]


def test_padding_header_never_straddles_a_sector_and_parses():
    """Every padding layout is valid SMF and its header fits in one 512-byte sector."""
    for offset in range(SECTOR_BYTES - 12, SECTOR_BYTES + 4):
        for gap in (5, 6, 7, 9, 12, 131, 132, 133, 134, 135, 136, 140, 16386, 16387, 16388, 16389, 16390, 20000):
            start = padding_start(offset, offset + gap)
            if start is None:
                assert gap < 16, (offset, gap)
                continue
            data, header_offset, header_len = start
            assert header_offset // SECTOR_BYTES == (header_offset + header_len - 1) // SECTOR_BYTES
            body = data + bytes(gap - len(data)) + END_OF_TRACK
            midi = b"MThd" + bytes([0, 0, 0, 6, 0, 0, 0, 1, 0, 96]) + b"MTrk" + len(body).to_bytes(4, "big") + body
            track = mido.MidiFile(file=io.BytesIO(midi)).tracks[0]
            assert [message.type for message in track][-1] == "end_of_track"
            assert {message.type for message in track[:-1]} == {"sequencer_specific"}


def test_file_is_valid_at_every_step_of_in_place_appends(tmp_path):
    """Random batches, tiny reserves (many relayouts): after each write step, mido reads a consistent file."""
    rng = random.Random(1)
    path = tmp_path / "live.mid"
    names = [lane[0] for lane in LANES]
    expected: list[tuple[str, int, int, int, int]] = []
    with AutomationRecorder(path, lanes=LANES, start_time_s=0.0, min_reserve_bytes=64,
                            flush_interval_s=1e9) as recorder:
        time_s = 0.0
        for _ in range(60):
            for _ in range(rng.randint(1, 12)):
                time_s += rng.choice([0.0, 0.001, 0.03, 0.5, 20.0])
                lane = rng.randrange(len(LANES))
                channel, control = LANES[lane][1], LANES[lane][2]
                control = control[rng.randrange(2)] if isinstance(control, tuple) else control
                value = rng.randrange(128)
                recorder.record_cc(time_s, lane, channel, control, value)
                expected.append((names[lane], int(round(time_s * 960)), channel, control, value))
            with recorder._lock:
                pending, recorder._pending_cc = recorder._pending_cc, []
            before = cc_events(path)
            plans = recorder._plan_appends(recorder._encode(pending))
            if plans is None:
                recorder._rewrite(compact=False)
            else:
                for _, _, header_offset, header_len in plans:
                    assert header_offset // SECTOR_BYTES == (header_offset + header_len - 1) // SECTOR_BYTES
                recorder._append_step1(plans)
                assert cc_events(path) == before  # a kill between the steps leaves the previous file
                recorder._append_step2(plans)
            assert sorted(cc_events(path)) == sorted(expected)
        assert recorder.full_rewrites >= 3  # the relayout path ran too
    assert sorted(cc_events(path)) == sorted(expected)
    assert not any(m.type == "sequencer_specific" for t in mido.MidiFile(path).tracks for m in t)


def test_full_rewrites_stay_logarithmic(tmp_path):
    """10 simulated minutes of 15 lanes x 30 Hz, flushed every 5 s: reserves double, few full rewrites."""
    lanes = [(f"lane{i}", i, 7) for i in range(15)]
    with AutomationRecorder(tmp_path / "long.mid", lanes=lanes, start_time_s=0.0, flush_interval_s=1e9) as recorder:
        for flush in range(120):
            for tick in range(150):
                for lane in range(15):
                    recorder.record_cc(flush * 5.0 + tick / 30, lane, lane, 7, (flush + tick) % 128)
            recorder.flush()
        # The initial layout, then doublings of the 16 KiB reserve up to 72 KB of events a lane.
        assert 1 + 3 <= recorder.full_rewrites <= 1 + 5
        assert recorder.event_count == 120 * 150 * 15
    assert (tmp_path / "long.mid").stat().st_size < 120 * 150 * 15 * 5 + 1000


CHILD = """
import sys, time
from dawemo.outputs.recorder import AutomationRecorder
lanes = [("valence", 0, 1), ("energy", 1, 74), ("tension", 2, (20, 52))]
start_s = time.monotonic()
with AutomationRecorder(sys.argv[1], sys.argv[2], lanes=lanes, start_time_s=start_s) as recorder:
    print(repr(start_s), flush=True)
    step = 0
    while True:  # every 10 ms until killed: one CC per lane and a timeline row
        now_s = time.monotonic()
        for lane, (name, channel, control) in enumerate(lanes):
            recorder.record_cc(now_s, lane, channel, control[0] if isinstance(control, tuple) else control, step % 128)
        recorder.record_update(now_s, {"valence": step, "energy": step * 0.5})
        step += 1
        time.sleep(0.01)
"""


def test_kill_9_loses_at_most_a_second_and_leaves_readable_files(tmp_path):
    midi_path, timeline_path = tmp_path / "crash.mid", tmp_path / "crash.csv"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(midi_path), str(timeline_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        start_s = float(child.stdout.readline())
        time.sleep(max(0.0, start_s + 3.0 - time.monotonic()))
        killed_at_s = time.monotonic() - start_s
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    midi = mido.MidiFile(midi_path)  # must parse as is
    assert midi.type == 1 and [track.name for track in midi.tracks][1:] == ["valence", "energy", "tension"]
    tempo = mido.bpm2tempo(120.0)
    for track in midi.tracks[1:]:
        ticks, values = 0, []
        for message in track:
            ticks += message.time
            if message.type == "control_change":
                values.append(message.value)
        last_s = mido.tick2second(ticks, 480, tempo)
        assert killed_at_s - 1.0 <= last_s <= killed_at_s + 0.05, (last_s, killed_at_s)
        assert values == [step % 128 for step in range(len(values))]  # none lost or garbled before that

    with open(timeline_path, newline="") as file:  # plain csv module, no repair
        rows = list(csv.reader(file))
    assert rows[0] == ["time_s", "valence", "energy"]
    complete = [row for row in rows[1:] if len(row) == 3]
    assert len(complete) >= len(rows) - 2  # at most the last line cut
    assert killed_at_s - 1.0 <= float(complete[-1][0]) <= killed_at_s + 0.05
    assert [float(row[1]) for row in complete] == list(range(len(complete)))
    assert len(read_timeline(timeline_path)) == len(complete)


def test_varlen():
    assert [varlen(v) for v in (0, 0x7F, 0x80, 0x3FFF, 0x4000, 0x0FFFFFFF)] == [
        b"\x00", b"\x7f", b"\x81\x00", b"\xff\x7f", b"\x81\x80\x00", b"\xff\xff\xff\x7f"]
