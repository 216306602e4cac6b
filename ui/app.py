"""``dawemo-app`` (also ``dawemo app``): the desktop app.

    dawemo-app [--file CLIP] [--start] [--quit-after-s S] [--screenshot OUT.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
        from PyQt6.QtCore import QTimer
        from PyQt6.QtWidgets import QApplication
    except ImportError as error:
        print(f"dawemo-app: error: the desktop app needs PyQt6 ({error})", file=sys.stderr)
        return 2
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
    window.show()
    if args.start or args.file is not None:
        QTimer.singleShot(0, window.start_engine)
    if args.quit_after_s:
        def finish() -> None:
            if args.screenshot:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(args.screenshot))
                print(f"wrote {args.screenshot}")
            window.close()

        QTimer.singleShot(int(args.quit_after_s * 1000), finish)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
