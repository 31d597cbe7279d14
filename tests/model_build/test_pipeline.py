"""The tiny build end to end: corpus -> tokenizer -> pretrain -> finetune -> evaluate -> export,
with resume, DDP and export validation (the experiment: test_experiment.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from model_build.checkpoint import load_encoder
from model_build.config import get_config
from model_build.export import ExportError, validate_onnx, verify_artifact
from model_build.model import ACRONYM_LABELS, CONCEPT_LABELS, Encoder, Tagger
from model_build.pretrain import pretrain
from model_build.tokenizer import load_tokenizer
from textfeatures.features import FEATURE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = {"concepts": list(CONCEPT_LABELS), "acronyms": list(ACRONYM_LABELS)}


def version_dir(artifacts: Path, task: str) -> Path:
    (only,) = [p for p in (artifacts / task).iterdir() if (p / "manifest.json").exists()]
    return only


@pytest.mark.parametrize("task", ["concepts", "acronyms"])
def test_tiny_build_publishes_a_complete_artifact(tiny_artifacts_dir: Path, task: str) -> None:
    vdir = version_dir(tiny_artifacts_dir, task)
    manifest = verify_artifact(vdir)  # schema and every checksum
    assert manifest["task"] == task
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json"}
    assert json.loads((vdir / "labels.json").read_text()) == LABELS[task]
    assert manifest["model"]["config_name"] == "tiny"
    assert manifest["model"]["hidden"] == 64 and manifest["model"]["layers"] == 2
    assert manifest["model"]["num_labels"] == len(LABELS[task])
    assert manifest["pretraining"]["recipe"] == "aligned"
    assert manifest["pretraining"]["objectives"] == ["mlm", "concepts", "acronyms"]
    assert manifest["finetuning"]["zero_shot"] is False
    assert manifest["finetuning"]["examples"] == 400
    assert manifest["export"]["max_abs_diff_vs_torch"] <= 1e-3
    assert manifest["serve"]["onnx_file"] in ("model.onnx", "model.int8.onnx")
    # The tiny test model tags: its acronym head reads the rules' features (a real F1, not 0).
    minimum = 50.0 if task == "acronyms" else 15.0
    for precision in ("fp32", "int8"):
        assert minimum <= manifest["evaluation"][precision]["f1"] <= 100.0
    assert 0.0 <= manifest["evaluation"]["int8"]["argmax_agreement"] <= 1.0
    assert manifest["evaluation"]["examples"] == 40
    assert len(manifest["build"]["commit"]) in (40, 7) or manifest["build"]["commit"] == "unknown"
    assert not list((tiny_artifacts_dir / task).glob(".tmp-*")), "temporary build directory left behind"


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx"])
def test_onnx_graph_has_contract_io(tiny_artifacts_dir: Path, name: str) -> None:
    session = ort.InferenceSession(str(version_dir(tiny_artifacts_dir, "acronyms") / name))
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {
        "input_ids": ("tensor(int64)", ["batch", "sequence"]),
        "attention_mask": ("tensor(int64)", ["batch", "sequence"]),
        "features": ("tensor(int64)", ["batch", "sequence", len(FEATURE_NAMES)]),
    }
    (out,) = session.get_outputs()
    assert (out.name, out.type, out.shape[:2]) == ("logits", "tensor(float)", ["batch", "sequence"])
    ids = np.array([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.int64)
    features = np.ones((2, 5, len(FEATURE_NAMES)), dtype=np.int64) * mask[..., None]
    (logits,) = session.run(None, {"input_ids": ids, "attention_mask": mask, "features": features})
    assert logits.shape == (2, 5, len(ACRONYM_LABELS)) and logits.dtype == np.float32
    # The mask hides padding: the padded row's real tokens get the logits of the same three
    # tokens run alone, and not those of the five-token row they were batched with.
    (alone,) = session.run(None, {"input_ids": ids[1:, :3], "attention_mask": mask[1:, :3],
                                  "features": features[1:, :3]})  # fmt: skip
    np.testing.assert_allclose(
        logits[1, :3], alone[0], atol=1e-4 if "int8" not in name else 0.25
    )  # int8: per-batch scales
    assert np.abs(logits[0, :3] - alone[0]).max() > 1e-3


def _tagger_and_tokenizer(tiny_build_dir: Path, task: str):  # type: ignore[no-untyped-def]
    work = tiny_build_dir / "work"
    model, _ = load_encoder(work / f"finetune-{task}-aligned" / "model.pt")
    return Tagger(model, task).eval(), load_tokenizer(work / "tokenizer" / "tokenizer.json")


def test_truncated_onnx_file_is_refused(
    tiny_build_dir: Path, tiny_artifacts_dir: Path, tmp_path: Path
) -> None:
    tagger, tok = _tagger_and_tokenizer(tiny_build_dir, "concepts")
    broken = tmp_path / "model.onnx"
    data = (version_dir(tiny_artifacts_dir, "concepts") / "model.onnx").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=r"^model\.onnx: not a loadable ONNX model"):
        validate_onnx(broken, tagger, tok, ["some text"] * 8, 1e-3, 64)


def test_wrong_output_name_is_refused(tiny_build_dir: Path, tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    tagger, tok = _tagger_and_tokenizer(tiny_build_dir, "concepts")
    model = onnx.load(str(version_dir(tiny_artifacts_dir, "concepts") / "model.onnx"))
    old = model.graph.output[0].name
    model.graph.output[0].name = "scores"
    for node in model.graph.node:
        node.output[:] = ["scores" if o == old else o for o in node.output]
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        ExportError,
        match=r"outputs \['scores'\], expected \['input_ids', 'attention_mask', 'features'\] / \['logits'\]",
    ):
        validate_onnx(path, tagger, tok, ["some text"] * 8, 1e-3, 64)


def test_values_beyond_tolerance_are_refused(tiny_build_dir: Path, tiny_artifacts_dir: Path) -> None:
    tagger, tok = _tagger_and_tokenizer(tiny_build_dir, "acronyms")
    path = version_dir(tiny_artifacts_dir, "acronyms") / "model.onnx"
    texts = ["The convolutional neural network (CNN) works."] * 8
    report = validate_onnx(path, tagger, tok, texts, 1e-3, 64)
    assert 0.0 <= report["max_abs_diff_vs_torch"] <= 1e-3
    assert report["checked_batch_x_seq"][0][0] == 1 and report["checked_batch_x_seq"][-1][0] == 8
    with pytest.raises(ExportError, match=r"max \|logit difference\| vs PyTorch"):
        validate_onnx(path, tagger, tok, texts, -1.0, 64)  # no export meets a negative tolerance


def test_checksum_mismatch_names_the_file(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "v"
    shutil.copytree(version_dir(tiny_artifacts_dir, "concepts"), copy)
    (copy / "labels.json").write_text('["O", "B-concept", "I-concept", "X"]')
    with pytest.raises(ExportError, match=r"labels\.json: sha256 does not match the manifest$"):
        verify_artifact(copy)
    # The manifest's digest is the file's real sha256 (computed here independently of the build).
    assert (
        hashlib.sha256((copy / "tokenizer.json").read_bytes()).hexdigest()
        == json.loads((copy / "manifest.json").read_text())["files"]["tokenizer.json"]
    )


@pytest.mark.parametrize("token_objective", ["mlm", "rtd"])
def test_resumed_pretraining_continues_exactly(
    tiny_build_dir: Path, tmp_path: Path, token_objective: str
) -> None:
    """Stop after 3 of 6 steps, resume: the losses of steps 4-6 and the held-out curve equal an
    uninterrupted run's; the curve's validation leaves training as it is without one. With
    replaced-token detection the generator resumes too, and the final checkpoint is the encoder
    alone."""
    import torch

    work = tiny_build_dir / "work"
    (train_path,) = work.glob("tokens-train-*.npz")
    stream = dict(np.load(train_path))
    cfg = get_config("tiny")
    model_cfg = replace(
        cfg.model, vocab_size=load_tokenizer(work / "tokenizer" / "tokenizer.json").get_vocab_size()
    )
    pre_cfg = replace(
        cfg.pretrain, steps=6, checkpoint_every=100, valid_every=2, token_objective=token_objective
    )
    straight = pretrain(model_cfg, pre_cfg, stream, stream, tmp_path / "straight", "data")
    unobserved = replace(pre_cfg, valid_every=0)
    pretrain(model_cfg, unobserved, stream, stream, tmp_path / "unobserved", "data")
    first = pretrain(model_cfg, pre_cfg, stream, stream, tmp_path / "resumed", "data", stop_after=3)
    assert first["step"] == 3 and not (tmp_path / "resumed" / "final.pt").exists()
    resumed = pretrain(model_cfg, pre_cfg, stream, stream, tmp_path / "resumed", "data")
    assert resumed["final_train_losses"]["step"] == 6
    straight_history = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["history"]
    resumed_history = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["history"]
    assert [h["step"] for h in resumed_history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(
        [h["loss"] for h in straight_history], [h["loss"] for h in resumed_history], rtol=0, atol=1e-4
    )
    unobserved_history = torch.load(tmp_path / "unobserved" / "checkpoint.pt", weights_only=False)["history"]
    assert [h["loss"] for h in unobserved_history] == [h["loss"] for h in straight_history]
    assert [c["step"] for c in straight["valid_curve"]] == [2, 4, 6]
    assert [c["step"] for c in resumed["valid_curve"]] == [2, 4, 6]
    token_loss = "loss_mlm" if token_objective == "mlm" else "loss_rtd"
    for a, b in zip(straight["valid_curve"], resumed["valid_curve"], strict=True):
        assert a.keys() == b.keys() and token_loss in a
        for key in (k for k in a if k.startswith("loss_")):
            assert a[key] == pytest.approx(b[key], abs=1e-4)
    encoder, _ = load_encoder(tmp_path / "resumed" / "final.pt")
    assert encoder.cfg == model_cfg
    train_seconds = [c["train_seconds"] for c in straight["valid_curve"]]
    assert 0 < train_seconds[0] < train_seconds[1] < train_seconds[2] <= straight["train_seconds"]


def test_head_calibration_is_chosen_on_the_selection_slice_and_written_into_the_head(
    tiny_build_dir: Path, labelled_data_dir: Path
) -> None:
    """The offsets found are the ones in the head's bias afterwards, and the score they claim is the
    score the calibrated model really gets on the slice (never below the uncalibrated one)."""
    from model_build.data import read_span_file
    from model_build.evaluate import headline, predict_spans, score, torch_logits_fn
    from model_build.finetune import add_offsets, calibrate_offsets

    work = tiny_build_dir / "work"
    (checkpoint,) = work.glob("pretrain-aligned-*/final.pt")
    encoder, _ = load_encoder(checkpoint)
    tokenizer = load_tokenizer(work / "tokenizer" / "tokenizer.json")
    selection = read_span_file(labelled_data_dir / "acronyms" / "sdu21-train.jsonl", limit=24)
    tagger = Tagger(encoder, "acronyms")
    before_bias = encoder.heads["acronyms"].bias.detach().clone().numpy()

    def slice_score() -> float:
        preds, _ = predict_spans(
            [r["text"] for r in selection], tokenizer, torch_logits_fn(tagger), LABELS["acronyms"], 64
        )
        return headline("acronyms", score(selection, preds, LABELS["acronyms"]))

    uncalibrated = slice_score()
    found, claimed, claimed_uncalibrated = calibrate_offsets(
        tagger, LABELS["acronyms"], selection, tokenizer, 64
    )
    assert claimed_uncalibrated == pytest.approx(uncalibrated, abs=1e-6)
    np.testing.assert_array_equal(encoder.heads["acronyms"].bias.detach().numpy(), before_bias)  # untouched
    offsets = add_offsets(tagger, LABELS["acronyms"], found)
    expected = before_bias + np.array(
        [offsets.get(name, 0.0) for name in LABELS["acronyms"]], dtype=np.float32
    )
    np.testing.assert_allclose(encoder.heads["acronyms"].bias.detach().numpy(), expected, atol=1e-6)
    assert "O" not in offsets
    assert claimed >= uncalibrated
    assert slice_score() == pytest.approx(claimed, abs=1e-6)
    assert (claimed > uncalibrated) == bool(offsets)  # offsets are kept only when they help


def test_crossfit_score_scores_each_half_with_offsets_chosen_on_the_other(
    tiny_build_dir: Path, labelled_data_dir: Path
) -> None:
    """The cross-fitted score is the mean, over the two halves of the slice, of what the head
    calibrated on the other half (calibrate_offsets, add_offsets) really scores on it."""
    from model_build.data import read_span_file
    from model_build.evaluate import predict_spans, torch_logits_fn
    from model_build.finetune import (
        MIN_CALIBRATION_EXAMPLES,
        add_offsets,
        calibrate_offsets,
        crossfit_score,
        selection_score,
    )

    work = tiny_build_dir / "work"
    (checkpoint,) = work.glob("pretrain-aligned-*/final.pt")
    tokenizer = load_tokenizer(work / "tokenizer" / "tokenizer.json")
    labels = LABELS["acronyms"]
    selection = read_span_file(labelled_data_dir / "acronyms" / "sdu21-train.jsonl", limit=48)
    encoder, _ = load_encoder(checkpoint)
    claimed = crossfit_score(Tagger(encoder, "acronyms"), labels, selection, tokenizer, 64)
    assert claimed is not None
    assert crossfit_score(Tagger(encoder, "acronyms"), labels, selection[:39], tokenizer, 64) is None

    halves = (selection[0::2], selection[1::2])
    scores = []
    for fit, held in (halves, halves[::-1]):
        assert len(fit) >= MIN_CALIBRATION_EXAMPLES
        model, _ = load_encoder(checkpoint)
        tagger = Tagger(model, "acronyms")
        offsets, _, _ = calibrate_offsets(tagger, labels, fit, tokenizer, 64)
        add_offsets(tagger, labels, offsets)
        preds, _ = predict_spans([r["text"] for r in held], tokenizer, torch_logits_fn(tagger), labels, 64)
        scores.append(selection_score("acronyms", held, preds, labels))
    assert claimed == pytest.approx(sum(scores) / 2, abs=1e-6)


def _finetuning_inputs(
    tiny_build_dir: Path, labelled_data_dir: Path
) -> tuple[Encoder, Tokenizer, list[dict]]:
    """The tiny build's aligned encoder, its tokenizer and 240 sdu21-train records."""
    from model_build.data import read_span_file

    work = tiny_build_dir / "work"
    (checkpoint,) = work.glob("pretrain-aligned-*/final.pt")
    encoder, _ = load_encoder(checkpoint)
    tokenizer = load_tokenizer(work / "tokenizer" / "tokenizer.json")
    return encoder, tokenizer, read_span_file(labelled_data_dir / "acronyms" / "sdu21-train.jsonl", limit=240)


def test_finetuning_keeps_the_epoch_whose_calibrated_head_scores_best(
    tiny_build_dir: Path, labelled_data_dir: Path
) -> None:
    """Each epoch is judged with its own calibrated offsets; the model returned is the best of
    them, offsets in its head, and scores on the held-out slice exactly what the summary says."""
    from model_build.evaluate import predict_spans, torch_logits_fn
    from model_build.finetune import finetune, sample_examples, selection_score, split_selection

    encoder, tokenizer, records = _finetuning_inputs(tiny_build_dir, labelled_data_dir)
    cfg = replace(
        get_config("tiny").finetune, max_examples=240, epochs=3, min_steps=0, max_steps=None, patience=3
    )
    model, summary = finetune(encoder, "aligned", "acronyms", records, tokenizer, cfg)

    history = summary["history"]
    assert len(history) == 3 and all("calibrated_selection_score" in h for h in history)
    assert all(h["calibrated_selection_score"] >= h["selection_score"] for h in history)
    best = max(history, key=lambda h: h["calibrated_selection_score"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["calibrated_selection_score"] == best["calibrated_selection_score"]
    assert summary["crossfit_selection_score"] is None  # 24 examples held out: too few to halve
    _, selection = split_selection(
        sample_examples(records, cfg.max_examples, cfg.seed), cfg.selection_fraction, cfg.seed
    )
    preds, _ = predict_spans(
        [r["text"] for r in selection], tokenizer, torch_logits_fn(Tagger(model, "acronyms")), LABELS["acronyms"],
        cfg.seq_len,
    )  # fmt: skip
    assert selection_score("acronyms", selection, preds, LABELS["acronyms"]) == pytest.approx(
        summary["calibrated_selection_score"], abs=0.01
    )


def test_the_untrained_model_is_kept_when_no_epoch_beats_it(
    tiny_build_dir: Path, labelled_data_dir: Path
) -> None:
    """With `zero_shot_candidate` the pretrained model, calibrated, is epoch 0 of the selection.
    At a learning rate of 0 no epoch can beat it: it is kept, weights untouched but for the
    offsets calibration writes into the head's bias. Without the candidate a trained epoch is kept."""
    import torch

    from model_build.finetune import finetune

    encoder, tokenizer, records = _finetuning_inputs(tiny_build_dir, labelled_data_dir)
    cfg = replace(
        get_config("tiny").finetune,
        max_examples=240,
        epochs=2,
        min_steps=0,
        max_steps=None,
        patience=3,
        lr=0.0,
    )
    model, summary = finetune(
        encoder, "aligned", "acronyms", records, tokenizer, cfg, zero_shot_candidate=True
    )

    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2]
    assert summary["best_epoch"] == 0
    assert summary["calibrated_selection_score"] == summary["history"][0]["calibrated_selection_score"]
    before, after = encoder.state_dict(), model.state_dict()
    bias = "heads.acronyms.bias"
    assert all(torch.equal(before[k], after[k]) for k in before if k != bias)
    offsets = after[bias] - before[bias]
    assert dict(zip(LABELS["acronyms"], offsets.tolist(), strict=True)) == pytest.approx(
        {name: summary["label_offsets"].get(name, 0.0) for name in LABELS["acronyms"]}
    )
    _, without = finetune(encoder, "aligned", "acronyms", records, tokenizer, cfg)
    assert [h["epoch"] for h in without["history"]] == [1, 2] and without["best_epoch"] == 1


def test_interrupted_build_resumes_and_publishes(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path
) -> None:
    """Kill -9 during pretraining: nothing is published; the rerun resumes and completes. The
    session build's other stages are reused (their fingerprints match; finetuning's follows the
    pretraining fingerprint, not its weights), so the test spends its time on what it checks."""
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    shutil.copytree(tiny_build_dir / "work", work, ignore=shutil.ignore_patterns("pretrain-*", "build-*"))
    cmd = [
        sys.executable,
        "-m",
        "model_build",
        "build",
        "--config",
        "tiny",
        "--data-dir",
        str(labelled_data_dir),
        "--work-dir",
        str(work),
        "--artifacts-dir",
        str(artifacts),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not list(work.glob("pretrain-aligned-*/checkpoint.pt")):
        assert proc.poll() is None, "build ended before its first pretraining checkpoint"
        assert time.monotonic() < deadline, "no pretraining checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(work.glob("pretrain-aligned-*/final.pt")), "killed too late: pretraining had finished"
    assert not list(artifacts.glob("*/*/manifest.json")), "an artifact was published by a killed build"
    import torch

    (ckpt,) = work.glob("pretrain-aligned-*/checkpoint.pt")
    step_at_kill = torch.load(ckpt, weights_only=False)["step"]
    assert 0 < step_at_kill < get_config("tiny").pretrain.steps
    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(next(work.glob("pretrain-aligned-*/pretrain.json")).read_text())
    history = torch.load(ckpt, weights_only=False)["history"]
    assert [h["step"] for h in history] == list(range(1, summary["steps"] + 1))
    for task in ("concepts", "acronyms"):
        verify_artifact(version_dir(artifacts, task))
    # A second run with nothing changed publishes nothing new.
    again = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert len(list(artifacts.glob("*/*/manifest.json"))) == 2
    # Every completed invocation is in the history (the killed one never completed); the last
    # is also build-report.json.
    history = [json.loads(line) for line in (work / "build-history.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert history[-1] == json.loads((work / "build-report.json").read_text())
    assert history[1]["seconds"] < history[0]["seconds"]
    assert set(history[0]["stages"]) >= {"pretrain-aligned", "finetune-concepts", "export-acronyms"}


def test_ddp_pretraining_on_two_cpu_processes(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    shutil.copytree(tiny_build_dir / "work", work, ignore=shutil.ignore_patterns("pretrain-*", "finetune-*"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "model_build",
        "pretrain",
        "--config",
        "tiny",
        "--recipe",
        "mlm",
        "--data-dir",
        str(labelled_data_dir),
        "--work-dir",
        str(work),
    ]
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(next(work.glob("pretrain-mlm-*/pretrain.json")).read_text())
    assert summary["world_size"] == 2
    assert summary["objectives"] == ["mlm"]
    assert summary["steps"] == get_config("tiny").pretrain.steps
    assert np.isfinite(summary["final_train_losses"]["loss"])


def test_pretraining_recipes_get_equal_compute(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both recipes pretrained by the build's own `pretrain` command on the tiny build's corpus,
    tokenizer and token streams: their summaries agree on steps, batch, window, masking, seed,
    model and world size (the settings differ in the recipe only), and the two training loops
    consumed the same batches step for step: the same windows, attention masks, MLM masks and
    features, hence the same tokens seen and masked. Only the loss differs."""
    import model_build.pretrain as pretrain_module
    from model_build.__main__ import main
    from model_build.model import IGNORE

    tiny = get_config("tiny").pretrain
    work = tmp_path / "work"
    shutil.copytree(tiny_build_dir / "work", work, ignore=shutil.ignore_patterns("pretrain-*", "finetune-*"))
    real_make_batch = pretrain_module.make_batch
    seen: dict[str, list[dict]] = {"aligned": [], "mlm": []}

    def recording_make_batch(stream, cfg, step, rank, vocab_size):  # type: ignore[no-untyped-def]
        batch = real_make_batch(stream, cfg, step, rank, vocab_size)
        if cfg.seed == tiny.seed:  # a training batch (the held-out losses use seed + 7919)
            record = {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in batch.items()}
            record.update(
                step=step,
                rank=rank,
                shape=tuple(batch["input_ids"].shape),
                tokens=int(batch["attention_mask"].sum()),
                masked=int((batch["mlm_labels"] != IGNORE).sum()),
            )
            seen[cfg.recipe].append(record)
        return batch

    monkeypatch.setattr(pretrain_module, "make_batch", recording_make_batch)
    summaries = {}
    for recipe in ("aligned", "mlm"):
        args = ["pretrain", "--config", "tiny", "--recipe", recipe]
        assert main([*args, "--data-dir", str(labelled_data_dir), "--work-dir", str(work)]) == 0
        (path,) = work.glob(f"pretrain-{recipe}-*/pretrain.json")
        summaries[recipe] = json.loads(path.read_text())

    aligned, mlm = summaries["aligned"], summaries["mlm"]
    assert aligned["objectives"] == ["mlm", "concepts", "acronyms"] and mlm["objectives"] == ["mlm"]
    assert aligned["steps"] == mlm["steps"] == tiny.steps
    assert aligned["world_size"] == mlm["world_size"] == 1
    assert aligned["model_config"] == mlm["model_config"] and aligned["parameters"] == mlm["parameters"]
    assert (aligned["config"]["recipe"], mlm["config"]["recipe"]) == ("aligned", "mlm")
    for key in ("batch_size", "seq_len", "mask_prob", "seed", "rule_feature_dropout", "lr"):
        assert aligned["config"][key] == mlm["config"][key] == getattr(tiny, key), key
    assert {k: v for k, v in aligned["config"].items() if k != "recipe"} == {
        k: v for k, v in mlm["config"].items() if k != "recipe"
    }
    # What the loops trained on: one batch a step, of batch x window, identical between the recipes.
    batch, window = aligned["config"]["batch_size"], aligned["config"]["seq_len"]
    for recipe, summary in summaries.items():
        assert [r["step"] for r in seen[recipe]] == list(range(summary["steps"])), recipe
        assert all(r["rank"] == 0 and r["shape"] == (batch, window) for r in seen[recipe]), recipe
    assert seen["aligned"] == seen["mlm"]
    tokens_seen = sum(r["tokens"] for r in seen["mlm"])
    masked = sum(r["masked"] for r in seen["mlm"])
    assert 0 < masked < tokens_seen <= tiny.steps * batch * window
    # The summaries' own compute figures are those of the batches the loops consumed.
    for summary in (aligned, mlm):
        assert (summary["batch_size"], summary["seq_len"]) == (batch, window)
        assert (summary["tokens_seen"], summary["masked_tokens"]) == (tokens_seen, masked)
    assert aligned["final_train_losses"]["loss"] != mlm["final_train_losses"]["loss"]


def test_build_without_labelled_data_publishes_zero_shot_heads(tmp_path: Path) -> None:
    """No labelled data directory: the aligned pretraining heads are served, and the manifest says so."""
    from model_build.pipeline import build

    empty = tmp_path / "no-data"
    empty.mkdir()
    published = build("tiny", empty, tmp_path / "work", tmp_path / "artifacts")
    for task in ("concepts", "acronyms"):
        manifest = verify_artifact(published[task])
        assert manifest["finetuning"]["zero_shot"] is True
        assert manifest["finetuning"]["examples"] == 0 and manifest["finetuning"]["dataset"] is None
        assert manifest["evaluation"] == {"dataset": None}
        assert manifest["serve"] == {"onnx_file": "model.int8.onnx", "reason": "no dev data to re-score int8"}
        assert set(manifest["pretraining"]["corpora"]) == {"foldoc", "jargon"}


def test_int8_drop_beyond_the_limit_serves_fp32(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path
) -> None:
    from model_build.config import ExportConfig
    from model_build.data import read_span_file
    from model_build.export import export_artifact

    work = tiny_build_dir / "work"
    model, _ = load_encoder(work / "finetune-acronyms-aligned" / "model.pt")
    dev = read_span_file(labelled_data_dir / "acronyms" / "sdu21-dev.jsonl", 20)
    extra = {"model": {"config_name": "tiny"}, "build": {"fingerprint": "test"}}
    # A limit below any possible drop: the build must fall back to fp32 and say why.
    vdir = export_artifact(model, "acronyms", work / "tokenizer" / "tokenizer.json", dev,
                           ExportConfig(max_int8_f1_drop=-1000.0), tmp_path, "v1", extra)  # fmt: skip
    manifest = verify_artifact(vdir)
    fp32, int8 = manifest["evaluation"]["fp32"]["f1"], manifest["evaluation"]["int8"]["f1"]
    assert fp32 > 50 and int8 > 50  # a model that tags: the gate compares real scores
    assert manifest["serve"] == {
        "onnx_file": "model.onnx",
        "reason": f"int8 F1 drop {fp32 - int8:.2f} > -1000.0 points",
    }
    assert manifest["version"] == "v1" and vdir == tmp_path / "acronyms" / "v1"


def test_finetuning_and_calibration_read_train_files_only(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every labelled file the finetune stage opens (training, model selection and head
    calibration on the held-out slice) is a declared train file; a dev file given as extra
    training data is refused before anything is read."""
    from model_build import pipeline
    from model_build.corpus.roles import LeakageError

    opened: list[str] = []
    real_read = pipeline.read_span_file

    def recording_read(path: Path, limit: int | None = None) -> list[dict]:
        opened.append(path.relative_to(labelled_data_dir).as_posix())
        return real_read(path, limit)

    monkeypatch.setattr(pipeline, "read_span_file", recording_read)
    work = tiny_build_dir / "work"
    (checkpoint,) = work.glob("pretrain-aligned-*/final.pt")
    # A few steps: the test is about which files are opened (min_steps would run 300 per task).
    tiny_finetune = replace(get_config("tiny").finetune, epochs=1, min_steps=0, max_steps=3)
    cfg = replace(get_config("tiny"), finetune=tiny_finetune)
    stages = pipeline.Stages(cfg, labelled_data_dir, tmp_path)
    for task in ("concepts", "acronyms"):
        _, summary = stages.finetune(task, checkpoint, "aligned", "fp", work / "tokenizer" / "tokenizer.json")
        assert summary["selection_examples"] > 0
    assert opened == ["concepts/inspec-train.jsonl", "acronyms/sdu21-train.jsonl"]

    leaky = replace(cfg, extra_train={"acronyms": ("acronyms/sdu21-dev.jsonl",)})
    with pytest.raises(LeakageError, match="sdu21-dev.jsonl: refusing to read a dev file for finetuning"):
        pipeline.Stages(leaky, labelled_data_dir, tmp_path / "leaky").labelled("acronyms", 0)
    assert opened == ["concepts/inspec-train.jsonl", "acronyms/sdu21-train.jsonl"]


def test_selection_counts_each_training_file_once() -> None:
    """Three examples of one file found perfectly and one of another missed: the selection score
    is the mean of the files' F1 (50), not the pooled F1 (85.7); without `file` it is the pooled."""
    from model_build.finetune import selection_score

    def record(file: str | None) -> dict:
        rec = {"text": "a concept", "spans": [(2, 9, "concept")]}
        return rec if file is None else {**rec, "file": file}

    found, missed = [(2, 9, "concept", 1.0)], []
    names = LABELS["concepts"]
    files = [record("big.jsonl")] * 3 + [record("small.jsonl")]
    assert selection_score("concepts", files, [found] * 3 + [missed], names) == pytest.approx(50.0)
    pooled = [record(None)] * 4
    assert selection_score("concepts", pooled, [found] * 3 + [missed], names) == pytest.approx(600 / 7)
