"""``dawemo run`` (the live bridge, headless) and ``dawemo devices``.

Only argparse is imported at module level so ``dawemo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dawemo import constants as C

STOP_DEADLINE_S = 0.9  # Ctrl-C ends the process within this, whatever state the parts are in


def configure_run(parser: argparse.ArgumentParser, positive_seconds, non_negative_seconds) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="DEVICE", help="audio input device (name or unique part; see 'dawemo devices')")
    source.add_argument("--jack-input", metavar="PORT",
                        help="JACK output port(s) to listen to, comma-separated (e.g. 'system:capture_1'); "
                             "'-' registers dawemo:in_1 without connecting")
    source.add_argument("--bridge", nargs="?", const="", metavar="NAME",
                        help="listen to a dawemo Bridge plugin in the DAW (the only one running, or NAME) and send "
                             "the CC back out of its MIDI output (see 'dawemo bridge list')")
    source.add_argument("--file", type=Path, metavar="PATH", help="play an audio file instead of live input")
    parser.add_argument("--realtime", action="store_true", help="with --file: play at real-time pace (else as fast as possible)")
    parser.add_argument("--loop", action="store_true", help="with --file: start again at the end")
    midi = parser.add_mutually_exclusive_group()
    midi.add_argument("--midi-port", metavar="NAME", help="send to this existing MIDI port (name or unique part)")
    midi.add_argument("--virtual-port", metavar="NAME", help="create a virtual MIDI port with this name "
                      "(macOS, Linux ALSA/JACK; on Windows use loopMIDI and --midi-port)")
    parser.add_argument("--midi-api", default="auto", help="auto, jack, alsa, coremidi or windows (default auto)")
    parser.add_argument("--preset", default="default", help="mapping preset: a TOML file or a shipped name (default %(default)s)")
    parser.add_argument("--record", type=Path, metavar="OUT.mid", help="record the automation as a type 1 MIDI file")
    parser.add_argument("--timeline", type=Path, metavar="OUT.csv",
                        help="write every update's emotions and features (.csv or .jsonl)")
    parser.add_argument("--tempo-bpm", type=float, default=120.0,
                        help="tempo of the recorded MIDI file (default 120; with --bridge: the host's tempo and "
                             "song position when it gives them)")
    parser.add_argument("--duration-s", type=positive_seconds, help="stop after this many seconds")
    parser.add_argument("--window-s", type=positive_seconds, default=C.DEFAULT_WINDOW_S)
    parser.add_argument("--hop-s", type=positive_seconds, default=C.DEFAULT_HOP_S)
    parser.add_argument("--steady-s", type=non_negative_seconds, default=C.DEFAULT_STEADY_S, metavar="S",
                        help="hold values steady on one piece with this time constant and jump on a change of "
                             "music (default %(default)g; 0 follows every window on its own)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    machine = parser.add_argument_group("machine sound (JACK): a second stream through a plugin chain")
    machine.add_argument("--chain", help="plugin chain (TOML file or shipped name, see 'dawemo plugins') whose "
                                         "parameters follow the emotion")
    machine.add_argument("--machine-input", metavar="PORTS",
                         help="JACK ports carrying the machine sound, comma-separated (default: connect none; "
                              "dawemo-machine:in_1/in_2 wait for a connection)")
    machine.add_argument("--machine-midi-input", metavar="PORTS",
                         help="JACK MIDI ports that play the chain's instrument (chains that start with one)")
    machine.add_argument("--machine-output", metavar="PORTS",
                         help="JACK ports to play the processed machine sound to (e.g. 'system:playback_*')")
    show = parser.add_argument_group("show control (presets with OSC or DMX lanes; docs/show-control.md)")
    show.add_argument("--delay-ms", action="append", default=[], metavar="DEST=MS", type=_delay_arg,
                      help="output delay of one destination, replacing the preset's (repeatable); "
                           "DEST 'midi' delays the MIDI output")
    show.add_argument("--glide-s", type=float, metavar="S",
                      help="release/unmute glide back to the music (default: the preset's [stage] glide_s)")
    show.add_argument("--mute", action="append", default=[], metavar="LANE",
                      help="start with this lane muted (repeatable). While running: keys h hold, r release, "
                           "b blackout, 1-9 mute lane n on a terminal; lines 'hold', 'release', 'panic', "
                           "'mute NAME', 'unmute NAME' on piped standard input")
    show.add_argument("--osc-control", type=int, metavar="PORT",
                      help="also take stage commands as OSC (/dawemo/hold, /release, /panic, /mute NAME) on this "
                           "UDP port; off unless given")
    show.add_argument("--osc-control-host", default="127.0.0.1", metavar="HOST",
                      help="address to listen on for --osc-control (default 127.0.0.1: this machine only)")
    parser.add_argument("--view-every-s", type=positive_seconds, default=1.0, help="live view refresh (default 1 s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live view")


def _delay_arg(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        delay_ms = float(value)
    except ValueError:
        delay_ms = math.nan
    if not sep or not name or not 0 <= delay_ms <= 5000:
        raise argparse.ArgumentTypeError(f"expected DESTINATION=MS with MS 0-5000, got {text!r}")
    return name, delay_ms


def _open_source(args: argparse.Namespace):
    from dawemo.inputs.sources import DeviceSource, FileSource, JackSource

    if args.file is not None:
        return FileSource(args.file, realtime=args.realtime, loop=args.loop)
    if getattr(args, "bridge", None) is not None:
        from dawemo.inputs.bridge import BridgeSource

        return BridgeSource(args.bridge or None)
    if args.jack_input is not None:
        ports = None if args.jack_input == "-" else [p.strip() for p in args.jack_input.split(",") if p.strip()]
        return JackSource(connect=ports)
    return DeviceSource(None if args.input == "default" else args.input)


def _view_line(stats, names: tuple[str, ...]) -> str:
    if stats.emotions is None:
        values = "waiting for the first window..."
    else:
        values = " ".join(f"{name[:5]} {stats.emotions[name]:.1f}" for name in names)
    latency = "" if math.isnan(stats.latency_ms_p50) else f" | lat {stats.latency_ms_p50:.0f}/{stats.latency_ms_p99:.0f} ms"
    faults = "".join(f" | {fault.part.upper()} {fault.health.state.upper()}" for fault in stats.faults)
    stage = f" | {stats.stage}" if getattr(stats, "stage", "") else ""
    return (f"{stats.stream_time_s:7.1f}s | {values} | {stats.update_rate_hz:.1f} upd/s | "
            f"drop {stats.dropped_frames} | cpu {stats.cpu_percent:.0f}%{latency} | {stats.level_dbfs:.0f} dBFS"
            f"{stage}{faults}")


def run_live(args: argparse.Namespace, print_error) -> int:
    """Run the live bridge until the file ends, --duration-s passes, or Ctrl-C."""
    from dawemo.engine import STREAM_CLOCK, WALL_CLOCK, EmotionEngine
    from dawemo.outputs.mapping import PresetError
    from dawemo.outputs.preset_file import load_preset
    from dawemo.outputs.midi import MidiOutput, MidiPortError
    from dawemo.emotion.model import EmotionModel, ModelError
    from dawemo.outputs.recorder import AutomationRecorder
    from dawemo.inputs.sources import AudioSourceError, LibraryMessagesToLog

    if (args.realtime or args.loop) and args.file is None:
        print_error("--realtime and --loop apply to --file only")
        return 2
    if (args.machine_input or args.machine_output or args.machine_midi_input) and not args.chain:
        print_error("--machine-input, --machine-midi-input and --machine-output need --chain")
        return 2
    try:
        preset = load_preset(args.preset)
        model = EmotionModel(args.model)
        chain = None
        if args.chain:
            from dawemo.machine.chain import load_chain

            chain = load_chain(args.chain)
    except (PresetError, ModelError, FileNotFoundError) as error:
        print_error(str(error))
        return 2
    if args.glide_s is not None:
        if not (math.isfinite(args.glide_s) and 0 <= args.glide_s <= 60):
            print_error(f"--glide-s must be 0-60 seconds, got {args.glide_s:g}")
            return 2
        preset.glide_s = args.glide_s
    lane_names = [lane.name for lane in preset.lanes + preset.show_lanes]
    for name in args.mute:
        if name not in lane_names:
            print_error(f"--mute {name!r}: no such lane in preset '{preset.name}' (lanes: {', '.join(lane_names)})")
            return 2
    if chain is not None and chain.is_instrument and args.machine_input:
        print_error(f"chain '{chain.name}' starts with an instrument: play it with --machine-midi-input, not audio")
        return 2
    if chain is not None and not chain.is_instrument and args.machine_midi_input:
        print_error(f"chain '{chain.name}' has no instrument to play: --machine-midi-input needs one")
        return 2
    realtime = args.file is None or args.realtime
    clock = WALL_CLOCK if realtime else STREAM_CLOCK
    # Parts' own log lines about faults would repeat what the engine reports (_print_fault).
    logging.getLogger("dawemo.outputs").setLevel(logging.CRITICAL)
    stop_requested: list[str] = []
    stopper = _Stopper(stop_requested)
    previous = {number: signal.signal(number, stopper) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        with contextlib.ExitStack() as stack:
            try:
                # MIDI first: python-rtmidi holds the GIL while it opens a JACK client, which can
                # deadlock against a running JACK input whose callback needs the GIL.
                midi = None
                if args.midi_port or args.virtual_port:
                    midi = stack.enter_context(MidiOutput(args.virtual_port or args.midi_port,
                                                          virtual=bool(args.virtual_port), api=args.midi_api))
                with LibraryMessagesToLog():  # alsa-lib's own lines would repeat our error
                    source = stack.enter_context(_open_source(args))
                bridge = getattr(args, "bridge", None) is not None
                if bridge:  # the CC go back out of the bridge's MIDI output (and to --midi-port too)
                    from dawemo.outputs.bridge_midi import BridgeMidiOut, MidiFanout

                    bridge_midi = stack.enter_context(BridgeMidiOut(args.bridge or None, source=source))
                    midi = bridge_midi if midi is None else MidiFanout([bridge_midi, midi])
                machine = None
                if chain is not None:
                    from dawemo.machine.live import JackMachine

                    split = lambda text: [p.strip() for p in (text or "").split(",") if p.strip()]  # noqa: E731
                    machine = stack.enter_context(JackMachine(chain, split(args.machine_input),
                                                              split(args.machine_output), args.hop_s,
                                                              midi_inputs=split(args.machine_midi_input)))
                delays_ms = dict(args.delay_ms)
                if "midi" in delays_ms:
                    preset.midi_delay_ms = delays_ms.pop("midi")
                show = None
                if preset.show_lanes:
                    from dawemo.outputs.show import ShowOutputs

                    show = stack.enter_context(ShowOutputs(preset, delays_ms))
                elif delays_ms:
                    raise ValueError(f"--delay-ms: preset '{preset.name}' has no OSC or DMX destinations "
                                     f"(midi=MS delays the MIDI output)")
                recorder = None
                if args.record or args.timeline:
                    timing = {"tempo_bpm": args.tempo_bpm, "start_time_s": 0.0 if clock == STREAM_CLOCK else None}
                    if bridge:
                        timing = _bridge_timeline(source, args.tempo_bpm)
                    recorder = stack.enter_context(AutomationRecorder(
                        args.record, args.timeline, lanes=preset.lanes,
                        columns=list(C.EMOTION_NAMES + C.MIDLEVEL_NAMES), **timing))
            except (AudioSourceError, MidiPortError, OSError, ValueError) as error:
                print_error(str(error).splitlines()[0])
                return 2
            on_update = (lambda update, values: machine.push(values)) if machine is not None else None
            engine = stack.enter_context(EmotionEngine(source, model, args.window_s, args.hop_s, preset, midi,
                                                       recorder, clock=clock, on_update=on_update,
                                                       on_fault=_print_fault,
                                                       parts={"machine": machine} if machine is not None else None,
                                                       show=show, steady_s=args.steady_s))
            for name in args.mute:
                engine.set_muted(name)
            from dawemo.cli.stage_keys import KEY_HELP, StageInput

            stage_input = stack.enter_context(StageInput(
                engine, lambda line: print(f"dawemo: {line}", file=sys.stderr, flush=True)))
            if args.osc_control is not None:
                from dawemo.inputs.osc_control import OscControl

                try:
                    control = stack.enter_context(OscControl(stage_input.command, args.osc_control,
                                                             args.osc_control_host))
                except OSError as error:
                    print_error(str(error))
                    return 2
                if not args.quiet:
                    print(f"dawemo: stage commands over OSC on {control.host}:{control.port}", file=sys.stderr)
            if not args.quiet:
                where = f"MIDI -> {midi.port_name}" if midi is not None else "no MIDI output"
                if show is not None:
                    where += ", " + ", ".join(f"{d.protocol} '{d.name}' {d.host}:{d.port}"
                                              + (f" universe {d.universe}" if d.is_dmx else "")
                                              + (f" +{show.delays_s[d.name] * 1000:g} ms" if show.delays_s[d.name] else "")
                                              for d in preset.destinations.values() if d.name in show.senders)
                if machine is not None:
                    where += f", machine sound '{chain.name}' on {', '.join(machine.port_names)}"
                print(f"dawemo run: {source.name} -> {model.name} v{model.version} -> {where} "
                      f"(hop {engine.tracker.hop_s:.2f} s, window {engine.tracker.window_s:.1f} s); Ctrl-C stops",
                      file=sys.stderr)
                if stage_input.keys:
                    print(f"stage {KEY_HELP}: {stage_input.lane_list()}", file=sys.stderr)
            started = time.monotonic()
            next_view = started + args.view_every_s
            while not stop_requested:
                if engine.wait(0.05):
                    break
                now = time.monotonic()
                if args.duration_s and (now - started >= args.duration_s if realtime
                                        else engine.stream_time_s >= args.duration_s):
                    break
                if machine is not None and machine.error and not hasattr(machine, "health"):
                    print_error(machine.error)
                    return 1
                if not args.quiet and now >= next_view:
                    next_view = now + args.view_every_s
                    line = _view_line(engine.stats(), model.emotion_names)
                    if machine is not None:
                        line += f" | machine '{chain.name}' underruns {machine.underrun_frames}"
                    print(line, file=sys.stderr, flush=True)
            stats = engine.stats()
        # Counted again now that the engine's threads have stopped: an update that was being
        # published while the loop ended is in the recording, so it is in the count too.
        stats = engine.stats()
        # The recorder's last word comes after the watch thread stopped: a tail that a full disk
        # kept from being saved is said here.
        if recorder is not None and not recorder.health.ok:
            print_error(f"recording: {recorder.health.message}")
        if stop_requested:
            print(f"\ndawemo run: stopped ({stop_requested[0]})", file=sys.stderr)
        if not args.quiet:
            show_count = f", {stats.show_values} OSC/DMX values" if preset.show_lanes else ""
            print(f"stopped after {stats.stream_time_s:.1f} s of audio: {stats.updates} updates, "
                  f"{stats.cc_events} CC events{show_count}, {stats.dropped_frames} dropped frames", file=sys.stderr)
        if stats.state == "error" and stats.last_error:
            print_error(stats.last_error)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\ndawemo run: stopped", file=sys.stderr)
        return 0
    finally:
        stopper.done()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _bridge_timeline(source, default_bpm: float) -> dict:
    """Recorder timing on the DAW's timeline (the host's tempo, time signature, song position)."""
    timing = source.recorder_timing(default_bpm)
    if timing is None:
        print("dawemo run: no bridge block yet: the recording starts now at --tempo-bpm, not on the DAW timeline",
              file=sys.stderr)
        return {"tempo_bpm": default_bpm, "start_time_s": None}
    print(f"dawemo run: recording on the DAW timeline from {timing.pop('position_s'):.3f} s "
          f"at {timing['tempo_bpm']:g} BPM", file=sys.stderr)
    return timing


class _Stopper:
    """SIGINT/SIGTERM handler: the first asks the main loop to stop and arms a deadline; a stop
    that is not finished within ``STOP_DEADLINE_S`` (a part hanging on a dead server), or a second
    Ctrl-C, ends the process at once. Recordings are readable at every moment, so nothing but the
    last flush interval is lost."""

    def __init__(self, requests: list[str]) -> None:
        self.requests = requests
        self._finished = threading.Event()

    def __call__(self, number, frame) -> None:
        if self.requests:
            self._exit("stopped at once (second signal)")
        self.requests.append(signal.Signals(number).name)
        threading.Thread(target=self._deadline, name="dawemo-stop-deadline", daemon=True).start()

    def _deadline(self) -> None:
        if not self._finished.wait(STOP_DEADLINE_S):
            self._exit(f"stopped (a part did not close within {STOP_DEADLINE_S:.1f} s; recordings keep "
                       "what was written)")

    def _exit(self, message: str) -> None:
        print(f"\ndawemo run: {message}", file=sys.stderr, flush=True)
        os._exit(0)

    def done(self) -> None:
        self._finished.set()


def _print_fault(fault) -> None:
    """Say each fault, and each recovery, the moment the engine sees it (the watch thread)."""
    if fault.health.ok:
        print(f"dawemo: {fault.part} is back", file=sys.stderr, flush=True)
    else:
        print(f"dawemo: {fault.line}", file=sys.stderr, flush=True)


def configure_devices(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run_devices(args: argparse.Namespace) -> int:
    """List audio inputs/outputs (pedalboard, JACK) and MIDI ports."""
    import json

    from dawemo.outputs.midi import list_midi_ports
    from dawemo.inputs.sources import list_audio_devices

    audio = list_audio_devices()
    midi = list_midi_ports()
    if args.json:
        from dawemo.bridge_shm import list_bridges

        bridges = [info.__dict__ for info in list_bridges()]
        print(json.dumps({"audio": audio, "midi": midi, "bridges": bridges}, indent=1, default=str))
        return 0

    def section(title: str, names) -> None:
        print(f"{title}:")
        for name in names or []:
            print(f"  {name}")
        if not names:
            print("  (none)")

    section("audio inputs (--input)", audio.get("inputs"))
    section("audio outputs", audio.get("outputs"))
    jack = audio.get("jack")
    section("JACK audio ports to listen to (--jack-input)", jack.get("sources") if jack else None)
    section("MIDI outputs (--midi-port)", midi.get("outputs"))
    from dawemo.bridge_shm import list_bridges

    section("DAW bridges (--bridge NAME)", [info.label for info in list_bridges()])
    for message in audio.get("errors", []) + [f"{k}: {v}" for k, v in midi.get("unavailable", {}).items()]:
        print(f"note: {message}")
    return 0


def configure_learn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lane", help="lane number (1 = first lane of the preset) or lane name")
    port = parser.add_mutually_exclusive_group(required=True)
    port.add_argument("--midi-port", metavar="NAME", help="existing MIDI port (name or unique part)")
    port.add_argument("--virtual-port", metavar="NAME", help="virtual MIDI port to create")
    parser.add_argument("--midi-api", default="auto")
    parser.add_argument("--preset", default="default", help="mapping preset (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="sweeps to send, 1 s apart (default 1)")


def run_learn(args: argparse.Namespace, print_error) -> int:
    """Send one lane alone (a short sweep of its CC) so a DAW's MIDI-learn binds exactly that lane."""
    from dawemo.outputs.mapping import CcMapper, PresetError
    from dawemo.outputs.preset_file import load_preset
    from dawemo.outputs.midi import MidiOutput, MidiPortError

    try:
        preset = load_preset(args.preset)
    except (PresetError, FileNotFoundError) as error:
        print_error(str(error))
        return 2
    names = [lane.name.lower() for lane in preset.lanes]
    if args.lane.isdigit() and 1 <= int(args.lane) <= len(preset.lanes):
        index = int(args.lane) - 1
    elif args.lane.lower() in names:
        index = names.index(args.lane.lower())
    else:
        print_error(f"no lane {args.lane!r} in preset {preset.name!r}: use 1-{len(preset.lanes)} or one of "
                    + ", ".join(lane.name for lane in preset.lanes))
        return 2
    lane = preset.lanes[index]
    try:
        with MidiOutput(args.virtual_port or args.midi_port, virtual=bool(args.virtual_port), api=args.midi_api) as midi:
            mapper = CcMapper(preset)
            for _ in range(max(1, args.repeat)):
                midi.send(mapper.learn_events(index, time.monotonic()))
                time.sleep(1.0)
    except MidiPortError as error:
        print_error(str(error).splitlines()[0])
        return 2
    controls = "/".join(str(c) for c in lane.controls)
    print(f"sent lane {index + 1} ({lane.name}): channel {lane.channel + 1}, CC {controls}")
    return 0
