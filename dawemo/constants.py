"""Names, scales and default parameters shared by training, analysis and the live path."""

MIDLEVEL_NAMES = (
    "melodiousness",
    "articulation",
    "rhythm_stability",
    "rhythm_complexity",
    "dissonance",
    "tonal_stability",
    "minorness",
)

EMOTION_NAMES = ("valence", "energy", "tension", "anger", "fear", "happy", "sad", "tender")

# The five discrete emotions used for "dominant emotion" agreement.
DISCRETE_EMOTION_NAMES = ("anger", "fear", "happy", "sad", "tender")

EMOTION_SCALE = (1.0, 9.0)  # rating scale of the Soundtracks listeners
MIDLEVEL_SCALE = (0.0, 1.0)

# Rater questions that define each mid-level quality (Aljanaki & Soleymani 2018).
MIDLEVEL_QUESTIONS = {
    "melodiousness": "To which excerpt do you feel like singing along?",
    "articulation": "Which has more sounds with staccato articulation?",
    "rhythm_stability": "Imagine marching along with the music. Which is easier to march along with?",
    "rhythm_complexity": "Is it difficult to repeat by tapping? Is it difficult to find the meter? "
    "Does the rhythm have many layers?",
    "dissonance": "Which excerpt has noisier timbre? Has more dissonant intervals (tritones, seconds, etc.)?",
    "tonal_stability": "Where is it easier to determine the tonic and key? In which excerpt are there "
    "more modulations?",
    "minorness": "Imagine accompanying this song with chords. Which song would have more minor chords?",
}

# Spectrogram front-end (after Chowdhury et al. 2019: 22.05 kHz mono, 2048-sample frames,
# ~31.25 frames/s, 24 bands per octave between 20 Hz and 16 kHz -> 149 bands; centres above
# Nyquist, 11.025 kHz, fall on the last FFT bins and are merged, as in the paper's madmom setup).
SAMPLE_RATE = 22050
FRAME_SIZE = 2048
HOP_SIZE = 705  # samples; 31.28 frames/s
FMIN_HZ = 20.0
FMAX_HZ = 16000.0
BANDS_PER_OCTAVE = 24
N_BANDS = 149

# The network reads fixed segments of the spectrogram; a window's prediction averages the
# segments inside it, so overlapping windows share their segments (computed once).
SEGMENT_FRAMES = 64  # 2.04 s (3.07 s segments were both slower to respond and less accurate in CV)
SEGMENT_STRIDE_FRAMES = 15  # 0.48 s between segment starts: one new segment per default hop

# Each segment's level reference: the frames ending with it (segment-only when equal to SEGMENT_FRAMES).
CONTEXT_FRAMES = 313

# Default analysis window: one segment, the most responsive the network allows. Clip summaries
# always use every segment of the file.
DEFAULT_WINDOW_S = 2.1
DEFAULT_HOP_S = 0.5
# Change-aware averaging of the window's logits (dawemo.emotion.averaging): the time constant while
# the music stays the same. A change of music still reaches half-way in about the raw model's time;
# bench/steadiness.py chose it (0 turns it off: each update is its window's mean alone).
DEFAULT_STEADY_S = 15.0

MODEL_FILENAME = "dawemo-midlevel-emotion.onnx"
