"""Audio to values: the spectrogram front end, the ONNX model, the streaming tracker, reports and plots."""
