#!/usr/bin/env bash
# build_test_vst3.sh OUT_DIR
#
# Builds "TestGain", a tiny open-source (ISC) stereo VST3 effect, from source using
# Debian's `dpf-source` package (DISTRHO Plugin Framework 1.6, no Steinberg SDK needed),
# and leaves the bundle at OUT_DIR/TestGain.vst3 (Contents/x86_64-linux/TestGain.so).
# No GUI, no X11/OpenGL: only g++ and dpf-source are required.
#
# Parameters (as Spotify pedalboard names them):
#   gain_db : "Gain"  unit "dB", -36 .. +12, default 0   (output gain)
#   drive   : "Drive" unit "%",    0 .. 100, default 0   (tanh saturation, peak-normalised)
#   mute    : "Mute"  boolean ("Off"/"On"), default Off  (output silenced when On)
#
# Environment: DPF_PATH (default /usr/share/dpf), CXX (default g++), NICE (default "nice -n 10").
set -euo pipefail

die() { echo "build_test_vst3.sh: ERROR: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
OUT_DIR=$1
NAME=TestGain
DPF_PATH=${DPF_PATH:-/usr/share/dpf}
CXX=${CXX:-g++}
NICE=${NICE:-nice -n 10}

# Platform folder (ARCHDIR), dpf-source and g++ (installed with apt-get when root), checks:
. "$(dirname "$0")/dpf_setup.sh"

# --- sources ----------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/testgain-vst3.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/DistrhoPluginInfo.h" <<'EOF'
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_BRAND   "TestBrand"
#define DISTRHO_PLUGIN_NAME    "TestGain"
#define DISTRHO_PLUGIN_URI     "urn:test:testgain"
#define DISTRHO_PLUGIN_HAS_UI        0
#define DISTRHO_PLUGIN_IS_RT_SAFE    1
#define DISTRHO_PLUGIN_NUM_INPUTS    2
#define DISTRHO_PLUGIN_NUM_OUTPUTS   2
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx"
#endif
EOF

cat > "$WORK/TestGain.cpp" <<'EOF'
// TestGain: minimal stereo gain/drive/mute effect for tests. ISC licence.
#include "DistrhoPlugin.hpp"
#include <cmath>

START_NAMESPACE_DISTRHO

enum { kGain = 0, kDrive, kMute, kParamCount };

class TestGain : public Plugin {
public:
    TestGain() : Plugin(kParamCount, 0, 0), fGainDb(0.0f), fDrive(0.0f), fMute(0.0f) {}

protected:
    const char* getLabel() const override { return "TestGain"; }
    const char* getDescription() const override { return "Stereo gain + drive test plugin"; }
    const char* getMaker() const override { return "TestBrand"; }
    const char* getLicense() const override { return "ISC"; }
    uint32_t getVersion() const override { return d_version(1, 0, 0); }
    int64_t getUniqueId() const override { return d_cconst('T', 'g', 'a', 'n'); }

    void initParameter(uint32_t index, Parameter& p) override {
        p.hints = kParameterIsAutomatable;
        switch (index) {
        case kGain:
            // -36..+12 so that the default 0 dB is exactly 0.75 normalised (no float fuzz)
            p.name = "Gain"; p.symbol = "gain"; p.unit = "dB";
            p.ranges = ParameterRanges(0.0f, -36.0f, 12.0f);
            break;
        case kDrive:
            p.name = "Drive"; p.symbol = "drive"; p.unit = "%";
            p.ranges = ParameterRanges(0.0f, 0.0f, 100.0f);
            break;
        case kMute:
            p.name = "Mute"; p.symbol = "mute";
            p.hints |= kParameterIsBoolean;
            p.ranges = ParameterRanges(0.0f, 0.0f, 1.0f);
            // "Off"/"On" labels make pedalboard expose this as a Python bool
            p.enumValues.count = 2;
            p.enumValues.restrictedMode = true;
            p.enumValues.values = new ParameterEnumerationValue[2];
            p.enumValues.values[0].value = 0.0f; p.enumValues.values[0].label = "Off";
            p.enumValues.values[1].value = 1.0f; p.enumValues.values[1].label = "On";
            break;
        }
    }

    float getParameterValue(uint32_t index) const override {
        switch (index) {
        case kGain:  return fGainDb;
        case kDrive: return fDrive;
        case kMute:  return fMute;
        }
        return 0.0f;
    }

    void setParameterValue(uint32_t index, float v) override {
        switch (index) {
        case kGain:  fGainDb = v; break;
        case kDrive: fDrive = v;  break;
        case kMute:  fMute = v;   break;
        }
    }

    void run(const float** in, float** out, uint32_t frames) override {
        const float g = (fMute > 0.5f) ? 0.0f : std::pow(10.0f, fGainDb / 20.0f);
        const float k = 1.0f + fDrive * 0.2f;            // drive 0..100 % -> pre-gain 1..21
        const float norm = 1.0f / std::tanh(k);          // full-scale input stays at full scale
        for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c)
            for (uint32_t i = 0; i < frames; ++i) {
                float x = in[c][i];
                if (fDrive > 0.0f) x = std::tanh(k * x) * norm;
                out[c][i] = g * x;
            }
    }

private:
    float fGainDb, fDrive, fMute;
    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(TestGain)
};

Plugin* createPlugin() { return new TestGain(); }

END_NAMESPACE_DISTRHO
EOF

# --- build ------------------------------------------------------------------------
build_vst3_bundle "$DPF_PATH/distrho"
