#!/usr/bin/env bash
# bridge/build.sh OUT_DIR [vst3] [clap] [lv2]   (default: all three)
#
# Builds the dawemo Bridge plugin from this folder with DPF (Debian's dpf-source, or DPF_PATH)
# and g++, one source for every format, into OUT_DIR:
#   DawemoBridge.vst3/Contents/<arch>-linux/DawemoBridge.so
#   DawemoBridge.clap
#   DawemoBridge.lv2/{DawemoBridge.so,manifest.ttl,DawemoBridge.ttl}
# Environment: DPF_PATH (default /usr/share/dpf), CXX (g++), CC (gcc), NICE ("nice -n 10"),
#   TIMING=1 (adds per-run() cost recording for bench/bridge_cost.py),
#   TARGET=windows (cross-build .vst3/.clap with x86_64-w64-mingw32-g++; no LV2).
set -euo pipefail
die() { echo "bridge/build.sh: ERROR: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 OUT_DIR [vst3] [clap] [lv2]"
OUT_DIR=$1; shift
FORMATS=${*:-vst3 clap lv2}
HERE=$(cd "$(dirname "$0")" && pwd)
DPF_PATH=${DPF_PATH:-/usr/share/dpf}
NICE=${NICE:-nice -n 10}
TARGET=${TARGET:-linux}
NAME=DawemoBridge
[ -f "$DPF_PATH/distrho/DistrhoPluginMain.cpp" ] || die "DPF not found in $DPF_PATH (apt-get install dpf-source)"
if [ "$TARGET" = windows ]; then
  CXX=${CXX:-x86_64-w64-mingw32-g++}
  ARCHDIR=x86_64-win; SOEXT=dll
  SHARED="-shared -static -static-libgcc -static-libstdc++"
  LIBS=""
else
  CXX=${CXX:-g++}
  case "$(uname -m)" in
    x86_64) ARCHDIR=x86_64-linux ;; aarch64) ARCHDIR=aarch64-linux ;; i?86) ARCHDIR=i386-linux ;;
    *) die "unsupported machine $(uname -m)" ;;
  esac
  SOEXT=so
  SHARED="-shared -fPIC -Wl,--no-undefined"
  LIBS="-lpthread -ldl -lrt"
fi
command -v "$CXX" >/dev/null 2>&1 || die "C++ compiler '$CXX' not found"
FLAGS="-std=gnu++17 -O2 -fvisibility=hidden -fvisibility-inlines-hidden -DNDEBUG -Wall -Wno-unused-parameter"
[ "${TIMING:-0}" = 1 ] && FLAGS="$FLAGS -DDAWEMO_BRIDGE_TIMING"
mkdir -p "$OUT_DIR"; OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dawemo-bridge-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

compile() {  # compile TARGET_DEFINE SYMBOLS OUTPUT
  local symbols=""
  if [ "$TARGET" = windows ]; then symbols="$DPF_PATH/utils/symbols/$2.def"
  else symbols="-Wl,--version-script=$DPF_PATH/utils/symbols/$2.version"; fi
  mkdir -p "$(dirname "$3")"
  # shellcheck disable=SC2086
  if ! $NICE "$CXX" $FLAGS -D"$1" -I"$HERE" -I"$DPF_PATH/distrho" \
        "$HERE/DawemoBridge.cpp" "$DPF_PATH/distrho/DistrhoPluginMain.cpp" \
        $SHARED $symbols $LIBS -o "$3" 2>"$WORK/build.log"; then
    cat "$WORK/build.log" >&2
    die "compiling $3 failed"
  fi
}

for format in $FORMATS; do
  case $format in
    vst3)
      compile DISTRHO_PLUGIN_TARGET_VST3 vst3 "$WORK/$NAME.vst3/Contents/$ARCHDIR/$NAME.$( [ "$TARGET" = windows ] && echo vst3 || echo so)"
      rm -rf "$OUT_DIR/$NAME.vst3"; mv "$WORK/$NAME.vst3" "$OUT_DIR/" ;;
    clap)
      compile DISTRHO_PLUGIN_TARGET_CLAP clap "$WORK/$NAME.clap"
      rm -f "$OUT_DIR/$NAME.clap"; mv "$WORK/$NAME.clap" "$OUT_DIR/" ;;
    lv2)
      [ "$TARGET" = windows ] && die "LV2 on Windows needs the TTL generator run there; not built here"
      compile DISTRHO_PLUGIN_TARGET_LV2 lv2 "$WORK/$NAME.lv2/$NAME.$SOEXT"
      ${CC:-gcc} "$DPF_PATH/utils/lv2-ttl-generator/lv2_ttl_generator.c" -o "$WORK/lv2_ttl_generator" -ldl \
        || die "building DPF's lv2_ttl_generator failed"
      (cd "$WORK/$NAME.lv2" && "$WORK/lv2_ttl_generator" "./$NAME.$SOEXT" >/dev/null) || die "generating the LV2 TTL failed"
      rm -rf "$OUT_DIR/$NAME.lv2"; mv "$WORK/$NAME.lv2" "$OUT_DIR/" ;;
    *) die "unknown format '$format' (vst3, clap, lv2)" ;;
  esac
  echo "$OUT_DIR: $format built" >&2
done
