#!/usr/bin/env bash
# build_test_synth.sh OUT_DIR
#
# Builds "TestSynth", a tiny open-source (ISC) polyphonic VST3 *instrument*, from source
# using Debian's `dpf-source` package (DISTRHO Plugin Framework 1.6, no Steinberg SDK
# needed), and leaves the bundle at OUT_DIR/TestSynth.vst3 (Contents/x86_64-linux/TestSynth.so).
# No GUI, no X11/OpenGL: only g++ and dpf-source are required.
#
# Instrument: MIDI in, 0 audio inputs, 2 audio outputs (same signal on both channels).
#   8 voices (oldest voice is stolen when all are busy), sine oscillator plus optional
#   2nd/3rd harmonics, linear envelope: 5 ms attack, 50 ms release (from full level),
#   peak amplitude = (velocity/127) * Volume. MIDI events are applied sample-accurately;
#   note-on with velocity 0 = note-off; CC 123 (all notes off) releases all voices,
#   CC 120 (all sound off) silences at once; voices are cleared on (re)activation.
#   Notes held across process() calls keep sounding (state lives in the plugin instance).
#
# Parameters (as Spotify pedalboard names them):
#   brightness : "Brightness" (no unit), 0 .. 1, default 0   (0 = pure sine; 1 = sine +
#                0.5*2nd + 0.25*3rd harmonic, scaled by 1/1.75 so the peak stays <= 1)
#   volume_db  : "Volume" unit "dB", -36 .. 0, default -6    (output gain)
#
# DPF's VST3 wrapper receives MIDI CCs through 16*130 hidden parameters ("MIDI Ch. N CC M").
# Pedalboard 0.9.x would list all 2080 of them in plugin.parameters and spend ~11 s in
# load_plugin() probing them. So, by default, the build compiles a patched *copy* of
# DPF's distrho/ tree (the system copy is untouched) with three small text edits:
#   1. those parameters are titled "MIDI CC <ch>/<cc>", a prefix pedalboard skips
#      (CC input keeps working: CC 120/123 reach the plugin, quantised to block starts);
#   2. fix an off-by-one in DPF 1.6 (`rindex <= kVst3InternalParameterMidiCC_end`) that
#      made the edit controller treat the first real parameter as a MIDI-CC one;
#   3. setActive(true) on an already active plugin is a no-op instead of printing a
#      DPF "! fIsActive" assertion (pedalboard's instrument warm-up does that).
# A patch whose text is not found is skipped with a warning. DPF_PATCH=0 builds stock DPF.
#
# Environment: DPF_PATH (default /usr/share/dpf), CXX (default g++), NICE (default "nice -n 10"),
#              DPF_PATCH (default 1, see above).
set -euo pipefail

die() { echo "build_test_synth.sh: ERROR: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
OUT_DIR=$1
NAME=TestSynth
DPF_PATH=${DPF_PATH:-/usr/share/dpf}
CXX=${CXX:-g++}
NICE=${NICE:-nice -n 10}
DPF_PATCH=${DPF_PATCH:-1}

# Platform folder (ARCHDIR), dpf-source and g++ (installed with apt-get when root), checks:
. "$(dirname "$0")/dpf_setup.sh"

# --- sources ----------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/testsynth-vst3.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/DistrhoPluginInfo.h" <<'EOF'
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_BRAND   "TestBrand"
#define DISTRHO_PLUGIN_NAME    "TestSynth"
#define DISTRHO_PLUGIN_URI     "urn:test:testsynth"
#define DISTRHO_PLUGIN_HAS_UI           0
#define DISTRHO_PLUGIN_IS_RT_SAFE       1
#define DISTRHO_PLUGIN_IS_SYNTH         1
#define DISTRHO_PLUGIN_WANT_MIDI_INPUT  1
#define DISTRHO_PLUGIN_WANT_MIDI_OUTPUT 0
#define DISTRHO_PLUGIN_NUM_INPUTS       0
#define DISTRHO_PLUGIN_NUM_OUTPUTS      2
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Instrument|Synth"
#endif
EOF

cat > "$WORK/TestSynth.cpp" <<'EOF'
// TestSynth: minimal polyphonic sine/harmonics synth for tests. ISC licence.
#include "DistrhoPlugin.hpp"
#include <cmath>

START_NAMESPACE_DISTRHO

enum { kBrightness = 0, kVolume, kParamCount };

static const int    kNumVoices  = 8;
static const double kAttackSec  = 0.005;
static const double kReleaseSec = 0.050;
static const double kTwoPi      = 6.283185307179586476925286766559;

struct Voice {
    enum State { kOff = 0, kAttack, kSustain, kRelease };
    int      state;
    int      note;
    uint64_t age;     // start order, for stealing the oldest voice
    double   phase;   // 0..1
    double   inc;     // cycles per sample
    double   amp;     // velocity / 127
    double   env;     // 0..1
};

class TestSynth : public Plugin {
public:
    TestSynth() : Plugin(kParamCount, 0, 0), fBrightness(0.0f), fVolumeDb(-6.0f), fCounter(0)
    {
        allVoicesOff();
    }

protected:
    const char* getLabel() const override { return "TestSynth"; }
    const char* getDescription() const override { return "Polyphonic sine test synth"; }
    const char* getMaker() const override { return "TestBrand"; }
    const char* getLicense() const override { return "ISC"; }
    uint32_t getVersion() const override { return d_version(1, 0, 0); }
    int64_t getUniqueId() const override { return d_cconst('T', 's', 'y', 'n'); }

    void initParameter(uint32_t index, Parameter& p) override {
        p.hints = kParameterIsAutomatable;
        switch (index) {
        case kBrightness:
            p.name = "Brightness"; p.symbol = "brightness"; p.unit = "";
            p.ranges = ParameterRanges(0.0f, 0.0f, 1.0f);
            break;
        case kVolume:
            // -36..0 dB: the default -6 dB is exactly 5/6 normalised
            p.name = "Volume"; p.symbol = "volume"; p.unit = "dB";
            p.ranges = ParameterRanges(-6.0f, -36.0f, 0.0f);
            break;
        }
    }

    float getParameterValue(uint32_t index) const override {
        switch (index) {
        case kBrightness: return fBrightness;
        case kVolume:     return fVolumeDb;
        }
        return 0.0f;
    }

    void setParameterValue(uint32_t index, float v) override {
        switch (index) {
        case kBrightness: fBrightness = v; break;
        case kVolume:     fVolumeDb = v;   break;
        }
    }

    void activate() override { allVoicesOff(); }
    void deactivate() override { allVoicesOff(); }

    void run(const float**, float** out, uint32_t frames,
             const MidiEvent* ev, uint32_t evCount) override {
        const double sr   = getSampleRate() > 0.0 ? getSampleRate() : 44100.0;
        const double aInc = 1.0 / (kAttackSec * sr);
        const double rDec = 1.0 / (kReleaseSec * sr);
        const double b    = fBrightness;
        const double h2 = 0.5 * b, h3 = 0.25 * b, norm = 1.0 / (1.0 + h2 + h3);
        const double gain = std::pow(10.0, fVolumeDb / 20.0);

        uint32_t pos = 0, e = 0;
        while (pos < frames) {
            // apply all events due at (or, defensively, before) this frame
            while (e < evCount && ev[e].frame <= pos) handleMidi(ev[e++]);
            uint32_t end = frames;
            if (e < evCount && ev[e].frame < end) end = ev[e].frame;

            for (uint32_t i = pos; i < end; ++i) {
                double acc = 0.0;
                for (int v = 0; v < kNumVoices; ++v) {
                    Voice& vc = fVoices[v];
                    if (vc.state == Voice::kOff) continue;
                    if (vc.state == Voice::kAttack) {
                        vc.env += aInc;
                        if (vc.env >= 1.0) { vc.env = 1.0; vc.state = Voice::kSustain; }
                    } else if (vc.state == Voice::kRelease) {
                        vc.env -= rDec;
                        if (vc.env <= 0.0) { vc.env = 0.0; vc.state = Voice::kOff; continue; }
                    }
                    const double x = kTwoPi * vc.phase;
                    double s = std::sin(x);
                    if (b > 0.0) s = (s + h2 * std::sin(2.0 * x) + h3 * std::sin(3.0 * x)) * norm;
                    acc += vc.amp * vc.env * s;
                    vc.phase += vc.inc;
                    if (vc.phase >= 1.0) vc.phase -= 1.0;
                }
                const float y = static_cast<float>(acc * gain);
                for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c) out[c][i] = y;
            }
            pos = end;
        }
        while (e < evCount) handleMidi(ev[e++]);   // events at/after the last frame
    }

private:
    void allVoicesOff() {
        for (int v = 0; v < kNumVoices; ++v) {
            fVoices[v].state = Voice::kOff; fVoices[v].note = -1; fVoices[v].age = 0;
            fVoices[v].phase = fVoices[v].inc = fVoices[v].amp = fVoices[v].env = 0.0;
        }
    }

    void noteOn(int note, int vel) {
        const double sr = getSampleRate() > 0.0 ? getSampleRate() : 44100.0;
        int slot = -1;
        for (int v = 0; v < kNumVoices && slot < 0; ++v)       // retrigger same note
            if (fVoices[v].state != Voice::kOff && fVoices[v].note == note) slot = v;
        for (int v = 0; v < kNumVoices && slot < 0; ++v)       // free voice
            if (fVoices[v].state == Voice::kOff) slot = v;
        if (slot < 0) {                                        // steal the oldest
            slot = 0;
            for (int v = 1; v < kNumVoices; ++v)
                if (fVoices[v].age < fVoices[slot].age) slot = v;
        }
        Voice& vc = fVoices[slot];
        if (vc.state == Voice::kOff || vc.note != note) { vc.phase = 0.0; vc.env = 0.0; }
        vc.state = Voice::kAttack;
        vc.note  = note;
        vc.age   = ++fCounter;
        vc.inc   = 440.0 * std::pow(2.0, (note - 69) / 12.0) / sr;
        vc.amp   = vel / 127.0;
    }

    void noteOff(int note) {
        for (int v = 0; v < kNumVoices; ++v)
            if (fVoices[v].note == note &&
                (fVoices[v].state == Voice::kAttack || fVoices[v].state == Voice::kSustain))
                fVoices[v].state = Voice::kRelease;
    }

    void handleMidi(const MidiEvent& ev) {
        if (ev.size < 2 || ev.size > MidiEvent::kDataSize) return;
        const uint8_t st = ev.data[0] & 0xF0;
        const int d1 = ev.data[1] & 0x7F, d2 = ev.size > 2 ? (ev.data[2] & 0x7F) : 0;
        if (st == 0x90 && d2 > 0) noteOn(d1, d2);
        else if (st == 0x80 || st == 0x90) noteOff(d1);
        else if (st == 0xB0 && d1 == 120) allVoicesOff();                 // all sound off
        else if (st == 0xB0 && d1 == 123) {                               // all notes off
            for (int v = 0; v < kNumVoices; ++v)
                if (fVoices[v].state == Voice::kAttack || fVoices[v].state == Voice::kSustain)
                    fVoices[v].state = Voice::kRelease;
        }
    }

    float    fBrightness, fVolumeDb;
    uint64_t fCounter;
    Voice    fVoices[kNumVoices];
    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(TestSynth)
};

Plugin* createPlugin() { return new TestSynth(); }

END_NAMESPACE_DISTRHO
EOF

# --- DPF copy with pedalboard-friendly patches (see header) -----------------------
DPF_SRC="$DPF_PATH/distrho"
if [ "$DPF_PATCH" != 0 ]; then
  cp -R "$DPF_PATH/distrho" "$WORK/distrho" || die "cannot copy $DPF_PATH/distrho to $WORK"
  DPF_SRC="$WORK/distrho"
  VST3_CPP="$DPF_SRC/src/DistrhoPluginVST3.cpp"
  warn_patch() { echo "build_test_synth.sh: WARNING: DPF patch '$1' not applied (text not found in" \
                      "this DPF version); $2" >&2; }
  if grep -q '"MIDI Ch\. %d CC %d"' "$VST3_CPP"; then
    sed -i 's|"MIDI Ch\. %d CC %d"|"MIDI CC %d/%d"|' "$VST3_CPP"
  else
    warn_patch "rename MIDI CC parameters" "pedalboard will list ~2080 extra parameters and load slowly"
  fi
  if grep -q 'rindex <= kVst3InternalParameterMidiCC_end' "$VST3_CPP"; then
    sed -i 's/rindex <= kVst3InternalParameterMidiCC_end/rindex < kVst3InternalParameterMidiCC_end/g' "$VST3_CPP"
  else
    warn_patch "MIDI CC range off-by-one" "probably already fixed upstream"
  fi
  if sed -n '/v3_result setActive(const bool active)/,/return V3_OK;/p' "$VST3_CPP" \
       | grep -q '^ *fPlugin\.activate();'; then
    sed -i '/v3_result setActive(const bool active)/,/return V3_OK;/ s/^\( *\)fPlugin\.activate();/\1{ if (! fPlugin.isActive()) fPlugin.activate(); }/' "$VST3_CPP"
  else
    warn_patch "idempotent setActive" "harmless '! fIsActive' assertion messages may be printed"
  fi
fi

# --- build ------------------------------------------------------------------------
build_vst3_bundle "$DPF_SRC"
