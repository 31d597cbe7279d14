"""The benchmark's outputs: the printed table, `reports/bench/results.json` and `report.md`.

Also collects the build-stage figures the report carries next to the serving ones: corpus parsing
MB/s (`reports/bench/corpus.json`, written by `bench/corpus_bench.py`), pretraining tokens/s
(`<build dir>/pretrain-*/pretrain.json`) and the build's wall time and stages
(`<build dir>/build-history.jsonl`: the last full build and the last invocation).
"""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OURS = "onnx-int8"
COLUMNS = ("scenario", "variant", "concurrency", "requests", "errors", "p50_ms", "p90_ms", "p99_ms",
           "rps", "texts_per_s", "load_avg_1m")  # fmt: skip

# Targets of issues 8 and 16 (2-core machine, default model, ~30-word sentences). open80 is the
# open loop at 80% of the capacity (the highest open-loop rate whose p99 stays under 50 ms).
TARGETS = {
    "sequential_p50_ms": 4.0,
    "sequential_p99_ms": 8.0,
    "saturation_rps": 400.0,
    "batch16_texts_per_s": 1000.0,
    "open80_p99_ms": 25.0,
    "vs_torch_eager": 3.5,
    "vs_naive": 4.0,
    "rss_mb_ready": 250.0,
    "rss_mb": 250.0,
}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in body]
    return "\n".join(lines)


def find(rows: list[dict], scenario: str, variant: str, concurrency: int | None = None) -> dict | None:
    for r in rows:
        if (
            r["scenario"] == scenario
            and r["variant"] == variant
            and (concurrency is None or r["concurrency"] == concurrency)
        ):
            return r
    return None


def headline(rows: list[dict], facts: dict[str, dict], variant: str) -> dict[str, float | None]:
    """The figures compared across variants and against the targets."""
    seq, long, batch = (find(rows, s, variant) for s in ("sequential", "long-doc", "batch16"))
    open80 = find(rows, "open-80", variant)
    return {
        "sequential_p50_ms": seq["p50_ms"] if seq else None,
        "sequential_p99_ms": seq["p99_ms"] if seq else None,
        "saturation_rps": facts.get(variant, {}).get("saturation_rps"),
        "capacity_rps": facts.get(variant, {}).get("capacity_rps"),
        "batch16_texts_per_s": batch["texts_per_s"] if batch else None,
        "open80_p99_ms": open80["p99_ms"] if open80 else None,
        "long_doc_p50_ms": long["p50_ms"] if long else None,
        "rss_mb_ready": facts.get(variant, {}).get("rss_mb_ready"),
        "rss_mb": facts.get(variant, {}).get("rss_mb_end"),
    }


def ratios(rows: list[dict], facts: dict[str, dict]) -> list[list[Any]]:
    """ours / each, per figure: throughput ratios above 1 and latency ratios below 1 favour ours."""
    ours = headline(rows, facts, OURS)
    out = []
    for variant in facts:
        if variant == OURS:
            continue
        theirs = headline(rows, facts, variant)
        line: list[Any] = [f"{OURS} / {variant}"]
        for key in (
            "saturation_rps",
            "batch16_texts_per_s",
            "sequential_p50_ms",
            "long_doc_p50_ms",
            "rss_mb",
        ):
            a, b = ours.get(key), theirs.get(key)
            line.append(round(a / b, 2) if a is not None and b else None)
        out.append(line)
    return out


RATIO_HEADER = ["pair", "saturation req/s", "batch16 texts/s", "sequential p50", "long-doc p50", "RSS"]


def targets(rows: list[dict], facts: dict[str, dict]) -> list[list[Any]]:
    ours = headline(rows, facts, OURS)
    sat = ours["saturation_rps"]
    torch_sat = facts.get("torch-eager", {}).get("saturation_rps")
    naive_sat = facts.get("naive", {}).get("saturation_rps")
    measured = {
        **ours,
        "vs_torch_eager": round(sat / torch_sat, 2) if sat and torch_sat else None,
        "vs_naive": round(sat / naive_sat, 2) if sat and naive_sat else None,
    }
    lower_is_better = {"sequential_p50_ms", "sequential_p99_ms", "open80_p99_ms", "rss_mb_ready", "rss_mb"}
    out = []
    for key, target in TARGETS.items():
        value = measured.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            verdict = "not measured"
        elif key in lower_is_better:
            verdict = "met" if value <= target else "missed"
        else:
            verdict = "met" if value >= target else "missed"
        sign = "<=" if key in lower_is_better else ">="
        out.append([key, f"{sign} {target:g}", value, verdict])
    return out


BUILD_KEYS = ("config", "finished", "seconds", "stages")


def when(build: dict) -> str:
    return f", finished {build['finished']}" if build.get("finished") else ""


def build_figures(build_dir: Path, reports_dir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    corpus = reports_dir / "corpus.json"
    if not corpus.is_file():
        corpus = Path(__file__).resolve().parents[1] / "reports" / "bench" / "corpus.json"
    if corpus.is_file():
        data = json.loads(corpus.read_text())
        figures["corpus"] = {
            "source": str(corpus),
            "dictd_build_wall_s": data.get("dictd_build", {}).get("wall_s"),
            "mediawiki_mb_per_s": {
                f"{r['workers']} worker(s)": r["mb_per_s"]
                for r in data.get("mediawiki_throughput", {}).get("runs", [])
            },
        }
    pretrain = []
    for path in sorted(build_dir.glob("pretrain-*/pretrain.json")):
        data = json.loads(path.read_text())
        pretrain.append(
            {
                "source": str(path),
                "recipe": data.get("recipe"),
                "device": data.get("device"),
                "world_size": data.get("world_size"),
                "steps": data.get("steps"),
                "tokens_per_second": data.get("tokens_per_second"),
                "seconds_this_run": data.get("seconds_this_run"),
            }
        )
    if pretrain:
        figures["pretraining"] = pretrain
    history_file, last_file = build_dir / "build-history.jsonl", build_dir / "build-report.json"
    source, history = history_file, []
    if history_file.is_file():
        history = [json.loads(line) for line in history_file.read_text().splitlines() if line.strip()]
    elif last_file.is_file():  # a build from before the history existed
        source, history = last_file, [json.loads(last_file.read_text())]
    # A full build is an invocation in which every stage did work (a skipped stage takes ~0 s).
    full = [r for r in history if r.get("stages") and min(r["stages"].values()) >= 1.0]
    for key, report in (
        ("build", history[-1] if history else None),
        ("build_full", full[-1] if full else None),
    ):
        if report is not None:
            figures[key] = {"source": str(source), **{k: report.get(k) for k in BUILD_KEYS}}
    return figures


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write(
    out_dir: Path,
    rows: list[dict],
    facts: dict[str, dict],
    figures: dict[str, Any],
    meta: dict[str, Any],
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    results.write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "run.json").write_text(
        json.dumps({"meta": meta, "servers": facts, "build": figures}, indent=2, default=str) + "\n"
    )
    report = out_dir / "report.md"
    report.write_text(render_markdown(rows, facts, figures, meta))
    return results, report


def capacity_lines(rows: list[dict], facts: dict[str, dict]) -> list[str]:
    """Per variant: capacity (the highest open-loop rate with p99 < 50 ms), its probes, p50/p99 at
    50% and 80% of it; then ours' closed loops from bench.loadgen and from wrk side by side."""
    lines = [
        "Capacity: the highest open-loop (Poisson) rate whose p99 stays under 50 ms with no errors, "
        "found by bisection between 0 and the closed-loop saturation (`bench/runner.py`, "
        "`find_capacity`); `open-50` and `open-80` run at 50% and 80% of it.",
        "",
    ]
    body = []
    for variant, f in facts.items():
        open50, open80 = find(rows, "open-50", variant), find(rows, "open-80", variant)
        probes = ", ".join(f"{p['rate']:g} {'ok' if p['passes'] else 'no'} (p99 {p['p99_ms']})"
                           for p in f.get("capacity_probes", []))  # fmt: skip
        body.append([
            variant, f.get("saturation_rps"), f.get("capacity_rps"),
            f"{open50['p50_ms']} / {open50['p99_ms']}" if open50 else "-",
            f"{open80['p50_ms']} / {open80['p99_ms']}" if open80 else "-",
            probes or "-",
        ])  # fmt: skip
    lines.append(markdown_table(
        ["variant", "saturation req/s", "capacity req/s", "50%: p50 / p99 ms", "80%: p50 / p99 ms",
         "probes req/s (p99 ms)"], body))  # fmt: skip
    wrk_rows = [r for r in rows if r["scenario"] == "closed-wrk"]
    lines += [
        "",
        f"Closed loop, {OURS}: `bench.loadgen` (Python) and Debian `wrk` (C, `-t1`), same bodies. req/s "
        "counts 2xx answers for both; wrk's percentiles include refused (503) answers, the loadgen's "
        "only 200s.",
        "",
    ]
    if not wrk_rows:
        lines.append("`wrk` was not installed: no cross-check (Debian package `wrk`, `make debian-deps`).")
        return lines
    pairs = []
    for w in wrk_rows:
        ours = find(rows, "closed", w["variant"], w["concurrency"])
        pairs.append([
            w["concurrency"], ours["rps"] if ours else None, w["rps"],
            f"{ours['p50_ms']} / {ours['p99_ms']}" if ours else "-", f"{w['p50_ms']} / {w['p99_ms']}",
            f"{ours['errors'] if ours else '-'} / {w['errors']}",
        ])  # fmt: skip
    lines.append(markdown_table(
        ["connections", "loadgen req/s", "wrk req/s", "loadgen p50 / p99 ms", "wrk p50 / p99 ms",
         "errors loadgen / wrk"], pairs))  # fmt: skip
    return lines


def quality_rows(facts: dict[str, dict]) -> list[list[Any]]:
    return [
        [variant, q["dataset"], q["output"], q["texts"], q["headline"],
         "; ".join(f"{k} {v['p']} / {v['r']} / {v['f1']}" for k, v in q["labels"].items())]
        for variant, f in facts.items()
        for q in f.get("quality", [])
    ]  # fmt: skip


def render_markdown(rows: list[dict], facts: dict[str, dict], figures: dict[str, Any], meta: dict) -> str:
    parts = [
        "# aligntag benchmark",
        "",
        f"Generated by `python -m bench` on {meta['finished']} ({meta['mode']} plan); "
        f"{meta['machine']['cpus']} CPUs, Python {meta['machine']['python']}. Model: {meta['model']}. "
        "Server and load generator share the machine's cores; the 1-minute load average at the end of "
        "each measurement is in the `load_avg_1m` column (other jobs running on the machine show up "
        f"there). Load average at start {meta['load_avg_start']}, at end {meta['load_avg_end']}.",
        "",
        "Scenarios and variants: see docs/bench.md. Latencies in ms; `rps` counts successful requests.",
        "",
        "## Results",
        "",
        markdown_table(list(COLUMNS), [[r.get(c) for c in COLUMNS] for r in rows]),
        "",
        f"## Ratios ({OURS} / each)",
        "",
        "Throughput ratios above 1 and latency/RSS ratios below 1 favour ours.",
        "",
        markdown_table(RATIO_HEADER, ratios(rows, facts)),
        "",
        "## Capacity and the wrk cross-check",
        "",
        *capacity_lines(rows, facts),
        "",
        "## Targets (issues 8 and 16)",
        "",
        markdown_table(["figure", "target", "measured", "verdict"], targets(rows, facts)),
        "",
        "## Server processes",
        "",
        markdown_table(
            [
                "variant",
                "startup s",
                "RSS ready MB",
                "RSS end MB",
                "peak RSS MB",
                "saturation req/s",
                "exit",
                "speed probe ms before / after",
            ],
            [
                [
                    v,
                    f.get("startup_s"),
                    f.get("rss_mb_ready"),
                    f.get("rss_mb_end"),
                    f.get("rss_mb_peak"),
                    f.get("saturation_rps"),
                    f.get("exit_code"),
                    f"{f.get('probe_ms_before')} / {f.get('probe_ms_after')}",
                ]
                for v, f in facts.items()
            ],  # fmt: skip
        ),
        "",
        "RSS is the server process's VmRSS from /proc with both models (concepts and acronyms) loaded: "
        "`rss_mb_ready` just after start-up (models loaded and warmed up), `rss_mb` after every scenario "
        "(ONNX Runtime's memory arena keeps the peak of the largest batch: long documents). The speed "
        "probe is one fixed int8 forward pass (16 x 45 tokens, 2 threads, median of 30) run by the bench "
        "itself with no server up, before and after each variant: the same work every time, so a probe "
        "well above the others marks figures measured while the machine itself ran slow (rerun then).",
        "",
        "## Served output quality (dev sets)",
        "",
        "Every dev text posted once to each ONNX variant; answers scored with the build's scorer "
        "(exact spans, percent; acronyms: SDU macro F1, concepts: micro F1). `acronyms list` counts only "
        "the short forms and the long forms the service paired with them (`acronyms[].long_form`); "
        "`all spans` adds the unpaired `long_forms`. See bench/quality.py.",
        "",
        markdown_table(
            ["variant", "dataset", "output", "texts", "headline", "per label P / R / F1"], quality_rows(facts)
        ),
        "",
        "## Build stages",
        "",
    ]
    corpus = figures.get("corpus")
    if corpus:
        mbs = ", ".join(f"{k}: {v} MB/s" for k, v in corpus["mediawiki_mb_per_s"].items())
        parts.append(
            f"- Corpus parsing (`bench/corpus_bench.py`, {corpus['source']}): MediaWiki wikitext {mbs}; "
            f"FOLDOC + Jargon corpus build {corpus['dictd_build_wall_s']} s."
        )
    for p in figures.get("pretraining", []):
        parts.append(
            f"- Pretraining ({p['recipe']}, {p['device']} x{p['world_size']}, {p['steps']} steps, "
            f"{p['source']}): {p['tokens_per_second']} tokens/s ({p['seconds_this_run']} s in its last run)."
        )
    for key, what in (("build_full", "the last full build (every stage ran)"),
                      ("build", "the last invocation (stages skipped as done count ~0)")):  # fmt: skip
        build = figures.get(key)
        if build:
            stages = ", ".join(f"{k} {v} s" for k, v in (build.get("stages") or {}).items())
            parts.append(
                f"- `make build-model` (config {build['config']}{when(build)}, {build['source']}): "
                f"{build['seconds']} s wall for {what}: {stages}."
            )
    if not any(figures.get(k) for k in ("corpus", "pretraining", "build")):
        parts.append("- No build-stage figures found (run the build and bench/corpus_bench.py first).")
    parts.append("")
    return "\n".join(parts)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
