"""Helpers of the reliability suite: the run mode, the service process, raw HTTP, the load
generator in its own process, Prometheus text parsing, RSS, and the markdown report."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import Run
from bench.servers import Server as Service
from bench.servers import (
    rss_mb,  # noqa: F401  (re-exported for the tests)
    start,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# Mode


@dataclass(frozen=True)
class Mode:
    full: bool = False
    artifacts_dir: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Mode:
        return cls(
            full=bool(config.getoption("reliability_full", default=False)),
            artifacts_dir=config.getoption("artifacts_dir", default=None),
        )

    @property
    def name(self) -> str:
        return "full" if self.full else "fast (CI)"

    # sizes of each check, per mode
    @property
    def fuzz_examples(self) -> int:
        return 200 if self.full else 25

    @property
    def overload_seconds(self) -> float:
        return 20.0 if self.full else 3.0

    @property
    def soak_requests(self) -> int:
        return 50_000 if self.full else 2_000


MODE = Mode()  # replaced by conftest.pytest_configure


# --------------------------------------------------------------------------------------------
# The service process (its log in a file: a pipe nobody reads would fill up and stall it)


def start_service(
    artifacts_dir: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    wait: str = "ready",
    timeout: float = 90,
) -> Service:
    """`python -m service` on a free port; waits for `/ready` 200 (wait="ready") or any answer of
    `/health` (wait="health")."""
    return start("service", ["-m", "service"], artifacts_dir, log_dir, env, timeout, ready=wait == "ready")


# --------------------------------------------------------------------------------------------
# HTTP


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def post_json(port: int, path: str, payload: Any, timeout: float = 60.0) -> tuple[int, dict[str, str], Any]:
    status, headers, body = request(
        port, "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}, timeout
    )
    return status, headers, json.loads(body) if body else None


def is_error_body(data: Any) -> bool:
    """The documented error shape: {"error": {"type": str, "message": str}} and nothing else."""
    return (
        isinstance(data, dict)
        and set(data) == {"error"}
        and isinstance(data["error"], dict)
        and set(data["error"]) == {"type", "message"}
        and all(isinstance(data["error"][k], str) and data["error"][k] for k in ("type", "message"))
    )


def ready(port: int) -> bool:
    try:
        return request(port, "GET", "/ready", timeout=10)[0] == 200
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Metrics and memory

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text from /metrics as {(name, labels): value}."""
    _, _, body = request(port, "GET", "/metrics", timeout=10)
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in body.decode().splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        out[(name, pairs)] = float(value)
    return out


def metric_sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


def server_errors(port: int, allowed: tuple[str, ...] = ()) -> float:
    """Requests answered 5xx so far (aligntag_requests_total{status=~"5.."}), but for `allowed`
    statuses (e.g. "503" where overload refusals are expected)."""
    samples = metrics(port)
    return sum(
        v
        for (n, pairs), v in samples.items()
        if n == "aligntag_requests_total"
        and dict(pairs).get("status", "").startswith("5")
        and dict(pairs).get("status") not in allowed
    )


# --------------------------------------------------------------------------------------------
# The load generator, in its own process (the client must not share the test's interpreter)


def loadgen(spec: dict[str, Any], timeout: float = 900) -> Run:
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Run.from_json(json.loads(out.stdout))


def loadgen_background(spec: dict[str, Any], out_path: Path) -> subprocess.Popen:
    """Start the load generator; its JSON result lands in `out_path` when it exits."""
    spec_path = out_path.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    with spec_path.open() as stdin, out_path.open("w") as stdout:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"], stdin=stdin, stdout=stdout, cwd=REPO_ROOT
        )


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class Report:
    mode: Mode
    sections: dict[str, list[str]] = field(default_factory=dict)

    def add(self, section: str, *lines: str) -> None:
        self.sections.setdefault(section, []).extend(lines)

    def table(self, section: str, header: list[str], rows: list[list[Any]]) -> None:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in rows]
        self.add(section, *lines, "")

    def write(self, directory: Path) -> Path | None:
        """Write the report; sections of an earlier report of the same mode that this session did
        not produce are kept (so `-k overload` updates only its sections), each under its date."""
        if not self.sections:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ("report.md" if self.mode.full else "report-fast.md")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kept: dict[str, str] = {}
        if path.is_file():
            for block in path.read_text().split("\n## ")[1:]:
                title, _, body = block.partition("\n")
                if title not in self.sections:
                    kept[title] = body.strip("\n")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        parts = [
            "# aligntag reliability report",
            "",
            f"Mode: {self.mode.name}, by `pytest tests/reliability{' --reliability-full' if self.mode.full else ''}`"
            f"; {os.cpu_count()} CPUs. Each section says when it ran and the load average (1/5/15 min) "
            "at the end of its session.",
            "",
        ]
        for title, lines in self.sections.items():
            parts += [f"## {title}", "", f"_Run {now}, load average {load}._", "", *lines, ""]
        for title, body in kept.items():
            parts += [f"## {title}", "", body, ""]
        path.write_text("\n".join(parts))
        return path
