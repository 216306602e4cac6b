# Sourced by build_test_vst3.sh and build_test_synth.sh: the platform's VST3 folder name
# (ARCHDIR), the DISTRHO Plugin Framework sources and a C++ compiler, installed with apt-get
# when running as root, and build_vst3_bundle. Expects die(), DPF_PATH, CXX and NICE from the caller.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)  ARCHDIR=x86_64-linux ;;
  Linux-aarch64) ARCHDIR=aarch64-linux ;;
  Linux-i?86)    ARCHDIR=i386-linux ;;
  *) die "unsupported platform $(uname -s)-$(uname -m) (this script builds Linux VST3 bundles only)" ;;
esac

# --- dependencies -----------------------------------------------------------------
need_pkgs=()
if [ ! -f "$DPF_PATH/distrho/DistrhoPluginMain.cpp" ] && [ "$DPF_PATH" = /usr/share/dpf ]; then
  need_pkgs+=(dpf-source)
fi
if ! command -v "$CXX" >/dev/null 2>&1 && [ "$CXX" = g++ ]; then need_pkgs+=(g++); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): installing ${need_pkgs[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
      apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null \
        || die "apt-get install ${need_pkgs[*]} failed"
    fi
  else
    die "missing ${need_pkgs[*]}; run as root (apt-get install ${need_pkgs[*]}) or set DPF_PATH/CXX"
  fi
fi
[ -f "$DPF_PATH/distrho/DistrhoPluginMain.cpp" ] || die "DPF sources not found in $DPF_PATH (package dpf-source)"
[ -f "$DPF_PATH/distrho/src/DistrhoPluginVST3.cpp" ] || die "DPF in $DPF_PATH has no VST3 wrapper (need DPF >= 1.5)"
command -v "$CXX" >/dev/null 2>&1 || die "C++ compiler '$CXX' not found"

# build_vst3_bundle DISTRHO_DIR: compile $WORK/$NAME.cpp against DPF's distrho/ sources in
# DISTRHO_DIR into $OUT_DIR/$NAME.vst3 (Contents/$ARCHDIR/$NAME.so) and print the bundle path.
build_vst3_bundle() {
  local distrho=$1
  mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
  local bundle="$OUT_DIR/$NAME.vst3"
  mkdir -p "$WORK/$NAME.vst3/Contents/$ARCHDIR"
  # shellcheck disable=SC2086
  if ! $NICE "$CXX" -std=gnu++11 -O2 -fPIC -shared -fvisibility=hidden -fvisibility-inlines-hidden \
        -DNDEBUG -DDISTRHO_PLUGIN_TARGET_VST3 \
        -I"$WORK" -I"$distrho" \
        "$WORK/$NAME.cpp" "$distrho/DistrhoPluginMain.cpp" \
        -Wl,--version-script="$DPF_PATH/utils/symbols/vst3.version" -Wl,--no-undefined \
        -lpthread -ldl \
        -o "$WORK/$NAME.vst3/Contents/$ARCHDIR/$NAME.so" 2>"$WORK/build.log"; then
    cat "$WORK/build.log" >&2
    die "compilation of $NAME.vst3 failed (see compiler output above)"
  fi
  rm -rf "$bundle"
  mv "$WORK/$NAME.vst3" "$bundle"
  echo "$bundle"
}
