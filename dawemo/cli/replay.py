"""``dawemo replay TIMELINE``: send a recorded show's OSC and DMX values to their targets again.

The timeline (``dawemo run --timeline``) holds every value sent to an OSC address or a DMX
channel, with its time and its target as a URL (``dawemo.outputs.show.target_url``); replay sends
them at the recorded pace (delays included, since the rows hold send times), OSC values of one
tick together as a bundle, DMX as steady frames. MIDI CC is in the recorded .mid instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

LEAD_S = 0.2  # the first value goes out this long after start (senders and sockets are ready)
FEED_AHEAD_S = 0.5  # values are queued this far ahead of their time (memory stays flat)


def configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("timeline", type=Path, metavar="TIMELINE", help="a timeline (.csv or .jsonl) written by "
                                                                         "'dawemo run --timeline'")
    parser.add_argument("--host", metavar="HOST", help="send everything to this host instead of the recorded ones "
                                                       "(ports, universes and addresses stay)")
    parser.add_argument("--from-s", type=float, default=0.0, metavar="S", help="start this far into the show")
    parser.add_argument("--refresh-hz", type=float, default=44.0, metavar="HZ", help="DMX frames per second "
                                                                                     "(default 44)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def run_replay(args: argparse.Namespace, print_error) -> int:
    from dawemo.faults import health_of
    from dawemo.outputs.dmx import DmxSender
    from dawemo.outputs.mapping import PresetError
    from dawemo.outputs.osc import OscSender
    from dawemo.outputs.recorder import read_timeline
    from dawemo.outputs.show import check_host, parse_target_url

    if args.host is not None:
        try:
            check_host(args.host)
        except PresetError as error:
            print_error(f"--host: {error.reason}")
            return 2
    if not 1.0 <= args.refresh_hz <= 100.0:
        print_error(f"--refresh-hz must be 1-100, got {args.refresh_hz:g}")
        return 2
    try:
        rows = read_timeline(args.timeline)
    except FileNotFoundError:
        print_error(f"{args.timeline}: no such timeline")
        return 2
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print_error(f"{args.timeline}: not a readable timeline ({str(error).splitlines()[0]})")
        return 2
    sent = [row for row in rows if "target" in row and row["time_s"] >= args.from_s]
    if not sent:
        print_error(f"{args.timeline}: no OSC or DMX values to replay (record them with 'dawemo run --timeline' "
                    "and a preset with OSC or DMX lanes)")
        return 2
    targets = {}
    try:
        for row in sent:
            if row["target"] not in targets:
                targets[row["target"]] = parse_target_url(row["target"])
    except ValueError as error:
        print_error(f"{args.timeline}: {error}")
        return 2
    senders = {}
    for target in targets.values():
        host = args.host or target.host
        key = (target.protocol, host, target.port, target.universe)
        if key in senders:
            continue
        name = f"{host}:{target.port}" + (f"/{target.universe}" if target.universe is not None else "")
        senders[key] = (OscSender(name, host, target.port) if target.protocol == "osc"
                        else DmxSender(name, target.protocol, host, target.port, target.universe, args.refresh_hz))
    first_s, last_s = sent[0]["time_s"], sent[-1]["time_s"]
    if not args.quiet:
        print(f"dawemo replay: {len(sent)} values over {last_s - first_s:.1f} s to {len(senders)} destinations "
              f"({', '.join(sorted({s.name for s in senders.values()}))}); Ctrl-C stops", file=sys.stderr)
    health_seen = {}
    try:
        for sender in senders.values():
            sender.__enter__()
        start_s = time.monotonic() + LEAD_S - first_s
        index = 0
        next_view_s = time.monotonic() + 1.0
        while True:
            now_s = time.monotonic()
            horizon = now_s + FEED_AHEAD_S - start_s
            groups = {}
            while index < len(sent) and sent[index]["time_s"] <= horizon:
                row = sent[index]
                target = targets[row["target"]]
                key = (target.protocol, args.host or target.host, target.port, target.universe)
                item = ((target.address, row["value"], target.osc_type) if target.protocol == "osc"
                        else (target.channel, target.bits, int(row["value"])))
                groups.setdefault((key, row["time_s"]), []).append(item)
                index += 1
            for (key, time_s), items in groups.items():
                sender = senders[key]
                (sender.send if target_is_osc(sender) else sender.set)(start_s + time_s, items)
            for sender in senders.values():
                health = health_of(sender)
                if health_seen.get(sender.name, "ok") != health.state:
                    health_seen[sender.name] = health.state
                    print(f"dawemo replay: {sender.name}: {health.state}"
                          + (f": {health.message}" if health.message else ""), file=sys.stderr, flush=True)
            if index >= len(sent) and now_s >= start_s + last_s + 0.1:
                break
            if not args.quiet and now_s >= next_view_s:
                next_view_s = now_s + 1.0
                print(f"replay {now_s - start_s:7.1f} s of {last_s:.1f} s | {index} values", file=sys.stderr,
                      flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("\ndawemo replay: stopped", file=sys.stderr)
        return 0
    finally:
        for sender in senders.values():
            sender.close()
    if not args.quiet:
        print(f"dawemo replay: done, {len(sent)} values", file=sys.stderr)
    return 0


def target_is_osc(sender) -> bool:
    from dawemo.outputs.osc import OscSender

    return isinstance(sender, OscSender)
