"""``dawemo bridge list|install|build``: the DAW bridge plugin (bridge/, docs/bridge.md).

``install`` builds the plugin from its source with DPF (Debian/Ubuntu: ``apt install dpf-source
g++``) and copies it into the user's plugin folders; no binary ships with the Python package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FORMATS = ("vst3", "clap", "lv2")
BUNDLES = {"vst3": "DawemoBridge.vst3", "clap": "DawemoBridge.clap", "lv2": "DawemoBridge.lv2"}


def user_plugin_dirs(home: Path | None = None, platform: str = sys.platform) -> dict[str, Path]:
    """Where hosts look for a user's plugins, per format (the formats' own conventions)."""
    home = home or Path.home()
    if platform == "darwin":
        base = home / "Library" / "Audio" / "Plug-Ins"
        return {"vst3": base / "VST3", "clap": base / "CLAP", "lv2": home / "Library" / "Audio" / "Plug-Ins" / "LV2"}
    if platform == "win32":
        local = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        return {"vst3": local / "Programs" / "Common" / "VST3", "clap": local / "Programs" / "Common" / "CLAP",
                "lv2": Path(os.environ.get("APPDATA", home)) / "LV2"}
    return {"vst3": home / ".vst3", "clap": home / ".clap", "lv2": home / ".lv2"}


def source_dir() -> Path:
    """The plugin's C++ source (the repository's bridge/, installed as the package dawemo.bridge_src)."""
    from importlib import resources

    return Path(str(resources.files("dawemo.bridge_src")))


def build(out_dir: Path, formats: list[str], timing: bool = False) -> list[Path]:
    """Build ``formats`` into ``out_dir`` with bridge/build.sh; returns the bundles. Raises RuntimeError."""
    if sys.platform == "win32":
        raise RuntimeError("building on Windows is not supported; use the Windows binaries built on Linux "
                           "(TARGET=windows bridge/build.sh, see docs/bridge.md)")
    script = source_dir() / "build.sh"
    if not script.is_file():
        raise RuntimeError(f"the bridge source is missing ({script}); reinstall dawemo")
    env = dict(os.environ, TIMING="1" if timing else "0")
    result = subprocess.run(["bash", str(script), str(out_dir), *formats], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "ERROR" in line] or result.stderr.splitlines()[-1:]
        raise RuntimeError(lines[-1] if lines else f"build.sh exited with {result.returncode}")
    return [out_dir / BUNDLES[fmt] for fmt in formats]


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bridge_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the bridges running in DAWs on this machine")
    listing.add_argument("--all", action="store_true", help="also leftovers of hosts that crashed")
    install = sub.add_parser("install", help="build the plugin with DPF and install it into your plugin folders")
    install.add_argument("--formats", default="vst3,clap,lv2", help="comma-separated: vst3, clap, lv2 (default all)")
    install.add_argument("--prefix", type=Path, help="install into PREFIX/{vst3,clap,lv2} instead of the "
                                                     "user's plugin folders")
    build_cmd = sub.add_parser("build", help="build the plugin into a folder (nothing installed)")
    build_cmd.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    build_cmd.add_argument("--formats", default="vst3,clap,lv2")
    build_cmd.add_argument("--timing", action="store_true", help="record run() costs (for bench/bridge_cost.py)")


def _formats(text: str) -> list[str]:
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return formats


def run(args: argparse.Namespace, print_error) -> int:
    if args.bridge_command == "list":
        from dawemo.bridge_shm import list_bridges

        bridges = list_bridges(include_dead=args.all)
        if not bridges:
            print("no dawemo Bridge is running (insert 'dawemo Bridge' on a DAW track; 'dawemo bridge install' "
                  "installs it)")
        for info in bridges:
            print(info.label + ("" if info.alive else " [host gone]"))
        return 0
    try:
        formats = _formats(args.formats)
    except ValueError as error:
        print_error(str(error))
        return 2
    try:
        if args.bridge_command == "build":
            for bundle in build(args.out_dir, formats, timing=args.timing):
                print(bundle)
            return 0
        targets = ({fmt: args.prefix / fmt for fmt in formats} if args.prefix is not None
                   else user_plugin_dirs())
        with tempfile.TemporaryDirectory(prefix="dawemo-bridge-") as work:
            for fmt, bundle in zip(formats, build(Path(work), formats)):
                folder = targets[fmt]
                folder.mkdir(parents=True, exist_ok=True)
                destination = folder / bundle.name
                if destination.is_dir():
                    shutil.rmtree(destination)
                elif destination.exists():
                    destination.unlink()
                (shutil.copytree if bundle.is_dir() else shutil.copy2)(bundle, destination)
                print(f"installed {fmt.upper()}: {destination}")
    except (RuntimeError, OSError) as error:
        print_error(f"bridge {args.bridge_command}: {str(error).splitlines()[0] if str(error) else error}")
        return 1
    print("rescan plugins in your DAW and insert 'dawemo Bridge' on a track or bus; then: dawemo run --bridge")
    return 0
