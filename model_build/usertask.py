"""Your own task from a few hundred examples: `python -m model_build finetune` (`make finetune`).

A user task finetunes a new head on the aligned encoder of a build configuration (its pretraining
is reused from the build directory; the user's files never enter pretraining) and is published as
`artifacts/<task>/<version>/` under the contract of the built-in tasks, so the service serves it.

- Labels: whatever the training file uses, any number (docs/contracts.md section 2 gives the head
  order). The head starts from the aligned concept head (`add_task_head`), the point of aligned
  pretraining: it already knows what a span looks like; finetuning tells the labels apart.
- Evaluation: on the dev file when one is given, else on a held-out share of the given examples
  (never trained on); finetuning's own model selection holds out another slice of the rest.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from model_build.checkpoint import load_encoder
from model_build.codeversion import code_version
from model_build.config import TASKS, default_data_dir, default_work_dir, fingerprint, get_config
from model_build.corpus.roles import check_training_file
from model_build.export import export_artifact
from model_build.finetune import finetune
from model_build.model import CONCEPT_LABELS, Encoder
from model_build.pipeline import Stages, manifest_extra, version_name
from model_build.spanmetrics import format_prf
from model_build.tokenizer import load_tokenizer
from model_build.userdata import DataError, Examples, read_examples
from textfeatures.tasks import TASK_NAME, bio_label_names

HOLDOUT_FRACTION = 0.2  # share of the examples kept for evaluation when no dev file is given


def add_task_head(
    encoder: Encoder, task: str, label_names: tuple[str, ...], from_concepts: bool = True
) -> None:
    """A head for `task` whose rows start as the aligned concept head's (O from O, every B-x from
    B-concept, every I-x from I-concept), or at random (the ablation, `from_concepts=False`)."""
    concept = encoder.heads["concepts"]
    assert isinstance(concept, nn.Linear)
    head = nn.Linear(concept.in_features, len(label_names))
    Encoder._init(head)
    if from_concepts:
        rows = [0 if name == "O" else CONCEPT_LABELS.index(name[:2] + "concept") for name in label_names]
        with torch.no_grad():
            head.weight.copy_(concept.weight[rows])
            head.bias.copy_(concept.bias[rows])
    encoder.heads[task] = head


def split_holdout(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training examples, evaluation examples): a seeded share held out, at least one each."""
    if len(records) < 2:
        raise DataError(f"{len(records)} example(s): need at least 2 to hold one out (or give a dev file)")
    shuffled = random.Random(seed + 2).sample(records, len(records))
    k = min(len(records) - 1, max(1, round(len(records) * fraction)))
    return shuffled[k:], shuffled[:k]


def load_examples(
    task: str, train_path: Path, dev_path: Path | None, label_key: str
) -> tuple[Examples, Examples | None]:
    """Both files read and checked, or `DataError`/`LeakageError` before anything runs."""
    if not TASK_NAME.fullmatch(task):
        raise DataError(f"task name {task!r}: use a lower-case letter, then letters, digits, '_' or '-'")
    if task in TASKS:
        raise DataError(f"{task!r} is a built-in task (make build-model builds it); name yours otherwise")
    check_training_file(train_path)
    train = read_examples(train_path, label_key)
    if not train.records:
        raise DataError(f"{train_path}: no examples")
    if not train.labels:
        raise DataError(f"{train_path}: no labelled span in any example")
    dev = read_examples(dev_path, label_key) if dev_path is not None else None
    if dev is not None:
        unseen = sorted(set(dev.labels) - set(train.labels))
        if unseen:
            raise DataError(
                f"{dev_path}: labels {unseen} never occur in {train_path}: the model cannot learn them"
            )
    return train, dev


def finetune_task(
    task: str,
    train_path: Path,
    dev_path: Path | None = None,
    config_name: str = "small",
    data_dir: Path | None = None,
    work_dir: Path | None = None,
    artifacts_dir: Path = Path("artifacts"),
    max_examples: int | None = None,
    seed: int = 0,
    label_key: str = "label",
    head_from_concepts: bool = True,
) -> tuple[Path, dict]:
    """Finetune and publish a user task; returns its artifact directory and the finetuning summary."""
    train, dev = load_examples(task, train_path, dev_path, label_key)
    records, evaluation = (
        (train.records, dev.records)
        if dev is not None
        else split_holdout(train.records, HOLDOUT_FRACTION, seed)
    )
    cfg = get_config(config_name)
    ft_cfg = replace(cfg.finetune, max_examples=max_examples, seed=seed)
    stages = Stages(cfg, data_dir or default_data_dir(), work_dir or default_work_dir(config_name))
    text = stages.pretraining_text()
    checkpoint, pre_summary = stages.pretrain(text, "aligned")  # reused when the build made it
    encoder, _ = load_encoder(checkpoint)
    label_names = bio_label_names(train.labels)
    add_task_head(encoder, task, label_names, head_from_concepts)
    model, ft_summary = finetune(
        encoder,
        "aligned",
        task,
        records,
        load_tokenizer(text.tokenizer_path),
        ft_cfg,
        label_names=label_names,
    )
    ft_summary["dataset"] = str(train_path)
    ft_summary["zero_shot"] = False
    ft_summary["head_init"] = "concepts" if head_from_concepts else "random"
    export_fp = fingerprint(
        pre_summary["run_id"],
        ft_cfg,
        records,
        evaluation,
        head_from_concepts,
        code_version("model_build.usertask", "model_build.finetune", "model_build.export"),
    )
    corpus_stats = json.loads((text.corpus_dir / "stats.json").read_text())
    extra = manifest_extra(
        cfg, model, "aligned", pre_summary, corpus_stats, ft_summary, export_fp, stages.data_dir
    )
    extra["finetuning"]["evaluated_on"] = (
        str(dev_path) if dev_path else f"{len(evaluation)} held-out examples"
    )
    extra["finetuning"]["skipped_records"] = dict(train.skipped)
    extra["finetuning"]["head_init"] = ft_summary["head_init"]
    out = export_artifact(
        model, task, text.tokenizer_path, evaluation, cfg.export, artifacts_dir,
        version_name(task, export_fp), extra, label_names,
    )  # fmt: skip
    return out, ft_summary


def print_report(artifact_dir: Path, manifest: dict) -> None:
    evaluation = manifest["evaluation"]
    served = "int8" if manifest["serve"]["onnx_file"] == "model.int8.onnx" else "fp32"
    finetuning = manifest["finetuning"]
    print(f"task {manifest['task']}: {finetuning['examples']} training examples, evaluated on "
          f"{finetuning['evaluated_on']} ({served}, exact spans):")  # fmt: skip
    print(format_prf(evaluation[served]["metrics"]))
    print(f"published: {artifact_dir}")
