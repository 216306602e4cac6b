"""AutomationRecorder on a full disk: a real 512 KiB tmpfs filled to the last page, real events at live rates.

Nothing reaches the callers, the files stay readable, what could not be written is kept and
written when space returns, and ``health`` says what is going on. The events come from a thread
at the engine's rates (15 lanes at 30 Hz, an update at 2 Hz); the test's main loop plays the
engine's part too, polling ``health`` and marking every change in the timeline with
``record_fault``.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from pathlib import Path

import mido
import pytest

from dawemo.faults import FAILED, OK, RECOVERING, Fault
from dawemo.outputs.recorder import AutomationRecorder, read_timeline
from tests.conftest import fill_disk, small_tmpfs

LANES = [(f"lane{i}", i, 1) for i in range(15)]
COLUMNS = [f"value{i}" for i in range(15)]
CC_HZ, UPDATE_HZ = 30.0, 2.0
ROW_BYTES = len("0.0000") + len(COLUMNS) * len(",0.5") + 1  # one timeline row, while time_s < 10 s


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs mounted for the test (needs root)."""
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        yield disk


fill = fill_disk


def slack_bytes(path: Path) -> int:
    """Bytes a file can still grow without a new page of the disk."""
    stat = path.stat()
    return stat.st_blocks * 512 - stat.st_size


class Feeder(threading.Thread):
    """Records like the engine: every lane's CC at ~30 Hz, an update at 2 Hz, on time.monotonic()."""

    def __init__(self, recorder: AutomationRecorder) -> None:
        super().__init__(daemon=True)
        self.recorder = recorder
        self.step_times: list[float] = []  # one per step: every lane got value step % 128 then
        self.update_times: list[float] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.updating = threading.Event()  # cleared: no updates (CC go on)
        self.updating.set()

    def run(self) -> None:
        next_update_s = time.monotonic()
        try:
            while not self.stop.is_set():
                now_s = time.monotonic()
                step = len(self.step_times)
                self.recorder.record_ccs([(now_s, lane, lane, 1, step % 128) for lane in range(len(LANES))])
                self.step_times.append(now_s)
                if not self.updating.is_set():
                    next_update_s = now_s
                elif now_s >= next_update_s:
                    self.recorder.record_update(now_s, dict.fromkeys(COLUMNS, 0.5))
                    self.update_times.append(now_s)
                    next_update_s += 1.0 / UPDATE_HZ
                self.stop.wait(1.0 / CC_HZ)
        except BaseException as error:  # noqa: BLE001 - the test asserts there is none
            self.errors.append(error)

    def finish(self) -> None:
        self.stop.set()
        self.join()
        assert not self.errors, self.errors


class Engine:
    """The engine's side: poll ``health`` and mark every change of state in the timeline (dawemo.faults)."""

    def __init__(self, recorder: AutomationRecorder) -> None:
        self.recorder = recorder
        self.seen = recorder.health
        self.changes: list[tuple[float, str]] = []  # (time_s, line)

    def poll(self) -> None:
        health = self.recorder.health
        # A change of state; while recovering the message changes every flush (seconds kept in memory).
        if health.state != self.seen.state:
            self.seen = health
            now_s = time.monotonic()
            line = Fault("recording", health, now_s).line
            self.changes.append((now_s, line))
            self.recorder.record_fault(now_s, line)

    def wait_for(self, state: str, timeout_s: float, check=None) -> float:
        """Poll until health is ``state``; returns when it got there (``check()`` runs at every poll)."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            self.poll()
            if check is not None:
                check()
            if self.recorder.health.state == state:
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"health still {self.recorder.health} after {timeout_s} s, not {state}")


def lane_events(path: Path) -> list[list[tuple[float, int]]]:
    """(time_s, value) of each lane's CC events, via mido (120 BPM, as recorded)."""
    midi = mido.MidiFile(path)
    assert [track.name for track in midi.tracks[1:]] == [name for name, _, _ in LANES]
    lanes = []
    for track in midi.tracks[1:]:
        ticks, events = 0, []
        for message in track:
            ticks += message.time
            if message.type == "control_change":
                events.append((mido.tick2second(ticks, midi.ticks_per_beat, mido.bpm2tempo(120.0)), message.value))
        lanes.append(events)
    return lanes


def check_readable(midi_path: Path, timeline_path: Path) -> tuple[int, int]:
    """Both files parse as they are on disk now; returns (CC steps, timeline rows) they hold."""
    lanes = lane_events(midi_path)
    for events in lanes:  # none garbled: lane values are the steps in order
        assert [value for _, value in events] == [step % 128 for step in range(len(events))]
    text = timeline_path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a write may be under way right now; a cut line may only ever be the last
    fields = [len(row) for row in csv.reader(lines)]
    assert fields[0] == 1 + len(COLUMNS) and set(fields) <= {1 + len(COLUMNS), 2 + len(COLUMNS)}, fields
    rows = [row for row in read_timeline(timeline_path) if "event" not in row]
    return min(len(events) for events in lanes), len(rows)


def start_on_full_disk(disk: Path) -> tuple[AutomationRecorder, Engine, Feeder, Path, float]:
    """Record for a second, align the timeline with the end of a page, fill the disk, record on.

    Aligning makes the fault happen at once: the very next row needs a page the disk does not have
    (it only partly fits in the page's rest: the write is cut, and must be truncated back). Small
    reserves make the .mid need a relayout (a whole new file) soon after, which cannot be written.
    """
    recorder = AutomationRecorder(disk / "a.mid", disk / "a.csv", lanes=LANES, columns=COLUMNS,
                                  min_reserve_bytes=64).__enter__()
    engine = Engine(recorder)
    feeder = Feeder(recorder)
    feeder.start()
    time.sleep(1.0)
    feeder.updating.clear()
    time.sleep(0.05)  # an update under way is recorded
    recorder.flush()
    while not 0 < slack_bytes(disk / "a.csv") < ROW_BYTES:  # the next row fits in part only
        now_s = time.monotonic()
        recorder.record_update(now_s, dict.fromkeys(COLUMNS, 0.5))
        feeder.update_times.append(now_s)
        recorder.flush()
    filler = fill(disk)
    full_s = time.monotonic()
    feeder.updating.set()
    return recorder, engine, feeder, filler, full_s


def timeline_times(timeline_path: Path) -> tuple[list[float], list[tuple[float, str]]]:
    rows = read_timeline(timeline_path)
    return ([row["time_s"] for row in rows if "event" not in row],
            [(row["time_s"], row["event"]) for row in rows if "event" in row])


def test_full_disk_pauses_recording_and_space_coming_back_writes_everything(small_disk):
    midi_path, timeline_path = small_disk / "a.mid", small_disk / "a.csv"
    recorder, engine, feeder, filler, full_s = start_on_full_disk(small_disk)
    start_s = recorder.start_time_s
    try:
        # Detected at the first flush that cannot write: within a flush interval of the disk filling.
        fault_s = engine.wait_for(RECOVERING, 1.0, lambda: check_readable(midi_path, timeline_path))
        health = recorder.health
        assert health.where in (str(midi_path), str(timeline_path))
        assert health.message.startswith(f"disk full writing {health.where} (No space left on device): "
                                         "recording paused, ")
        assert health.message.endswith("s kept in memory, resumes when space returns")
        assert recorder.last_error == health.message

        behind = []  # during the fault, the files are readable and hold less than was recorded
        deadline_s = fault_s + 1.5
        while time.monotonic() < deadline_s:
            engine.poll()
            steps, rows = check_readable(midi_path, timeline_path)
            behind.append((len(feeder.step_times) - steps, len(feeder.update_times) - rows))
            time.sleep(0.1)
        assert recorder.health.state == RECOVERING
        assert max(cc for cc, _ in behind) > CC_HZ * 0.5 and max(row for _, row in behind) >= 2, behind
        assert re.search(r", (\d+\.\d) s kept in memory", recorder.health.message)
        assert float(re.search(r", (\d+\.\d) s kept", recorder.health.message).group(1)) >= 1.0

        filler.unlink()
        freed_s = time.monotonic()
        back_s = engine.wait_for(OK, 1.0, lambda: check_readable(midi_path, timeline_path))
        time.sleep(0.4)
        engine.poll()
    finally:
        feeder.finish()
        recorder.close()
    print(f"\nspace returned: full at +{full_s - start_s:.2f} s, recovering after {fault_s - full_s:.2f} s, "
          f"ok {back_s - freed_s:.2f} s after space returned")

    assert recorder.health.state == OK and not list(small_disk.glob("*.tmp"))
    # Everything recorded is there: every step of every lane, at its time, and every update row.
    for events in lane_events(midi_path):
        assert [value for _, value in events] == [step % 128 for step in range(len(feeder.step_times))]
        assert all(abs(time_s - (sent_s - start_s)) < 0.002 for (time_s, _), sent_s in zip(events, feeder.step_times))
    rows, events = timeline_times(timeline_path)
    assert rows == [round(sent_s - start_s, 4) for sent_s in feeder.update_times]
    # The fault and the recovery are marked where they happened, between ordinary rows.
    assert [line for _, line in events] == [line for _, line in engine.changes]
    assert events[0][1].startswith("recording: recovering: disk full writing ") and events[1][1] == "recording: back"
    assert full_s - start_s <= events[0][0] <= freed_s - start_s <= events[1][0]
    assert midi_path.stat().st_size < 15 * len(feeder.step_times) * 5 + 1000  # final file: no padding left


def test_disk_that_stays_full_keeps_what_came_before_the_fault(small_disk):
    midi_path, timeline_path = small_disk / "a.mid", small_disk / "a.csv"
    recorder, engine, feeder, _, full_s = start_on_full_disk(small_disk)
    start_s = recorder.start_time_s
    try:
        fault_s = engine.wait_for(RECOVERING, 1.0)
        time.sleep(1.0)
        engine.poll()
    finally:
        feeder.finish()
        recorder.close()  # the disk is still full: no exception, what is on disk stays readable
    health = recorder.health
    assert health.state == FAILED and not list(small_disk.glob("*.tmp"))
    assert re.fullmatch(rf"disk full writing {re.escape(health.where)} \(No space left on device\): the last "
                        rf"\d+\.\d s of the recording were not saved; {re.escape(str(midi_path))} and "
                        rf"{re.escape(str(timeline_path))} hold the first \d+\.\d s", health.message), health.message
    assert recorder.last_error == health.message

    steps, rows = check_readable(midi_path, timeline_path)
    assert timeline_path.read_text().endswith("\n")  # the row cut by the full disk was truncated away
    before_fault = sum(1 for sent_s in feeder.step_times if sent_s <= fault_s - 1.0)
    assert steps >= before_fault  # every event up to a second before the fault (the lanes check order)
    assert sum(1 for sent_s in feeder.update_times if sent_s <= fault_s - 1.0) <= rows
    times, _ = timeline_times(timeline_path)
    assert times == [round(sent_s - start_s, 4) for sent_s in feeder.update_times[:rows]]
    lost_cc_s = fault_s - feeder.step_times[steps - 1] if steps else float("inf")
    lost_row_s = fault_s - feeder.update_times[rows - 1]
    print(f"\nspace never returned: recovering {fault_s - full_s:.2f} s after the disk filled; on disk: CC up to "
          f"{lost_cc_s:.2f} s before the fault, timeline up to {lost_row_s:.2f} s before it; "
          f"{len(feeder.step_times) - steps} CC steps and {len(feeder.update_times) - rows} rows not saved")


def test_disk_full_at_enter_starts_recovering_and_creates_the_files_later(small_disk):
    midi_path, timeline_path = small_disk / "a.mid", small_disk / "a.csv"
    midi_path.write_bytes(b"an earlier take")
    filler = fill(small_disk)
    with AutomationRecorder(midi_path, timeline_path, lanes=LANES, columns=COLUMNS) as recorder:
        assert recorder.health.state == RECOVERING and recorder.health.where in (str(midi_path), str(timeline_path))
        assert "disk full" in recorder.health.message
        assert not midi_path.exists() or mido.MidiFile(midi_path)  # never the earlier take
        engine, feeder = Engine(recorder), Feeder(recorder)
        feeder.start()
        try:
            time.sleep(0.6)
            engine.poll()
            assert recorder.health.state == RECOVERING
            filler.unlink()
            freed_s = time.monotonic()
            back_s = engine.wait_for(OK, 1.0)
            check_readable(midi_path, timeline_path)
            time.sleep(0.3)
        finally:
            feeder.finish()
    print(f"\nfull at enter: ok {back_s - freed_s:.2f} s after space returned")
    assert recorder.health.state == OK and not list(small_disk.glob("*.tmp"))
    for events in lane_events(midi_path):
        assert [value for _, value in events] == [step % 128 for step in range(len(feeder.step_times))]
    rows, events = timeline_times(timeline_path)
    assert rows == [round(sent_s - recorder.start_time_s, 4) for sent_s in feeder.update_times]
    assert [line for _, line in events] == ["recording: back"]  # the engine saw it recovering before it polled


def test_a_folder_that_cannot_be_made_still_raises(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        AutomationRecorder(tmp_path / "file" / "a.mid", lanes=LANES).__enter__()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_event_rows_in_the_timeline(tmp_path, suffix):
    timeline = tmp_path / f"t{suffix}"
    with AutomationRecorder(None, timeline, start_time_s=100.0) as recorder:
        recorder.record_fault(100.25, "input: recovering: JACK server stopped")  # before the columns are known
        recorder.record_update(100.5, {"valence": 6.0, "energy": 3.0})
        recorder.record_fault(101.0, 'recording: recovering: disk full writing "a, b.mid"\n(No space)')
        recorder.record_update(101.5, {"valence": 6.5, "energy": None})
    assert read_timeline(timeline) == [
        {"time_s": 0.25, "event": "input: recovering: JACK server stopped"},
        {"time_s": 0.5, "valence": 6.0, "energy": 3.0},
        {"time_s": 1.0, "event": 'recording: recovering: disk full writing "a, b.mid" (No space)'},
        {"time_s": 1.5, "valence": 6.5, "energy": None}]
    lines = timeline.read_text().splitlines()
    if suffix == ".csv":  # header and ordinary rows as before; the event text is one field past the header
        assert lines[0] == "time_s,valence,energy" and lines[2] == "0.5000,6,3"
        assert lines[1] == "0.2500,,,input: recovering: JACK server stopped"
        assert list(csv.DictReader(lines))[2] == {"time_s": "1.0000", "valence": "", "energy": "",
                                                  None: ['recording: recovering: disk full writing "a, b.mid" '
                                                         '(No space)']}
    else:
        assert lines[0] == '{"time_s": 0.25, "event": "input: recovering: JACK server stopped"}'
