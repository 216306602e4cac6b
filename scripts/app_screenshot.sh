#!/usr/bin/env bash
# Take the README's screenshot of the desktop app: a real X server (Xvfb), a generated clip
# analysed live for a while, then a grab of the window into docs/app-screenshot.png.
#   bash scripts/app_screenshot.sh [OUT.png] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/app-screenshot.png}
SECONDS_TO_RUN=${2:-20}
PY=${PYTHON:-.venv/bin/python}
command -v xvfb-run >/dev/null || { echo "app_screenshot.sh: needs xvfb-run (Debian package xvfb)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -c "from dawemo.cli.demo import write_demo_clip; write_demo_clip('$WORK/demo.wav')"
DAWEMO_CONFIG_DIR="$WORK/config" xvfb-run -a -s "-screen 0 1280x720x24" \
    "$PY" -m dawemo.ui.app --file "$WORK/demo.wav" --no-midi --quit-after-s "$SECONDS_TO_RUN" --screenshot "$OUT"
