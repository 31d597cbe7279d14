"""Hostile inputs: each gets its documented status (docs/service.md, Errors) and the service stays
ready, with no 5xx counted in its metrics.

Huge headers: uvicorn's httptools parser sets no limit on header size, so the service checks the
total itself (`ALIGNTAG_MAX_HEADER_BYTES`, 16 KiB) and answers 431 before any other work. The
parser has still read them; a reverse proxy in front should also cap them (nginx
`large_client_header_buffers`, 8 kB by default).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import rel_helpers
from rel_helpers import HOST, Report, Service, is_error_body

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    status: int
    error_type: str | None = None  # None: a 200 answer
    message: str | None = None  # expected substring of the error message
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    path: str = "/tag"


def js(payload: object) -> bytes:
    return json.dumps(payload).encode()


CASES = [
    Case("empty text", js({"text": ""}), 200),
    Case("empty texts", js({"texts": ["", "", ""]}), 200),
    Case("whitespace only", js({"text": " \t\r\n" * 1000}), 200),
    Case("1 MB of one character", js({"text": "a" * 1_000_000}), 422, "limit_exceeded",
         "text 0 has 1000000 characters; the limit is 100000 (ALIGNTAG_MAX_CHARS_PER_TEXT)"),
    Case("100,000 of one character (the limit, one word)", js({"text": "a" * 100_000}), 200),
    Case("100,000 punctuation characters", js({"text": "." * 100_000}), 200, path="/acronyms"),
    Case("3 MB body", b'{"text": "' + b"a" * 3_000_000 + b'"}', 413, "payload_too_large",
         "request body exceeds 2097152 bytes"),
    Case("deeply nested JSON array", b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
         "invalid_json", "request body is not valid JSON"),
    Case("deeply nested JSON object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, "invalid_json",
         "request body is not valid JSON"),
    Case("nested, shallow enough to parse", js({"text": [[["a"]]]}), 422, "validation_error",
         "text: Input should be a valid string"),
    Case("invalid UTF-8 bytes", b'{"text": "\xff\xfe\xfa abc"}', 400, "invalid_json",
         "request body is not valid JSON"),
    Case("truncated UTF-8 sequence", b'{"text": "caf\xc3"}', 400, "invalid_json"),
    Case("lone surrogate escape", b'{"text": "abc \\ud800 def"}', 422, "validation_error",
         "text 0 is not valid Unicode: unpaired surrogate at character 4"),
    Case("lone surrogate in texts", b'{"texts": ["ok", "\\udfff"]}', 422, "validation_error",
         "text 1 is not valid Unicode"),
    Case("NUL characters", js({"text": "abc\u0000def\u0000 \u0000"}), 200),
    Case("NUL characters (acronyms)", js({"text": "\u0000(NUL) null (\u0000)"}), 200, path="/acronyms"),
    Case("only emoji", js({"text": "\U0001f600\U0001f680\u2764\ufe0f" * 2000}), 200),
    Case("only combining marks", js({"text": "\u0301\u0308\u0327" * 3000}), 200),
    Case("zero-width and bidi controls", js({"text": "\u200b\u200d\u202e\u2066" * 2000}), 200),
    Case("CJK and RTL", js({"text": "自然言語処理 ... שלום עולם " * 500}), 200, path="/acronyms"),
    Case("10,000 tiny texts", js({"texts": ["a"] * 10_000}), 422, "limit_exceeded",
         "10000 texts in one request; the limit is 256 (ALIGNTAG_MAX_TEXTS_PER_REQUEST)"),
    Case("256 tiny texts (the limit)", js({"texts": ["a b"] * 256}), 200),
    Case("empty body", b"", 400, "invalid_json", "request body is empty; send a JSON object"),
    Case("not JSON", b"text=hello", 400, "invalid_json", "request body is not valid JSON"),
    Case("JSON array", js(["a"]), 422, "validation_error"),
    Case("NaN min_score", b'{"text": "a", "min_score": NaN}', 422, "validation_error", "min_score"),
    Case("huge number", b'{"text": "a", "min_score": 1e999}', 422, "validation_error", "min_score"),
    Case("both text and texts", js({"text": "a", "texts": ["b"]}), 422, "validation_error",
         'give exactly one of "text" or "texts"'),
    Case("unknown key", js({"text": "a", "min_scor": 0.5}), 422, "validation_error", "min_scor"),
    Case("text/plain", js({"text": "a"}), 415, "unsupported_media_type",
         "Content-Type must be application/json (got text/plain)", headers={"Content-Type": "text/plain"}),
    Case("no content type", js({"text": "a"}), 200, headers={}),
    Case("curl -d default (form type, JSON body)", js({"text": "a"}), 200,
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("form body", b"text=a", 400, "invalid_json", "request body is not valid JSON",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("multipart", b"--x\r\n\r\na\r\n--x--", 415, "unsupported_media_type",
         headers={"Content-Type": "multipart/form-data; boundary=x"}),
    Case("json with charset", js({"text": "a"}), 200, headers={"Content-Type": "application/json; charset=utf-8"}),
    Case("1 MB header", js({"text": "a"}), 431, "headers_too_large", "the limit is 16384",
         headers={**JSON, "X-Padding": "a" * 1_000_000}),
    Case("2,000 headers (14 kB, under the limit)", js({"text": "a"}), 200,
         headers={**JSON, **{f"X-H{i}": "v" for i in range(2000)}}),
    Case("4,000 headers (30 kB)", js({"text": "a"}), 431, "headers_too_large", "ALIGNTAG_MAX_HEADER_BYTES",
         headers={**JSON, **{f"X-H{i}": "v" for i in range(4000)}}),
    Case("hostile request id", js({"text": "a"}), 200, headers={**JSON, "X-Request-ID": "<script>alert(1)</script>" * 20}),
]  # fmt: skip

RESULTS: list[list[object]] = []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, shared_service: Service) -> None:
    port = shared_service.port
    t0 = time.perf_counter()
    status, headers, body = rel_helpers.request(port, "POST", case.path, case.body, case.headers, timeout=120)
    elapsed = time.perf_counter() - t0
    data: Any = json.loads(body) if body else {}
    RESULTS.append([case.name, f"POST {case.path}", status, data["error"]["type"] if status >= 400 else "-",
                    rel_helpers.ms(elapsed)])  # fmt: skip
    assert status == case.status, body[:500]
    if case.error_type is None:
        assert "model" in data
        texts = json.loads(case.body)
        for text, result in zip(
            texts["texts"] if "texts" in texts else [texts["text"]],
            data.get("results", [data]),
            strict=True,
        ):
            for span in result.get("concepts", result.get("acronyms", [])):
                assert text[span["start"] : span["end"]] == span["text"]
    else:
        assert is_error_body(data), body[:500]
        assert data["error"]["type"] == case.error_type
        if case.message:
            assert case.message in data["error"]["message"]
    if "x-request-id" in headers and "X-Request-ID" in case.headers:
        assert headers["x-request-id"] != case.headers["X-Request-ID"]  # not echoed when unsafe
    assert rel_helpers.ready(port), "the service is not ready after this input"


def test_hostile_connection_level(shared_service: Service) -> None:
    """Garbage on the socket, bad header bytes, a Content-Length that lies: uvicorn's HTTP parser
    answers `400 Bad Request` (plain text: these never reach the app, so they are not in the JSON
    error shape) or closes that connection, and the service stays ready."""
    port = shared_service.port
    outcomes = []
    for name, raw in [
        ("binary garbage", bytes(range(256)) * 64),
        ("HTTP/0.9 style", b"GET /\r\n\r\n"),
        ("control character in a header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\x7fb\r\n\r\n"),
        ("Content-Length larger than the body",
         b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}"),
        ("negative Content-Length",
         b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}"),
    ]:  # fmt: skip
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.sendall(raw)
            if name.startswith("Content-Length larger"):
                s.shutdown(socket.SHUT_WR)  # the client gives up half-way through its body
            try:
                answer = s.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
            except TimeoutError:
                answer = "(no answer in 5 s)"
        outcomes.append(f"{name}: {answer or '(connection closed)'}")
        assert rel_helpers.ready(port), f"not ready after {name}"
    RESULTS.extend([[o.split(":")[0], "raw socket", o.split(":", 1)[1].strip(), "-", "-"] for o in outcomes])


def test_hostile_report(shared_service: Service, report: Report) -> None:
    assert rel_helpers.server_errors(shared_service.port) == 0
    assert shared_service.proc.poll() is None
    report.add(
        "Hostile inputs",
        f"{len(RESULTS)} inputs; after each the service answered `/ready` 200; 5xx answers in its "
        f"metrics: {rel_helpers.server_errors(shared_service.port):.0f}.",
        "",
    )
    report.table("Hostile inputs", ["input", "request", "status", "error type", "ms"], RESULTS)
