"""Export one finetuned task to an artifact directory (docs/contracts.md section 3).

fp32 ONNX via the TorchScript exporter (dynamic batch and sequence axes), validated against
PyTorch on real inputs of several lengths and batch sizes: names, then shapes (a mismatch fails
the build), then values (max |difference| within the tolerance). Then dynamic int8 quantization,
re-scored on the dev file; when int8 loses more than the allowed F1, the manifest serves fp32 and
says why. Everything is written into a temporary directory, `manifest.json` last, and the
directory is renamed into place: a version directory either is complete or does not exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer

from model_build.atomic import write_text_atomically
from model_build.config import REPO_ROOT, ExportConfig
from model_build.evaluate import LogitsFn, headline, predict_spans, score, torch_logits_fn
from model_build.model import TASK_LABELS, Encoder, Tagger
from textfeatures.features import FEATURE_NAMES, FEATURE_VERSION, encode_texts, pad_batch, window
from textfeatures.words import word_splitter

SCHEMA_VERSION = 3
OUTPUT_NAMES = ["logits"]


def input_names(encoder: Encoder) -> list[str]:
    """The graph's inputs: ids and mask, and the token features when the encoder reads them."""
    return ["input_ids", "attention_mask"] + (["features"] if encoder.cfg.features else [])


def features_manifest(encoder: Encoder) -> dict | None:
    """What the service must compute for the `features` input (docs/contracts.md §3)."""
    if not encoder.cfg.features:
        return None
    return {"version": FEATURE_VERSION, "names": list(FEATURE_NAMES)}


class ExportError(RuntimeError):
    """The exported graph does not match PyTorch: the build stops, nothing is published."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str:
    """The build's commit; ALIGNTAG_BUILD_COMMIT wins (a Docker build context has no .git)."""
    if os.environ.get("ALIGNTAG_BUILD_COMMIT"):
        return os.environ["ALIGNTAG_BUILD_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def export_onnx(tagger: Tagger, path: Path, opset: int) -> None:
    tagger.eval()
    names = input_names(tagger.encoder)
    ids = torch.full((2, 8), 3, dtype=torch.long)
    mask = torch.ones_like(ids)
    features = torch.ones((2, 8, len(FEATURE_NAMES)), dtype=torch.long)
    args = (ids, mask, features) if "features" in names else (ids, mask)
    axes = {"batch": 0, "sequence": 1}
    dynamic_axes = {name: {i: n for n, i in axes.items()} for name in names + OUTPUT_NAMES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not our problem
        torch.onnx.export(
            tagger,
            args,
            str(path),
            input_names=names,
            output_names=OUTPUT_NAMES,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    tagger.eval()  # the exporter restores the module's previous mode; make it eval again


def ort_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_logits_fn(session: ort.InferenceSession) -> LogitsFn:
    reads_features = "features" in [i.name for i in session.get_inputs()]

    def run(ids: np.ndarray, mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if reads_features:
            feeds["features"] = features
        return session.run(OUTPUT_NAMES, feeds)[0]

    return run


def validate_onnx(
    path: Path, tagger: Tagger, tokenizer: Tokenizer, texts: list[str], tolerance: float, max_len: int
) -> dict:
    """Names, then shapes, then values of the ONNX graph against PyTorch; raises ExportError."""
    try:
        onnx.checker.check_model(str(path))
        session = ort_session(path)
    except Exception as e:  # noqa: BLE001 - any load failure is a broken export
        raise ExportError(f"{path.name}: not a loadable ONNX model: {e}") from e
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    expected_inputs = input_names(tagger.encoder)
    if inputs != expected_inputs or outputs != OUTPUT_NAMES:
        raise ExportError(
            f"{path.name}: inputs {inputs} / outputs {outputs}, expected {expected_inputs} / {OUTPUT_NAMES}"
        )
    torch_fn, onnx_fn = torch_logits_fn(tagger), ort_logits_fn(session)
    max_diff, checked = 0.0, []
    # Texts of different lengths, so that every batch but the first pads (the mask matters).
    encoded = [window(e, 0, max_len) for e in encode_texts(tokenizer, texts) if e.ids]
    for batch_size in (1, 3, 8):
        batch = encoded[:batch_size]
        ids, mask, features = pad_batch(batch)
        expected, got = torch_fn(ids, mask, features), onnx_fn(ids, mask, features)
        if expected.shape != got.shape:
            raise ExportError(f"{path.name}: logits shape {got.shape}, PyTorch gives {expected.shape}")
        valid = mask.astype(bool)
        diff = float(np.abs(expected[valid] - got[valid]).max())
        max_diff = max(max_diff, diff)
        checked.append([int(len(batch)), int(ids.shape[1])])
    if max_diff > tolerance:
        raise ExportError(f"{path.name}: max |logit difference| vs PyTorch {max_diff:.2e} > {tolerance:.0e}")
    return {"max_abs_diff_vs_torch": max_diff, "checked_batch_x_seq": checked}


def export_artifact(
    encoder: Encoder,
    task: str,
    tokenizer_path: Path,
    dev_records: list[dict],
    cfg: ExportConfig,
    artifacts_dir: Path,
    version: str,
    manifest_extra: dict,
    label_names: Sequence[str] | None = None,
    noun_final: bool = False,
) -> Path:
    """Write `artifacts_dir/<task>/<version>/` completely, or not at all. `label_names`: a user
    task's head order (a built-in task's by default). `noun_final`: the task's spans end on a noun
    (`textfeatures.decode`): dev is scored so, and the manifest's `decoding` tells the service."""
    label_names = list(label_names or TASK_LABELS[task])
    final_dir = artifacts_dir / task / version
    tmp_dir = artifacts_dir / task / f".tmp-{version}"
    for stale in (artifacts_dir / task).glob(".tmp-*"):  # left by an export that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        tagger = Tagger(encoder, task).eval()
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        shutil.copyfile(tokenizer_path, tmp_dir / "tokenizer.json")
        (tmp_dir / "labels.json").write_text(json.dumps(label_names))
        fp32, int8 = tmp_dir / "model.onnx", tmp_dir / "model.int8.onnx"
        t0 = time.perf_counter()
        export_onnx(tagger, fp32, cfg.opset)
        texts = [r["text"] for r in dev_records[:8]] or ["A sample text about abstract syntax trees (ASTs)."]
        while len(texts) < 8:
            texts = texts + texts
        parity = validate_onnx(
            fp32, tagger, tokenizer, texts, cfg.parity_tolerance, encoder.cfg.max_positions
        )
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=False)
        quantization = {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "QInt8",
            "per_channel": False,
            "activations": "dynamic uint8",
        }
        evaluation = evaluate_onnx_pair(
            fp32, int8, tokenizer, dev_records, task, label_names, encoder.cfg.max_positions, noun_final
        )
        drop = evaluation.get("int8", {}).get("f1_drop")
        if drop is not None and drop > cfg.max_int8_f1_drop:
            serve = {
                "onnx_file": "model.onnx",
                "reason": f"int8 F1 drop {drop:.2f} > {cfg.max_int8_f1_drop} points",
            }
        else:
            reason = (
                "no dev data to re-score int8"
                if drop is None
                else f"int8 F1 drop {drop:.2f} <= {cfg.max_int8_f1_drop}"
            )
            serve = {"onnx_file": "model.int8.onnx", "reason": reason}
        files = {p.name: sha256_file(p) for p in sorted(tmp_dir.iterdir())}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "task": task,
            "version": version,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model": {**manifest_extra.pop("model"), "pad_token_id": 0, "num_labels": len(label_names)},
            "features": features_manifest(encoder),
            "decoding": {"noun_final": noun_final, "words": word_splitter()},
            **manifest_extra,
            "evaluation": evaluation,
            "export": {
                "opset": cfg.opset,
                **parity,
                "quantization": quantization,
                "seconds": round(time.perf_counter() - t0, 1),
                "bytes": {"model.onnx": fp32.stat().st_size, "model.int8.onnx": int8.stat().st_size},
            },
            "serve": serve,
            "files": files,
        }
        manifest["build"] = {"commit": git_commit(), **manifest.get("build", {})}
        write_text_atomically(tmp_dir / "manifest.json", json.dumps(manifest, indent=2))
        if final_dir.exists():
            shutil.rmtree(final_dir)
        tmp_dir.rename(final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return final_dir


def evaluate_onnx_pair(
    fp32: Path,
    int8: Path,
    tokenizer: Tokenizer,
    records: list[dict],
    task: str,
    label_names: Sequence[str],
    max_len: int,
    noun_final: bool = False,
) -> dict:
    """Dev scores of both graphs, the int8 F1 drop and the token-level argmax agreement."""
    if not records:
        return {"dataset": None}
    texts = [r["text"] for r in records]
    out: dict = {}
    argmax: dict[str, list[np.ndarray]] = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        preds, argmax[name] = predict_spans(
            texts, tokenizer, ort_logits_fn(ort_session(path)), label_names, max_len, noun_final=noun_final
        )
        metrics = score(records, preds, label_names)
        out[name] = {"f1": round(headline(task, metrics), 2), "metrics": metrics}
    agree = np.concatenate([a == b for a, b in zip(argmax["fp32"], argmax["int8"], strict=True)])
    out["int8"]["f1_drop"] = round(out["fp32"]["f1"] - out["int8"]["f1"], 2)
    out["int8"]["argmax_agreement"] = round(float(agree.mean()) if len(agree) else 1.0, 4)
    out["examples"] = len(records)
    out["metric"] = "SDU macro F1 (exact spans)" if task == "acronyms" else "exact-span micro F1"
    return out


def verify_artifact(version_dir: Path) -> dict:
    """Re-read an artifact as the service will: manifest present, schema known, checksums match."""
    manifest_path = version_dir / "manifest.json"
    if not manifest_path.exists():
        raise ExportError(f"{version_dir}: no manifest.json (incomplete build)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{manifest_path}: unknown schema_version {manifest.get('schema_version')!r}")
    for name, digest in manifest["files"].items():
        if sha256_file(version_dir / name) != digest:
            raise ExportError(f"{version_dir / name}: sha256 does not match the manifest")
    return manifest
