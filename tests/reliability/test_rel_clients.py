"""Bad clients at the HTTP layer, on real sockets against a real `python -m service`.

- Oversized bodies: a 5 MB body gets the 413 JSON answer from clients that send the whole body
  before reading the answer (urllib, http.client with and without keep-alive, httpx with a length
  and chunked). The service reads and discards the rest of the body (`ALIGNTAG_MAX_DRAIN_BYTES`)
  before it answers; a body past that bound is refused unread, and that client sees the reset the
  others used to see (the control that shows what the draining is for).
- Slow clients: headers trickled in, a body trickled in, a connection that sends nothing. Each is
  cut off after its documented timeout (`ALIGNTAG_HEADER_TIMEOUT_SECONDS`,
  `ALIGNTAG_BODY_TIMEOUT_SECONDS`; 408 in the JSON error shape, or the close alone for the silent
  one) while ordinary requests are served meanwhile. The service admits one request at a time
  here (`ALIGNTAG_MAX_IN_FLIGHT=1`), so a trickling body that held an admission slot would turn
  every ordinary request into a 503.

Timings go to the report; the assertions are about what each client gets and in what order, not
about how fast (a loaded 2-core CI machine).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import rel_helpers
from rel_helpers import HOST, Report, Service, is_error_body, start_service

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MAX_DRAIN = 8 * 1024 * 1024
OVERSIZED = json.dumps({"text": "a" * 5_000_000}).encode()  # over the default 2 MiB limit
BEYOND_DRAIN = json.dumps({"text": "a" * 20_000_000}).encode()  # over MAX_DRAIN too
JSON = {"Content-Type": "application/json"}

ROWS: list[list[object]] = []


@pytest.fixture(scope="module")
def clients_service(rel_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(
        rel_artifacts_dir,
        tmp_path_factory.mktemp("clients-service"),
        {
            "ALIGNTAG_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "ALIGNTAG_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "ALIGNTAG_MAX_DRAIN_BYTES": str(MAX_DRAIN),
            "ALIGNTAG_MAX_IN_FLIGHT": "1",
        },
    )
    yield service
    assert service.stop() == 0


# --------------------------------------------------------------------------------------------
# Oversized bodies: each client as a user would call it; (status, body) of its answer


def with_urllib(port: int, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{port}/tag", data=body, headers=JSON)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # sends Connection: close
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def with_http_client(port: int, body: bytes, close: bool) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request(
            "POST", "/tag", body=body, headers={**JSON, **({"Connection": "close"} if close else {})}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def with_httpx(port: int, body: bytes, chunked: bool) -> tuple[int, bytes]:
    content: bytes | Iterator[bytes] = (
        (body[i : i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    )
    response = httpx.post(f"http://{HOST}:{port}/tag", content=content, headers=JSON, timeout=60)
    return response.status_code, response.content


OVERSIZED_CLIENTS: dict[str, Callable[[int, bytes], tuple[int, bytes]]] = {
    "urllib.request (Connection: close)": with_urllib,
    "http.client, keep-alive": lambda port, body: with_http_client(port, body, close=False),
    "http.client, Connection: close": lambda port, body: with_http_client(port, body, close=True),
    "httpx, Content-Length": lambda port, body: with_httpx(port, body, chunked=False),
    "httpx, chunked (no length)": lambda port, body: with_httpx(port, body, chunked=True),
}


@pytest.mark.parametrize("client", list(OVERSIZED_CLIENTS))
def test_oversized_body_gets_413(clients_service: Service, client: str) -> None:
    port = clients_service.port
    t0 = time.perf_counter()
    status, body = OVERSIZED_CLIENTS[client](port, OVERSIZED)
    elapsed = time.perf_counter() - t0
    data = json.loads(body)
    ROWS.append(
        [f"5 MB body: {client}", status, data.get("error", {}).get("type", "-"), rel_helpers.ms(elapsed)]
    )
    assert status == 413, body[:300]
    assert is_error_body(data) and data["error"]["type"] == "payload_too_large"
    assert rel_helpers.ready(port)


def test_body_beyond_drain_limit_is_not_read(clients_service: Service) -> None:
    """The control: a body past ALIGNTAG_MAX_DRAIN_BYTES is refused unread and the connection closed
    with it unread; urllib, still sending, gets the reset that every oversized body gave it before
    the service drained them. (If this starts answering 413, the kernel or the client changed, and
    the test above no longer shows that the draining is what makes it pass.)"""
    port = clients_service.port
    t0 = time.perf_counter()
    try:
        outcome = str(with_urllib(port, BEYOND_DRAIN)[0])
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as e:
        outcome = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
    ROWS.append(
        ["20 MB body (past the drain limit): urllib", outcome, "-", rel_helpers.ms(time.perf_counter() - t0)]
    )
    assert outcome != "413", "a body past the drain limit was read: the control no longer controls anything"
    assert rel_helpers.ready(port)


# --------------------------------------------------------------------------------------------
# Slow clients


class Trickler(threading.Thread):
    """Sends `data` one byte every `interval` seconds on a raw socket (after `prefix` at once), and
    records what the service sends back and when the connection ends."""

    def __init__(self, port: int, prefix: bytes, data: bytes, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.port, self.prefix, self.data, self.interval = port, prefix, data, interval
        self.answer = b""
        self.seconds: float | None = None  # connection start -> closed by the service
        self.error = ""

    def run(self) -> None:
        started = time.perf_counter()
        with socket.create_connection((HOST, self.port), timeout=self.interval) as s:
            s.sendall(self.prefix)
            sent = 0
            deadline = started + 30
            while time.perf_counter() < deadline:
                try:
                    if sent < len(self.data):
                        s.sendall(self.data[sent : sent + 1])
                        sent += 1
                    chunk = s.recv(4096)
                except TimeoutError:
                    continue
                except OSError as e:  # the service closed while we were still sending
                    self.error = type(e).__name__
                    break
                if not chunk:
                    break
                self.answer += chunk
            self.seconds = time.perf_counter() - started

    @property
    def status(self) -> int | None:
        line = self.answer.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else None

    @property
    def error_body(self) -> dict:
        return json.loads(self.answer.partition(b"\r\n\r\n")[2] or b"{}")


def test_slow_clients_are_cut_off_and_hold_no_capacity(clients_service: Service, report: Report) -> None:
    port = clients_service.port
    body = json.dumps({"text": "A parser builds an abstract syntax tree."}).encode()
    head = b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    slow = {
        "headers trickled in": Trickler(port, b"", head + b"Content-Length: %d\r\n\r\n" % len(body) + body),
        "body trickled in": Trickler(port, head + b"Content-Length: %d\r\n\r\n" % len(body), body),
        "body trickled in (2)": Trickler(port, head + b"Content-Length: %d\r\n\r\n" % len(body), body),
        "connection that sends nothing": Trickler(port, b"", b""),
    }
    for t in slow.values():
        t.start()
    time.sleep(0.5)  # every slow client is connected and under way
    # Ordinary requests meanwhile: with one admission slot, a slow body holding it would make them 503.
    latencies, statuses = [], []
    while any(t.seconds is None for t in slow.values()) and len(latencies) < 200:
        t0 = time.perf_counter()
        status, _, _ = rel_helpers.post_json(port, "/tag", {"text": "The compiler emits bytecode."})
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses.append(status)
        time.sleep(0.05)
    for t in slow.values():
        t.join(60)
    samples = rel_helpers.metrics(port)

    for name, t in slow.items():
        ROWS.append([f"slow client: {name}", t.status or f"(closed{', ' + t.error if t.error else ''})",
                     t.error_body.get("error", {}).get("type", "-") if t.status else "-",
                     rel_helpers.ms(t.seconds or 0)])  # fmt: skip
    ordinary = sorted(latencies)
    ROWS.append([f"{len(statuses)} ordinary requests meanwhile (median / max ms)", sorted(set(statuses)), "-",
                 f"{ordinary[len(ordinary) // 2]:.1f} / {ordinary[-1]:.1f}" if ordinary else "-"])  # fmt: skip
    report.add(
        "Slow clients and oversized bodies",
        f"A service with `ALIGNTAG_HEADER_TIMEOUT_SECONDS={HEADER_TIMEOUT:g}`, "
        f"`ALIGNTAG_BODY_TIMEOUT_SECONDS={BODY_TIMEOUT:g}`, `ALIGNTAG_MAX_DRAIN_BYTES={MAX_DRAIN}`, "
        "`ALIGNTAG_MAX_IN_FLIGHT=1` (one admission slot: a slow body holding it would make every "
        "ordinary request a 503). Slow clients send a byte every 0.2 s; `ms` is from their "
        "connection to the service closing it.",
        "",
    )
    report.table("Slow clients and oversized bodies", ["client", "status", "error type", "ms"], ROWS)

    assert slow["headers trickled in"].status == 408, slow["headers trickled in"].answer[:300]
    assert slow["headers trickled in"].error_body["error"]["type"] == "request_timeout"
    for name in ("body trickled in", "body trickled in (2)"):
        assert slow[name].status == 408, slow[name].answer[:300]
        assert slow[name].error_body["error"]["type"] == "request_timeout"
    assert slow["connection that sends nothing"].answer == b"", "a silent connection got an answer"
    assert all(t.seconds is not None for t in slow.values()), "a slow client was never cut off"
    # Each was cut off after its timeout, not before (a generous upper bound: 30 s, the trickle's own).
    assert min(t.seconds or 0 for t in slow.values()) >= min(HEADER_TIMEOUT, BODY_TIMEOUT) - 0.1
    assert statuses and set(statuses) == {200}, f"ordinary requests during the slow clients: {statuses}"
    assert len(statuses) >= 3, "too few ordinary requests were answered while the slow clients were connected"
    timeouts = {phase: rel_helpers.metric_sum(samples, "aligntag_client_timeouts_total", phase=phase)
                for phase in ("headers", "body", "idle")}  # fmt: skip
    assert timeouts == {"headers": 1, "body": 2, "idle": 1}, timeouts
    assert rel_helpers.ready(port)
