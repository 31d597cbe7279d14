"""Admission at the HTTP layer: the model routes take a bounded number of requests at a time, and
every request beyond is refused at once with the service's JSON 503 and Retry-After.

The bound is the recent throughput times `ALIGNTAG_ADMISSION_LATENCY_MS`, kept between
`ALIGNTAG_MIN_IN_FLIGHT` and `ALIGNTAG_MAX_IN_FLIGHT` (`AdmissionLimit`). By Little's law an
admitted request then waits about that long, whatever a request costs on this machine. A fixed
count does not say how long a request waits: with 16 in flight, 8-text requests at 3x overload
waited 306 / 413 ms (p50 / p99) on a 2-core machine that served 49 of them a second, and 726 ms
(p99) on one that served 27 (reports/reliability; issue 16's target is 250 ms). The floor keeps
a few clients' worth of requests admitted whatever the throughput says (a burst of 2,000-word
documents lowers it for a while).

`Admission` is the outermost ASGI middleware. A refusal is decided from a counter and the current
limit (a few arithmetic operations) and answered with a body rendered at start-up and its
X-Request-ID: no JSON log line, no body read. Main-thread CPU
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
from collections import deque
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
# Completions the throughput is measured over: enough to span several batches (a batch ends many
# requests at once), few enough to follow a change of load within a second at saturation.
THROUGHPUT_WINDOW = 64
MIN_COMPLETIONS = 8  # below this, no estimate: the limit is ALIGNTAG_MAX_IN_FLIGHT


class AdmissionLimit:
    """How many requests may be in flight: throughput x target latency, within [floor, ceiling].

    Throughput is completions per second of *busy* time (time with at least one request in
    flight) over the last `THROUGHPUT_WINDOW` completions, so idle spells do not lower it; under
    overload the service is always busy and this is its throughput. Until `MIN_COMPLETIONS` have
    been seen the limit is the ceiling. Times are `time.monotonic()` seconds, passed in."""

    def __init__(self, floor: int, ceiling: int, target_seconds: float) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.target_seconds = target_seconds
        self.in_flight = 0
        self._busy_before = 0.0  # busy seconds before the current busy spell
        self._busy_since: float | None = None  # start of the current busy spell
        self._marks: deque[float] = deque(maxlen=THROUGHPUT_WINDOW)  # busy clock at each completion

    def _busy_clock(self, now: float) -> float:
        spell = 0.0 if self._busy_since is None else now - self._busy_since
        return self._busy_before + spell

    def throughput(self) -> float | None:
        """Requests per busy second, or None before enough completions."""
        if len(self._marks) < MIN_COMPLETIONS or self._marks[-1] <= self._marks[0]:
            return None
        return (len(self._marks) - 1) / (self._marks[-1] - self._marks[0])

    def limit(self) -> int:
        rate = self.throughput()
        if rate is None:
            return self.ceiling
        return max(self.floor, min(self.ceiling, round(rate * self.target_seconds)))

    def admits(self) -> bool:
        return self.in_flight < self.limit()

    def started(self, now: float) -> None:
        if self.in_flight == 0:
            self._busy_since = now
        self.in_flight += 1

    def finished(self, now: float) -> None:
        self._marks.append(self._busy_clock(now))
        self.in_flight -= 1
        if self.in_flight == 0 and self._busy_since is not None:
            self._busy_before += now - self._busy_since
            self._busy_since = None


class Admission:
    def __init__(
        self, app: ASGIApp, limit: AdmissionLimit, retry_after_seconds: int, metrics: Metrics,
        admitted_route: AdmittedRoute,
    ) -> None:  # fmt: skip
        self.app = app
        self.admitted_route = admitted_route
        self.limit = limit
        self.metrics = metrics
        metrics.admission_limit.set_function(limit.limit)  # computed at each scrape
        body = json.dumps(
            error_body(
                "overloaded",
                "the service is processing as many requests as it admits at a time (at most "
                f"{limit.ceiling}, fewer while each takes longer: ALIGNTAG_MAX_IN_FLIGHT, "
                "ALIGNTAG_ADMISSION_LATENCY_MS); retry later",
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
        if not self.limit.admits():
            await self._refuse(scope, labels, send)
            return
        counted = False

        async def receive_counted() -> Message:
            # The slot is taken when the body is complete (see the module docstring).
            nonlocal counted
            message = await receive()
            if not counted and message["type"] == "http.request" and not message.get("more_body", False):
                counted = True
                self.limit.started(time.monotonic())
            return message

        try:
            await self.app(scope, receive_counted, send)
        finally:
            if counted:
                self.limit.finished(time.monotonic())

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
            limit = self.limit.limit()
            log.warning(
                "refused %d requests over an admission limit of %d in flight in the last %.1f s",
                self._refused_since_log, limit, now - self._last_log,
                extra={"fields": {"refused": self._refused_since_log, "limit": limit}},
            )  # fmt: skip
            self._refused_since_log, self._last_log = 0, now
