# Sourced by build_test_vst3.sh and build_test_synth.sh: the platform's VST3 folder name
# (ARCHDIR), the DISTRHO Plugin Framework sources and a C++ compiler, installed with apt-get
# when running as root. Expects die(), DPF_PATH and CXX to be set by the caller.
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
