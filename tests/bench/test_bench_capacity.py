"""The bench's capacity search and its wrk cross-check, against a real service process.

Speed figures are not asserted (a loaded 2-core CI machine); what is: the bisection's invariants
(the capacity is the highest passing probe, every failing probe lies above it, nothing above the
saturation is tried) and that wrk's output is read into the same row shape as the Python
generator's, with the same number of requests it reported.
"""

from __future__ import annotations

import json

import pytest

from bench import wrk
from bench.loadgen import Target
from bench.runner import find_capacity, wrk_row

SAMPLE = """Running 2s test @ http://127.0.0.1:8950/tag
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21s   100.00ms   1.90s    70.00%
  Latency Distribution
     50%    1.20s
     75%    1.30s
     90%  950.00us
     99%    1.50m
  264 requests in 2.05s, 116.18KB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    128.99
"""


def test_wrk_output_units_and_errors_are_read() -> None:
    figures = wrk.parse(SAMPLE)
    assert figures == pytest.approx({"p50_ms": 1200.0, "p90_ms": 0.95, "p99_ms": 90_000.0, "rps": 128.99,
                       "requests": 264.0, "non_2xx": 7.0, "socket_errors": 6.0,
                       "ok_rps": (264 - 7) / 2.05})  # fmt: skip
    row = wrk_row("onnx-int8", 64, figures)
    assert row["errors"] == 13 and row["rps"] == round((264 - 7) / 2.05, 1)  # refused answers do not count


def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def test_wrk_cross_check_reads_a_real_run(running_service: str) -> None:
    assert wrk.available(), "wrk is not installed: `make debian-deps` (Debian package wrk)"
    bodies = [json.dumps({"text": "A parser builds an abstract syntax tree."}).encode(),
              json.dumps({"text": "We use convolutional neural networks (CNNs)."}).encode()]  # fmt: skip
    figures = wrk.closed_loop(port_of(running_service), "/tag", bodies, 2, 1.0)
    row = wrk_row("onnx-int8", 2, figures)
    assert row["requests"] > 0 and row["rps"] > 0
    assert row["errors"] == 0, figures  # every body is a valid request: all 200
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]


@pytest.mark.parametrize("saturation_factor", [0.5, 40.0])
def test_capacity_is_the_highest_passing_probe(running_service: str, saturation_factor: float) -> None:
    """A low ceiling (a few req/s: the top probe passes at once) and a high one (hundreds of req/s
    against the tiny model on 2 shared cores: some probes fail): the invariants hold either way."""
    target = Target(
        port_of(running_service), "/tag", [json.dumps({"text": "The compiler emits bytecode."}).encode()]
    )
    saturation = 10.0 * saturation_factor
    capacity, probes = find_capacity(target, saturation, 0.5, lambda _: None)
    assert probes and all(p["rate"] <= saturation for p in probes)
    passing = [p["rate"] for p in probes if p["passes"]]
    failing = [p["rate"] for p in probes if not p["passes"]]
    assert capacity == (max(passing) if passing else 0.0)
    assert all(rate > capacity for rate in failing)
    if probes[0]["passes"]:  # the first probe is the saturation itself
        assert capacity == saturation and len(probes) == 1
