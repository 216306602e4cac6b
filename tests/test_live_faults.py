"""Faults on stage, injected for real into a running ``dawemo run`` (see tests/fault_rig.py).

Each test starts a private jackd, a JACK peer playing music and receiving CC, and dawemo
recording to a MIDI file and a timeline; then stops or kills the server, fills the recording's
filesystem, removes the MIDI port's program, or eats both cores, and checks what the issue asks:
every fault said within 1 s, JACK rejoined within 2 s of the server's return, CC uninterrupted
by recording faults, recordings readable and nothing lost before the fault, Ctrl-C within 1 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fault_rig is a sibling helper, not a package

import fault_rig  # noqa: E402

pytestmark = [pytest.mark.slow]

DETECT_S = 1.0
REJOIN_S = 2.0
STOP_S = 1.0
# The rig runs each window alone, so while music plays some lane's CC changes every 0.48 s hop (the
# default preset has no ramp since v6, and unchanged values are not sent again). A recording fault
# must not cost an update: one missed hop leaves 0.96 s; the margin over one hop is scheduling jitter
# on a loaded 2-core machine (0.512 s seen).
CC_GAP_S = 0.75
LOST_BEFORE_FAULT_S = 1.0


@pytest.fixture(scope="module", autouse=True)
def _rig_possible():
    why = fault_rig.can_run()
    if why:
        pytest.skip(why)


def _check_common(row: dict) -> None:
    assert row["detected_s"] is not None and row["detected_s"] <= DETECT_S, row
    assert row["stop_s"] <= STOP_S, row
    assert row["readable"], row
    assert row["lost_s"] is not None and row["lost_s"] <= LOST_BEFORE_FAULT_S, row
    assert "Traceback" not in row["tail"], row["tail"]


@pytest.mark.parametrize("fault", ["jack-stop", "jack-kill"])
def test_jack_server_gone_is_said_and_rejoined_with_midi(fault):
    row = fault_rig.run_scenario(fault)
    _check_common(row)
    assert row["recovered_s"] is not None and row["recovered_s"] <= REJOIN_S, row
    # The peer reconnected our CC port after the restart, and the CC flows again.
    assert row["reconnected"] and row["cc_before"] > 0 and row["cc_after"] > 0, row
    assert row["updates"] == row["timeline_rows"], row
    # The gap is marked in the timeline: the fault and the return, each where it happened.
    events = row["timeline_events"]
    assert any(line.startswith("input: recovering") for line in events), events
    assert any(line.startswith("input: back") for line in events), events


def test_disk_full_keeps_cc_flowing_and_recording_resumes():
    row = fault_rig.run_scenario("disk-full")
    _check_common(row)
    assert row["recovered_s"] is not None and row["recovered_s"] <= DETECT_S, row
    assert row["cc_during_fault"] > 0 and row["cc_gap_s"] <= CC_GAP_S, row
    assert row["tmp_files_left"] == [], row
    assert row["unsaved_after_s"] == 0, row  # space came back: everything reached the disk


def test_disk_that_stays_full_leaves_readable_files_and_says_what_was_not_saved():
    row = fault_rig.run_scenario("disk-full-stays")
    _check_common(row)
    assert row["cc_during_fault"] > 0 and row["cc_gap_s"] <= CC_GAP_S, row
    assert row["tmp_files_left"] == [], row
    assert row["unsaved_after_s"] > 0, row  # 20 s of a full disk: writes really failed
    assert "were not saved" in row["tail"], row["tail"]


def test_midi_port_gone_is_said_and_reopened():
    row = fault_rig.run_scenario("midi-port-gone")
    _check_common(row)
    assert row["recovered_s"] is not None and row["recovered_s"] <= REJOIN_S, row
    assert row["cc_gap_s"] is not None and row["cc_gap_s"] <= REJOIN_S, row


def test_cpu_starvation_is_said_and_the_show_goes_on():
    row = fault_rig.run_scenario("cpu-hog")
    _check_common(row)
    assert row["recovered_s"] is not None and row["recovered_s"] <= DETECT_S, row
    assert row["cc_during_fault"] > 0, row


def test_ctrl_c_while_the_server_is_down():
    row = fault_rig.run_scenario("stop-while-server-down")
    _check_common(row)
