"""aligntag REST service: concept tagging and acronym detection on ONNX Runtime (no torch)."""

__version__ = "0.1.0"
