"""`reports/experiment/`: the experiment's runs as one table, paired differences with 95%
bootstrap intervals, learning curves with bands (report.md, results.json, learning_curves.png).

Intervals resample dev documents and runs together: each bootstrap round draws the dev documents
with replacement (the same draw for every arm) and the runs with replacement (for a difference,
the same (pretraining seed, finetuning seed) pairs for both arms), and recomputes the headline
metric from the summed span counts, so an interval covers both the test-set and the seed spread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model_build.atomic import write_text_atomically
from model_build.config import as_dict
from model_build.experiment import ARMS, ExperimentConfig

DIFFERENCES = (("aligned-transfer", "mlm"), ("aligned", "mlm"), ("aligned", "aligned-transfer"))
METRIC = {"acronyms": "sdu-macro-f1", "concepts": "micro-f1"}


def headline_from_counts(task: str, counts: np.ndarray) -> np.ndarray:
    """The headline metric (model_build.evaluate.headline) from `[..., label, (tp, fp, fn)]` counts."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    if task == "concepts":  # micro: pooled over labels
        tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, 100.0 * tp / (tp + fp), 100.0)
        r = np.where(tp + fn > 0, 100.0 * tp / (tp + fn), 100.0)
        if task == "acronyms":  # SDU macro: mean P and mean R over labels, then their F1
            p, r = p.mean(-1), r.mean(-1)
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def _stack(runs: list[dict]) -> np.ndarray:
    return np.asarray([r["counts"] for r in runs], dtype=np.float64)  # runs x documents x labels x 3


def bootstrap(
    task: str, arms: list[np.ndarray], rounds: int, seed: int = 0
) -> list[tuple[float, float, float]]:
    """(point, low, high) of the mean headline of each stack (runs x docs x labels x 3); with two
    stacks of paired runs, a third entry for the difference first minus second."""
    rng = np.random.default_rng(seed)
    n_runs, n_docs = arms[0].shape[:2]
    flat = [a.reshape(n_runs, n_docs, -1) for a in arms]
    shape = arms[0].shape[2:]

    def mean_headline(x: np.ndarray, weights: np.ndarray, runs: np.ndarray) -> float:
        summed = np.einsum("d,rdk->rk", weights, x[runs]).reshape(len(runs), *shape)
        return float(headline_from_counts(task, summed).mean())

    ones, all_runs = np.ones(n_docs), np.arange(n_runs)
    points = [mean_headline(x, ones, all_runs) for x in flat]
    draws = np.empty((rounds, len(flat)))
    for b in range(rounds):
        weights = np.bincount(rng.integers(0, n_docs, n_docs), minlength=n_docs).astype(np.float64)
        runs = np.asarray(rng.integers(0, n_runs, n_runs))
        draws[b] = [mean_headline(x, weights, runs) for x in flat]
    out = [(points[i], *np.percentile(draws[:, i], [2.5, 97.5])) for i in range(len(flat))]
    if len(flat) == 2:
        diff = draws[:, 0] - draws[:, 1]
        out.append((points[0] - points[1], *np.percentile(diff, [2.5, 97.5])))
    return [(round(p, 2), round(float(lo), 2), round(float(hi), 2)) for p, lo, hi in out]


def result_rows(results: list[dict]) -> list[dict]:
    """{task, dataset, recipe, config, n, seed, pretrain_seed, metric, value} rows (percent)."""
    rows = []
    for r in results:
        base = {"task": r["task"], "dataset": r["dataset"], "recipe": r["arm"], "config": r["config"],
                "n": r["n"], "seed": r["seed"], "pretrain_seed": r["pretrain_seed"]}  # fmt: skip
        m = r["metrics"]
        figures = {
            "micro-precision": m["micro"]["p"],
            "micro-recall": m["micro"]["r"],
            "micro-f1": m["micro"]["f1"],
        }
        if r["task"] == "acronyms":
            figures.update({"sdu-macro-precision": m["sdu_macro"]["p"], "sdu-macro-recall": m["sdu_macro"]["r"],
                            "sdu-macro-f1": m["sdu_macro"]["f1"]})  # fmt: skip
        for label, v in m["labels"].items():
            figures[f"{label}-f1"] = v["f1"]
        rows += [{**base, "metric": k, "value": round(float(v), 2)} for k, v in figures.items()]
    return rows


def _cell(ci: tuple[float, float, float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    point, lo, hi = ci
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"{fmt.format(point)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _groups(results: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["dataset"], r["config"], r["arm"], r["n"]), []).append(r)
    return groups


def summarise(results: list[dict], exp: ExperimentConfig) -> dict[str, Any]:
    """Every mean and difference with its interval: {"arms": {key: ci}, "diffs": {key: ci}}."""
    groups = _groups(results)
    arms: dict[tuple, tuple] = {}
    diffs: dict[tuple, tuple] = {}
    for (task, dataset, config, arm, n), runs in groups.items():
        arms[(task, dataset, config, arm, n)] = bootstrap(task, [_stack(runs)], exp.bootstrap)[0]
    for task, dataset, config, arm, n in list(groups):
        for a, b in DIFFERENCES:
            if arm != a or n == 0 or (task, dataset, config, b, n) not in groups:
                continue
            by_pair = {(r["pretrain_seed"], r["seed"]): r for r in groups[(task, dataset, config, b, n)]}
            pairs = [(r, by_pair[(r["pretrain_seed"], r["seed"])]) for r in groups[(task, dataset, config, a, n)]
                     if (r["pretrain_seed"], r["seed"]) in by_pair]  # fmt: skip
            if pairs:
                ci = bootstrap(
                    task, [_stack([p[0] for p in pairs]), _stack([p[1] for p in pairs])], exp.bootstrap
                )
                diffs[(task, dataset, config, f"{a} − {b}", n)] = (*ci[2], len(pairs))
    return {"arms": arms, "diffs": diffs}


def write_report(
    results: list[dict], exp: ExperimentConfig, pretrained: dict, timings: dict, report_dir: Path
) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(report_dir / "results.json", json.dumps(result_rows(results), indent=1))
    summary = summarise(results, exp)
    arms, diffs = summary["arms"], summary["diffs"]
    datasets = sorted({(r["task"], r["dataset"]) for r in results}, key=lambda d: (d[0] != "acronyms", d[1]))
    configs = [c for c in (exp.config, exp.ablation_config) if c]
    lines = [
        "# Aligned pretraining against MLM, at equal compute",
        "",
        "Regenerate: `python -m model_build experiment` (preset `gpu` where a GPU is found, else `cpu`;",
        "`--preset` chooses). Headline metric on dev: acronyms = official SDU macro F1, concepts =",
        "exact-span micro F1 (percent). Cells: mean over pretraining seeds x finetuning seeds",
        "[95% bootstrap interval over dev documents and runs]. Differences are paired (the same N",
        "examples, finetuning seed and pretraining seed). N=0 is zero-shot (aligned arms only).",
        "",
        "Arms: `mlm` = MLM on the external corpora (FOLDOC, Jargon, wikitext); `aligned-transfer` = MLM +",
        "link-span and acronym objectives on the same corpora (same batches and masks as `mlm`; no text",
        "of any labelled file, tokenizer included); `aligned` = the same objectives plus the unlabelled",
        "text of the labelled training files, weak-labelled (in-domain self-training).",
        "",
    ]
    for config in configs:
        sizes = exp.sizes if config == exp.config else exp.ablation_sizes
        title = (
            "served architecture (input features on)"
            if config == exp.config
            else "without the input features"
        )
        lines += [f"## `{config}`: {title}", "",
                  "| task | dataset | arm | " + " | ".join(f"N={n}" for n in sizes) + " |",
                  "|---|---|---|" + "---|" * len(sizes)]  # fmt: skip
        for task, dataset in datasets:
            for arm in ARMS:
                cells = [_cell(arms.get((task, dataset, config, arm, n))) for n in sizes]
                if any(cells):
                    lines.append(f"| {task} | {dataset} | {arm} | " + " | ".join(cells) + " |")
            for a, b in DIFFERENCES:
                cells = [_cell(diffs[k][:3], signed=True) if (k := (task, dataset, config, f"{a} − {b}", n)) in diffs
                         else "" for n in sizes]  # fmt: skip
                if any(cells):
                    lines.append(f"| {task} | {dataset} | **{a} − {b}** | " + " | ".join(cells) + " |")
            for r in results:
                if r["config"] == "rule" and (r["task"], r["dataset"]) == (task, dataset):
                    lines.append(f"| {task} | {dataset} | {r['arm']} (no training) | "
                                 + " | ".join(f"{r['headline']:.1f}" for _ in sizes) + " |")  # fmt: skip
        lines.append("")
    lines += ["## Targets", ""] + target_lines(summary, exp) + [""]
    lines += ["## Finetuning: did the runs converge?", "",
              "Early stopping on the held-out slice of the N examples (never dev), the same maximum",
              "budget for every arm. A run whose best epoch is its last was still improving.", ""]  # fmt: skip
    lines += convergence_lines(results) + [""]
    lines += ["## Pretraining (equal compute)", "",
              "| architecture | arm | seed | steps | batch x window | tokens seen | masked | held-out MLM loss | tokens/s | device |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (config, arm, seed), s in sorted(pretrained.items()):
        lines.append(f"| {config} | {arm} | {seed} | {s['steps']} | {s['batch_size']} x {s['seq_len']} | "
                     f"{s['tokens_seen']:,} | {s['masked_tokens']:,} | {s['valid_losses'].get('loss_mlm', float('nan')):.3f} | "
                     f"{s['tokens_per_second']:,} | {s['device']} |")  # fmt: skip
    ran = sum(1 for r in results if r["config"] != "rule")
    lines += ["", "## How this run was made", "",
              f"- {ran} of {timings['planned_finetune_runs']} planned finetuning runs finished; data "
              f"{timings['data_seconds']} s, pretraining {timings['pretrain_seconds']} s, total "
              f"{timings['total_seconds']} s on {timings['device']} with {timings['cpu_count']} CPU cores.",
              "- An empty cell was not run: a deadline (a lent GPU's minutes) stops new runs, which start",
              "  in the order N=200 (both architectures), N=0, N=50, N=1000.",
              "- On a GPU, pretraining runs under bf16 autocast; finetuning and evaluation in fp32.",
              "- N=1000 is every example of a training file with fewer (inspec-train 1,000, scienceie-train 350).",
              "", "```json", json.dumps(timings.get("experiment", as_dict(exp))), "```", ""]  # fmt: skip
    write_text_atomically(report_dir / "report.md", "\n".join(lines))
    plot_curves(summary, exp, datasets, results, report_dir / "learning_curves.png")


def target_lines(summary: dict, exp: ExperimentConfig) -> list[str]:
    """The issue's targets, each said plainly as met or missed (served architecture, N=200)."""
    lines = []
    for task, dataset in (("acronyms", "sdu21-dev"), ("concepts", "inspec-dev")):
        diff = summary["diffs"].get((task, dataset, exp.config, "aligned-transfer − mlm", 200))
        if diff is None:
            lines.append(f"- {task} / {dataset}: aligned-transfer − mlm at N=200 not measured in this run.")
        else:
            met = diff[0] >= 5 and diff[1] > 0
            lines.append(f"- {task} / {dataset}: aligned-transfer − mlm at N=200 = {_cell(diff[:3], True)} "
                         f"({diff[3]} pairs): target +5 with the interval above 0 **{'met' if met else 'missed'}**.")  # fmt: skip
    for task, dataset, target in (("acronyms", "sdu21-dev", 92.0), ("concepts", "inspec-dev", 40.0)):
        best = summary["arms"].get((task, dataset, exp.config, "aligned", 200))
        if best is not None:
            lines.append(f"- {task} / {dataset}: `aligned` at N=200 = {_cell(best)}: target {target:.0f} "
                         f"**{'met' if best[0] >= target else 'missed'}**.")  # fmt: skip
    return lines


def _best_epoch(finetuned: dict) -> int:
    """The epoch a finetuning run kept (epochs count from 1; 0 is the untrained model, a candidate
    after aligned pretraining); runs saved before `best_epoch` was recorded kept the epoch of the
    highest (uncalibrated) selection score."""
    if "best_epoch" in finetuned:
        return int(finetuned["best_epoch"])
    history = finetuned["history"]
    return 1 + max(range(len(history)), key=lambda e: history[e]["selection_score"])


def convergence_lines(results: list[dict]) -> list[str]:
    runs: dict[tuple, list[dict]] = {}
    for r in results:
        if r.get("finetune", {}).get("history"):
            runs.setdefault((r["dataset"], r["config"], r["arm"], r["n"]), []).append(r["finetune"])
    lines = []
    for (dataset, config, arm, n), done in sorted(runs.items()):
        at_last = sum(1 for f in done if _best_epoch(f) == f["history"][-1]["epoch"])
        untrained = sum(1 for f in done if _best_epoch(f) == 0)
        steps = sorted(f["steps"] for f in done)
        lines.append(f"- {dataset} / {config} / {arm} / N={n}: {steps[0]}-{steps[-1]} steps; best at the last "
                     f"epoch in {at_last} of {len(done)} runs; untrained model kept in {untrained}")  # fmt: skip
    return lines or ["- (no finetuning history recorded)"]


def plot_curves(
    summary: dict, exp: ExperimentConfig, datasets: list[tuple[str, str]], results: list[dict], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    rows = max(1, -(-len(datasets) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 4 * rows), squeeze=False)
    colours = {"mlm": "tab:grey", "aligned-transfer": "tab:blue", "aligned": "tab:green"}
    for ax, (task, dataset) in zip(axes.flat, datasets, strict=False):
        for config, style in ((exp.config, "-"), (exp.ablation_config, ":")):
            for arm, colour in colours.items():
                pts = sorted((n, ci) for (t, d, c, a, n), ci in summary["arms"].items()
                             if (t, d, c, a) == (task, dataset, config, arm))  # fmt: skip
                if not pts:
                    continue
                xs = [n for n, _ in pts]
                ax.plot(xs, [ci[0] for _, ci in pts], style, marker="o", color=colour,
                        label=f"{arm}" + ("" if config == exp.config else f" ({config})"))  # fmt: skip
                ax.fill_between(
                    xs, [ci[1] for _, ci in pts], [ci[2] for _, ci in pts], color=colour, alpha=0.15
                )
        for r in results:
            if r["config"] == "rule" and (r["task"], r["dataset"]) == (task, dataset):
                ax.axhline(r["headline"], color="black", linestyle="--", linewidth=0.8, label=r["arm"])
        ax.set_xscale("symlog", linthresh=50)
        ax.set_title(f"{task} / {dataset}")
        ax.set_xlabel("finetuning examples N")
        ax.set_ylabel(METRIC[task] + " (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
