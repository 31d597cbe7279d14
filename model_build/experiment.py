"""The paper's claim, measured: three pretraining arms at equal compute, few-example finetuning.

Arms (`ARMS`), all with the same steps, batch, window length, masking rate and tokenizer:

- `mlm`: masked-LM alone, on the external corpora (FOLDOC, Jargon, wikitext);
- `aligned-transfer`: MLM plus the aligned objectives (link spans -> concepts, rule-found
  acronyms), on the same external corpora: the same batches and masks as `mlm`, and no text of
  any labelled file (the tokenizer, too, is trained on the external corpora only);
- `aligned`: the aligned objectives on the external corpora plus the unlabelled text of the
  labelled training files, weak-labelled (self-training on in-domain silver labels). Dev and test
  text never enter pretraining.

Each arm is pretrained with several seeds, for the served default architecture (`config`) and for
its twin without the weak-labeller input features (`ablation_config`). Each checkpoint is then
finetuned on N examples of each task's training files (every N, several seeds, early stopping on
the held-out slice of the N examples, the same maximum budget for every arm) and scored on dev,
document by document, so that `model_build.experiment_report` can bootstrap over dev documents
and seeds. N=0 is zero-shot: the pretrained head as it is (aligned arms only).

Every finished run is saved at once under `<work>/experiment/runs/` with the fingerprint of what
it depends on (settings, data and the code of its stages), so an interrupted experiment resumes
where it stopped, and a change to the code of a stage redoes the runs it made. A `deadline`
stops starting new runs (a device lent for minutes); the report says how many planned runs ran.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model_build.atomic import write_text_atomically
from model_build.codeversion import code_version
from model_build.config import BuildConfig, as_dict, default_data_dir, fingerprint, get_config

# arm -> (pretraining recipe, corpus)
ARMS: dict[str, tuple[str, str]] = {
    "mlm": ("mlm", "transfer"),
    "aligned-transfer": ("aligned", "transfer"),
    "aligned": ("aligned", "full"),
}
# The code each kind of run depends on (part of its fingerprint).
FINETUNE_CODE = (
    "model_build.experiment",
    "model_build.finetune",
    "model_build.evaluate",
    "model_build.data",
    "model_build.model",
    "model_build.spanmetrics",
    "model_build.schedule",
    "textfeatures",
)
DATASETS: dict[str, list[tuple[str, str]]] = {
    "acronyms": [
        ("acronyms/sdu21-train.jsonl", "acronyms/sdu21-dev.jsonl"),
        ("acronyms/sdu22-sci-train.jsonl", "acronyms/sdu22-sci-dev.jsonl"),
    ],
    "concepts": [
        ("concepts/inspec-train.jsonl", "concepts/inspec-dev.jsonl"),
        ("concepts/scienceie-train.jsonl", "concepts/scienceie-dev.jsonl"),
    ],
}


@dataclass(frozen=True)
class ExperimentConfig:
    config: str = "small"  # the served default architecture
    ablation_config: str | None = "small-no-features"  # the same without the input features
    sizes: tuple[int, ...] = (0, 50, 200, 1000)
    ablation_sizes: tuple[int, ...] = (0, 200)  # N at which the ablation architecture is finetuned
    seeds: tuple[int, ...] = (0, 1, 2)  # finetuning seeds (the N examples drawn, the head's init)
    pretrain_seeds: tuple[int, ...] = (0, 1)
    pretrain_steps: int | None = None  # None = the config's
    finetune_min_steps: int | None = None  # None = the config's
    finetune_max_steps: int | None = None
    datasets: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: dict(DATASETS))
    eval_max_examples: int | None = None
    workers: int = 2
    bootstrap: int = 1000


# `gpu`: the served settings unchanged (one H200 with 16 cores: ~10 minutes).
# `cpu`: cut so the grid fits about 2.5 hours on 2 cores: pretraining at 0.93 s a step (256x4,
# 32 x 128 tokens, measured), finetuning capped at 150 steps (~0.3 s each) plus ~15 s of
# evaluation a run: 6 pretrainings x 150 steps and 116 finetuning runs. No ablation architecture:
# its finetuning does not fit, and its pretraining alone would be wasted.
PRESETS: dict[str, ExperimentConfig] = {
    "gpu": ExperimentConfig(workers=12),
    "cpu": ExperimentConfig(
        pretrain_steps=150,
        finetune_min_steps=100,
        finetune_max_steps=150,
        ablation_config=None,
        ablation_sizes=(),
        datasets={task: pairs[:1] for task, pairs in DATASETS.items()},
        workers=2,
    ),
}


def _threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------
# The runs (each in a worker process: spawned, not forked, since a fork of a process whose OpenMP
# threads have run can deadlock).


def _pretrain_run(job: dict) -> dict:
    import numpy as np
    import torch

    from model_build.pretrain import pretrain

    torch.set_num_threads(job["threads"])
    streams = {split: dict(np.load(path)) for split, path in job["streams"].items()}
    if len(streams["valid"]["ids"]) < job["pretrain_cfg"].seq_len:
        streams["valid"] = streams["train"]  # a tiny corpus may put nothing in valid
    return pretrain(
        job["model_cfg"], job["pretrain_cfg"], streams["train"], streams["valid"], Path(job["out_dir"]),
        data_fp=job["data_fp"],
    )  # fmt: skip


def _finetune_run(job: dict) -> dict:
    """One finetune (none at N=0) + dev evaluation; per-document span counts for the bootstrap."""
    import torch

    from model_build.checkpoint import load_encoder
    from model_build.data import read_span_file
    from model_build.evaluate import predict_spans, torch_logits_fn
    from model_build.finetune import finetune
    from model_build.model import TASK_LABELS, Tagger
    from model_build.tokenizer import load_tokenizer

    torch.set_num_threads(job["threads"])
    t0 = time.perf_counter()
    device = _device()
    encoder, _ = load_encoder(Path(job["checkpoint"]))
    tokenizer = load_tokenizer(Path(job["tokenizer"]))
    data_dir = Path(job["data_dir"])
    dev = read_span_file(data_dir / job["dev"], job["eval_max_examples"])
    ft_cfg = job["finetune_cfg"]
    task, labels = job["task"], TASK_LABELS[job["task"]]
    finetuned: dict[str, Any] = {}
    if job["n"] == 0:
        model = encoder.to(device)
    else:
        train = read_span_file(data_dir / job["train"])
        model, summary = finetune(
            encoder,
            job["pretrain_recipe"],
            task,
            train,
            tokenizer,
            ft_cfg,
            n_examples=job["n"],
            device=device,
            noun_final=job["noun_final"],
            zero_shot_candidate=job["pretrain_recipe"] == "aligned",
        )
        # Kept so a reader can tell an undertrained run (best at the last epoch) from a converged one.
        finetuned = {
            k: summary[k]
            for k in ("steps", "history", "best_epoch", "best_selection_score", "selection_examples")
        }
    preds, _ = predict_spans(
        [r["text"] for r in dev], tokenizer, torch_logits_fn(Tagger(model, task)), labels, ft_cfg.seq_len,
        noun_final=job["noun_final"],
    )  # fmt: skip
    result = {k: job[k] for k in ("task", "dataset", "arm", "config", "n", "seed", "pretrain_seed")}
    result.update(
        **scored(task, dev, preds),
        finetune=finetuned,
        fingerprint=job["fingerprint"],
        device=str(device),
        seconds=round(time.perf_counter() - t0, 1),
    )
    write_text_atomically(Path(job["out"]), json.dumps(result))
    return result


def _saved(path: Path, fp: str) -> dict | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved if saved.get("fingerprint") == fp else None


def _exit_with_parent(parent_pid: int) -> None:
    """A worker's initializer: a thread that ends the worker once the experiment's process is gone.
    A worker is busy with one run for minutes and reads its next job only after it, so without
    this an experiment stopped by SIGTERM or SIGKILL (its process alone, not its group) left its
    runs going on the 2 cores; a stopped run loses nothing (its result is written when it ends)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _run_pool(
    fn: Callable[[dict], dict], jobs: list[dict], workers: int, deadline: float | None, desc: str
) -> Iterator[dict]:
    """Results of `fn` over `jobs` as they finish, at most `workers` at a time; after `deadline`
    (a `time.monotonic()` value) no job is started."""
    from tqdm import tqdm

    if not jobs:
        return
    pending = list(reversed(jobs))
    running: set[Future] = set()
    bar = tqdm(total=len(jobs), desc=desc, unit="run")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        while pending or running:
            while pending and len(running) < workers and (deadline is None or time.monotonic() < deadline):
                running.add(pool.submit(fn, pending.pop()))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                bar.update(1)
                yield future.result()
    bar.close()
    if pending:
        print(f"{desc}: deadline reached, {len(pending)} of {len(jobs)} runs not started")


# ---------------------------------------------------------------------------------------------
# The plan.


@dataclass(frozen=True)
class ArmData:
    """What one arm's pretraining reads: its token streams (and their fingerprint)."""

    corpus: str
    streams: dict[str, str]
    data_fp: str


def prepare_data(cfg: BuildConfig, data_dir: Path, exp_dir: Path) -> tuple[dict[str, ArmData], Path]:
    """Both corpora, the one tokenizer (trained on the transfer corpus) and every token stream."""
    from model_build.pipeline import PretrainingText, Stages

    transfer = Stages(
        replace(cfg, corpus=replace(cfg.corpus, span_files=(), text_files=())), data_dir, exp_dir / "transfer"
    )
    full = Stages(cfg, data_dir, exp_dir / "full")
    transfer_text = transfer.pretraining_text()
    full_corpus_dir, full_corpus_fp = full.corpus()
    full_text = PretrainingText(
        full_corpus_dir, full_corpus_fp, transfer_text.tokenizer_path, transfer_text.tokenizer_fp
    )
    data: dict[str, ArmData] = {}
    for corpus, stages, text in (("transfer", transfer, transfer_text), ("full", full, full_text)):
        stages.token_streams(text)
        streams = {split: str(stages.stream_path(text, split)) for split in ("train", "valid")}
        data[corpus] = ArmData(corpus, streams, text.streams_fp)
    return data, transfer_text.tokenizer_path


def pretrain_jobs(
    exp: ExperimentConfig, data: dict[str, ArmData], vocab_size: int, exp_dir: Path
) -> list[dict]:
    """One pretraining per (architecture, arm, seed); every arm the same steps, batch and windows."""
    jobs = []
    for config_name in filter(None, (exp.config, exp.ablation_config)):
        cfg = get_config(config_name)
        model_cfg = replace(cfg.model, vocab_size=vocab_size)
        for arm, (recipe, corpus) in ARMS.items():
            for seed in exp.pretrain_seeds:
                pre_cfg = replace(
                    cfg.pretrain, recipe=recipe, seed=seed, steps=exp.pretrain_steps or cfg.pretrain.steps
                )
                jobs.append({
                    "config": config_name, "arm": arm, "pretrain_seed": seed, "model_cfg": model_cfg,
                    "pretrain_cfg": pre_cfg, "streams": data[corpus].streams, "data_fp": data[corpus].data_fp,
                    "out_dir": str(exp_dir / f"pretrain-{config_name}-{arm}-p{seed}"),
                    "threads": _threads(exp.workers),
                })  # fmt: skip
    return jobs


def finetune_jobs(
    exp: ExperimentConfig,
    pretrained: dict[tuple[str, str, int], dict],
    tokenizer: Path,
    data_dir: Path,
    runs_dir: Path,
) -> list[dict]:
    """Every (task, dataset, architecture, arm, pretraining seed, N, seed), in the order a deadline
    should cut them: the least needed last."""
    code = code_version(*FINETUNE_CODE)
    jobs = []
    for (config_name, arm, pseed), summary in pretrained.items():
        cfg = get_config(config_name)
        recipe = ARMS[arm][0]
        sizes = exp.sizes if config_name == exp.config else exp.ablation_sizes
        for task, pairs in exp.datasets.items():
            for train, dev in pairs:
                for n in sizes:
                    if n == 0 and recipe == "mlm":
                        continue  # an MLM-only head is untrained: no zero-shot figure
                    for seed in exp.seeds[:1] if n == 0 else exp.seeds:
                        ft_cfg = replace(
                            cfg.finetune, seed=seed, max_examples=n,
                            min_steps=exp.finetune_min_steps if exp.finetune_min_steps is not None else cfg.finetune.min_steps,
                            max_steps=exp.finetune_max_steps or cfg.finetune.max_steps,
                        )  # fmt: skip
                        key = f"{Path(dev).stem}-{config_name}-{arm}-p{pseed}-n{n}-s{seed}"
                        noun_final = task in cfg.noun_final_tasks
                        jobs.append({
                            "task": task, "dataset": Path(dev).stem, "arm": arm, "pretrain_recipe": recipe,
                            "config": config_name, "n": n, "seed": seed, "pretrain_seed": pseed,
                            "train": train, "dev": dev, "data_dir": str(data_dir),
                            "checkpoint": str(Path(summary["out_dir"]) / "final.pt"), "tokenizer": str(tokenizer),
                            "finetune_cfg": ft_cfg, "eval_max_examples": exp.eval_max_examples,
                            "noun_final": noun_final, "out": str(runs_dir / f"{key}.json"),
                            "fingerprint": fingerprint(
                                summary["run_id"], ft_cfg, train, dev, exp.eval_max_examples, noun_final, code
                            ),
                            "threads": _threads(exp.workers),
                        })  # fmt: skip
    # N=200 first (the targets), with and without features, then zero-shot, N=50, N=1000.
    order = {200: 0, 0: 1, 50: 2}
    return sorted(
        jobs, key=lambda j: (order.get(j["n"], 3), j["config"] != exp.config, j["seed"], j["pretrain_seed"])
    )


def scored(task: str, records: list[dict], predictions: list[list]) -> dict[str, Any]:
    """Dev scores of one run, and its span counts per document for the bootstrap:
    `counts[document][label] = [tp, fp, fn]`, labels in `labels` order."""
    from model_build.evaluate import headline, score, span_kinds, span_sets
    from model_build.model import TASK_LABELS
    from model_build.spanmetrics import document_counts

    kinds = span_kinds(TASK_LABELS[task])
    metrics = score(records, predictions, TASK_LABELS[task])
    counts = document_counts(*span_sets(records, predictions), kinds)
    return {
        "metrics": metrics,
        "headline": headline(task, metrics),
        "labels": kinds,
        "counts": [[c[k] for k in kinds] for c in counts],
    }


def rule_results(exp: ExperimentConfig, data_dir: Path) -> list[dict]:
    """The rule baselines on the same dev files (`textfeatures.rules`), per document too."""
    from model_build.data import read_span_file
    from textfeatures.rules import RULE_BASELINES, rule_spans

    results = []
    for task, pairs in exp.datasets.items():
        for _, dev in pairs:
            records = read_span_file(data_dir / dev, exp.eval_max_examples)
            for rule in RULE_BASELINES[task]:
                preds: list[list] = [rule_spans(rule, r["text"]) for r in records]
                results.append({
                    "task": task, "dataset": Path(dev).stem, "arm": rule, "config": "rule", "n": 0, "seed": 0,
                    "pretrain_seed": 0, **scored(task, records, preds), "finetune": {},
                })  # fmt: skip
    return results


def run_experiment(
    exp: ExperimentConfig,
    data_dir: Path | None = None,
    work_dir: Path | None = None,
    report_dir: Path = Path("reports/experiment"),
    deadline_seconds: float | None = None,
) -> list[dict]:
    from model_build.tokenizer import load_tokenizer

    t_start = time.monotonic()
    deadline = None if deadline_seconds is None else t_start + deadline_seconds
    cfg = get_config(exp.config)
    # The runs' worker processes split words as written (`textfeatures.words`' default).
    for name in filter(None, (exp.config, exp.ablation_config)):
        if get_config(name).words != "as-written":
            raise ValueError(f"the experiment runs words as written; config {name!r} does not")
    data_dir = data_dir or default_data_dir()
    exp_dir = (work_dir or Path("build") / "experiment") / "experiment"
    data, tokenizer = prepare_data(cfg, data_dir, exp_dir)
    t_data = time.monotonic() - t_start
    vocab = load_tokenizer(tokenizer).get_vocab_size()

    jobs = pretrain_jobs(exp, data, vocab, exp_dir)
    for _ in _run_pool(_pretrain_run, jobs, exp.workers, None, "pretraining runs"):
        pass  # a finished pretraining resumes as a no-op; its summary is read back below
    pretrained: dict[tuple[str, str, int], dict] = {}
    print(f"data {t_data:.0f} s, pretraining done {time.monotonic() - t_start:.0f} s in", flush=True)
    for job in jobs:
        summary = json.loads((Path(job["out_dir"]) / "pretrain.json").read_text())
        summary.pop("history", None)
        pretrained[(job["config"], job["arm"], job["pretrain_seed"])] = {**summary, "out_dir": job["out_dir"]}
    t_pretrain = time.monotonic() - t_start - t_data

    runs_dir = exp_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    planned = finetune_jobs(exp, pretrained, tokenizer, data_dir, runs_dir)
    results, todo = [], []
    for job in planned:  # each saved run read once: reused when its fingerprint matches, else redone
        saved = _saved(Path(job["out"]), job["fingerprint"])
        if saved is None:
            todo.append(job)
        else:
            results.append(saved)
    print(f"experiment: {len(planned)} finetuning runs, {len(planned) - len(todo)} already done")
    for result in _run_pool(_finetune_run, todo, exp.workers, deadline, "finetune+eval runs"):
        results.append(result)
        print(
            f"  {result['dataset']} {result['config']} {result['arm']} p{result['pretrain_seed']} "
            f"n={result['n']} s{result['seed']}: {result['headline']:.1f} ({result['seconds']} s, "
            f"{time.monotonic() - t_start:.0f} s in)",
            flush=True,
        )
    timings = {
        "data_seconds": round(t_data, 1),
        "pretrain_seconds": round(t_pretrain, 1),
        "total_seconds": round(time.monotonic() - t_start, 1),
        "planned_finetune_runs": len(planned),
        "device": str(_device()),
        "cpu_count": os.cpu_count(),
        "experiment": as_dict(exp),
    }
    write_text_atomically(exp_dir / "timings.json", json.dumps(timings))
    return report_from_saved(exp, data_dir, exp_dir.parent, report_dir)


def report_from_saved(exp: ExperimentConfig, data_dir: Path, work_dir: Path, report_dir: Path) -> list[dict]:
    """Rewrite the report from the saved runs of `exp` under `work_dir` (no model is run; e.g. runs
    made on a lent GPU machine and copied back)."""
    from model_build.experiment_report import write_report

    exp_dir = work_dir / "experiment"
    configs = {c for c in (exp.config, exp.ablation_config) if c}
    pretrained = {}
    for path in sorted(exp_dir.glob("pretrain-*/pretrain.json")):
        summary = json.loads(path.read_text())
        summary.pop("history", None)
        config, arm, seed = _pretrain_key(path.parent.name, configs)
        if config is not None and seed in exp.pretrain_seeds:
            pretrained[(config, arm, seed)] = {**summary, "out_dir": str(path.parent)}
    results = [
        r for path in sorted((exp_dir / "runs").glob("*.json"))
        if (r := json.loads(path.read_text()))["config"] in configs and r["pretrain_seed"] in exp.pretrain_seeds
    ]  # fmt: skip
    results += rule_results(exp, data_dir)
    timings = json.loads((exp_dir / "timings.json").read_text())
    write_report(results, exp, pretrained, timings, report_dir)
    return results


def _pretrain_key(name: str, configs: set[str]) -> tuple[str | None, str, int]:
    """(config, arm, seed) of a `pretrain-<config>-<arm>-p<seed>` directory of one of `configs`."""
    for config in configs:
        for arm in ARMS:
            prefix = f"pretrain-{config}-{arm}-p"
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                return config, arm, int(name[len(prefix) :])
    return None, "", -1
