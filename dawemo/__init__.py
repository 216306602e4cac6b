"""dawemo: explainable music emotion recognition that drives MIDI CC and plugin parameters live."""

__version__ = "0.1.0"
