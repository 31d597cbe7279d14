"""Helpers shared by the service tests (imported as `svc_helpers`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.artifacts import Artifact, sha256_file
from service.models import onnx_runtime_factory
from service.runtime import Runtime
from service.settings import Settings
from textfeatures.words import split_words

MakeClient = Callable[..., TestClient]  # the make_client fixture (tests/service/conftest.py)


class ControlledRuntime:
    """Wraps the real ONNX runtime; a test can make it block (gate) or fail, after warm-up."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False
        self.calls: list[np.ndarray] = []

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        self.calls.append(input_ids.copy())
        self.entered.set()
        assert self.gate.wait(20), "test left the gate closed"
        if self.fail:
            raise RuntimeError("injected failure")
        return self.inner(input_ids, attention_mask, features)


class ControlledRuntimes(dict[str, ControlledRuntime]):
    """A runtime factory that remembers the runtime it made for each task."""

    def __call__(self, artifact: Artifact, settings: Settings) -> Runtime:
        runtime = ControlledRuntime(onnx_runtime_factory(artifact, settings))
        self[artifact.task] = runtime
        return runtime


def version_dir(artifacts_dir: Path, task: str) -> Path:
    (directory,) = [d for d in (artifacts_dir / task).iterdir() if (d / "manifest.json").exists()]
    return directory


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


class TokenwiseRuntime:
    """Fake model whose logits for a token depend on its id alone: windowing cannot change any
    prediction, so windowed and unwindowed spans must be identical."""

    def __init__(self, num_labels: int) -> None:
        self.table = np.random.default_rng(0).normal(0.0, 3.0, size=(97, num_labels)).astype(np.float32)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self.table[input_ids % len(self.table)]


class OneSpanRuntime:
    """Fake model: the first token of a sequence is B, every other token I (label ids 1 and 2), so a
    short text is one span from its first to its last token."""

    def __init__(self, num_labels: int) -> None:
        self.num_labels = num_labels

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        logits = np.zeros((*input_ids.shape, self.num_labels), dtype=np.float32)
        logits[:, 0, 1] = 20.0
        logits[:, 1:, 2] = 20.0
        return logits


def tokenwise_factory(artifact: Artifact, settings: Settings) -> Runtime:
    return TokenwiseRuntime(len(artifact.labels))


def one_span_factory(artifact: Artifact, settings: Settings) -> Runtime:
    return OneSpanRuntime(len(artifact.labels))


def check_spans(text: str, spans: list[dict]) -> None:
    """The offset contract: exact text, sorted, non-overlapping, no duplicates, scores in [0, 1],
    and every span starts and ends on a word edge as users write words (an offset off by one
    inside a span lands inside a word)."""
    words = split_words(text)
    starts, ends = {s for s, _ in words}, {e for _, e in words}
    previous_end = 0
    for span in spans:
        assert text[span["start"] : span["end"]] == span["text"], span
        assert 0 <= previous_end <= span["start"] < span["end"] <= len(text), span
        assert span["start"] in starts and span["end"] in ends, ("not on word edges", span)
        assert 0.0 <= span["score"] <= 1.0
        previous_end = span["end"]


def copy_as_user_task(
    artifacts_dir: Path, source_task: str, task: str, labels: list[str] | None = None,
    version: str | None = None, created: str | None = None,
) -> Path:  # fmt: skip
    """A user task made from a built-in task's version directory, as `model_build finetune` would
    lay it out: copied to `<artifacts_dir>/<task>/<version>/` with the manifest's `task` set to the
    directory's name. With `labels`, labels.json is rewritten and its sha256 in the manifest's
    `files` updated (the manifest itself is not checksummed), so that only the label check can
    refuse it; `version` and `created` name a new version. The copy is staged under a hidden name and renamed into place, complete at once."""
    source = version_dir(artifacts_dir, source_task)
    target = artifacts_dir / task / (version or source.name)
    staging = artifacts_dir / f".staging-{task}-{target.name}"
    shutil.copytree(source, staging)
    manifest_path = staging / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["task"] = task
    if version is not None:
        manifest["version"] = version
    if created is not None:
        manifest["created"] = created
    if labels is not None:
        (staging / "labels.json").write_text(json.dumps(labels))
        manifest["files"]["labels.json"] = sha256_file(staging / "labels.json")
    manifest_path.write_text(json.dumps(manifest, indent=2))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)
    return target


class OrphanContinuationRuntime:
    """Fake model: the first token leans O (O 0.6, B 0.3, I 0.1), every other token is I. The most
    probable well-formed sequence is B I I ..., one span over the whole text; per-word argmax
    says O I I ..., a span from the second word on."""

    def __init__(self, num_labels: int) -> None:
        self.num_labels = num_labels

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        logits = np.zeros((*input_ids.shape, self.num_labels), dtype=np.float32)
        logits[:, 0, :3] = np.log([0.6, 0.3, 0.1])
        logits[:, 1:, 2] = 20.0
        return logits


def orphan_continuation_factory(artifact: Artifact, settings: Settings) -> Runtime:
    return OrphanContinuationRuntime(len(artifact.labels))
