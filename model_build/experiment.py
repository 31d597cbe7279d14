"""The paper's comparison on public data: `aligned` vs `mlm` pretraining, few-example finetuning.

Both recipes are pretrained with the same data, steps, batch and sequence length; then each task
head is finetuned on N examples (N in `sizes`, several seeds) drawn from a labelled training file
and scored on its dev file. N=0 is zero-shot: the pretrained head as it is (only meaningful for
`aligned`; for `mlm` the head is untrained). The rule-based acronym matcher of the corpus stage is
a reference row. Every finished run is saved at once under `<work>/experiment/runs/`, so an
interrupted experiment resumes where it stopped; the report is rebuilt from the saved runs. A
saved run carries the fingerprint of its pretraining and settings and is redone when they change.

Outputs: `reports/experiment/report.md`, `results.json` (rows {task, dataset, recipe, config, n,
seed, metric, value}, values in percent) and `learning_curves.png`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model_build.atomic import write_text_atomically
from model_build.config import BuildConfig, as_dict, default_data_dir, fingerprint, get_config

RECIPES = ("aligned", "mlm")


@dataclass(frozen=True)
class ExperimentConfig:
    sizes: tuple[int, ...] = (0, 50, 200, 1000)
    seeds: tuple[int, ...] = (0, 1, 2)
    single_seed_from: int = 1000  # N at or above this runs one seed only
    # task -> list of (train file, dev file), relative to the data directory
    datasets: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {
            "acronyms": [("acronyms/sdu21-train.jsonl", "acronyms/sdu21-dev.jsonl")],
            "concepts": [("concepts/inspec-train.jsonl", "concepts/inspec-dev.jsonl")],
        }
    )
    # Few-example schedule: at least one pass over the N examples and at least `min_steps`
    # optimizer steps (small N gets more epochs). Sized so the whole grid fits a 2-core CPU.
    min_steps: int = 80
    epochs: int = 1
    batch_size: int = 16
    eval_max_examples: int | None = None
    workers: int = 2


def _run_one(job: dict) -> dict:
    """One finetune + dev evaluation, in a worker process with its own thread budget."""
    import torch

    torch.set_num_threads(job["threads"])
    from model_build.checkpoint import load_encoder
    from model_build.data import read_span_file
    from model_build.evaluate import dev_scores_torch
    from model_build.finetune import finetune
    from model_build.tokenizer import load_tokenizer

    t0 = time.perf_counter()
    encoder, _ = load_encoder(Path(job["checkpoint"]))
    data_dir = Path(job["data_dir"])
    dev = read_span_file(data_dir / job["dev"], job["eval_max_examples"])
    ft_cfg = job["finetune_cfg"]
    finetuned: dict[str, Any] = {}
    if job["n"] == 0:
        model = encoder
    else:
        train = read_span_file(data_dir / job["train"])
        model, summary = finetune(
            encoder,
            job["recipe"],
            job["task"],
            train,
            load_tokenizer(Path(job["tokenizer"])),
            ft_cfg,
            n_examples=job["n"],
        )
        # Kept so a reader can tell an undertrained run (selection score still rising at the
        # last epoch) from a converged one.
        finetuned = {
            k: summary[k]
            for k in ("steps", "history", "best_selection_score", "selection_examples", "label_offsets")
        }
    scores = dev_scores_torch(model, job["task"], load_tokenizer(Path(job["tokenizer"])), dev, ft_cfg.seq_len)
    result = {k: job[k] for k in ("task", "dataset", "recipe", "config", "n", "seed")}
    result["metrics"] = scores["metrics"]
    result["headline"] = scores["headline"]
    result["finetune"] = finetuned
    result["fingerprint"] = job["fingerprint"]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(job["out"])
    write_text_atomically(out, json.dumps(result))
    return result


def _saved_fingerprint(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def rule_rows(data_dir: Path, datasets: list[tuple[str, str]]) -> list[dict]:
    """Reference rows: the corpus stage's matcher alone, and with the all-caps rule."""
    from model_build.corpus.acronyms import score_file

    rows = []
    for _, dev in datasets:
        path = data_dir / dev
        if not path.exists():
            continue
        for recipe, caps_rule in (("rule-matcher", False), ("rule-matcher+caps", True)):
            metrics = score_file(path, caps_rule=caps_rule)
            rows.append(
                {
                    "task": "acronyms",
                    "dataset": Path(dev).stem,
                    "recipe": recipe,
                    "n": 0,
                    "seed": 0,
                    "metrics": metrics,
                    "headline": metrics["sdu_macro"]["f1"],
                }
            )
    return rows


def run_experiment(
    config_name: str,
    data_dir: Path | None = None,
    work_dir: Path | None = None,
    report_dir: Path = Path("reports/experiment"),
    exp: ExperimentConfig | None = None,
) -> list[dict]:
    from model_build.pipeline import Stages

    exp = exp or ExperimentConfig()
    cfg: BuildConfig = get_config(config_name)
    data_dir = data_dir or default_data_dir()
    work_dir = work_dir or Path("build") / config_name
    stages = Stages(cfg, data_dir, work_dir)
    corpus_dir, corpus_fp = stages.corpus()
    tokenizer_path, tokenizer_fp = stages.tokenizer(corpus_dir, corpus_fp)
    checkpoints = {}
    pretrain_summaries = {}
    for recipe in RECIPES:
        checkpoints[recipe], pretrain_summaries[recipe] = stages.pretrain(
            corpus_dir, tokenizer_path, tokenizer_fp, recipe
        )
    runs_dir = work_dir / "experiment" / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[dict[str, Any]] = []
    for task, pairs in exp.datasets.items():
        for train, dev in pairs:
            if not (data_dir / train).exists() or not (data_dir / dev).exists():
                continue
            for recipe in RECIPES:
                for n in exp.sizes:
                    seeds = exp.seeds[:1] if (n >= exp.single_seed_from or n == 0) else exp.seeds
                    for seed in seeds:
                        key = f"{task}-{Path(dev).stem}-{recipe}-n{n}-s{seed}"
                        ft_cfg = replace(
                            cfg.finetune,
                            seed=seed,
                            max_examples=n,
                            batch_size=exp.batch_size,
                            epochs=exp.epochs,
                            min_steps=exp.min_steps,
                        )
                        jobs.append(
                            {
                                "task": task,
                                "dataset": Path(dev).stem,
                                "recipe": recipe,
                                "config": cfg.name,
                                "n": n,
                                "seed": seed,
                                "train": train,
                                "dev": dev,
                                "data_dir": str(data_dir),
                                "checkpoint": str(checkpoints[recipe]),
                                "tokenizer": str(tokenizer_path),
                                "finetune_cfg": ft_cfg,
                                "eval_max_examples": exp.eval_max_examples,
                                "out": str(runs_dir / f"{key}.json"),
                                # A saved run counts only for the same pretraining and settings.
                                "fingerprint": fingerprint(
                                    tokenizer_fp,
                                    cfg.model,
                                    cfg.pretrain,
                                    recipe,
                                    ft_cfg,
                                    train,
                                    dev,
                                    exp.eval_max_examples,
                                ),
                                "threads": max(1, (os.cpu_count() or 1) // exp.workers),
                            }
                        )
    todo = [j for j in jobs if _saved_fingerprint(Path(j["out"])) != j["fingerprint"]]
    print(f"experiment {cfg.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already done")
    if todo:
        from tqdm import tqdm

        # Spawned, not forked: a fork of a process whose OpenMP threads have run can deadlock.
        with ProcessPoolExecutor(
            max_workers=exp.workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for result in tqdm(
                pool.map(_run_one, todo), total=len(todo), desc="finetune+eval runs", unit="run"
            ):
                tqdm.write(
                    f"  {result['task']} {result['recipe']} n={result['n']} seed={result['seed']}: "
                    f"{result['headline']:.1f} ({result['seconds']} s)"
                )
    results = [json.loads(Path(j["out"]).read_text()) for j in jobs]
    results += rule_rows(data_dir, exp.datasets.get("acronyms", []))
    write_report(results, cfg, exp, pretrain_summaries, report_dir)
    return results


def result_rows(results: list[dict], config_name: str) -> list[dict]:
    """Flatten to {task, dataset, recipe, config, n, seed, metric, value} rows (percent)."""
    rows = []
    for r in results:
        base = {
            "task": r["task"],
            "dataset": r["dataset"],
            "recipe": r["recipe"],
            "config": config_name,
            "n": r["n"],
            "seed": r["seed"],
        }
        m = r["metrics"]
        figures = {"micro_p": m["micro"]["p"], "micro_r": m["micro"]["r"], "micro_f1": m["micro"]["f1"]}
        if r["task"] == "acronyms":
            figures.update(
                {
                    "sdu_macro_p": m["sdu_macro"]["p"],
                    "sdu_macro_r": m["sdu_macro"]["r"],
                    "sdu_macro_f1": m["sdu_macro"]["f1"],
                }
            )
        for label, v in m["labels"].items():
            figures.update({f"{label}_p": v["p"], f"{label}_r": v["r"], f"{label}_f1": v["f1"]})
        rows += [{**base, "metric": k, "value": round(float(v), 2)} for k, v in figures.items()]
    return rows


def convergence_lines(results: list[dict]) -> list[str]:
    """Per task, recipe and N: optimizer steps, and how many runs peaked at their last epoch."""
    runs: dict[tuple, list[dict]] = {}
    for r in results:
        history = r.get("finetune", {}).get("history")
        if history:
            runs.setdefault((r["task"], r["dataset"], r["recipe"], r["n"]), []).append(r["finetune"])
    lines = []
    for (task, dataset, recipe, n), done in sorted(runs.items()):
        last_best = sum(
            1 for f in done if max(range(len(f["history"])), key=lambda e: f["history"][e]["selection_score"])
            == len(f["history"]) - 1
        )  # fmt: skip
        lines.append(
            f"- {task} / {dataset} / {recipe} / N={n}: {done[0]['steps']} steps, "
            f"{len(done[0]['history'])} epoch(s); best at the last epoch in {last_best} of {len(done)} runs"
        )
    return lines or ["- (no finetuning history recorded)"]


def write_report(
    results: list[dict], cfg: BuildConfig, exp: ExperimentConfig, pretrain_summaries: dict, report_dir: Path
) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(results, cfg.name)
    (report_dir / "results.json").write_text(json.dumps(rows, indent=1))
    groups: dict[tuple, list[float]] = {}
    for r in results:
        groups.setdefault((r["task"], r["dataset"], r["recipe"], r["n"]), []).append(r["headline"])
    lines = [
        f"# Aligned vs MLM-only pretraining, config `{cfg.name}`",
        "",
        "Headline metric: acronyms = official SDU macro F1 (exact spans); concepts = exact-span micro F1.",
        "Mean ± sample sd over seeds; one seed where no sd is shown. Model selection never sees dev: the",
        "best epoch, and then the head's per-label logit offsets (`finetune.calibrate_head`, from N=200 up,",
        "where the held-out slice has at least 20 examples), are chosen on a held-out slice of the N examples.",
        "",
        "| task | dataset | recipe | " + " | ".join(f"N={n}" for n in exp.sizes) + " |",
        "|---|---|---|" + "---|" * len(exp.sizes),
    ]
    for task, dataset in sorted({(k[0], k[1]) for k in groups}):
        for recipe in (*RECIPES, "rule-matcher", "rule-matcher+caps"):
            cells = []
            for n in exp.sizes:
                vals = groups.get((task, dataset, recipe, n))
                if not vals:
                    cells.append("")
                elif len(vals) == 1:
                    cells.append(f"{vals[0]:.1f}")
                else:
                    cells.append(f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}")
            if any(cells):
                lines.append(f"| {task} | {dataset} | {recipe} | " + " | ".join(cells) + " |")
    lines += ["", "## Aligned minus MLM (mean headline, points)", ""]
    for task, dataset in sorted({(k[0], k[1]) for k in groups}):
        diffs = []
        for n in exp.sizes:
            a, b = groups.get((task, dataset, "aligned", n)), groups.get((task, dataset, "mlm", n))
            if a and b:
                diffs.append(f"N={n}: {statistics.mean(a) - statistics.mean(b):+.1f}")
        lines.append(f"- {task} / {dataset}: " + ", ".join(diffs))
    lines += [
        "",
        "## Finetuning: did the runs converge?",
        "",
        "Selection score = headline on the held-out slice of the N examples, after each epoch. A run",
        "whose best epoch is its last was still improving when it stopped.",
        "",
    ]
    lines += convergence_lines(results)
    lines += ["", "## Pretraining", ""]
    for recipe, s in pretrain_summaries.items():
        lines.append(
            f"- `{recipe}`: {s['steps']} steps, objectives {s['objectives']}, {s['parameters']:,} parameters, "
            f"{s['tokens_per_second']} tokens/s on {s['device']}, held-out losses {s['valid_losses']}"
        )
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps({"experiment": as_dict(exp), "build": as_dict(cfg)}, indent=1)[:6000],
        "```",
        "",
    ]
    (report_dir / "report.md").write_text("\n".join(lines))
    plot_curves(groups, exp, report_dir / "learning_curves.png")


def plot_curves(groups: dict[tuple, list[float]], exp: ExperimentConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task, dataset in sorted({(k[0], k[1]) for k in groups}):
        for recipe, style in (("aligned", "-"), ("mlm", "--")):
            pts = [
                (n, statistics.mean(groups[(task, dataset, recipe, n)]))
                for n in exp.sizes
                if (task, dataset, recipe, n) in groups
            ]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    style,
                    marker="o",
                    label=f"{task}/{dataset} {recipe}",
                )
        rule = groups.get((task, dataset, "rule-matcher", 0))
        if rule:
            ax.axhline(
                statistics.mean(rule), color="grey", linestyle=":", label=f"{task}/{dataset} rule matcher"
            )
    ax.set_xscale("symlog", linthresh=50)
    ax.set_xlabel("finetuning examples N")
    ax.set_ylabel("F1 (%)")
    ax.set_title("Learning curves: aligned vs MLM-only pretraining")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
