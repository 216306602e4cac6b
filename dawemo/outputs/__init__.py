"""Values out: the CC mapping (presets, lanes), MIDI ports, and the automation recorder."""
