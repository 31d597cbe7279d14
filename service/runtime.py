"""ONNX Runtime session for one model. Only the batcher calls it (one batch at a time per model)."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from service.artifacts import ArtifactError
from service.settings import Settings
from textfeatures.features import FEATURE_NAMES

INPUT_NAMES = ["input_ids", "attention_mask"]
FEATURES_INPUT = "features"  # present when the manifest names features (docs/contracts.md §3)
OUTPUT_NAME = "logits"

# A batch this large (padded tokens, summed over its length groups) leaves hundreds of MB of freed
# buffers in glibc's heap, which it keeps: RSS after a 5k-word document went from 193 to 480 MB.
# malloc_trim hands them back (425 -> 95 MB measured after a 32 x 256 batch on both models); it
# costs well under a millisecond, so paying it only after large batches (the batcher calls it)
# keeps small requests untouched.
TRIM_AFTER_TOKENS = 4096
_LIBC_PATH = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_PATH) if _LIBC_PATH else None


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc only; a no-op elsewhere)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class Runtime(Protocol):
    """What the batcher needs: padded (ids, mask, features) int64 arrays -> logits
    (batch x seq x labels)."""

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray
    ) -> np.ndarray: ...


class OnnxRuntime:
    def __init__(self, onnx_path: Path, num_labels: int, settings: Settings, reads_features: bool) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if settings.intra_op_spinning else "0"
        )
        options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization_level]
        options.enable_cpu_mem_arena = settings.cpu_memory_arena
        options.log_severity_level = 3  # ORT's own warnings are noise in our JSON logs
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for a bad graph
            raise ArtifactError(f"{onnx_path}: not a loadable ONNX model ({e})") from e
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        expected = INPUT_NAMES + ([FEATURES_INPUT] if reads_features else [])
        if inputs != expected or outputs != [OUTPUT_NAME]:
            raise ArtifactError(
                f"{onnx_path}: inputs {inputs} / outputs {outputs}, expected {expected} / {[OUTPUT_NAME]} "
                "(from the manifest's features)"
            )
        self.num_labels = num_labels
        self.path = onnx_path
        self.reads_features = reads_features

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.reads_features:
            feeds[FEATURES_INPUT] = features
        (logits,) = self.session.run([OUTPUT_NAME], feeds)
        return np.asarray(logits)


def warm_up(runtime: Runtime, max_positions: int, num_labels: int, pad_id: int = 0) -> None:
    """Run a short and a full-window batch so the first client does not pay for lazy initialisation,
    and check the output shape against the label list while at it."""
    for batch, length in ((1, min(8, max_positions)), (2, max_positions)):
        ids = np.full((batch, length), 3, dtype=np.int64)
        ids[-1, length // 2 :] = pad_id
        mask = (ids != pad_id).astype(np.int64)
        features = mask[..., None] * np.ones(len(FEATURE_NAMES), dtype=np.int64)
        logits = runtime(ids, mask, features)
        if logits.shape != (batch, length, num_labels):
            raise ArtifactError(
                f"logits shape {logits.shape}, expected {(batch, length, num_labels)} "
                "(does labels.json match the model?)"
            )
        if not np.isfinite(logits).all():
            raise ArtifactError("the model returned non-finite logits")
