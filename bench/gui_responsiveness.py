"""GUI event-loop stalls while the engine runs at default settings (issue target: p99 < 50 ms).

    python bench/gui_responsiveness.py [--seconds 60] [--json OUT]

Opens the real window (offscreen unless a display is set; run under xvfb-run for a real X
server), plays the demo clip in real time, in a loop, through the engine. Default window and
hop, default preset, no MIDI port. A 10 ms precise timer measures how late each tick of the Qt
event loop runs. Prints p50/p99/max lateness, the redraw rate and the engine's stats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import numpy as np
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from dawemo.cli.demo import write_demo_clip
    from dawemo.ui.main_window import MainWindow
    from dawemo.ui.settings import AppSettings

    app = QApplication(sys.argv[:1])
    folder = Path(tempfile.mkdtemp())
    clip = write_demo_clip(folder / "demo.wav")
    window = MainWindow(AppSettings(file_path=str(clip), midi_mode="none"), folder / "config")
    window.show()
    if not window.start_engine():
        print(window.error_banner.text(), file=sys.stderr)
        return 1
    QTimer.singleShot(2000, window.stalls.reset)  # leave out start-up (model load, first layout)
    started = time.process_time(), time.monotonic()
    captured = {}

    def finish() -> None:
        captured["stats"] = window.controller.engine.stats()
        captured["cpu_wall"] = time.process_time() - started[0], time.monotonic() - started[1]
        captured["late"] = np.array(window.stalls.late_ms)
        window.stop_engine()
        app.quit()

    QTimer.singleShot(int(args.seconds * 1000), finish)
    app.exec()
    (cpu_s, wall_s), late, stats = captured["cpu_wall"], captured["late"], captured["stats"]
    result = {
        "platform": os.environ["QT_QPA_PLATFORM"], "seconds": args.seconds, "ticks": int(len(late)),
        "late_ms_p50": float(np.percentile(late, 50)), "late_ms_p99": float(np.percentile(late, 99)),
        "late_ms_max": float(late.max()), "updates": window.updates_received,
        "process_cpu_percent_of_one_core": 100 * cpu_s / wall_s, "engine_update_rate_hz": stats.update_rate_hz,
        "dropped_frames": stats.dropped_frames,
    }
    print(f"event-loop lateness over {result['ticks']} ticks: p50 {result['late_ms_p50']:.1f} ms, "
          f"p99 {result['late_ms_p99']:.1f} ms, max {result['late_ms_max']:.1f} ms; {result['updates']} updates; "
          f"process CPU {result['process_cpu_percent_of_one_core']:.0f}% of one core ({result['platform']})")
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
