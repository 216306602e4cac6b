#!/usr/bin/env bash
# Install what the tests need (system packages when run as root, ./.venv) and run the test suite.
# dpf-source and g++ build a small VST3 plugin (scripts/build_test_vst3.sh) for the external-plugin tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SYSTEM_PACKAGES="fluidsynth fluid-soundfont-gm jackd2 libjack-jackd2-0 libasound2-plugins xvfb xauth
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0
  libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
  libxcb-image0 dpf-source g++"
SYSTEM_PACKAGES="$SYSTEM_PACKAGES ola"  # olad (Art-Net, E1.31) receives the show-control tests' DMX
SYSTEM_PACKAGES="$SYSTEM_PACKAGES jalv lv2-dev sordi g++-mingw-w64-x86-64-posix"  # the DAW bridge tests (docs/bridge.md)
missing=$(for p in $SYSTEM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "note: some tests skip without these system packages:" $missing >&2
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip "setuptools>=77"
.venv/bin/pip install --quiet -e ".[train,dev,cluster]"
exec .venv/bin/python -m pytest -q -ra "$@"
