"""In-process app tests (TestClient on the tiny artifacts): auth, overload, failures, departures,
corrupt artifacts, exact offsets and window merging with injected runtimes, logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from svc_helpers import (
    ControlledRuntimes,
    MakeClient,
    check_spans,
    flip_byte,
    one_span_factory,
    orphan_continuation_factory,
    tokenwise_factory,
    version_dir,
)

from service.app import create_app
from service.settings import Settings
from textfeatures.features import FEATURE_NAMES, FEATURE_VERSION


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["type"], body["error"]["message"]


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# ---------------------------------------------------------------------------------------- API key


def test_api_key_guards_post_endpoints_only(make_client: MakeClient) -> None:
    client = make_client(api_key="s3cret")
    for route in ("/tag", "/acronyms"):
        missing = client.post(route, json={"text": "a"})
        assert error(missing) == (
            401, "unauthorized", "missing API key: send the header 'Authorization: Bearer <key>'",
        )  # fmt: skip
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(route, json={"text": "a"}, headers={"Authorization": "Bearer nope"})
        assert error(wrong) == (401, "unauthorized", "invalid API key")
        basic = client.post(route, json={"text": "a"}, headers={"Authorization": "Basic czNjcmV0"})
        assert basic.status_code == 401
        ok = client.post(route, json={"text": "a"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    for path in ("/health", "/ready", "/metrics", "/info", "/docs"):
        assert client.get(path).status_code == 200, path
    assert client.get("/info").json()["auth"] == {"api_key_required": True, "protect_metrics": False}


def test_protect_metrics(make_client: MakeClient) -> None:
    client = make_client(api_key="s3cret", protect_metrics=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/info").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200


def test_no_api_key_means_open(make_client: MakeClient) -> None:
    client = make_client()
    assert client.post("/tag", json={"text": "a"}).status_code == 200
    assert client.post("/tag", json={"text": "a"}, headers={"Authorization": "Bearer x"}).status_code == 200


# ---------------------------------------------------------------------------- overload and failure


@contextmanager
def one_running_one_queued(client: TestClient, runtimes: ControlledRuntimes) -> Iterator[None]:
    """The concepts worker busy with one /tag request and a second queued behind it; on exit both
    are released and answered 200."""
    concepts = runtimes["concepts"]
    batcher = client.app.state.models["concepts"].batcher  # type: ignore[attr-defined]
    concepts.gate.clear()
    concepts.entered.clear()
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(client.post, "/tag", json={"text": "first"})
        wait_for(concepts.entered.is_set)  # the worker is busy with "first"
        queued = pool.submit(client.post, "/tag", json={"text": "second"})
        wait_for(lambda: batcher.queue_depth == 1)
        yield
        concepts.gate.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200


def test_full_queue_gives_503_with_retry_after(make_client: MakeClient) -> None:
    runtimes = ControlledRuntimes()
    client = make_client(runtime_factory=runtimes, max_queue=1, retry_after_seconds=2)
    with one_running_one_queued(client, runtimes):
        refused = client.post("/tag", json={"text": "third"})
        assert error(refused) == (
            503, "overloaded", "the concepts queue is full (1 requests waiting); retry later",
        )  # fmt: skip
        assert refused.headers["retry-after"] == "2"
        assert client.post("/acronyms", json={"text": "other model, own queue"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'aligntag_rejected_requests_total{model="concepts",reason="queue_full"} 1.0' in metrics
    assert 'aligntag_requests_total{route="/tag",status="503"} 1.0' in metrics


def test_admission_refuses_beyond_max_in_flight_before_any_work(make_client: MakeClient) -> None:
    """ALIGNTAG_MAX_IN_FLIGHT=2: with one request in the model and one queued behind it, a third gets
    the 503 at once (it never reaches the tokenizer or the batcher), other routes still answer, and
    once the two are done requests pass again."""
    runtimes = ControlledRuntimes()
    client = make_client(runtime_factory=runtimes, max_in_flight=2, retry_after_seconds=3)
    concepts = runtimes["concepts"]
    batcher = client.app.state.models["concepts"].batcher  # type: ignore[attr-defined]
    with one_running_one_queued(client, runtimes):
        calls = len(concepts.calls)
        refused = client.post("/acronyms", json={"text": "third, other model: the limit is on the service"})
        assert error(refused) == (
            503, "overloaded", "the service is processing as many requests as it admits at a time (at most 2, "
            "fewer while each takes longer: ALIGNTAG_MAX_IN_FLIGHT, ALIGNTAG_ADMISSION_LATENCY_MS); retry later",
        )  # fmt: skip
        assert refused.headers["retry-after"] == "3"
        assert len(refused.headers["x-request-id"]) == 32  # a new id: the client sent none
        quoted = client.post("/tag", json={"text": "fourth"}, headers={"X-Request-ID": "mine-7"})
        assert quoted.status_code == 503 and quoted.headers["x-request-id"] == "mine-7"
        # The generic route counts too, for a known task and for one the service does not know.
        assert error(client.post("/tasks/concepts", json={"text": "fourth"}))[:2] == (503, "overloaded")
        assert error(client.post("/tasks/nope", json={"text": "fifth"}))[:2] == (503, "overloaded")
        assert batcher.queue_depth == 1 and len(concepts.calls) == calls
        assert client.get("/health").status_code == 200  # only the model routes are limited
    assert client.post("/tag", json={"text": "after"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'aligntag_rejected_requests_total{model="acronyms",reason="in_flight"} 1.0' in metrics
    assert 'aligntag_requests_total{route="/acronyms",status="503"} 1.0' in metrics
    assert 'aligntag_requests_total{route="/tasks/{task}",status="503"} 2.0' in metrics
    assert 'aligntag_rejected_requests_total{model="concepts",reason="in_flight"} 2.0' in metrics
    assert 'aligntag_rejected_requests_total{model="unknown",reason="in_flight"} 1.0' in metrics


def test_failed_batch_gives_json_500_and_service_stays_ready(make_client: MakeClient) -> None:
    runtimes = ControlledRuntimes()
    client = make_client(runtime_factory=runtimes)
    runtimes["acronyms"].fail = True
    assert error(client.post("/acronyms", json={"texts": ["a", "b"]})) == (
        500, "inference_failed", "inference failed on the acronyms model (RuntimeError)",
    )  # fmt: skip
    assert client.get("/ready").status_code == 200 and client.get("/health").status_code == 200
    runtimes["acronyms"].fail = False
    assert client.post("/acronyms", json={"text": "a"}).status_code == 200


def test_unexpected_error_is_a_json_500_without_traceback(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()

    def broken(text: str, spans: list) -> None:
        raise KeyError("secret internals")

    monkeypatch.setattr("service.app.pair_acronyms", broken)
    r = client.post("/acronyms", json={"text": "a"}, headers={"X-Request-ID": "req-42"})
    assert error(r) == (500, "internal_error", "internal error; quote request id req-42 when reporting it")
    assert "secret" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"] == "req-42"
    assert client.post("/tag", json={"text": "a"}).status_code == 200


def test_departed_client_is_dropped_before_its_batch_runs(tiny_artifacts_dir: Path) -> None:
    """Raw ASGI: request B's client disconnects while B waits behind A; B never reaches the model."""
    runtimes = ControlledRuntimes()
    app = create_app(Settings(artifacts_dir=tiny_artifacts_dir), runtimes)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            concepts = runtimes["concepts"]
            concepts.calls.clear()
            concepts.gate.clear()
            concepts.entered.clear()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                first = asyncio.ensure_future(client.post("/tag", json={"text": "first"}))
                await asyncio.to_thread(concepts.entered.wait, 10)

                gone = asyncio.Event()
                sent: list[dict] = []
                body = json.dumps({"text": "second text that never runs"}).encode()
                messages = [{"type": "http.request", "body": body, "more_body": False}]

                async def receive() -> dict:
                    if messages:
                        return messages.pop()
                    await gone.wait()
                    return {"type": "http.disconnect"}

                async def send(message: dict) -> None:
                    sent.append(message)

                scope = {
                    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                    "scheme": "http", "path": "/tag", "raw_path": b"/tag", "query_string": b"",
                    "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
                    "client": ("127.0.0.1", 1), "server": ("test", 80),
                }  # fmt: skip
                second = asyncio.ensure_future(app(scope, receive, send))
                batcher = app.state.models["concepts"].batcher
                while batcher.queue_depth < 1:
                    await asyncio.sleep(0.001)
                gone.set()
                await second  # returns once the handler notices the disconnect
                concepts.gate.set()
                assert (await first).status_code == 200
                assert sent == []  # nothing was sent to the departed client
                assert len(concepts.calls) == 1  # only "first" ran
                metrics = (await client.get("/metrics")).text
                assert (
                    'aligntag_rejected_requests_total{model="concepts",reason="client_disconnected"} 1.0'
                    in metrics
                )
                assert 'aligntag_requests_total{route="/tag",status="499"} 1.0' in metrics

    asyncio.run(asyncio.wait_for(scenario(), 30))


# ------------------------------------------------------------------------------- corrupt artifacts


def test_corrupt_artifact_gives_ready_503_naming_the_file(
    make_client: MakeClient, artifacts_copy: Path
) -> None:
    directory = version_dir(artifacts_copy, "concepts")
    served = json.loads((directory / "manifest.json").read_text())["serve"]["onnx_file"]
    flip_byte(directory / served)
    client = make_client(artifacts_dir=artifacts_copy)
    assert client.get("/health").status_code == 200
    assert error(client.get("/ready")) == (
        503, "not_ready", f"concepts: {directory / served}: sha256 does not match the manifest",
    )  # fmt: skip
    assert error(client.post("/tag", json={"text": "a"})) == (
        503, "model_unavailable",
        f"the concepts model is not available: {directory / served}: sha256 does not match the manifest",
    )  # fmt: skip
    assert client.post("/acronyms", json={"text": "a"}).status_code == 200  # the other model serves
    info = client.get("/info").json()["models"]["concepts"]
    assert info["status"] == "failed" and "sha256 does not match" in info["reason"]


def test_a_model_needing_features_the_service_lacks_is_refused_at_start(
    make_client: MakeClient, artifacts_copy: Path
) -> None:
    manifest_path = version_dir(artifacts_copy, "acronyms") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["features"] = {"version": 99, "names": ["word_shape", "pos_tag"]}
    manifest_path.write_text(json.dumps(manifest))
    client = make_client(artifacts_dir=artifacts_copy)
    expected = (
        f"{manifest_path}: the model needs features version 99 ['word_shape', 'pos_tag']; this service "
        f"computes version {FEATURE_VERSION} {list(FEATURE_NAMES)}: serve it with "
        "the aligntag release that built it, or rebuild it"
    )
    assert error(client.get("/ready")) == (503, "not_ready", f"acronyms: {expected}")
    assert client.get("/info").json()["models"]["acronyms"]["reason"] == expected
    assert client.post("/tag", json={"text": "a"}).status_code == 200  # the other model serves


def test_missing_artifacts_dir(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(artifacts_dir=tmp_path / "none")
    message = error(client.get("/ready"))[2]
    assert message == (
        f"concepts: {tmp_path / 'none' / 'concepts'}: no such directory (check ALIGNTAG_ARTIFACTS_DIR); "
        f"acronyms: {tmp_path / 'none' / 'acronyms'}: no such directory (check ALIGNTAG_ARTIFACTS_DIR)"
    )


def test_window_larger_than_the_model_is_reported(make_client: MakeClient) -> None:
    client = make_client(window_tokens=128)
    message = error(client.get("/ready"))[2]
    assert "ALIGNTAG_WINDOW_TOKENS=128 exceeds the model's max_positions=64; lower it or unset it" in message


# ------------------------------------------------------------------------- offsets and long texts


@pytest.mark.parametrize(
    "text",
    [
        "  leading and trailing  ",
        "emoji 😀 family 👩‍👩‍👧 end",
        "CJK 日本語のテキスト 中文",
        "combining e\u0301cole nai\u0308ve",
        "\r\nCRLF\r\nlines\tand\ttabs\r\n",
        "\U0001d518\U0001d52b\U0001d526 astral plane",
    ],
)
def test_offsets_are_code_point_indices(make_client: MakeClient, text: str) -> None:
    """With a fake model that makes each text one span (first token B, the rest I), the span must be
    exactly the text without its outer whitespace: offsets count code points, CRLF is two. (No text
    ends on a word WordNet knows only as a non-noun, which concept decoding would cut off.)"""
    client = make_client(runtime_factory=one_span_factory)
    stripped = text.strip()
    start = text.index(stripped)
    expected = {"text": stripped, "start": start, "end": start + len(stripped), "score": 1.0}
    concepts = client.post("/tag", json={"text": text}).json()["concepts"]
    assert [{**s, "score": round(s["score"], 2)} for s in concepts] == [expected]
    acronyms = client.post("/acronyms", json={"text": text}).json()["acronyms"]
    assert [(s["start"], s["end"], s["text"]) for s in acronyms] == [(start, start + len(stripped), stripped)]


def test_decoding_setting_chooses_viterbi_or_argmax(make_client: MakeClient) -> None:
    """ALIGNTAG_DECODING reaches the decoder: Viterbi repairs the fake model's O I I into one
    span; argmax (the ablation) starts the span at the orphan I."""
    text = "time series data analysis"
    spans = {}
    for decoding in ("viterbi", "argmax"):
        client = make_client(runtime_factory=orphan_continuation_factory, decoding=decoding)
        spans[decoding] = [s["text"] for s in client.post("/tag", json={"text": text}).json()["concepts"]]
    assert spans == {"viterbi": [text], "argmax": ["series data analysis"]}


def test_long_text_merge_is_exact_for_a_context_free_model(make_client: MakeClient) -> None:
    """A fake model whose logits depend on each token alone: the spans of a ~5-window text must be
    the same for every window size and overlap (merge + decode over window edges is exact)."""
    words = "Aligned pretraining objectives (APO) help convolutional neural networks tag concepts"
    text = " ".join([words] * 40)  # ~500 tokens: ~8 windows of 64
    answers = []
    for window, overlap in [(64, 16), (16, 4), (7, 0), (64, 0), (33, 32)]:
        client = make_client(
            runtime_factory=tokenwise_factory, window_tokens=window, window_overlap_tokens=overlap
        )
        tagged = client.post("/tag", json={"text": text, "min_score": 0}).json()["concepts"]
        acronyms = client.post("/acronyms", json={"text": text}).json()
        check_spans(text, tagged)
        check_spans(text, acronyms["acronyms"])
        answers.append((tagged, acronyms))
    assert len(answers[0][0]) > 20  # the fake model produces plenty of spans, many across edges
    assert all(a == answers[0] for a in answers[1:])


# ------------------------------------------------------------------------------------------- logs


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "aligntag.request"]  # type: ignore[attr-defined]


def test_one_structured_log_line_per_request_without_text(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    with caplog.at_level(logging.INFO, logger="aligntag.request"):
        client.post("/tag", json={"texts": ["secret words", "more"]}, headers={"X-Request-ID": "log-1"})
    (line,) = [f for f in request_lines(caplog) if f["request_id"] == "log-1"]
    assert {k: line[k] for k in ("method", "route", "status", "chars", "batch_size")} == {
        "method": "POST", "route": "/tag", "status": 200, "chars": 16, "batch_size": 2,
    }  # fmt: skip
    assert line["latency_ms"] > 0 and "texts" not in line
    assert "secret" not in json.dumps(line)


def test_request_text_logged_only_when_configured(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(log_requests_text=True)
    with caplog.at_level(logging.INFO, logger="aligntag.request"):
        client.post("/tag", json={"text": "visible"}, headers={"X-Request-ID": "log-2"})
    (line,) = [f for f in request_lines(caplog) if f["request_id"] == "log-2"]
    assert line["texts"] == ["visible"]


def test_concurrent_requests_are_batched(make_client: MakeClient) -> None:
    runtimes = ControlledRuntimes()
    client = make_client(runtime_factory=runtimes)
    concepts = runtimes["concepts"]
    concepts.gate.clear()
    concepts.entered.clear()
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(client.post, "/tag", json={"text": "first"})
        wait_for(concepts.entered.is_set)
        rest = [pool.submit(client.post, "/tag", json={"text": f"text {i}"}) for i in range(5)]
        batcher = client.app.state.models["concepts"].batcher  # type: ignore[attr-defined]
        wait_for(lambda: batcher.queue_depth == 5)
        calls_before = len(concepts.calls)
        concepts.gate.set()
        assert first.result().status_code == 200
        assert all(f.result().status_code == 200 for f in rest)
    assert len(concepts.calls) == calls_before + 1  # the five waiting requests ran as one batch
    assert concepts.calls[-1].shape[0] == 5
