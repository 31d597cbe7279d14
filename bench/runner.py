"""The benchmark run: four variants, the same scenarios, one after the other on the same machine.

Variants (same weights, same API, one server process at a time, the load generator in this
process):

- `onnx-int8`: the service (`python -m service`) serving `model.int8.onnx`;
- `onnx-fp32`: the same service serving `model.onnx` (`ALIGNTAG_ONNX_FILE=model.onnx`);
- `torch-eager`: the service's app with the PyTorch-eager runtime (`bench.torch_server`);
- `naive`: per-request PyTorch, no batching, no quantization (`bench.naive_server`).

Scenarios (all on `POST /tag` unless named otherwise; see docs/bench.md):

- `sequential`: one connection, one single-sentence request at a time;
- `sequential-acronyms`: the same on `POST /acronyms`;
- `closed`: `concurrency` connections each sending its next request when the last one answered
  (1, 4, 16, 64); the best of them is the variant's *saturation* throughput;
- `closed-wrk` (ours only): the same closed loops driven by Debian's `wrk` (`bench/wrk.py`), when
  it is installed: a cross-check of the figures above with a client written in C;
- `capacity`: open-loop probes (bisection between 0 and saturation) for the highest rate whose p99
  stays under `CAPACITY_P99_MS`: the variant's *capacity*;
- `open-50`, `open-80`: Poisson arrivals at 50% and 80% of that capacity, latency from the
  intended send time;
- `batch16`: 16 sentences per request, closed loop at concurrency 4 (texts/s = 16 x req/s);
- `long-doc`: ~5,000-word documents (windowed), one at a time.

After the scenarios, each ONNX variant answers every dev text once and the answers are scored
(`bench/quality.py`): quality as served, next to the build's raw-span figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen, wrk
from bench.inputs import long_documents, sentence_pool
from bench.loadgen import Run, Target, percentile
from bench.quality import served_quality
from bench.report import OURS
from bench.servers import Server, proc_status, start

CONCURRENCIES = (1, 4, 16, 64)
# Capacity: the highest open-loop rate whose p99 stays under this (issue 16); found by bisection
# between 0 and the closed-loop saturation, to within saturation / 2**CAPACITY_STEPS.
CAPACITY_P99_MS = 50.0
CAPACITY_STEPS = 5
VARIANTS = ("onnx-int8", "onnx-fp32", "torch-eager", "naive")


@dataclass(frozen=True)
class Plan:
    """How long each scenario runs; `quick` is the ~2-minute smoke version."""

    warmup_s: float = 1.5
    sequential_n: int = 400
    acronyms_n: int = 200
    closed_s: float = 5.0
    open_s: float = 8.0
    probe_s: float = 3.0  # each open-loop probe of the capacity search
    batch_s: float = 5.0
    long_n: int = 6
    long_max_s: float = 20.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(warmup_s=0.5, sequential_n=120, acronyms_n=60, closed_s=2.0, open_s=3.0, probe_s=1.5,
                   batch_s=2.0, long_n=2, long_max_s=8.0)  # fmt: skip


def variant_command(variant: str, build_dir: Path) -> tuple[list[str], dict[str, str]]:
    if variant == "onnx-int8":
        return ["-m", "service"], {"ALIGNTAG_ONNX_FILE": "model.int8.onnx"}
    if variant == "onnx-fp32":
        return ["-m", "service"], {"ALIGNTAG_ONNX_FILE": "model.onnx"}
    if variant == "torch-eager":
        return ["-m", "bench.torch_server", "--build-dir", str(build_dir)], {}
    if variant == "naive":
        return ["-m", "bench.naive_server", "--build-dir", str(build_dir)], {}
    raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def row(scenario: str, variant: str, concurrency: int, run: Run, texts_per_request: int = 1) -> dict:
    ok = run.ok
    ms = [t * 1000 for t in ok]
    result = {
        "scenario": scenario,
        "variant": variant,
        "concurrency": concurrency,
        "requests": len(run.samples),
        "errors": run.errors,
        "p50_ms": round(percentile(ms, 50), 2) if ms else None,
        "p90_ms": round(percentile(ms, 90), 2) if ms else None,
        "p99_ms": round(percentile(ms, 99), 2) if ms else None,
        "rps": round(run.rps, 1),
        "texts_per_s": round(run.rps * texts_per_request, 1),
        "load_avg_1m": load_avg(),
    }
    if run.offered_rate is not None:
        result["offered_rps"] = round(run.offered_rate, 1)
    return result


def bodies(texts: list[str]) -> list[bytes]:
    return [json.dumps({"text": t}).encode() for t in texts]


def batch_bodies(texts: list[str], size: int = 16) -> list[bytes]:
    return [
        json.dumps({"texts": texts[i : i + size]}).encode() for i in range(0, len(texts) - size + 1, size)
    ]


def run_variant(
    variant: str,
    server: Server,
    plan: Plan,
    pool: list[str],
    docs: list[str],
    say: Callable[[str], None],
) -> tuple[list[dict], dict]:
    """Every scenario against one running server; returns (rows, facts about the server)."""
    loadgen.event_loop_policy()
    port = server.port
    tag = Target(port, "/tag", bodies(pool))
    rows: list[dict] = []

    def record(r: dict) -> None:
        rows.append(r)
        say(
            f"  {r['scenario']:<20} c={r['concurrency']:<3} n={r['requests']:<6} err={r['errors']:<4} "
            f"p50={r['p50_ms']} p99={r['p99_ms']} ms  {r['rps']} req/s  (load {r['load_avg_1m']})"
        )

    facts: dict = {"rss_mb_ready": round(proc_status(server.pid)["VmRSS"] / 1024, 1)}
    asyncio.run(loadgen.closed_loop(tag, 4, plan.warmup_s))  # warm caches, allocator, thread pools

    record(row("sequential", variant, 1, asyncio.run(loadgen.sequential(tag, plan.sequential_n))))
    acr = Target(port, "/acronyms", bodies(pool))
    record(row("sequential-acronyms", variant, 1, asyncio.run(loadgen.sequential(acr, plan.acronyms_n))))

    saturation = 0.0
    for c in CONCURRENCIES:
        r = row("closed", variant, c, asyncio.run(loadgen.closed_loop(tag, c, plan.closed_s)))
        record(r)
        saturation = max(saturation, r["rps"])
    facts["saturation_rps"] = saturation

    if variant == OURS and wrk.available():
        for c in CONCURRENCIES:
            record(wrk_row(variant, c, wrk.closed_loop(port, "/tag", tag.bodies, c, plan.closed_s)))
    elif variant == OURS:
        say("  closed-wrk: skipped, `wrk` not found (Debian package wrk; make debian-deps)")

    capacity, probes = find_capacity(tag, saturation, plan.probe_s, say)
    facts["capacity_rps"], facts["capacity_probes"] = capacity, probes
    for share in (50, 80):
        rate = max(1.0, capacity * share / 100)
        run = asyncio.run(loadgen.open_loop(tag, rate, plan.open_s))
        record(row(f"open-{share}", variant, run.connections, run))

    batch = Target(port, "/tag", batch_bodies(pool))
    record(row("batch16", variant, 4, asyncio.run(loadgen.closed_loop(batch, 4, plan.batch_s)), 16))

    long = Target(port, "/tag", bodies(docs))
    run = Run()
    started = time.perf_counter()
    while len(run.samples) < plan.long_n and time.perf_counter() - started < plan.long_max_s:
        one = asyncio.run(loadgen.sequential(long, 1, timeout=120))
        run.samples.extend(one.samples)
        run.seconds += one.seconds
    record(row("long-doc", variant, 1, run))

    if variant.startswith("onnx-"):  # the served variants: what their clients get, on the dev sets
        facts["quality"] = served_quality(port)
        for q in facts["quality"]:
            say(f"  quality {q['dataset']:<12} {q['output']:<14} headline {q['headline']}")

    status = proc_status(server.pid)
    facts["rss_mb_end"] = round(status["VmRSS"] / 1024, 1)
    facts["rss_mb_peak"] = round(status["VmHWM"] / 1024, 1)
    return rows, facts


def find_capacity(
    target: Target, saturation: float, seconds: float, say: Callable[[str], None]
) -> tuple[float, list[dict]]:
    """The highest open-loop rate (req/s) whose p99 stays under CAPACITY_P99_MS with no errors:
    bisection between 0 (passes) and the closed-loop saturation; each probe runs `seconds`."""
    probes: list[dict] = []

    def passes(rate: float) -> bool:
        run = asyncio.run(loadgen.open_loop(target, rate, seconds))
        ms = [t * 1000 for t in run.ok]
        p99 = percentile(ms, 99) if ms else float("inf")
        ok = run.errors == 0 and p99 < CAPACITY_P99_MS
        probes.append({"rate": round(rate, 1), "p50_ms": round(percentile(ms, 50), 2) if ms else None,
                       "p99_ms": round(p99, 2), "errors": run.errors, "passes": ok})  # fmt: skip
        say(
            f"  capacity probe {rate:7.1f} req/s: p99 {p99:.1f} ms, errors {run.errors} -> {'pass' if ok else 'fail'}"
        )
        return ok

    if saturation <= 0:
        return 0.0, probes
    if passes(saturation):
        return saturation, probes
    low, high = 0.0, saturation
    for _ in range(CAPACITY_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if passes(middle) else (low, middle)
    return round(low, 1), probes


def wrk_row(variant: str, concurrency: int, figures: dict[str, float]) -> dict:
    return {
        "scenario": "closed-wrk",
        "variant": variant,
        "concurrency": concurrency,
        "requests": int(figures["requests"]),
        "errors": int(figures["non_2xx"] + figures["socket_errors"]),
        "p50_ms": figures.get("p50_ms"),
        "p90_ms": figures.get("p90_ms"),
        "p99_ms": figures.get("p99_ms"),
        "rps": round(figures["ok_rps"], 1),  # 2xx answers a second, as the loadgen's rows
        "texts_per_s": round(figures["ok_rps"], 1),
        "load_avg_1m": load_avg(),
    }


def speed_probe(artifacts_dir: Path) -> float:
    """Milliseconds of one fixed int8 forward pass (16 x 45 tokens, 2 threads; median of 30), in
    this process with no server running: the same work every time. The VM this was built on runs
    it in 17.7-18.9 ms most of the time and 27-31 ms for minutes at a time with nothing else in
    the VM; a probe before and after each variant shows which figures came from a slow spell."""
    import numpy as np
    import onnxruntime as ort

    from service.artifacts import find_version_dir

    served = find_version_dir(artifacts_dir, "concepts", None)  # the version the service would serve
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        str(served / "model.int8.onnx"), options, providers=["CPUExecutionProvider"]
    )
    ids = np.random.default_rng(0).integers(3, 1000, (16, 45)).astype(np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    inputs = {i.name: i for i in session.get_inputs()}
    if "features" in inputs:  # a model that reads token features (docs/contracts.md section 3)
        feed["features"] = np.ones((*ids.shape, inputs["features"].shape[-1]), dtype=np.int64)
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return round(sorted(times)[len(times) // 2] * 1000, 2)


def run_all(
    artifacts_dir: Path,
    build_dir: Path,
    plan: Plan,
    log_dir: Path,
    variants: tuple[str, ...] = VARIANTS,
    say: Callable[[str], None] = print,
) -> tuple[list[dict], dict[str, dict]]:
    pool = sentence_pool(512)
    docs = long_documents(4)
    rows: list[dict] = []
    facts: dict[str, dict] = {}
    probe = speed_probe(artifacts_dir)
    for variant in variants:
        args, env = variant_command(variant, build_dir)
        say(f"{variant}: starting (load average {load_avg()}, speed probe {probe} ms)")
        t0 = time.perf_counter()
        server = start(variant, args, artifacts_dir, log_dir, env)
        startup = time.perf_counter() - t0
        try:
            variant_rows, variant_facts = run_variant(variant, server, plan, pool, docs, say)
        finally:
            code = server.stop()
        variant_facts["startup_s"] = round(startup, 1)
        variant_facts["exit_code"] = code
        variant_facts["probe_ms_before"], probe = probe, speed_probe(artifacts_dir)
        variant_facts["probe_ms_after"] = probe
        rows.extend(variant_rows)
        facts[variant] = variant_facts
        say(f"{variant}: done, RSS {variant_facts['rss_mb_end']} MB, exit {code}")
    return rows, facts
