"""``dawemo-app`` (also ``dawemo app``): the desktop app.

    dawemo-app [--file CLIP] [--start] [--quit-after-s S] [--screenshot OUT.png]

What the window's error banner shows (a broken preset or model, an input or MIDI port that
cannot open) is also printed as one ``dawemo-app: error:`` line on stderr, for launches from a
terminal or a script. An unexpected error in the event loop goes to the banner and stderr as
well instead of ending the app; DAWEMO_DEBUG=1 adds its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROG = "dawemo-app"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dawemo-app", description="dawemo: explainable music emotion, live.")
    parser.add_argument("--file", type=Path, help="play this audio file as the input")
    parser.add_argument("--start", action="store_true", help="start the engine at once")
    parser.add_argument("--quit-after-s", type=float, help="close after this many seconds (demos, smoke tests)")
    parser.add_argument("--screenshot", type=Path, help="save a picture of the window just before closing")
    parser.add_argument("--no-midi", action="store_true", help="do not open a MIDI port")
    parser.add_argument("--config-dir", type=Path, help="where the remembered choices live (default: per-user)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import PyQt6.QtWidgets  # noqa: F401
    except ImportError as error:
        _print_error(f"the desktop app needs PyQt6 ({error})")
        return 2
    previous_hook = sys.excepthook
    try:
        return _run(args)
    except Exception as error:  # e.g. the window could not be built: one line, not a traceback
        _report_unexpected(error)
        return 1
    finally:
        sys.excepthook = previous_hook


def _run(args: argparse.Namespace) -> int:
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from dawemo.ui.main_window import MainWindow
    from dawemo.ui.settings import AppSettings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("dawemo")
    settings = AppSettings.load(args.config_dir)
    if args.file is not None:
        settings.source_kind, settings.file_path = "file", str(args.file)
    if args.no_midi:
        settings.midi_mode = "none"
    window = MainWindow(settings, args.config_dir)
    for message in window.errors:  # the banner shows the last one only
        _print_error(message)
    sys.excepthook = lambda kind, error, trace: window.show_error(_report_unexpected(error))
    window.show()
    if args.start or args.file is not None:
        def start() -> None:
            from dawemo.inputs.sources import LibraryMessagesToLog

            with LibraryMessagesToLog():  # alsa-lib's own lines would repeat the banner's
                started = window.start_engine()
            if not started:
                _print_error(window.error_banner.text())
            elif window.errors:  # starting clears the banner, but the broken preset is still not used
                window.show_error(window.errors[-1])

        QTimer.singleShot(0, start)
    if args.quit_after_s:
        def finish() -> None:
            if args.screenshot:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(args.screenshot))
                print(f"wrote {args.screenshot}")
            window.close()

        QTimer.singleShot(int(args.quit_after_s * 1000), finish)
    return app.exec()


def _print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _report_unexpected(error: BaseException) -> str:
    """One stderr line for an error nothing foresaw (the traceback with DAWEMO_DEBUG=1); returns the line.

    Installed as sys.excepthook while the window lives: PyQt6 would otherwise end the app on an
    error in a slot.
    """
    if os.environ.get("DAWEMO_DEBUG", "") not in ("", "0"):
        import traceback

        traceback.print_exception(error)
    text = str(error).strip()
    message = f"unexpected {type(error).__name__}" + (f": {text.splitlines()[0]}" if text else "")
    _print_error(message)
    return message


if __name__ == "__main__":
    sys.exit(main())
