#!/usr/bin/env bash
# Set up dawemo in ./.venv (first run only) and analyse a self-generated demo clip.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/dawemo ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/dawemo demo --out demo-output "$@"
