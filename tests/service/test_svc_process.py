"""The real `python -m service` process: bad settings, corrupt artifacts, SIGTERM, and a real
Prometheus server scraping it."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from svc_helpers import flip_byte, version_dir
from testlib import REPO_ROOT, free_port, start_service, wait_ready


@contextmanager
def service(
    artifacts_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    proc = start_service(artifacts_dir, port, extra_env)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_up(base_url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited"
        try:
            httpx.get(f"{base_url}/health", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(base_url)


def test_service_imports_neither_torch_nor_model_build() -> None:
    code = "import sys, service.__main__, service.latency; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model_build')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bad_settings_exit_2_with_a_fix(tiny_artifacts_dir: Path) -> None:
    proc = start_service(tiny_artifacts_dir, free_port(), {"ALIGNTAG_MAX_QUEUE": "0"})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "invalid settings, nothing started:" in out
    assert (
        "ALIGNTAG_MAX_QUEUE: Value error, must be a positive integer; set ALIGNTAG_MAX_QUEUE to 1 or more"
        in out
    )


def test_corrupt_artifact_keeps_the_process_up(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    directory = version_dir(artifacts, "acronyms")
    flip_byte(directory / "tokenizer.json", offset=10)
    with service(artifacts) as (base_url, proc):
        wait_up(base_url, proc)
        time.sleep(1.0)  # a crash-looping process would be gone by now
        assert proc.poll() is None
        assert httpx.get(f"{base_url}/health").status_code == 200
        ready = httpx.get(f"{base_url}/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["message"] == (
            f"acronyms: {directory / 'tokenizer.json'}: sha256 does not match the manifest"
        )
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    errors = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"error"' in line]
    assert any(e["message"].endswith("tokenizer.json: sha256 does not match the manifest") for e in errors)


def test_sigterm_finishes_in_flight_requests_then_exits_0(tiny_artifacts_dir: Path) -> None:
    texts = ["The controlled natural language (CNL) corpus of abstract syntax trees. " * 60] * 200  # ~1 MB
    with service(tiny_artifacts_dir) as (base_url, proc):
        wait_ready(base_url, proc)
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{base_url}/tag", json={"texts": texts}, timeout=60)
            deadline = time.monotonic() + 20
            while "aligntag_in_flight_requests 1.0" not in httpx.get(f"{base_url}/metrics").text:
                assert time.monotonic() < deadline and not in_flight.done(), "request never in flight"
            proc.send_signal(signal.SIGTERM)
            response = in_flight.result()
        assert response.status_code == 200 and len(response.json()["results"]) == 200
        assert proc.wait(timeout=30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base_url}/health", timeout=2)


def thread_niceness(pid: int) -> dict[int, int]:
    """Thread id -> niceness of every thread of a process (/proc/<pid>/task/<tid>/stat, field 19)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            out[int(task.name)] = int((task / "stat").read_text().rsplit(") ", 1)[1].split()[16])
    return out


@pytest.mark.parametrize("niceness", [0, 7])
def test_the_threads_that_do_the_work_run_nicer_than_the_event_loop(
    tiny_artifacts_dir: Path, niceness: int
) -> None:
    """The loop (the main thread) keeps the process's priority; the prep thread, both inference
    threads and ONNX Runtime's pools (2 intra-op threads: one pool thread a session) run
    `ALIGNTAG_WORKER_NICENESS` steps nicer, or at the same priority with 0."""
    env = {"ALIGNTAG_WORKER_NICENESS": str(niceness), "ALIGNTAG_INTRA_OP_THREADS": "2"}
    with service(tiny_artifacts_dir, env) as (base_url, proc):
        wait_ready(base_url, proc)
        long_text = "The controlled natural language (CNL) corpus of abstract syntax trees. " * 40
        with ThreadPoolExecutor(4) as pool:  # together, so the prep thread works (not the loop)
            responses = list(pool.map(
                lambda route: httpx.post(f"{base_url}/{route}", json={"text": long_text}, timeout=60),
                ["tag", "acronyms"] * 4,
            ))  # fmt: skip
        assert {r.status_code for r in responses} == {200}
        nice = thread_niceness(proc.pid)
    base = nice.pop(proc.pid)
    workers = [n for n in nice.values() if n != base]
    assert set(workers) <= {base + niceness}
    # prep, infer-concepts, infer-acronyms, one ONNX Runtime pool thread per session
    assert len(workers) == (0 if niceness == 0 else 5), nice


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def test_real_prometheus_scrapes_exact_counts(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus not installed: apt-get install -y prometheus (CI installs it)")
    n_ok, n_bad, n_acronyms = 7, 2, 3
    with service(tiny_artifacts_dir) as (base_url, proc):
        wait_ready(base_url, proc)
        target = base_url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: aligntag\n    static_configs:\n      - targets: ['{target}']\n"
        )
        prom_port = free_port()
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for _ in range(n_ok):
                assert httpx.post(f"{base_url}/tag", json={"text": "abstract syntax tree"}).status_code == 200
            for _ in range(n_bad):
                assert httpx.post(f"{base_url}/tag", json={}).status_code == 422
            for _ in range(n_acronyms):
                assert httpx.post(f"{base_url}/acronyms", json={"text": "a (b)"}).status_code == 200
            api = f"http://127.0.0.1:{prom_port}/api/v1/query"
            expected = {
                'up{job="aligntag"}': 1.0,
                'aligntag_requests_total{job="aligntag",route="/tag",status="200"}': float(n_ok),
                'aligntag_requests_total{job="aligntag",route="/tag",status="422"}': float(n_bad),
                'sum(aligntag_requests_total{job="aligntag",route="/tag"})': float(n_ok + n_bad),
                'aligntag_request_duration_seconds_count{job="aligntag",route="/tag",status="200"}': float(
                    n_ok
                ),
                'aligntag_requests_total{job="aligntag",route="/acronyms",status="200"}': float(n_acronyms),
                'aligntag_inference_seconds_count{job="aligntag",model="concepts"} > 0': None,
            }
            got: dict[str, float | None] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = {query: prom_value(api, query) for query in expected}
                if all(got[q] == v or (v is None and got[q] is not None) for q, v in expected.items()):
                    break
                assert prometheus.poll() is None, prometheus.stdout.read() if prometheus.stdout else ""
                time.sleep(0.5)
            assert {q: (got[q] if v is not None else "present") for q, v in expected.items()} == {
                q: (v if v is not None else "present") for q, v in expected.items()
            }
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=20)


def prom_value(api: str, query: str) -> float | None:
    try:
        body = httpx.get(api, params={"query": query}, timeout=5).json()
    except httpx.HTTPError:
        return None
    result = body.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if len(result) == 1 else None
