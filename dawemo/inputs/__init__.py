"""Audio in: files, audio devices and JACK ports, delivered as mono blocks at the model's rate."""
