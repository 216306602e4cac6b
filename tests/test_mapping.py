"""The mapping engine: curves, smoothing, interpolation, deadband, rate limit, presets and their errors."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from dawemo import constants as C
from dawemo.outputs import mapping, preset_file
from dawemo.outputs.mapping import (CURVES, CcEvent, CcMapper, Lane, Preset, PresetError, apply_curve, cc_value,
                                    encode_cc, update_values)
from dawemo.outputs.preset_file import dump_preset, load_preset, parse_preset, save_preset

# Reading TOML needs Python 3.11+ or tomli (an optional backport on 3.10).
needs_toml = pytest.mark.skipif(mapping.tomllib is None, reason="Python 3.10 without tomli")

# ----------------------------------------------------------------------------------------------
# helpers


def make_mapper(lanes: list[Lane], tick_hz: float = 100.0, hop_s: float = 0.5,
                interpolation: str = "linear") -> CcMapper:
    """A mapper for a preset built in code."""
    return CcMapper(Preset(name="test", lanes=lanes, tick_hz=tick_hz, hop_s=hop_s, interpolation=interpolation))


def drive(mapper: CcMapper, updates: list[tuple[float, dict[str, float]]], end_s: float,
          tick_every_s: float = 0.01) -> list[CcEvent]:
    """Push the (time_s, values) updates in order, ticking every ``tick_every_s`` until ``end_s``."""
    events: list[CcEvent] = []
    pending = list(updates)
    now_s = updates[0][0]
    while now_s <= end_s + 1e-9:
        while pending and pending[0][0] <= now_s + 1e-9:
            mapper.push(*pending.pop(0))
        events += mapper.tick(now_s)
        now_s += tick_every_s
    return events


def lane_values(events: list[CcEvent], lane: int = 0) -> list[tuple[float, int]]:
    """(time_s, full CC value) per value one lane sent; a 14-bit pair (MSB, then LSB 32 above) is one value."""
    out: list[tuple[float, int]] = []
    mine = [event for event in events if event.lane == lane]
    i = 0
    while i < len(mine):
        event = mine[i]
        pair = mine[i + 1] if i + 1 < len(mine) else None
        if pair is not None and pair.control == event.control + 32 and pair.time_s == event.time_s:
            out.append((event.time_s, (event.value << 7) | pair.value))
            i += 2
        else:
            out.append((event.time_s, event.value))
            i += 1
    return out


def value_at(emotion_value: float) -> dict[str, float]:
    return {"energy": emotion_value}


# ----------------------------------------------------------------------------------------------
# value mapping


CURVE_CASES = [("linear", None)] + [(curve, shape) for curve in CURVES[1:]
                                    for shape in (None, 0.3, 1.0, 2.0, 7.0, 20.0)]


@pytest.mark.parametrize("curve,shape", CURVE_CASES)
def test_curves_monotonic_and_hit_endpoints(curve, shape):
    grid = [i / 1000 for i in range(1001)]
    ys = [apply_curve(curve, shape, u) for u in grid]
    assert ys[0] == 0.0 and ys[-1] == 1.0
    assert all(b >= a for a, b in zip(ys, ys[1:])), "not monotonic"
    assert all(0.0 <= y <= 1.0 for y in ys)
    assert apply_curve(curve, shape, -0.5) == 0.0 and apply_curve(curve, shape, 1.5) == 1.0


def test_curve_shapes_bend_the_right_way():
    assert apply_curve("exponential", 3.0, 0.5) < 0.5 < apply_curve("logarithmic", 3.0, 0.5)
    # logarithmic is the inverse of exponential with the same shape
    for u in (0.1, 0.37, 0.8):
        assert apply_curve("logarithmic", 3.0, apply_curve("exponential", 3.0, u)) == pytest.approx(u)
    # the s-curve is symmetric, flat at the ends for shape > 1
    assert apply_curve("s-curve", 2.0, 0.5) == pytest.approx(0.5)
    assert apply_curve("s-curve", 2.0, 0.2) == pytest.approx(1 - apply_curve("s-curve", 2.0, 0.8))
    assert apply_curve("s-curve", 2.0, 0.1) < 0.1
    assert apply_curve("s-curve", 1.0, 0.3) == pytest.approx(0.3)


def test_linear_mapping_inversion_and_clamping():
    lane = Lane(source="energy", cc=21)
    assert (lane.in_min, lane.in_max, lane.out_min, lane.out_max) == (1.0, 9.0, 0.0, 127.0)
    assert lane.map_value(1.0) == 0.0 and lane.map_value(9.0) == 127.0
    assert lane.map_value(5.0) == pytest.approx(63.5)
    assert lane.map_value(-3.0) == 0.0 and lane.map_value(12.0) == 127.0  # clamped outside the input range

    inverted = Lane(source="energy", cc=21, out_min=127, out_max=0)
    assert inverted.map_value(1.0) == 127.0 and inverted.map_value(9.0) == 0.0
    assert inverted.map_value(3.0) == pytest.approx(127 - lane.map_value(3.0))
    assert inverted.map_value(100.0) == 0.0

    input_inverted = Lane(source="energy", cc=21, in_min=9.0, in_max=1.0)
    assert input_inverted.map_value(9.0) == 0.0 and input_inverted.map_value(1.0) == 127.0

    zoomed = Lane(source="dissonance", cc=106, in_min=0.2, in_max=0.6, out_min=10, out_max=90)
    assert zoomed.map_value(0.0) == 10.0 and zoomed.map_value(0.4) == pytest.approx(50.0)
    assert zoomed.map_value(0.9) == 90.0

    midlevel = Lane(source="minorness", cc=108)
    assert (midlevel.in_min, midlevel.in_max) == (0.0, 1.0)
    wide = Lane(source="energy", cc14=5)
    assert wide.out_max == 16383.0 and wide.controls == (5, 37)


def test_fourteen_bit_split():
    lane = Lane(source="valence", cc14=3)
    assert encode_cc(lane, 8192) == [(3, 64), (35, 0)]
    assert encode_cc(lane, 16383) == [(3, 127), (35, 127)]
    assert encode_cc(lane, 0) == [(3, 0), (35, 0)]
    assert encode_cc(lane, 300) == [(3, 2), (35, 44)]
    assert all((m << 7) | l == v for v in range(0, 16384, 97)
               for (_, m), (_, l) in [encode_cc(lane, v)])
    assert encode_cc(Lane(source="valence", cc=20), 99) == [(20, 99)]
    assert cc_value(lane, 8191.5) == 8192 and cc_value(lane, -4) == 0 and cc_value(lane, 1e9) == 16383


def test_event_unpacks_as_the_midi_sender_tuple():
    event = CcEvent(time_s=1.5, lane=2, channel=3, control=21, value=99, mapped=98.7)
    time_s, lane, channel, control, value = event  # what MidiOutput.send unpacks
    assert (time_s, lane, channel, control, value) == (1.5, 2, 3, 21, 99) and event.mapped == 98.7


def test_fourteen_bit_events_msb_then_lsb():
    # in 1-9 -> 0-16384 exactly so that 5.0 maps to 8192
    lane = Lane(source="energy", cc14=1, out_min=0, out_max=16383, attack_s=0, release_s=0, max_rate_hz=1000)
    mapper = make_mapper([lane], interpolation="none")
    x = 1 + 8 * 8192 / 16383
    mapper.push(0.0, {"energy": x})
    events = mapper.tick(0.0)
    assert [(e.control, e.value) for e in events] == [(1, 64), (33, 0)]
    assert events[0].time_s == events[1].time_s and events[0].mapped == pytest.approx(8192)
    mapper.push(0.5, {"energy": 9.0})
    events = mapper.tick(0.5)
    assert [(e.control, e.value) for e in events] == [(1, 127), (33, 127)]


# ----------------------------------------------------------------------------------------------
# smoothing and interpolation


def crossing_time(events: list[CcEvent], start_s: float, level: float, rising: bool) -> float:
    for event in events:
        if event.time_s >= start_s and (event.mapped >= level if rising else event.mapped <= level):
            return event.time_s - start_s
    raise AssertionError("never crossed")


@pytest.mark.parametrize("inverted_input", [False, True])
def test_attack_and_release_time_constants(inverted_input):
    attack_s, release_s = 0.3, 0.8
    low, high = (9.0, 1.0) if inverted_input else (1.0, 9.0)
    lane = Lane(source="energy", cc=21, in_min=low, in_max=high, attack_s=attack_s, release_s=release_s,
                max_rate_hz=1000)
    mapper = make_mapper([lane], tick_hz=1000, interpolation="none")
    # The source rises at 2 s and falls at 6 s; attack follows the source, whichever way the lane maps it.
    events = drive(mapper, [(0.0, value_at(1.0)), (2.0, value_at(9.0)), (6.0, value_at(1.0))], 12.0, 0.05)
    one_tau = 1 - math.exp(-1)  # 63.2 %
    start, end = lane.map_value(1.0), lane.map_value(9.0)
    rise_level = start + one_tau * (end - start)
    fall_level = end + one_tau * (start - end)
    assert crossing_time(events, 2.0, rise_level, rising=end > start) == pytest.approx(attack_s, abs=0.005)
    assert crossing_time(events, 6.0, fall_level, rising=start > end) == pytest.approx(release_s, abs=0.005)
    assert events[-1].value == cc_value(lane, start)  # settled back where it started (5.5 tau for 127 steps)


def test_zero_smoothing_follows_at_once():
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=1000)
    mapper = make_mapper([lane], interpolation="none")
    events = drive(mapper, [(0.0, value_at(1.0)), (1.0, value_at(9.0))], 2.0)
    assert [(round(e.time_s, 6), e.value) for e in events] == [(0.0, 0), (1.0, 127)]


def test_interpolation_makes_small_steps_and_reaches_target():
    rng = random.Random(1)
    # Alternating extremes and random values every 0.5 s: the worst case for jumps.
    values = [1.0, 9.0, 1.0, 9.0] + [rng.uniform(1, 9) for _ in range(12)]
    updates = [(0.5 * i, value_at(v)) for i, v in enumerate(values)]
    end_s = updates[-1][0] + 4.0
    for attack_s, release_s in [(0.0, 0.0), (0.3, 0.8)]:
        lane = Lane(source="energy", cc=21, attack_s=attack_s, release_s=release_s, max_rate_hz=100)
        events = drive(make_mapper([lane], tick_hz=100, hop_s=0.5), updates, end_s)
        sent = [e.value for e in events]
        steps = [abs(b - a) for a, b in zip(sent, sent[1:])]
        # a full-range ramp over 0.5 s at 100 Hz is 127 / 50 = 2.54 per tick
        assert max(steps) <= 3, f"jump of {max(steps)} with attack {attack_s}"
        assert sent[-1] == cc_value(lane, lane.map_value(values[-1]))
        if attack_s == 0.0:
            # without smoothing the ramp reaches each update's value one hop later, exactly
            reached = {round(e.time_s, 6): e.value for e in events}
            assert reached[1.0] == 127 and reached[1.5] == 0
    # Without interpolation the same updates jump across the full range.
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=100)
    sent = [e.value for e in drive(make_mapper([lane], interpolation="none"), updates, end_s)]
    assert max(abs(b - a) for a, b in zip(sent, sent[1:])) == 127


def test_early_update_bends_the_ramp_without_a_jump():
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=1000)
    mapper = make_mapper([lane], tick_hz=100, hop_s=0.5)
    # The second update arrives halfway through the first ramp and turns it back.
    events = drive(mapper, [(0.0, value_at(1.0)), (0.1, value_at(9.0)), (0.35, value_at(1.0))], 2.0)
    sent = [e.value for e in events]
    assert max(abs(b - a) for a, b in zip(sent, sent[1:])) <= 3
    assert max(sent) == pytest.approx(127 * 0.5, abs=3) and sent[-1] == 0


def test_first_update_starts_at_its_value_and_nothing_is_sent_before():
    lane = Lane(source="energy", cc=21)
    mapper = make_mapper([lane])
    assert mapper.tick(10.0) == []
    assert mapper.mapped_values() == [None]
    mapper.push(10.0, value_at(5.0))
    events = mapper.tick(10.0)
    assert len(events) == 1 and events[0].value == 64 and events[0].time_s == 10.0
    assert mapper.mapped_values() == [pytest.approx(63.5)]


def test_deadband_suppresses_small_changes():
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, deadband=4, max_rate_hz=1000)
    mapper = make_mapper([lane], interpolation="none")
    step = 8 / 127  # one CC step in input units
    # jitter of up to 3 steps around 64: nothing after the first message
    jitter = [(0.5 * i, value_at(1 + step * (64 + d))) for i, d in enumerate([0, 2, -3, 1, 3, -2, 0, 3])]
    events = drive(mapper, jitter, 5.0)
    assert [e.value for e in events] == [64]
    # a move of 4 steps goes out
    mapper.push(5.5, value_at(1 + step * 68))
    assert [e.value for e in mapper.tick(6.0)] == [68]
    # during a slow sweep every sent value is at least the deadband away from the last one
    mapper = make_mapper([Lane(source="energy", cc=21, deadband=4, max_rate_hz=1000)])
    sent = [e.value for e in drive(mapper, [(0.0, value_at(1.0)), (0.5, value_at(9.0))], 6.0)]
    assert len(sent) > 10 and all(abs(b - a) >= 4 for a, b in zip(sent, sent[1:]))


def test_send_on_change_only():
    lane = Lane(source="energy", cc=21)
    updates = [(0.48 * i, value_at(7.3)) for i in range(60)]
    mapper = make_mapper([lane], tick_hz=120, hop_s=0.48)
    events = drive(mapper, [(0.0, value_at(2.0))] + updates[1:], 30.0)
    assert events, "the change to 7.3 was never sent"
    assert events[-1].time_s < 10.0, "still sending long after the input stopped changing"
    assert events[-1].value == cc_value(lane, lane.map_value(7.3))
    # a constant input from the start sends exactly one message
    mapper.reset()
    assert len(drive(mapper, updates, 30.0)) == 1


def test_rate_limit_over_a_long_random_run():
    rng = random.Random(7)
    lanes = [Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=30),
             Lane(source="tension", cc=22, attack_s=0.05, release_s=0.1, max_rate_hz=7),
             Lane(source="dissonance", cc14=3, attack_s=0, release_s=0.2, max_rate_hz=13.3),
             Lane(source="valence", cc=23, attack_s=0, release_s=0, max_rate_hz=500)]  # above the tick rate
    mapper = make_mapper(lanes, tick_hz=120, hop_s=0.48)
    events: list[CcEvent] = []
    now_s, next_update_s = 1000.0, 1000.0  # a monotonic-clock-like origin
    while now_s < 1060.0:
        if now_s >= next_update_s:
            jumpy = rng.random() < 0.3
            mapper.push(next_update_s, {"energy": rng.choice([1.0, 9.0]) if jumpy else rng.uniform(1, 9),
                                        "tension": rng.uniform(1, 9), "dissonance": rng.random(),
                                        "valence": rng.uniform(1, 9)})
            next_update_s += 0.48
        events += mapper.tick(now_s)
        now_s += rng.uniform(0.001, 0.05)  # irregular calls, like a real loop
    assert all(b.time_s >= a.time_s for a, b in zip(events, events[1:]))
    for index, lane in enumerate(lanes):
        times = [t for t, _ in lane_values(events, index)]
        assert len(times) > 50
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= 1 / lane.max_rate_hz - 1e-9
        # no 1 s window holds more than max_rate_hz values
        j = 0
        for i in range(len(times)):
            while times[j] < times[i] - 1.0 + 1e-9:
                j += 1
            assert i - j + 1 <= max(lane.max_rate_hz, 1.0)
    # 30 Hz on a 120 Hz tick is exactly every 4th tick
    first = [t for t, _ in lane_values(events, 0)]
    assert min(b - a for a, b in zip(first, first[1:])) == pytest.approx(1 / 30)


def test_rate_limited_change_is_sent_late_not_lost():
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=2)
    mapper = make_mapper([lane], interpolation="none")
    events = drive(mapper, [(0.0, value_at(1.0)), (0.1, value_at(9.0))], 1.0)
    assert [(round(e.time_s, 6), e.value) for e in events] == [(0.0, 0), (0.5, 127)]


def test_result_does_not_depend_on_tick_call_pattern():
    lanes = [Lane(source="energy", cc=21), Lane(source="minorness", cc14=2, curve="s-curve", deadband=3)]
    rng = random.Random(3)
    updates = [(0.48 * i, {"energy": rng.uniform(1, 9), "minorness": rng.random()}) for i in range(20)]
    fine = drive(make_mapper(lanes), updates, 12.0, tick_every_s=0.003)
    batched = make_mapper(lanes)
    for update in updates:
        batched.push(*update)
    coarse = batched.tick(6.0) + batched.tick(12.0)
    assert coarse == fine


def test_long_gaps_between_tick_calls_are_fast_and_exact():
    lanes = [Lane(source="energy", cc=21, deadband=3), Lane(source="sad", cc14=2, max_rate_hz=4)]
    updates = [(0.0, {"energy": 2.0, "sad": 3.0}), (40.0, {"energy": 8.0, "sad": 1.0}),
               (90.0, {"energy": 8.5, "sad": 9.0})]
    fine = drive(make_mapper(lanes), updates, 150.0, tick_every_s=0.01)
    coarse_mapper = make_mapper(lanes)
    coarse = []
    for update in updates:
        coarse_mapper.push(*update)
    for now_s in (30.0, 45.0, 150.0):
        coarse += coarse_mapper.tick(now_s)
    assert coarse == fine and len(fine) > 10
    started = time.perf_counter()
    coarse_mapper.tick(150.0 + 24 * 3600.0)  # a day without tick calls
    coarse_mapper.push(150.0 + 24 * 3600.0, {"energy": 1.0})
    assert coarse_mapper.tick(150.0 + 24 * 3600.0 + 5.0)[-1].value < 3  # within the deadband of 0
    assert time.perf_counter() - started < 0.5


def test_missing_and_non_finite_sources_hold():
    lanes = [Lane(source="energy", cc=21, attack_s=0, release_s=0), Lane(source="sad", cc=26)]
    mapper = make_mapper(lanes, interpolation="none")
    events = drive(mapper, [(0.0, {"energy": 9.0}), (0.5, {"energy": math.nan}), (1.0, {"energy": math.inf})], 2.0)
    assert [(e.lane, e.value) for e in events] == [(0, 127)]
    assert mapper.mapped_values() == [127.0, None]


def test_update_values_names_model_outputs():
    values = update_values([0.1 * i for i in range(7)], [1.0 + i for i in range(8)])
    assert set(values) == set(C.MIDLEVEL_NAMES) | set(C.EMOTION_NAMES)
    assert values["minorness"] == pytest.approx(0.6) and values["tender"] == 8.0


def test_max_backlog_skips_a_burst_after_a_stall():
    lane = Lane(source="energy", cc=21, attack_s=0, release_s=0, max_rate_hz=1000)
    mapper = make_mapper([lane])
    mapper.push(0.0, value_at(1.0))
    mapper.push(0.5, value_at(9.0))
    events = mapper.tick(3.0, max_backlog_s=0.05)  # the loop stalled for 3 s
    assert len(events) == 1 and events[0].value == 127 and 3.0 - 0.05 - 1e-9 <= events[0].time_s <= 3.0


def test_learn_events_sweep_one_lane_then_resync():
    lanes = [Lane(source="energy", cc=21), Lane(source="valence", cc14=4, max_rate_hz=20)]
    mapper = make_mapper(lanes)
    mapper.push(0.0, {"energy": 5.0, "valence": 3.0})
    before = mapper.tick(1.0)
    learn = mapper.learn_events(1, start_s=1.0)
    assert {e.lane for e in learn} == {1} and {e.control for e in learn} == {4, 36}
    swept = [v for _, v in lane_values(learn, 1)]
    assert swept[0] == 0 and swept[-1] == 16383 and swept == sorted(swept) and len(swept) == 9
    times = sorted({e.time_s for e in learn})
    assert min(b - a for a, b in zip(times, times[1:])) == pytest.approx(1 / 20)
    assert [e.control for e in learn[:2]] == [4, 36]  # MSB then LSB
    # afterwards the lane's real value goes out again (once the rate limit allows), the other lane is untouched
    after = mapper.tick(3.0)
    assert [e.lane for e in after] == [1, 1] and after[0].time_s >= times[-1] + 1 / 20 - 1e-9
    assert lane_values(after, 1)[0][1] == lane_values(before, 1)[-1][1]
    with pytest.raises(IndexError):
        mapper.learn_events(2, start_s=3.0)


def test_neutral_events_then_reset():
    lanes = [Lane(source="energy", cc=21), Lane(source="minorness", cc14=2, out_min=16383, out_max=0)]
    mapper = make_mapper(lanes)
    mapper.push(0.0, {"energy": 9.0, "minorness": 0.0})
    mapper.tick(0.0)
    events = mapper.neutral_events(0.01)
    assert [(e.lane, e.control, e.value) for e in events] == [(0, 21, 64), (1, 2, 64), (1, 34, 0)]
    assert events[0].time_s >= 1 / 30 - 1e-9  # rate limit still honoured
    assert mapper.mapped_values() == [None, None] and mapper.tick(5.0) == []


# ----------------------------------------------------------------------------------------------
# presets


@needs_toml
def test_default_preset():
    preset = load_preset("default")
    assert preset.name == "default" and len(preset.lanes) == 15
    assert [lane.source for lane in preset.lanes] == list(C.EMOTION_NAMES + C.MIDLEVEL_NAMES)
    assert [lane.cc for lane in preset.lanes] == list(range(20, 28)) + list(range(102, 109))
    for lane in preset.lanes:
        assert lane.channel == 0 and lane.cc14 is None and lane.curve == "linear"
        assert (lane.attack_s, lane.release_s, lane.deadband, lane.max_rate_hz) == (0.05, 0.15, 1, 30.0)
        assert (lane.out_min, lane.out_max) == (0.0, 127.0) and lane.name and lane.name != lane.source
    assert len({lane.name for lane in preset.lanes}) == 15
    assert preset.interpolation == "none" and preset.hop_s == pytest.approx(C.SEGMENT_STRIDE_FRAMES
                                                                               * C.HOP_SIZE / C.SAMPLE_RATE, abs=1e-3)
    # it runs: one update of the real model outputs gives one message per lane
    mapper = CcMapper(preset)
    mapper.push(0.0, update_values([0.5] * 7, [5.0] * 8))
    assert sorted(e.control for e in mapper.tick(0.0)) == sorted(lane.cc for lane in preset.lanes)


@needs_toml
def test_shipped_presets_load():
    assert {"default", "lights", "osc-visuals"} <= set(preset_file.shipped_presets())
    for name in preset_file.shipped_presets():
        preset = load_preset(name)
        assert (preset.lanes or preset.show_lanes) and parse_preset(dump_preset(preset)) == preset


@needs_toml
def test_load_by_path_and_errors_for_missing(tmp_path):
    path = save_preset(load_preset("lights"), tmp_path / "mine.toml")
    assert load_preset(path) == load_preset(str(path)) == load_preset("lights")
    assert load_preset(path).path == path
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset(tmp_path / "nope.toml")
    with pytest.raises(PresetError, match="no shipped preset named 'nope'.*default"):
        load_preset("nope")


@needs_toml
def test_save_load_round_trip(tmp_path):
    lanes = [Lane(source="valence", cc14=7, out_min=16383, out_max=100, curve="s-curve", shape=0.75,
                  attack_s=1e-05, release_s=12.5, deadband=40, max_rate_hz=13.3, name='Quote " and \\ back'),
             Lane(source="rhythm_complexity", channel=15, cc=0, in_min=0.9, in_max=0.1, curve="exponential",
                  name="Ünïcödé\ttab\nnewline"),
             Lane(source="fear", cc=119, curve="logarithmic", shape=20.0, out_min=0.5, out_max=126.5)]
    preset = Preset(name="edited", lanes=lanes, description="made in the GUI; 'quotes' \"too\"",
                    tick_hz=250.0, hop_s=0.96, interpolation="none")
    path = save_preset(preset, tmp_path / "edited.toml")
    loaded = load_preset(path)
    assert loaded == preset
    assert loaded.lanes[1].channel == 15 and "channel = 16" in path.read_text()
    assert not (tmp_path / "edited.toml.tmp").exists()
    default = load_preset("default")
    assert load_preset(save_preset(default, tmp_path / "d.toml")) == default


def test_lane_built_in_code_is_validated():
    with pytest.raises(PresetError, match="'atack'") as error:
        Lane(source="energy", cc=21, curve="atack")
    assert error.value.key == "curve"
    with pytest.raises(PresetError) as error:
        Lane(source="energy", cc=21, channel=16)
    assert error.value.key == "channel"
    with pytest.raises(PresetError, match="at least one"):
        Preset(name="empty", lanes=[])


BASE = """\
# test preset
[preset]
name = "test"
tick_hz = 100.0

[defaults]
attack_s = 0.2

[[lane]]
name = "Energy"
source = "energy"
cc = 21

[[lane]]
name = "Sad"
source = "sad"
channel = 2
{body}
"""
SECOND_LANE_LINE = BASE.splitlines().index("[[lane]]", BASE.splitlines().index("[[lane]]") + 1) + 1

# (lane-2 body, offending key, words the message must contain)
LANE_ERRORS = [
    ('cc = 26\nsource_ = "sad"', "source_", ["unknown key"]),
    ("cc = 26\natack_s = 0.1", "atack_s", ["unknown key", "did you mean 'attack_s'"]),
    ("cc = 26\ncurve = \"expo\"", "curve", ["unknown curve", "'expo'", "exponential"]),
    ("cc = 120", "cc", ["0-119", "120"]),
    ("cc = -1", "cc", ["0-119"]),
    ('cc = "26"', "cc", ["integer", "string"]),
    ("cc = 26.0", "cc", ["integer"]),
    ("cc = 26\ncc14 = 3", "cc14", ["not both"]),
    ("", "cc", ["missing", "cc14"]),
    ("cc14 = 32", "cc14", ["0-31", "32"]),
    ("cc = 26\nattack_s = -0.1", "attack_s", [">= 0"]),
    ("cc = 26\nrelease_s = -2", "release_s", [">= 0"]),
    ('cc = 26\nrelease_s = "slow"', "release_s", ["number", "string"]),
    ("cc = 26\nin_min = 3\nin_max = 3", "in_max", ["differ from in_min"]),
    ("cc = 26\nout_max = 200", "out_max", ["0-127"]),
    ("cc14 = 6\nout_max = 16384", "out_max", ["0-16383"]),
    ("cc = 26\nshape = 2.0", "shape", ["linear"]),
    ('cc = 26\ncurve = "s-curve"\nshape = 0', "shape", ["> 0"]),
    ("cc = 26\nmax_rate_hz = 0", "max_rate_hz", ["> 0"]),
    ("cc = 26\ndeadband = true", "deadband", ["integer", "boolean"]),
    ("cc = 26\nin_min = nan", "in_min", ["number"]),
]


def write_case(tmp_path: Path, body: str, base: str = BASE) -> Path:
    path = tmp_path / "case.toml"
    path.write_text(base.format(body=body), encoding="utf-8")
    return path


def expected_line(text: str, key: str) -> int:
    """Line of ``key = `` inside the second [[lane]] (or of its header)."""
    lines = text.splitlines()
    for number in range(SECOND_LANE_LINE, len(lines) + 1):
        if lines[number - 1].split("=")[0].strip() == key:
            return number
    return SECOND_LANE_LINE


@pytest.mark.parametrize("body,key,words", LANE_ERRORS, ids=[case[1] + str(i) for i, case in enumerate(LANE_ERRORS)])
@needs_toml
def test_lane_errors_name_file_lane_key_and_line(tmp_path, body, key, words):
    path = write_case(tmp_path, body)
    with pytest.raises(PresetError) as error:
        load_preset(path)
    message = str(error.value)
    assert "\n" not in message
    line = expected_line(path.read_text(), key)
    assert message.startswith(f"{path}:{line}: lane 2 ('Sad'), key '{key}': "), message
    for word in words:
        assert word in message, message
    assert error.value.key == key


@pytest.mark.parametrize("channel", [0, 17])
@needs_toml
def test_channel_out_of_range(tmp_path, channel):
    path = write_case(tmp_path, "cc = 26", BASE.replace("channel = 2", f"channel = {channel}"))
    with pytest.raises(PresetError, match=rf"case.toml:{SECOND_LANE_LINE + 3}: lane 2 \('Sad'\), key 'channel': "
                                          rf"must be 1-16, got {channel}"):
        load_preset(path)


@needs_toml
def test_unknown_source_names_the_lane_by_position(tmp_path):
    path = write_case(tmp_path, "cc = 26", BASE.replace('name = "Sad"\nsource = "sad"', 'source = "saad"'))
    with pytest.raises(PresetError) as error:
        load_preset(path)
    message = str(error.value)
    assert f"case.toml:{SECOND_LANE_LINE + 1}: lane 2 ('saad'), key 'source': unknown source 'saad'" in message
    assert "did you mean 'sad'" in message and "valence" in message


@pytest.mark.parametrize("body,control", [("cc = 21", 21), ("cc14 = 1", 33)])
@needs_toml
def test_two_lanes_on_one_controller(tmp_path, body, control):
    # lane 1 sends channel 1 CC 21; a 14-bit pair on 1 also uses 33 -> put lane 1 on 33 for that case
    base = BASE.replace("channel = 2\n", "").replace("cc = 21", f"cc = {control}", 1)
    path = write_case(tmp_path, body, base)
    with pytest.raises(PresetError) as error:
        load_preset(path)
    key = body.split(" ")[0]
    line = expected_line(path.read_text(), key)
    assert str(error.value) == (f"{path}:{line}: lane 2 ('Sad'), key '{key}': channel 1 CC {control} is already "
                                f"used by lane 1 ('Energy')")


@pytest.mark.parametrize("name,words", [("5", ["string", "integer"]), ('""', ["empty"])])
@needs_toml
def test_bad_lane_name(tmp_path, name, words):
    path = write_case(tmp_path, "cc = 26", BASE.replace('name = "Sad"', f"name = {name}"))
    with pytest.raises(PresetError) as error:
        load_preset(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{SECOND_LANE_LINE + 1}: lane 2 ('sad'), key 'name': "), message
    assert all(word in message for word in words), message


@needs_toml
def test_missing_source(tmp_path):
    path = write_case(tmp_path, "cc = 26", BASE.replace('source = "sad"\n', ""))
    with pytest.raises(PresetError, match=r"lane 2 \('Sad'\), key 'source': missing"):
        load_preset(path)


@pytest.mark.parametrize("old,new,where,key", [
    ("tick_hz = 100.0", "tik_hz = 100.0", "[preset]", "tik_hz"),
    ("tick_hz = 100.0", "tick_hz = -5", "[preset]", "tick_hz"),
    ("tick_hz = 100.0", 'interpolation = "cubic"', "[preset]", "interpolation"),
    ("tick_hz = 100.0", "format = 2", "[preset]", "format"),
    ("attack_s = 0.2", "attack_s = -1.0", "[defaults]", "attack_s"),
    ("attack_s = 0.2", "cc = 3", "[defaults]", "cc"),
    ("attack_s = 0.2", "channel = 99", "[defaults]", "channel"),
    ("[defaults]", "[defaultz]", "", "defaultz"),
])
@needs_toml
def test_preset_and_defaults_errors(tmp_path, old, new, where, key):
    path = write_case(tmp_path, "cc = 26", BASE.replace(old, new))
    line = next(i + 1 for i, text in enumerate(path.read_text().splitlines())
                if text.split("=")[0].strip() == key or text == f"[{key}]")
    with pytest.raises(PresetError) as error:
        load_preset(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}:") and f"key '{key}'" in message and where in message, message
    assert "\n" not in message


@needs_toml
def test_key_above_the_first_table(tmp_path):
    path = write_case(tmp_path, "cc = 26", "tick_hz = 50.0\n" + BASE)
    with pytest.raises(PresetError, match=r"case.toml:1: key 'tick_hz': belongs under \[preset\]"):
        load_preset(path)


@needs_toml
def test_bad_default_is_reported_where_it_is_written(tmp_path):
    path = write_case(tmp_path, "cc = 26", BASE.replace("attack_s = 0.2", 'curve = "exp"'))
    with pytest.raises(PresetError, match=r"case.toml:7: \[defaults\] \(used by lane 1 \('Energy'\)\), key 'curve'"):
        load_preset(path)


@needs_toml
def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write_case(tmp_path, "cc = 26\nattack_s = = 0.1")
    with pytest.raises(PresetError) as error:
        load_preset(path)
    message = str(error.value)
    line = path.read_text().splitlines().index("attack_s = = 0.1") + 1
    assert message.startswith(f"{path}:{line}: TOML syntax error") and "\n" not in message


@needs_toml
def test_no_lanes_and_wrong_table_kinds(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text('[preset]\nname = "x"\n')
    with pytest.raises(PresetError, match=r"empty.toml: key 'lane': a preset needs at least one \[\[lane\]\]"):
        load_preset(path)
    path.write_text('[lane]\nsource = "sad"\ncc = 1\n')
    with pytest.raises(PresetError, match=r"array of tables"):
        load_preset(path)


def test_python_310_without_tomli_asks_for_it(monkeypatch):
    monkeypatch.setattr(mapping, "tomllib", None)
    with pytest.raises(PresetError, match="pip install tomli"):
        load_preset("default")
