"""Overload and soak, against a service of its own (clean RSS figures), the load generator
(`bench.loadgen`) in a separate process.

Overload: measure saturation (closed loop, `UNREFUSED_CONNECTIONS` connections: no more than
admission's default floor `ALIGNTAG_MIN_IN_FLIGHT`, so the closed loop measures throughput, not
refusals), then offer 3x that rate as Poisson arrivals for `Mode.overload_seconds` (3 s in CI, 20 s
in full mode) with the service's queue at `ALIGNTAG_MAX_QUEUE=64` and admission at its defaults
(at most 16 in flight, as many as the throughput serves in 150 ms). Checks:
- every answer is 200 or 503 `overloaded` with `Retry-After` (no other status, no dropped
  connection), and there are refusals;
- refusals come before the work: their median is under a third of the accepted requests' median
  (the same burst, so no absolute time; before admission at the HTTP layer clean CI runs measured
  1.4-1.7 s against 2.7-3.4 s for 8-text requests, a ratio of about 0.5);
- RSS stays bounded (peak during the burst vs before);
- after the burst, the latency of sequential requests is back to normal.
The speed targets of issue 16 (median refusal <= 5 ms, p99 refusal <= 50 ms, accepted p99 <= 250 ms,
recovery <= 1 s) are in the report with a verdict, not asserted: the figures depend on what else
the machine runs, and the report gives its load average.

Soak: `Mode.soak_requests` (2,000 in CI, 50,000 in full mode) mixed requests (both endpoints,
single texts, 8-text batches, a 2,000-word document, non-ASCII, empty, `min_score`, and a share
of requests that must be refused with 422) at `UNREFUSED_CONNECTIONS` connections, in five equal chunks: zero
unexpected statuses, and RSS growth from the end of the first chunk to the end of the last < 10%.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rel_helpers
from rel_helpers import Mode, Report, Service, loadgen, loadgen_background, start_service

from bench.inputs import long_documents, sentence_pool
from bench.loadgen import Run, percentile
from service.settings import Settings

MAX_QUEUE = 64
# Closed loops (saturation, soak) use no more connections than admission's floor
# (ALIGNTAG_MIN_IN_FLIGHT): they are never refused, so they measure throughput and statuses.
UNREFUSED_CONNECTIONS: int = Settings.model_fields["min_in_flight"].default
# Issue 16's targets at 3x overload (ms, s); reported with a verdict, not asserted (module docstring).
TARGETS = {"median refusal ms": 5.0, "p99 refusal ms": 50.0, "accepted p99 ms": 250.0, "recovery s": 1.0}


@pytest.fixture(scope="module")
def load_service(rel_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(
        rel_artifacts_dir, tmp_path_factory.mktemp("load-service"), {"ALIGNTAG_MAX_QUEUE": str(MAX_QUEUE)}
    )
    yield service
    assert service.stop() == 0


@pytest.fixture(scope="module")
def pool() -> list[str]:
    return sentence_pool(256)


class RssSampler:
    """Peak RSS of a process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rel_helpers.rss_mb(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def sequential_ms(port: int, body: dict, n: int) -> list[float]:
    run = loadgen({"mode": "sequential", "port": port, "path": "/tag", "bodies": [body], "n": n})
    assert run.errors == 0
    return [s.latency * 1000 for s in run.samples]


@pytest.mark.parametrize("texts_per_request", [8, 1])
def test_overload_3x_saturation(load_service: Service, pool: list[str], mode: Mode, report: Report,
                                tmp_path: Path, texts_per_request: int) -> None:  # fmt: skip
    """8 texts a request: the model is the bottleneck; 1 text a request: the event loop's per-request
    work is. Either way admission (service/admission.py) refuses the excess before it costs
    the loop anything, so refusals are fast and accepted requests wait behind at most the
    admitted ones (see the module docstring for what is asserted and what is reported)."""
    port = load_service.port
    k = texts_per_request
    bodies = [
        {"texts": pool[i : i + k]} if k > 1 else {"text": pool[i]} for i in range(0, len(pool) - k + 1, k)
    ]
    probe = {"text": pool[0]}
    baseline = sequential_ms(port, probe, 200)
    base_p50, base_p99 = percentile(baseline, 50), percentile(baseline, 99)
    saturation = loadgen({"mode": "closed", "port": port, "bodies": bodies, "concurrency": UNREFUSED_CONNECTIONS,
                          "duration": 2.0 if not mode.full else 5.0})  # fmt: skip
    assert saturation.errors == 0
    rate = 3 * saturation.rps
    rss_before = load_service.rss_mb()

    out = tmp_path / "overload.json"
    spec = {"mode": "open", "port": port, "bodies": bodies, "rate": rate, "duration": mode.overload_seconds,
            "max_connections": 4096, "timeout": 60}  # fmt: skip
    with RssSampler(load_service.pid) as rss:
        proc = loadgen_background(spec, out)
        time.sleep(mode.overload_seconds)
        burst_end = time.monotonic()
        # Recovery: probe on a fresh connection until 5 requests in a row are back to normal.
        normal = max(3 * base_p50, base_p99)
        streak, recovered_at, probes = 0, None, []
        while time.monotonic() - burst_end < 60:
            t0 = time.perf_counter()
            status, _, _ = rel_helpers.post_json(port, "/tag", probe)
            latency = (time.perf_counter() - t0) * 1000
            probes.append((round(time.monotonic() - burst_end, 3), status, round(latency, 2)))
            streak = streak + 1 if status == 200 and latency <= normal else 0
            if streak == 5:
                recovered_at = time.monotonic() - burst_end
                break
            time.sleep(0.02)
        assert proc.wait(timeout=120) == 0
    run = Run.from_json(json.loads(out.read_text()))
    statuses = Counter(s.status for s in run.samples)
    refusals = [s for s in run.samples if s.status == 503]
    accepted = run.ok
    refusal_ms = [s.latency * 1000 for s in refusals]
    accepted_ms = [t * 1000 for t in accepted]
    after = sequential_ms(port, probe, 100)
    figures = {
        "texts per request": k,
        "baseline sequential p50 / p99 ms (1 text)": f"{base_p50:.2f} / {base_p99:.2f}",
        f"saturation (closed loop, {UNREFUSED_CONNECTIONS} connections) req/s": f"{saturation.rps:.0f}",
        "offered rate req/s (3x) / achieved": f"{rate:.0f} / {len(run.samples) / mode.overload_seconds:.0f}",
        "burst seconds": mode.overload_seconds,
        "requests tried": len(run.samples),
        "statuses": dict(sorted(statuses.items())),
        "accepted (200)": len(accepted),
        "refused (503)": len(refusals),
        "refusals with Retry-After": sum(s.retry_after for s in refusals),
        "median / p99 refusal time ms": (
            f"{statistics.median(refusal_ms):.2f} / {percentile(refusal_ms, 99):.2f}" if refusals else "-"
        ),
        "accepted p50 / p99 ms (from intended send time)": (
            f"{percentile(accepted_ms, 50):.1f} / {percentile(accepted_ms, 99):.1f}"
        ),
        "connections opened": run.connections,
        "RSS before / peak during MB": f"{rss_before:.1f} / {rss.peak:.1f}",
        "recovery (5 normal requests in a row after the burst) s": (
            f"{recovered_at:.2f}" if recovered_at is not None else "not within 60 s"
        ),
        "sequential p50 after recovery ms": f"{percentile(after, 50):.2f}",
    }
    measured = {
        "median refusal ms": statistics.median(refusal_ms) if refusals else None,
        "p99 refusal ms": percentile(refusal_ms, 99) if refusals else None,
        "accepted p99 ms": percentile(accepted_ms, 99) if accepted_ms else None,
        "recovery s": recovered_at,
    }
    title = f"Overload: 3x saturation for {mode.overload_seconds:g} s, {k} text(s) a request"
    why = "the model is the bottleneck" if k > 1 else "the event loop's per-request work is the bottleneck"
    report.add(
        title,
        f"`ALIGNTAG_MAX_QUEUE={MAX_QUEUE}`, admission at its defaults (`ALIGNTAG_MIN_IN_FLIGHT`, "
        "`ALIGNTAG_MAX_IN_FLIGHT`, `ALIGNTAG_ADMISSION_LATENCY_MS`); "
        f"{why}. Targets (issue 16): "
        + ", ".join(
            f"{name} <= {target:g}: {verdict(measured[name], target)}" for name, target in TARGETS.items()
        )
        + ".",
        "",
    )
    report.table(title, ["figure", "value"], [[name, v] for name, v in figures.items()])

    assert set(statuses) <= {200, 503}, f"unexpected statuses {statuses}"
    assert all(s.retry_after for s in refusals), "a 503 without Retry-After"
    assert refusals, "nothing was refused at 3x saturation"
    assert accepted_ms, "nothing was accepted at 3x saturation"
    assert rss.peak < rss_before + 150, f"RSS grew from {rss_before:.0f} to {rss.peak:.0f} MB"
    assert recovered_at is not None, f"no recovery within 60 s: {probes[-10:]}"
    assert rel_helpers.server_errors(port, allowed=("503",)) == 0
    # After recovery the service answers as before the burst (the recovery probe's own threshold).
    assert percentile(after, 50) <= normal, f"sequential p50 {percentile(after, 50):.2f} ms > {normal:.2f} ms"
    # Refused before the work, not after waiting behind it: a ratio within the same burst.
    # Before admission it was about half (8 texts); with it 0.015 (8 texts) and 0.11 (1 text, tiny
    # model, where 16 admitted requests wait only ~75 ms) at load average 4.
    assert statistics.median(refusal_ms) < percentile(accepted_ms, 50) / 3, (
        f"median refusal {statistics.median(refusal_ms):.1f} ms against a median accepted "
        f"{percentile(accepted_ms, 50):.1f} ms: refusals waited behind the work"
    )


def verdict(value: float | None, target: float) -> str:
    return "not measured" if value is None else f"{value:.3g}, {'met' if value <= target else 'missed'}"


def soak_requests(pool: list[str]) -> list[dict[str, Any]]:
    """The mixed workload, and the status each request must get."""
    doc = " ".join(long_documents(1, words=2000)[0].split()[:2000])
    reqs: list[dict[str, Any]] = []
    for i in range(40):
        reqs.append({"path": "/tag", "body": {"text": pool[i]}, "expect": 200})
        reqs.append({"path": "/acronyms", "body": {"text": pool[i + 40]}, "expect": 200})
    for i in range(8):
        reqs.append({"path": "/tag", "body": {"texts": pool[i * 8 : i * 8 + 8]}, "expect": 200})
        reqs.append({"path": "/acronyms", "body": {"texts": pool[i * 8 : i * 8 + 8], "min_score": 0.5},
                     "expect": 200})  # fmt: skip
    reqs += [
        {"path": "/tag", "body": {"text": doc}, "expect": 200},
        {"path": "/acronyms", "body": {"text": doc}, "expect": 200},
        {"path": "/tag", "body": {"text": ""}, "expect": 200},
        {"path": "/tag", "body": {"text": "Café naïve — 自然言語処理 (NLP) 😀 " * 10}, "expect": 200},
        {"path": "/tag", "body": {"texts": []}, "expect": 422},
        {"path": "/acronyms", "body": {"text": "a", "texts": ["b"]}, "expect": 422},
        {"path": "/tag", "body": {"text": "a", "min_score": 2}, "expect": 422},
    ]
    return reqs


def test_soak(load_service: Service, pool: list[str], mode: Mode, report: Report) -> None:
    port = load_service.port
    reqs = soak_requests(pool)
    chunk = mode.soak_requests // 5
    spec = {"mode": "closed", "port": port, "concurrency": UNREFUSED_CONNECTIONS, "total": chunk, "timeout": 120,
            "requests": [{"path": r["path"], "body": r["body"]} for r in reqs]}  # fmt: skip
    tried, unexpected, latencies, rss, started = 0, Counter[str](), [], [], time.monotonic()
    for _ in range(5):
        run = loadgen(spec)
        tried += len(run.samples)
        for s in run.samples:
            if s.status != reqs[s.index]["expect"]:
                unexpected[f"{reqs[s.index]['path']} #{s.index}: {s.status}"] += 1
        latencies += [s.latency * 1000 for s in run.samples if s.status == 200]
        rss.append(load_service.rss_mb())
    seconds = time.monotonic() - started
    growth = rss[-1] / rss[0] - 1
    # The fast run (make test) is a few seconds of mixed load: it checks statuses and gross memory
    # growth but is too short to show a leak; the soak proper is `make reliability`.
    kind = "Soak" if mode.full else "Mixed load (fast run; too short to show a slow leak)"
    title = f"{kind}: {mode.soak_requests:,} mixed requests, {UNREFUSED_CONNECTIONS} connections"
    report.table(
        title,
        ["figure", "value"],
        [
            ["requests tried", tried],
            ["distinct requests in the mix (incl. 3 that must get 422)", len(reqs)],
            ["unexpected statuses", sum(unexpected.values())],
            ["throughput req/s", f"{tried / seconds:.0f}"],
            [
                "p50 / p99 latency ms (200s)",
                f"{percentile(latencies, 50):.1f} / {percentile(latencies, 99):.1f}",
            ],
            ["RSS after each fifth MB", " / ".join(f"{x:.1f}" for x in rss)],
            ["RSS growth first -> last fifth", f"{growth * 100:+.1f}%"],
        ],
    )
    assert tried == 5 * chunk
    assert not unexpected, dict(unexpected.most_common(10))
    assert growth < 0.10, f"RSS grew {growth:.1%} from the first to the last fifth: {rss}"
    assert rel_helpers.server_errors(port, allowed=("503",)) == 0
