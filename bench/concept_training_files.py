"""Which training files the concept model should finetune on: `python -m bench.concept_training_files`.

The default finetunes concepts on inspec-train and scienceie-train together (`BuildConfig.
extra_train`); ScienceIE marks concepts more densely than Inspec's keyphrases. This probe
finetunes two arms on the build's pretrained encoder, same seed: `with-extra` (the config's
files) and `main-only` (the task's train file alone), both on the same 85% of every concept
training file, and scores both on the other 15% (records neither arm saw; never a dev file) as
the service decodes. What decides, as in model selection (`model_build.finetune.selection_score`),
is the mean over the files of each file's micro F1. Prints each arm's figures and the paired
difference with 95% intervals per file (bootstrap over its held-out records), and the mean.
Run after `make build-model` (it reuses the build's pretraining; ~25 minutes on 2 cores for
`small`).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
from pathlib import Path

import numpy as np

from model_build.config import default_data_dir, get_config
from model_build.data import read_span_file
from model_build.evaluate import predict_spans, span_sets, torch_logits_fn
from model_build.experiment_report import bootstrap
from model_build.model import TASK_LABELS, Tagger
from model_build.pipeline import Stages, default_work_dir
from model_build.spanmetrics import document_counts
from model_build.tokenizer import load_tokenizer

TASK = "concepts"
HELD_OUT = 0.15
ROUNDS = 2000


def split_file(source: Path, target: Path, seed: int) -> list[dict]:
    """Write the kept share of `source` to `target`; return the held-out records."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = read_span_file(source)  # one a non-blank line, validated
    held = set(random.Random(seed).sample(range(len(lines)), round(HELD_OUT * len(lines))))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(line + "\n" for i, line in enumerate(lines) if i not in held), encoding="utf-8")
    return [records[i] for i in sorted(held)]


def counts(records: list[dict], preds: list[list]) -> np.ndarray:
    """runs (1) x documents x labels (1) x [tp, fp, fn], as `experiment_report.bootstrap` takes."""
    gold, pred = span_sets(records, preds)
    per_doc = document_counts(gold, pred, ["concept"])
    return np.asarray([[[d["concept"]] for d in per_doc]], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--seed", type=int, default=1234, help="which records are held out")
    args = parser.parse_args()
    cfg = get_config(args.config)
    data_dir = default_data_dir()
    files = [cfg.datasets[TASK][0], *cfg.extra_train.get(TASK, ())]
    base = Stages(cfg, data_dir, default_work_dir(args.config, None))
    text = base.pretraining_text()
    checkpoint, pretrain_summary = base.pretrain(text, "aligned")
    tokenizer = load_tokenizer(text.tokenizer_path)
    labels = TASK_LABELS[TASK]
    main_only = dataclasses.replace(cfg, extra_train={**cfg.extra_train, TASK: ()})
    with tempfile.TemporaryDirectory(prefix="concept-files-") as tmp:
        root = Path(tmp)
        held = {name: split_file(data_dir / name, root / "data" / name, args.seed) for name in files}
        stacks: dict[str, dict[str, np.ndarray]] = {}
        for arm, arm_cfg in (("with-extra", cfg), ("main-only", main_only)):
            stages = Stages(arm_cfg, root / "data", root / arm)
            model, _ = stages.finetune(
                TASK, checkpoint, "aligned", pretrain_summary["run_id"], text.tokenizer_path
            )
            logits_fn = torch_logits_fn(Tagger(model, TASK))
            stacks[arm] = {}
            for name, records in held.items():
                preds, _ = predict_spans(
                    [r["text"] for r in records], tokenizer, logits_fn, labels, cfg.finetune.seq_len,
                    noun_final=TASK in cfg.noun_final_tasks,
                )  # fmt: skip
                stacks[arm][name] = counts(records, preds)
    means = {"with-extra": 0.0, "main-only": 0.0, "difference": 0.0}
    for name in files:
        only, extra, diff = bootstrap(TASK, [stacks["main-only"][name], stacks["with-extra"][name]], ROUNDS)
        print(f"{name} ({len(held[name])} held-out records): main-only {only[0]}, with-extra {extra[0]}, "
              f"main-only - with-extra {diff[0]:+.2f} [{diff[1]:+.2f}, {diff[2]:+.2f}]")  # fmt: skip
        means["main-only"] += only[0] / len(files)
        means["with-extra"] += extra[0] / len(files)
        means["difference"] += diff[0] / len(files)
    print("mean over the files (what decides): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
