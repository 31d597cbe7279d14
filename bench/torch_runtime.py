"""The PyTorch-eager runtime: the build stage's checkpoint behind the service's `Runtime` interface.

`create_app(settings, runtime_factory)` takes a factory `(Artifact, Settings) -> Runtime`; a
`Runtime` maps padded `(input_ids, attention_mask)` int64 arrays to float32 logits. This one loads
`<build dir>/finetune-<task>-aligned/model.pt` with `model_build.model.load_encoder` and runs the
task's `Tagger` under `torch.inference_mode()`, so variant (c) of the benchmark is the same HTTP
layer, tokenizer, windowing, batcher and decoding as the service, only the forward pass differs.

Same weights, checked: at load time the checkpoint's logits are compared with the artifact's fp32
ONNX graph on a fixed input; a checkpoint from another build is refused (`ArtifactError`), so the
benchmark can never compare two different models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model_build.checkpoint import load_encoder
from model_build.model import Tagger
from service.artifacts import Artifact, ArtifactError
from service.runtime import Runtime
from service.settings import Settings
from textfeatures.features import FEATURE_SIZES

PARITY_TOLERANCE = 1e-3  # max |logit difference| vs the fp32 ONNX export (the build checks 1e-4-ish)


def checkpoint_path(build_dir: Path, task: str, recipe: str = "aligned") -> Path:
    return build_dir / f"finetune-{task}-{recipe}" / "model.pt"


class TorchRuntime:
    def __init__(self, checkpoint: Path, task: str, threads: int = 0) -> None:
        if not checkpoint.is_file():
            raise ArtifactError(f"{checkpoint}: no PyTorch checkpoint (run the build with this --build-dir)")
        if threads > 0:
            torch.set_num_threads(threads)
        encoder, _ = load_encoder(checkpoint)
        self.tagger = Tagger(encoder, task).eval()
        self.path = checkpoint

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.tagger(
                torch.from_numpy(input_ids), torch.from_numpy(attention_mask), torch.from_numpy(features)
            )
        return logits.numpy()


def check_same_weights(runtime: Runtime, artifact: Artifact) -> float:
    """Max |logit difference| between `runtime` and the artifact's fp32 ONNX graph on a fixed batch."""
    onnx_path = artifact.directory / "model.onnx"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    length = min(32, artifact.max_positions)
    ids = rng.integers(3, 200, size=(2, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, length // 2 :] = 0
    ids[1, length // 2 :] = artifact.pad_token_id
    features = (
        np.stack([rng.integers(1, size, size=ids.shape) for size in FEATURE_SIZES], -1) * mask[..., None]
    )
    feeds = {"input_ids": ids, "attention_mask": mask}
    if artifact.reads_features:
        feeds["features"] = features
    expected = session.run(["logits"], feeds)[0]
    got = runtime(ids, mask, features)
    valid = mask.astype(bool)
    diff = float(np.abs(expected[valid] - got[valid]).max())
    if diff > PARITY_TOLERANCE:
        raise ArtifactError(
            f"{getattr(runtime, 'path', runtime)}: logits differ from {onnx_path} by {diff:.2e} "
            f"(> {PARITY_TOLERANCE:.0e}): the checkpoint is not the model of this artifact"
        )
    return diff


def torch_runtime_factory(build_dir: Path) -> Callable[[Artifact, Settings], Runtime]:
    """A `RuntimeFactory` for `service.app.create_app` serving the checkpoints under `build_dir`."""

    def factory(artifact: Artifact, settings: Settings) -> Runtime:
        runtime = TorchRuntime(
            checkpoint_path(build_dir, artifact.task), artifact.task, settings.intra_op_threads
        )
        check_same_weights(runtime, artifact)
        return runtime

    return factory
