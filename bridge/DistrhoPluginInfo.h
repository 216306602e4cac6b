// dawemo Bridge: what DPF needs to know about the plugin (one source for VST3, CLAP and LV2).
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_BRAND   "dawemo"
#define DISTRHO_PLUGIN_NAME    "dawemo Bridge"
#define DISTRHO_PLUGIN_URI     "urn:dawemo:bridge"
#define DISTRHO_PLUGIN_CLAP_ID "org.dawemo.bridge"

#define DISTRHO_PLUGIN_HAS_UI           0
#define DISTRHO_PLUGIN_IS_RT_SAFE       1
#define DISTRHO_PLUGIN_NUM_INPUTS       2
#define DISTRHO_PLUGIN_NUM_OUTPUTS      2
#define DISTRHO_PLUGIN_WANT_MIDI_OUTPUT 1
#define DISTRHO_PLUGIN_WANT_TIMEPOS     1
#define DISTRHO_PLUGIN_WANT_STATE       1
#define DISTRHO_PLUGIN_WANT_FULL_STATE  1

#define DISTRHO_PLUGIN_LV2_CATEGORY     "lv2:AnalyserPlugin"
#define DISTRHO_PLUGIN_VST3_CATEGORIES  "Fx|Analyzer"
#define DISTRHO_PLUGIN_CLAP_FEATURES    "audio-effect", "analyzer", "stereo"

#endif
