"""``dawemo plugins`` and ``dawemo render``: the machine-sound commands.

Only argparse is imported at module level so ``dawemo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dawemo import constants as C

PROG = "dawemo"


def configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plugin", nargs="?", metavar="NAME|PATH",
                        help="a built-in effect (e.g. Reverb) or a .vst3 plugin path; "
                             "without it: the built-ins and the shipped example chains")


def run_plugins(args: argparse.Namespace) -> int:
    from dawemo.machine.chain import ChainError, load_chain, shipped_chains
    from dawemo.machine.plugins import BUILTIN_PARAMETERS, PluginError, describe_plugin, format_parameters

    if args.plugin is None:
        print("built-in effects (dawemo plugins NAME lists the parameters):")
        for name, parameters in BUILTIN_PARAMETERS.items():
            moving = [p.name for p in parameters if p.automatable]
            print(f"  {name:16s} lanes: {', '.join(moving) or '-'}")
        print("external: the path of a .vst3 plugin (or an Audio Unit .component on macOS)")
        print("\nexample chains (dawemo render ... --chain NAME):")
        for name in shipped_chains():
            try:
                chain = load_chain(name)
                print(f"  {name:16s} {chain.description}")
            except ChainError as error:
                print(f"  {name:16s} (broken: {error})")
        return 0
    try:
        name, parameters = describe_plugin(args.plugin)
    except PluginError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(format_parameters(name, parameters))
    return 0


def configure_render(parser: argparse.ArgumentParser, positive_seconds) -> None:
    parser.add_argument("music", type=Path, help="the music whose emotions drive the parameters")
    parser.add_argument("machine", type=Path, help="the machine sound to render through the chain: audio, or a "
                        "MIDI file (.mid) when the chain starts with an instrument plugin")
    parser.add_argument("-o", "--output", type=Path, required=True, help="rendered machine sound (WAV, FLAC, ...)")
    parser.add_argument("--chain", required=True, help="chain TOML file or a shipped example name (see 'dawemo plugins')")
    parser.add_argument("--mix", type=Path, metavar="OUT", help="also write music + rendered machine sound")
    parser.add_argument("--curves", type=Path, metavar="OUT.csv",
                        help="parameter curves used (default: OUTPUT's name + .curves.csv)")
    parser.add_argument("--block-size", type=int, default=65536,
                        help="samples per processing block; does not change the output (default %(default)s)")
    parser.add_argument("--window-s", type=positive_seconds, default=C.DEFAULT_WINDOW_S)
    parser.add_argument("--hop-s", type=positive_seconds, default=C.DEFAULT_HOP_S)
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped one)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")


def run_render(args: argparse.Namespace) -> int:
    from dawemo.emotion.tracker import EmotionTracker
    from dawemo.machine.chain import ChainError, load_chain
    from dawemo.machine.render import RenderError, render
    from dawemo.emotion.model import EmotionModel, ModelError

    if args.block_size < 1:
        print(f"{PROG}: error: --block-size must be at least 1, got {args.block_size}", file=sys.stderr)
        return 2
    for path, what in ((args.output, "output"), (args.mix, "--mix"), (args.curves, "--curves")):
        if path is not None and not path.parent.exists():
            print(f"{PROG}: error: {what} folder {path.parent} does not exist", file=sys.stderr)
            return 2
    try:
        chain = load_chain(args.chain)
        model = EmotionModel(args.model) if args.model else EmotionModel()
        EmotionTracker(model, args.window_s, args.hop_s)  # a bad --window-s/--hop-s is a usage error
    except (ChainError, ModelError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    show = not args.quiet and sys.stderr.isatty()
    bars = RenderProgress(file=sys.stderr) if show else None
    try:
        result = render(args.music, args.machine, chain, args.output, model, args.window_s, args.hop_s,
                        args.block_size, args.mix, args.curves, bars)
    except RenderError as error:
        if bars is not None:
            bars.close()  # before the message, so it is not drawn over
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    finally:
        if bars is not None:
            bars.close()
    if result.note:
        print(f"{PROG}: note: {result.note}", file=sys.stderr)
    print(f"wrote {result.output_path} ({result.duration_s:.1f} s at {result.sample_rate:g} Hz, chain "
          f"'{chain.name}', {result.updates} emotion updates, {result.realtime_factor:.0f}x real time)")
    print(f"wrote {result.curves_path}")
    if result.mix_path:
        print(f"wrote {result.mix_path}")
    return 0


class RenderProgress:
    """tqdm bars on a terminal for ``render``'s ``progress(stage, done_s, total_s)``: one per stage.

    Each shows the audio done, the rate as a multiple of real time and the time left; it is
    removed when its stage ends, so only the result lines stay on the terminal.
    """

    STAGES = {"analyse": "analysing music", "render": "rendering"}

    def __init__(self, file, mininterval_s: float = 0.25) -> None:
        self.file = file
        self.mininterval_s = mininterval_s
        self._bar = None
        self._stage = None
        self._started = 0.0

    def __call__(self, stage: str, done_s: float, total_s: float) -> None:
        import time

        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage, self._started = stage, time.perf_counter()
            self._bar = tqdm(total=round(total_s, 1), desc=self.STAGES.get(stage, stage), unit="s", file=self.file,
                             leave=False, dynamic_ncols=True, mininterval=self.mininterval_s,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio"
                                        "{postfix} [{remaining} left]")
        elapsed_s = time.perf_counter() - self._started
        if elapsed_s > 0:
            self._bar.set_postfix_str(f"{done_s / elapsed_s:.0f}x real time", refresh=False)
        self._bar.update(round(done_s, 1) - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
