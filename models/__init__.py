"""The shipped ONNX model and its model card (installed as the ``dawemo.models`` package)."""
