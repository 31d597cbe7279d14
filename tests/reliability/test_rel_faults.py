"""Faults of the serving side: corrupt artifacts at start-up, SIGTERM under load, clients that leave.

- A corrupt served ONNX file, a corrupt manifest, an ONNX file that is garbage but matches its
  checksum: the process stays up (no crash loop), `/health` answers, `/ready` is 503 naming the
  file, the model's endpoint answers 503 `model_unavailable`, the healthy model keeps serving, and
  the log names the file once.
- SIGTERM while 16 heavy requests are in flight: new connections are refused at once, every
  in-flight request completes with 200, the process exits 0.
- A client that disconnects while its request waits in the queue: the request is never run
  (`aligntag_rejected_requests_total{reason="client_disconnected"}`, status 499 in the metrics).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rel_helpers
from rel_helpers import HOST, Report, Service, metric_sum, metrics, post_json, start_service

RESULTS: dict[str, list[str]] = {}


@pytest.fixture
def artifacts_copy(tiny_artifacts_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, copy)
    return copy


def version_dir(artifacts: Path, task: str) -> Path:
    (manifest,) = artifacts.glob(f"{task}/*/manifest.json")
    return manifest.parent


def served_file(directory: Path) -> Path:
    manifest = json.loads((directory / "manifest.json").read_text())
    return directory / manifest["serve"]["onnx_file"]


def expect_not_ready(service: Service, *fragments: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = rel_helpers.request(service.port, "GET", "/ready")
        data = json.loads(body)
        if status == 503 and "loading" not in data["error"]["message"]:
            break
        assert time.monotonic() < deadline, f"/ready still {status} {data}"
        time.sleep(0.1)
    assert data["error"]["type"] == "not_ready"
    message: str = data["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_stays_up(service: Service, seconds: float = 3.0) -> None:
    """No crash loop: the same process keeps answering /health for a while."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert service.proc.poll() is None, f"the service exited:\n{service.log()[-3000:]}"
        assert rel_helpers.request(service.port, "GET", "/health")[0] == 200
        time.sleep(0.25)


def error_lines(service: Service) -> list[dict]:
    return [line for line in service.log_lines() if line.get("level") == "error"]


def test_corrupt_model_and_manifest_at_start_up(artifacts_copy: Path, tmp_path: Path) -> None:
    onnx = served_file(version_dir(artifacts_copy, "concepts"))
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    manifest = version_dir(artifacts_copy, "acronyms") / "manifest.json"
    manifest.write_text(manifest.read_text()[: len(manifest.read_text()) // 2])  # cut mid-write

    service = start_service(artifacts_copy, tmp_path, wait="health")
    try:
        message = expect_not_ready(
            service,
            f"concepts: {onnx}: sha256 does not match the manifest",
            f"acronyms: {manifest}: unreadable manifest",
        )
        assert_stays_up(service)
        for path, task in (("/tag", "concepts"), ("/acronyms", "acronyms")):
            status, _, body = post_json(service.port, path, {"text": "A parser (P)."})
            assert status == 503 and body["error"]["type"] == "model_unavailable", body
            assert body["error"]["message"].startswith(f"the {task} model is not available: ")
        errors = error_lines(service)
        per_file = [
            e for e in errors if str(onnx) in e.get("message", "") and e.get("logger") == "aligntag.models"
        ]
        assert len(per_file) == 1, errors  # said once, not in a loop
        RESULTS["corrupt artifacts"] = [
            f"- Flipped byte in the served `{onnx.name}` + manifest cut in half: process up "
            f"{'(pid unchanged)' if service.proc.poll() is None else '(EXITED)'}, `/health` 200, `/ready` 503: "
            f"`{message}`",
        ]
    finally:
        assert service.stop() == 0


def test_garbage_onnx_with_matching_checksum(artifacts_copy: Path, tmp_path: Path) -> None:
    directory = version_dir(artifacts_copy, "concepts")
    onnx = served_file(directory)
    onnx.write_bytes(b"this is not an ONNX graph" * 100)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][onnx.name] = hashlib.sha256(onnx.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))

    service = start_service(artifacts_copy, tmp_path, wait="health")
    try:
        message = expect_not_ready(service, f"concepts: {onnx}: not a loadable ONNX model")
        assert "acronyms" not in message  # the healthy model is not blamed
        assert_stays_up(service)
        status, _, _ = post_json(service.port, "/acronyms", {"text": "A parser (P)."})
        assert status == 200  # the other model keeps serving
        RESULTS["corrupt artifacts"] = [
            *RESULTS.get("corrupt artifacts", []),
            f"- Garbage `{onnx.name}` with a matching checksum: process up, `/ready` 503: "
            f"`{message[:200]}...`; `/acronyms` still 200.",
        ]
    finally:
        assert service.stop() == 0


def heavy_texts(n: int, chars: int = 2000) -> list[str]:
    sentence = "The controlled natural language (CNL) corpus of abstract syntax trees and parsers. "
    return [(sentence * (chars // len(sentence) + 1))[:chars]] * n


def test_sigterm_under_load(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    service = start_service(tiny_artifacts_dir, tmp_path)
    concurrency = 16
    payload = {"texts": heavy_texts(16)}
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(post_json, service.port, "/tag", payload, 120) for _ in range(concurrency)]
        deadline = time.monotonic() + 30
        while metric_sum(metrics(service.port), "aligntag_in_flight_requests") < concurrency:
            assert time.monotonic() < deadline, "the requests never were all in flight"
            time.sleep(0.005)
        service.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        refused_after = None
        while time.monotonic() - signalled < 5:
            try:
                with socket.create_connection((HOST, service.port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not s.recv(100):
                        raise ConnectionResetError
            except OSError:
                refused_after = time.monotonic() - signalled
                break
            time.sleep(0.01)
        in_flight_done = sum(not f.done() for f in futures)
        results = [f.result() for f in futures]
    code = service.proc.wait(timeout=60)
    drained = time.monotonic() - signalled
    assert refused_after is not None, "new connections still accepted 5 s after SIGTERM"
    assert [status for status, _, _ in results] == [200] * concurrency
    assert all(len(body["results"]) == 16 for _, _, body in results)
    assert code == 0
    RESULTS["SIGTERM under load"] = [
        f"- {concurrency} requests of 16 x 2,000-character texts in flight; SIGTERM; a new connection "
        f"refused {rel_helpers.ms(refused_after)} ms later (with {in_flight_done} requests still running); "
        f"all {concurrency} in-flight requests answered 200; exit status {code} "
        f"{drained:.2f} s after the signal.",
    ]


def test_disconnected_client_is_not_run(shared_service: Service) -> None:
    port = shared_service.port
    before = metrics(port)
    leavers = 5
    tokenized = metric_sum(before, "aligntag_tokenization_seconds_count", model="concepts")
    with ThreadPoolExecutor(1) as pool:
        heavy = pool.submit(post_json, port, "/tag", {"texts": heavy_texts(128)}, 120)
        deadline = time.monotonic() + 30
        # Tokenized means queued: the job is submitted to the batcher right after.
        while metric_sum(metrics(port), "aligntag_tokenization_seconds_count", model="concepts") <= tokenized:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        body = json.dumps({"text": "A parser builds an abstract syntax tree (AST)."}).encode()
        for _ in range(leavers):
            with socket.create_connection((HOST, port)) as s:
                s.sendall(
                    b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.02)  # the request is read and queued behind the heavy one; then leave
        heavy_queued = not heavy.done()
        status, _, _ = heavy.result()
    assert status == 200
    assert heavy_queued, "the heavy request finished before the clients left; make it heavier"
    time.sleep(0.5)
    after = metrics(port)
    dropped = metric_sum(
        after, "aligntag_rejected_requests_total", reason="client_disconnected"
    ) - metric_sum(before, "aligntag_rejected_requests_total", reason="client_disconnected")
    gone = metric_sum(after, "aligntag_requests_total", route="/tag", status="499") - metric_sum(
        before, "aligntag_requests_total", route="/tag", status="499"
    )
    assert gone == leavers, f"status 499 counted {gone} times, expected {leavers}"
    assert dropped == leavers, f"dropped before running: {dropped}, expected {leavers}"
    assert rel_helpers.ready(port)
    RESULTS["client disconnect"] = [
        f"- {leavers} clients sent a request queued behind a heavy one and closed the connection: "
        f'`aligntag_requests_total{{status="499"}}` +{gone:.0f}, '
        f'`aligntag_rejected_requests_total{{reason="client_disconnected"}}` +{dropped:.0f} (never run).',
    ]


# The one report row each fault test writes once its checks pass: its section, and the pieces
# (regular expressions) the row must contain, outcomes included.
REPORT_ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "test_corrupt_model_and_manifest_at_start_up": (
        "corrupt artifacts",
        (
            r"^- Flipped byte in the served `model(\.int8)?\.onnx` \+ manifest cut in half: ",
            r"process up \(pid unchanged\), `/health` 200, `/ready` 503: `",
            r"concepts: \S+\.onnx: sha256 does not match the manifest",
            r"acronyms: \S+manifest\.json: unreadable manifest",
        ),
    ),
    "test_garbage_onnx_with_matching_checksum": (
        "corrupt artifacts",
        (
            r"^- Garbage `model(\.int8)?\.onnx` with a matching checksum: process up, `/ready` 503: `",
            r"concepts: /",
            r"`; `/acronyms` still 200\.$",
        ),
    ),
    "test_sigterm_under_load": (
        "SIGTERM under load",
        (
            r"^- 16 requests of 16 x 2,000-character texts in flight; SIGTERM; ",
            r"a new connection refused [0-9.]+ ms later \(with \d+ requests still running\); ",
            r"all 16 in-flight requests answered 200; exit status 0 [0-9.]+ s after the signal\.$",
        ),
    ),
    "test_disconnected_client_is_not_run": (
        "client disconnect",
        (
            r"^- 5 clients sent a request queued behind a heavy one and closed the connection: ",
            r'`aligntag_requests_total\{status="499"\}` \+5, ',
            r'`aligntag_rejected_requests_total\{reason="client_disconnected"\}` \+5 \(never run\)\.$',
        ),
    ),
}


def test_faults_report(report: Report, request: pytest.FixtureRequest) -> None:
    """Every fault test of this session that ran before this one wrote its row (a missing row
    means its test failed), each row states the outcome its test asserted, and the rows reach
    the report under "Faults: <section>"."""
    names = [item.name for item in request.session.items if item.module is request.module]
    ran = names[: names.index(request.node.name)]
    assert set(ran) <= set(REPORT_ROWS), (
        f"fault tests with no expected report row: {set(ran) - set(REPORT_ROWS)}"
    )
    expected: dict[str, list[tuple[str, ...]]] = {}
    for name in ran:
        section, pieces = REPORT_ROWS[name]
        expected.setdefault(section, []).append(pieces)
    assert sorted(RESULTS) == sorted(expected), "sections written / expected"
    for section, rows in expected.items():
        lines = RESULTS[section]
        assert len(lines) == len(rows), (section, lines)
        for pieces in rows:  # in any order: either corrupt-artifact test may run alone
            assert any(all(re.search(p, line) for p in pieces) for line in lines), (section, pieces, lines)
    for section, lines in RESULTS.items():
        report.add("Faults: " + section, *lines)
        assert report.sections["Faults: " + section][-len(lines) :] == lines
