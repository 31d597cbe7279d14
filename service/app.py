"""The HTTP layer: `create_app(settings)` builds the FastAPI app (docs/service.md is its reference).

Layers run one way: HTTP (this module) -> `models.predict` -> batcher -> ONNX Runtime.

Three pure-ASGI middlewares wrap every request:
- `Admission` (outermost, service/admission.py): at most as many model requests as the recent
  throughput serves within `admission_latency_ms` (between `min_in_flight` and `max_in_flight`);
  the excess is refused with a 503 before any other work.
- `RequestContext`: request id, timing headers, request metrics, one JSON log line, and the last
  line of defence that turns any unexpected exception into a JSON 500.
- `RequestGuard`: API key, content type and body size of the POST endpoints, checked before the
  body is parsed; the body is read here, at most `max_body_bytes` of it within
  `body_timeout_seconds` (an oversized one is drained before the 413).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__
from service.admission import Admission, AdmissionLimit
from service.artifacts import BUILTIN_TASKS
from service.errors import (
    ClientDisconnected,
    HeadersTooLarge,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    error_body,
    error_response,
    install_handlers,
)
from service.logs import request_id
from service.metrics import CONTENT_TYPE, Metrics
from service.models import (
    Model,
    RequestTimings,
    RuntimeFactory,
    load_model,
    onnx_runtime_factory,
    predict,
    start_batcher,
)
from service.pairing import pair_acronyms
from service.reload import Reloader
from service.settings import Settings
from service.tagging import OffsetUnits, rank_spans
from service.ui import UI_ROUTES, install_ui
from textfeatures.words import use_word_splitter

log = logging.getLogger("aligntag.app")
request_log = logging.getLogger("aligntag.request")

MODEL_ROUTES = {"/tag": "concepts", "/acronyms": "acronyms"}  # route -> the task that answers it
TASK_ROUTE = "/tasks/{task}"  # POST /tasks/<task>: every task, built-in or user (docs/service.md)
TASK_PATH = re.compile(r"/tasks/[^/]+")
ADMIN_ROUTES = ("/admin/reload",)  # behind the API key when one is set
KNOWN_ROUTES = frozenset(
    {*MODEL_ROUTES, *ADMIN_ROUTES, "/health", "/ready", "/metrics", "/info", "/docs", "/openapi.json"}
)
KNOWN_ROUTES |= UI_ROUTES  # the page at /, its files and the offline docs (service/ui.py)
STATUS_CLIENT_GONE = 499  # nginx's code for "client closed request"; never sent, only counted


def route_of(path: str) -> str | None:
    """The route a path belongs to, for the metrics and the log (`/tasks/{task}` for every task: a
    label per requested name would let clients grow the series without bound); None = unknown."""
    if path in KNOWN_ROUTES:
        return path
    return TASK_ROUTE if TASK_PATH.fullmatch(path) else None


def is_model_route(path: str) -> bool:
    """Routes that run a model: their POST bodies are guarded and they count as in flight."""
    return path in MODEL_ROUTES or TASK_PATH.fullmatch(path) is not None


# --------------------------------------------------------------------------------------------
# Request and response bodies (also the OpenAPI schema at /docs)


# Media types whose body is read as JSON ("" = no Content-Type header).
JSON_BODY_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded", ""})


class TextsRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = Field(default=None, description="One text.")
    texts: list[StrictStr] | None = Field(default=None, description="Several texts; answered in order.")
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="Drop spans scoring below this.")
    offsets: Literal["codepoints", "utf16", "utf8"] = Field(
        default="codepoints",
        description="Unit of `start`/`end`: code points (Python), UTF-16 code units (JavaScript, "
        "Java, C#) or UTF-8 bytes (Go, Rust).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TextsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" or "texts"')
        if self.texts is not None and not self.texts:
            raise ValueError('"texts" is empty; send at least one text')
        return self

    def as_list(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class SpansRequest(TextsRequest):
    """`/tag` and `/tasks/{task}`: all spans in text order, or, with `top_k` or `unique`, ranked."""

    top_k: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Only the k best-scoring spans of each text, ranked by score.",
    )
    unique: bool = Field(
        default=False,
        description="One span per phrase (compared case-insensitively): its best-scoring mention; "
        "ranked by score.",
    )


class SpanOut(BaseModel):
    text: str
    start: int = Field(description="Offset of the first character, in the request's `offsets` unit.")
    end: int = Field(description="End, exclusive: with code points, text == input[start:end].")
    score: float


class ModelRef(BaseModel):
    task: str
    version: str


class Concepts(BaseModel):
    concepts: list[SpanOut]


class TagResponse(Concepts):
    model: ModelRef


class TagBatchResponse(BaseModel):
    results: list[Concepts]
    model: ModelRef


class LabelledSpanOut(BaseModel):
    text: str
    start: int = Field(description="Offset of the first character, in the request's `offsets` unit.")
    end: int = Field(description="End, exclusive: with code points, text == input[start:end].")
    label: str = Field(description="The span label (one of the task's span labels in /info).")
    score: float


class TaskSpans(BaseModel):
    spans: list[LabelledSpanOut]


class TaskResponse(TaskSpans):
    model: ModelRef


class TaskBatchResponse(BaseModel):
    results: list[TaskSpans]
    model: ModelRef


class AcronymOut(SpanOut):
    long_form: SpanOut | None


class Acronyms(BaseModel):
    acronyms: list[AcronymOut]
    long_forms: list[SpanOut] = Field(description="Long forms not paired with any acronym.")


class AcronymsResponse(Acronyms):
    model: ModelRef


class AcronymsBatchResponse(BaseModel):
    results: list[Acronyms]
    model: ModelRef


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


# Every status a model route answers besides 200 (docs/service.md, "Errors"), with its error types.
ERROR_STATUSES = {
    400: "invalid_json: the body is not JSON (or is empty).",
    401: "unauthorized: API key missing or wrong (only when ALIGNTAG_API_KEY is set).",
    405: "method_not_allowed: a method other than POST; the Allow header lists POST.",
    408: "request_timeout: the body did not arrive within ALIGNTAG_BODY_TIMEOUT_SECONDS.",
    413: "payload_too_large: the body exceeds ALIGNTAG_MAX_BODY_BYTES.",
    415: "unsupported_media_type: a Content-Type other than JSON.",
    422: "validation_error or limit_exceeded: a field is invalid, or a text or request is over its limit.",
    431: "headers_too_large: the request headers exceed ALIGNTAG_MAX_HEADER_BYTES.",
    500: "internal_error or inference_failed; the message names the request id.",
    503: "overloaded (admission's limit of requests in flight reached, or the queue full; with Retry-After) "
    "or model_unavailable (the model is not loaded).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description} for code, description in ERROR_STATUSES.items()
}
# POST /tasks/{task} answers one more: a task the service does not know.
TASK_NOT_FOUND = "not_found: no such task; the message lists the known tasks."


# --------------------------------------------------------------------------------------------
# Middlewares


@dataclass
class RequestState:
    request_id: str
    started: float
    timings: RequestTimings = field(default_factory=RequestTimings)
    chars: int = 0
    texts: list[str] = field(default_factory=list)


def request_state(request: Request) -> RequestState:
    state: RequestState = request.scope["aligntag"]
    return state


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, settings: Settings) -> None:
        self.app = app
        self.metrics = metrics
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = RequestState(request_id=request_id(scope), started=time.perf_counter())
        scope["aligntag"] = state
        path = scope["path"]
        route = route_of(path) or "other"  # raw unknown paths would explode cardinality
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = state.request_id
                headers["Server-Timing"] = server_timing(state, time.perf_counter())
            await send(message)

        counts_in_flight = is_model_route(path)
        if counts_in_flight:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnected:
            status = STATUS_CLIENT_GONE
        except Exception:
            log.exception("unhandled error", extra={"fields": {"request_id": state.request_id}})
            if response_started:
                raise  # nothing sensible left to send; the server closes the connection
            error = ServiceError(f"internal error; quote request id {state.request_id} when reporting it")
            await error_response(error)(scope, receive, send_with_headers)
        finally:
            if counts_in_flight:
                self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - state.started
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_duration.labels(route, str(status)).observe(elapsed)
            self._log(scope, route, status, elapsed, state)

    def _log(self, scope: Scope, route: str, status: int, elapsed: float, state: RequestState) -> None:
        if route == "/metrics" and status == 200 and not request_log.isEnabledFor(logging.DEBUG):
            return  # one scrape a second would drown everything else
        fields: dict[str, Any] = {
            "request_id": state.request_id,
            "method": scope["method"],
            "route": route,
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
            "chars": state.chars,
            "batch_size": state.timings.batch_size,
        }
        if route in ("other", TASK_ROUTE):
            fields["path"] = scope["path"][:200]
        if self.settings.log_requests_text and state.texts:
            fields["texts"] = state.texts
        request_log.info("request", extra={"fields": fields})


def server_timing(state: RequestState, now: float) -> str:
    t = state.timings
    parts = [("tokenize", t.tokenize), ("queue", t.queue), ("inference", t.inference),
             ("total", now - state.started)]  # fmt: skip
    return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in parts)


def as_json_request(scope: Scope) -> Scope:
    """The same request labelled application/json, so the body is parsed (and validated) as JSON
    whatever JSON_BODY_TYPES member the client sent."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


class RequestGuard:
    """Header size of every request; API key, content type and body size of protected/model routes;
    all before any parsing."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        model_post = method == "POST" and is_model_route(path)
        protected = (
            model_post
            or path in ADMIN_ROUTES
            or (self.settings.protect_metrics and path in ("/metrics", "/info"))
        )
        try:
            self._check_header_size(scope["headers"])
            if protected and self.api_key is not None:
                self._check_key(Headers(scope=scope))
            if model_post:
                self._check_content_type(Headers(scope=scope))
                body = await self._read_body(Headers(scope=scope), receive)
                receive = replay(body, receive)
                scope = as_json_request(scope)
        except ServiceError as e:
            await error_response(e)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_header_size(self, raw_headers: list[tuple[bytes, bytes]]) -> None:
        size = sum(len(name) + len(value) for name, value in raw_headers)
        if size > self.settings.max_header_bytes:
            raise HeadersTooLarge(
                f"request headers take {size} bytes; the limit is {self.settings.max_header_bytes} "
                "(ALIGNTAG_MAX_HEADER_BYTES)"
            )

    def _check_key(self, headers: Headers) -> None:
        assert self.api_key is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        if not hmac.compare_digest(token.strip().encode(), self.api_key):
            raise Unauthorized("invalid API key")

    def _check_content_type(self, headers: Headers) -> None:
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        # `curl -d '{"text": ...}'` labels JSON as a form and other clients send no type at all:
        # both bodies are parsed as JSON (and refused with 400 when they are not). A type that
        # declares some other format is refused outright.
        if media_type not in JSON_BODY_TYPES:
            raise UnsupportedMediaType(f"Content-Type must be application/json (got {media_type})")

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes:
        """The body, at most `max_body_bytes` of it, within `body_timeout_seconds` (408 beyond: a
        client trickling its body in is cut off; it holds no admission slot meanwhile)."""
        limit = self.settings.max_body_bytes
        deadline = asyncio.get_running_loop().time() + self.settings.body_timeout_seconds
        too_large = PayloadTooLarge(
            f"request body exceeds {limit} bytes (ALIGNTAG_MAX_BODY_BYTES); split the texts over several requests",
            headers={"Connection": "close"},
        )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            if int(declared) <= self.settings.max_drain_bytes:  # else the reset cannot be avoided
                await self._drain(headers, receive, deadline)
            raise too_large
        chunks, size = [], 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                self.metrics.client_timeouts.labels("body").inc()
                raise RequestTimeout(
                    f"the request body did not arrive within {self.settings.body_timeout_seconds:g} s "
                    "(ALIGNTAG_BODY_TIMEOUT_SECONDS)",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):  # a complete body has nothing left to drain
                    await self._drain(headers, receive, deadline)
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, headers: Headers, receive: Receive, deadline: float) -> None:
        """Read and discard the rest of an oversized body (at most `max_drain_bytes`, until the body
        deadline) before the 413 goes out with `Connection: close`. Closing a socket whose received
        data was never read makes the kernel send a reset, which discards the answer: urllib,
        http.client and httpx send the whole body before reading and got `Connection reset by peer`.
        A client that sent `Expect: 100-continue` has sent no body yet (uvicorn answers 100 only when
        the body is read), so it gets the 413 at once."""
        if headers.get("expect", "").lower() == "100-continue":
            return
        drained = 0
        try:
            async with asyncio.timeout_at(deadline):
                while drained <= self.settings.max_drain_bytes:
                    message = await receive()
                    drained += len(message.get("body", b""))
                    if message["type"] == "http.disconnect" or not message.get("more_body", False):
                        return
        except TimeoutError:
            self.metrics.client_timeouts.labels("body").inc()


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the already-read body once, then the client's later messages
    (the disconnect the handlers watch for)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


# --------------------------------------------------------------------------------------------
# The app


def create_app(settings: Settings | None = None, runtime_factory: RuntimeFactory | None = None) -> FastAPI:
    """The service as an ASGI app; models are loaded by its lifespan (start-up)."""
    settings = settings or Settings()
    use_word_splitter(settings.words)  # process-wide: textfeatures computes one kind of word
    factory = runtime_factory if runtime_factory is not None else onnx_runtime_factory
    metrics = Metrics()
    # Task -> model, the built-in tasks first; user tasks are added by the lifespan and by reloads.
    models: dict[str, Model] = {task: Model(task=task) for task in BUILTIN_TASKS}
    reloader = Reloader(models, settings, factory, metrics)  # new versions without a restart

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = await reloader.tasks()
        loaded = await asyncio.gather(*(asyncio.to_thread(load_model, t, settings, factory) for t in tasks))
        for model in loaded:
            models[model.task] = model
            if model.status == "ready":
                start_batcher(model, settings, metrics)
        # Each failure was logged by load_model; a user task's does not make the service unready.
        failed = [m for m in loaded if m.status != "ready" and m.builtin]
        if failed:
            log.error("not ready: " + "; ".join(f"{m.task}: {m.reason}" for m in failed))
        else:
            log.info("ready", extra={"fields": {"models": {m.task: m.version or m.status for m in loaded}}})
        await reloader.start()
        yield
        await reloader.close()
        for model in models.values():
            if model.batcher is not None:
                await model.batcher.stop()

    app = FastAPI(
        title="aligntag",
        version=__version__,
        description="Concept tagging and acronym detection with objective-aligned small transformers.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from service/ui.py, with local files instead of a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = models
    app.state.reloader = reloader
    install_handlers(app)
    install_ui(app)
    app.add_middleware(RequestGuard, settings=settings, metrics=metrics)
    app.add_middleware(RequestContext, metrics=metrics, settings=settings)

    # Outermost: excess requests are refused before any other work (service/admission.py).
    def admitted_route(path: str) -> tuple[str, str] | None:
        """(route label, model label) of a path whose POST runs a model; None for the others. A
        task the service does not know is labelled `unknown` (it would get 404)."""
        if path in MODEL_ROUTES:
            return path, MODEL_ROUTES[path]
        if TASK_PATH.fullmatch(path):
            task = path.removeprefix("/tasks/")
            return TASK_ROUTE, task if task in models else "unknown"
        return None

    app.add_middleware(
        Admission,
        limit=AdmissionLimit(
            floor=settings.min_in_flight,
            ceiling=settings.max_in_flight,
            target_seconds=settings.admission_latency_ms / 1000,
        ),
        retry_after_seconds=settings.retry_after_seconds,
        metrics=metrics,
        admitted_route=admitted_route,
    )

    def model_ref(model: Model) -> dict[str, str]:
        return {"task": model.task, "version": model.version}

    async def run_model(request: Request, body: TextsRequest, task: str) -> tuple[Model, list[str], list]:
        texts = body.as_list()
        limit = settings.max_texts_per_request
        if len(texts) > limit:
            raise LimitExceeded(
                f"{len(texts)} texts in one request; the limit is {limit} (ALIGNTAG_MAX_TEXTS_PER_REQUEST)"
            )
        for i, text in enumerate(texts):
            if len(text) > settings.max_chars_per_text:
                raise LimitExceeded(
                    f"text {i} has {len(text)} characters; the limit is {settings.max_chars_per_text} "
                    "(ALIGNTAG_MAX_CHARS_PER_TEXT)"
                )
            if not text.isascii():
                try:  # JSON can carry lone surrogates (\ud800) that no tokenizer can take
                    text.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise ValidationFailed(
                        f"text {i} is not valid Unicode: unpaired surrogate at character {e.start}"
                    ) from None
        state = request_state(request)
        state.chars = sum(len(t) for t in texts)
        if settings.log_requests_text:
            state.texts = texts
        model = models.get(task)
        if model is None:
            raise NotFound(f"no task {task!r}; known tasks: {', '.join(models)}")
        spans = await predict(model, texts, body.min_score, metrics, state.timings, request.receive)
        return model, texts, spans

    @app.post(
        "/tag",
        response_model=None,
        responses={200: {"model": TagResponse | TagBatchResponse}, **ERROR_RESPONSES},
        summary="Tag concepts of interest",
    )
    async def tag(request: Request, body: SpansRequest) -> Response:
        model, texts, spans = await run_model(request, body, "concepts")
        results = []
        for text, found in zip(texts, spans, strict=True):
            units = OffsetUnits(text, body.offsets)
            ranked = rank_spans(text, found, body.top_k, body.unique)
            results.append({"concepts": [s.as_json(text, units) for s in ranked]})
        content = {**results[0]} if body.text is not None else {"results": results}
        return JSONResponse({**content, "model": model_ref(model)})

    @app.post(
        "/acronyms",
        response_model=None,
        responses={200: {"model": AcronymsResponse | AcronymsBatchResponse}, **ERROR_RESPONSES},
        summary="Find acronyms and their long forms",
    )
    async def acronyms(request: Request, body: TextsRequest) -> Response:
        model, texts, spans = await run_model(request, body, "acronyms")
        results = []
        for text, found in zip(texts, spans, strict=True):
            pairing = pair_acronyms(text, found)
            units = OffsetUnits(text, body.offsets)
            results.append(
                {
                    "acronyms": [
                        {
                            **a.short.as_json(text, units),
                            "long_form": a.long.as_json(text, units) if a.long else None,
                        }
                        for a in pairing.acronyms
                    ],
                    "long_forms": [s.as_json(text, units) for s in pairing.unpaired_long_forms],
                }
            )
        content = {**results[0]} if body.text is not None else {"results": results}
        return JSONResponse({**content, "model": model_ref(model)})

    @app.post(
        TASK_ROUTE,
        response_model=None,
        responses={
            200: {"model": TaskResponse | TaskBatchResponse},
            **ERROR_RESPONSES,
            404: {"model": ErrorResponse, "description": TASK_NOT_FOUND},
        },
        summary="Tag the spans of any task (built-in or user), with their labels",
    )
    async def task_spans(
        request: Request,
        body: SpansRequest,
        task: str = Path(description="A task name as listed in GET /info, e.g. concepts or methods."),
    ) -> Response:
        # The raw spans of the task's model with their labels: for acronyms, short and long forms
        # unpaired (POST /acronyms pairs them).
        model, texts, spans = await run_model(request, body, task)
        results = []
        for text, found in zip(texts, spans, strict=True):
            units = OffsetUnits(text, body.offsets)
            ranked = rank_spans(text, found, body.top_k, body.unique)
            results.append({"spans": [s.as_json(text, units, with_label=True) for s in ranked]})
        content = {**results[0]} if body.text is not None else {"results": results}
        return JSONResponse({**content, "model": model_ref(model)})

    @app.get("/health", summary="Liveness: the process answers (no model work)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the built-in models loaded, verified and warmed up",
             responses={503: {"model": ErrorResponse}})  # fmt: skip
    async def ready() -> Response:
        # Ready = the built-in tasks serve: a broken user task must not take the service out of a
        # load balancer's rotation. It is listed with its reason in `unavailable` (and in /info).
        not_ready = {m.task: m.reason for m in models.values() if m.status != "ready"}
        if any(task in BUILTIN_TASKS for task in not_ready):
            message = "; ".join(f"{task}: {reason}" for task, reason in not_ready.items())
            return JSONResponse(error_body("not_ready", message), status_code=503)
        serving = {m.task: m.version for m in models.values() if m.status == "ready"}
        return JSONResponse({"status": "ready", "models": serving, "unavailable": not_ready})

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    async def metrics_endpoint() -> Response:
        for task, model in models.items():
            depth = model.batcher.queue_depth if model.batcher else 0
            metrics.queue_depth.labels(task).set(depth)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/info", summary="Every task: status, version, span labels, manifest; the service limits")
    async def info() -> dict[str, Any]:
        return {
            "service": {"version": __version__},
            "models": {
                task: {**describe(model), "reload": reloader.describe(task)} for task, model in models.items()
            },
            "limits": {
                "max_chars_per_text": settings.max_chars_per_text,
                "max_texts_per_request": settings.max_texts_per_request,
                "max_body_bytes": settings.max_body_bytes,
                "max_batch_tokens": settings.max_batch_tokens,
                "max_batch_requests": settings.max_batch_requests,
                "max_queue": settings.max_queue,
                "max_queue_wait_ms": settings.max_queue_wait_ms,
                "max_in_flight": settings.max_in_flight,
                "min_in_flight": settings.min_in_flight,
                "admission_latency_ms": settings.admission_latency_ms,
            },
            "auth": {
                "api_key_required": settings.api_key is not None,
                "protect_metrics": settings.protect_metrics,
            },
        }

    @app.post("/admin/reload", summary="Serve each task's newest complete version now (no restart)",
              responses={401: {"model": ErrorResponse}})  # fmt: skip
    async def admin_reload() -> dict[str, Any]:
        return {"models": await reloader.reload("admin")}

    return app


def describe(model: Model) -> dict[str, Any]:
    route = {"builtin": model.builtin, "route": f"/tasks/{model.task}"}
    if model.artifact is None:
        return {"status": model.status, "reason": model.reason, **route}
    manifest = {k: v for k, v in model.artifact.manifest.items() if k != "files"}
    return {
        "status": model.status,
        **route,
        "span_labels": model.span_labels,
        "version": model.artifact.version,
        "onnx_file": model.artifact.onnx_path.name,
        "window_tokens": model.window,
        "window_overlap_tokens": model.overlap,
        "manifest": manifest,
    }
