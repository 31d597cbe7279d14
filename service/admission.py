"""Admission at the HTTP layer: the model routes take at most `ALIGNTAG_MAX_IN_FLIGHT` requests at
a time, and every request beyond is refused at once with the service's JSON 503 and Retry-After.

`Admission` is the outermost ASGI middleware. A refusal is decided from one counter and answered
with a body rendered at start-up and its X-Request-ID: no JSON log line, no body read. Main-thread CPU
per request, uvicorn's parsing and socket writes included (closed loop, 8 connections, small model,
load average 4.3): 0.2 ms a refusal against 1.2 ms an accepted request (whose tokens, features and
decoding, another ~4 ms, run in the prep thread: service/models.py). Where a refusal used to be decided
(the batcher's queue) it came after everything a request costs the loop before it is queued, and at
3x overload a refusal waited behind that work (clean CI runs: median 1.4-1.7 s for 8-text requests).

A request counts from the moment its body has arrived to the end of its answer: a client that
trickles its body in holds no slot while it does (its time is bounded by
`ALIGNTAG_BODY_TIMEOUT_SECONDS`, see `RequestGuard`). The limit is checked when the headers arrive,
so requests whose bodies are still arriving can take the count a little past it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.logs import request_id
from service.metrics import Metrics

log = logging.getLogger("aligntag.admission")

# A path -> (route label, model label) for the POSTs that run a model, None for every other path
# (health, metrics, the page), which always passes (service/app.py `admitted_route`).
AdmittedRoute = Callable[[str], "tuple[str, str] | None"]
REFUSAL_LOG_SECONDS = 1.0  # refusals are summed into one log line at most this often


class Admission:
    def __init__(
        self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int, metrics: Metrics,
        admitted_route: AdmittedRoute,
    ) -> None:  # fmt: skip
        self.app = app
        self.admitted_route = admitted_route
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.in_flight = 0
        body = json.dumps(
            error_body(
                "overloaded",
                f"{max_in_flight} requests are being processed (ALIGNTAG_MAX_IN_FLIGHT); retry later",
            ),
            separators=(",", ":"),  # compact, as the app's JSON answers
        ).encode()
        self._start: Message = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after_seconds).encode()),
            ],
        }
        self._body: Message = {"type": "http.response.body", "body": body, "more_body": False}
        self._refused_since_log = 0
        self._last_log = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        labels = (
            self.admitted_route(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if labels is None:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await self._refuse(scope, labels, send)
            return
        counted = False

        async def receive_counted() -> Message:
            # The slot is taken when the body is complete (see the module docstring).
            nonlocal counted
            message = await receive()
            if not counted and message["type"] == "http.request" and not message.get("more_body", False):
                counted = True
                self.in_flight += 1
            return message

        try:
            await self.app(scope, receive_counted, send)
        finally:
            if counted:
                self.in_flight -= 1

    async def _refuse(self, scope: Scope, labels: tuple[str, str], send: Send) -> None:
        started = time.perf_counter()
        # The id lets a client quote a refusal; a refusal has no log line of its own to find by it.
        rid = (b"x-request-id", request_id(scope).encode())
        await send({**self._start, "headers": [*self._start["headers"], rid]})
        await send(self._body)
        route, model = labels
        self.metrics.requests.labels(route, "503").inc()
        self.metrics.request_duration.labels(route, "503").observe(time.perf_counter() - started)
        self.metrics.rejected.labels(model, "in_flight").inc()
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= REFUSAL_LOG_SECONDS:
            log.warning(
                "refused %d requests over ALIGNTAG_MAX_IN_FLIGHT=%d in the last %.1f s",
                self._refused_since_log, self.max_in_flight, now - self._last_log,
                extra={"fields": {"refused": self._refused_since_log, "max_in_flight": self.max_in_flight}},
            )  # fmt: skip
            self._refused_since_log, self._last_log = 0, now
