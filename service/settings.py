"""Every setting of the service, in one typed place (docs/contracts.md section 4).

Values come from environment variables prefixed `ALIGNTAG_` (e.g. `ALIGNTAG_PORT=8080`); an empty
variable counts as unset, so `ALIGNTAG_API_KEY=` in a compose file leaves the API open. Bad values
and bad combinations are refused at start-up with a message that says how to fix them. Checks that
need the model (the window against the model's `max_positions`) run when the model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from textfeatures.tasks import TASK_NAME

GraphOptimizationLevel = Literal["disable", "basic", "extended", "all"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNTAG_", env_ignore_empty=True, extra="ignore")

    # --- where to listen
    host: str = Field(default="0.0.0.0", description="Interface to bind.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port.")
    graceful_shutdown_seconds: float = Field(
        default=30.0, gt=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )

    # --- which models
    artifacts_dir: Path = Field(
        default=Path("artifacts"),
        description="Root holding one directory per task: concepts/, acronyms/, user tasks.",
    )
    concepts_version: str | None = Field(
        default=None,
        description="Version directory to serve; unset = the complete one with the newest `created`.",
    )
    acronyms_version: str | None = Field(default=None, description="As concepts_version, for acronyms.")
    # NoDecode: parsed by `_task_versions` below, so a malformed value is refused like any other
    # bad setting (exit 2 naming the variable) instead of failing inside pydantic-settings.
    task_versions: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='Version directory to serve per task, any task: a JSON object, e.g. {"methods": '
        '"small-20261201T090000Z"}; a task not named = the complete version with the newest `created`. '
        "ALIGNTAG_CONCEPTS_VERSION / ALIGNTAG_ACRONYMS_VERSION are folded into it.",
    )
    onnx_file: str | None = Field(
        default=None,
        description="Serve this ONNX file (e.g. model.onnx) instead of the manifest's serve.onnx_file.",
    )

    reload_poll_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Look for a new version directory every this many seconds and serve it without "
        "a restart (as POST /admin/reload does); 0 = off.",
    )

    # --- ONNX Runtime
    intra_op_threads: int = Field(
        default=0, ge=0, description="Threads inside one operator; 0 = ONNX Runtime default."
    )
    inter_op_threads: int = Field(
        default=0, ge=0, description="Threads across operators; 0 = ONNX Runtime default."
    )
    intra_op_spinning: bool = Field(
        default=False,
        description="Let ONNX Runtime's intra-op threads spin while waiting for work. Off by default: "
        "on a 2-core machine the spinning threads take the CPU that the event loop needs to parse "
        "and refuse requests (1-text requests at 3x overload: refusal p99 222 ms spinning, 52 ms "
        "not); on, a lone request is ~1 ms faster (docs/bench.md).",
    )
    worker_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much nicer than the event loop the threads that do a request's work run "
        "(tokens and decoding, inference, ONNX Runtime's threads), so that on a busy machine the "
        "loop, which reads, refuses and answers requests, gets a core first; 0 = the same priority "
        "(service/scheduling.py).",
    )
    graph_optimization_level: GraphOptimizationLevel = Field(
        default="all", description="ONNX Runtime graph optimizations."
    )
    cpu_memory_arena: bool = Field(
        default=False,
        description="ONNX Runtime's CPU memory arena. Off by default: the arena keeps the peak of the "
        "largest batch ever run (RSS 187 -> 404 MB after long documents); off, RSS stays near its "
        "start-up size at a small allocation cost.",
    )

    # --- hard limits on input
    max_chars_per_text: int = Field(default=100_000, description="Characters in one text (422 beyond).")
    max_texts_per_request: int = Field(default=256, description="Texts in one request (422 beyond).")
    max_body_bytes: int = Field(default=2 * 1024 * 1024, description="Request body bytes (413 beyond).")
    max_drain_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Bytes of an oversized body read and discarded before the 413 is sent, so that a "
        "client that sends its whole body before reading (urllib, http.client, httpx) gets the 413 "
        "instead of a connection reset; past it the connection is closed unread. 0 = never drain.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Bytes of all request headers, names and values (431 beyond). uvicorn's parser sets "
        "no limit of its own; 16 KiB is what h11 and most proxies allow.",
    )

    # --- slow clients
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time allowed for a request's headers, from the connection's opening or the end "
        "of the previous answer on it; beyond it 408 and the connection is closed (one that sent "
        "nothing is closed). uvicorn itself sets no such limit.",
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time allowed for a request's body once its headers are in (408 beyond, connection "
        "closed); also bounds the draining of an oversized body.",
    )

    # --- batching (per model)
    max_batch_tokens: int = Field(default=8192, description="Tokens (sum of sequence lengths) in one batch.")
    max_batch_requests: int = Field(
        default=64, description="Sequences (texts or windows of a text) in one batch."
    )
    max_queue: int = Field(
        default=512, description="Requests waiting per model; beyond it 503 + Retry-After."
    )
    max_queue_wait_ms: float | None = Field(
        default=None,
        gt=0,
        description="Expected wait in a model's queue (the sequences queued times their recent cost) "
        "beyond which a request is refused with 503 + Retry-After: a bound on the wait in the queue "
        "whatever the request size, where ALIGNTAG_MAX_QUEUE and ALIGNTAG_MAX_IN_FLIGHT count requests. "
        "Unset: no bound. Opt-in, because it refuses heavy requests under a load the service can "
        "carry (8 connections of mixed requests with 2,000-word documents at 100 ms).",
    )
    retry_after_seconds: int = Field(default=1, description="Retry-After sent with a 503 for a full queue.")
    max_in_flight: int = Field(
        default=16,
        description="POST /tag, /acronyms and /tasks/{task} requests processed at a time (body received "
        "to answer sent) at most; beyond the admission limit, 503 + Retry-After at once, before any "
        "other work (service/admission.py). The limit is the recent throughput times "
        "ALIGNTAG_ADMISSION_LATENCY_MS, between ALIGNTAG_MIN_IN_FLIGHT and this.",
    )
    min_in_flight: int = Field(
        default=4,
        description="Requests always admitted at a time, whatever the measured throughput (a burst "
        "of long documents lowers it): a few clients' worth. Set it to ALIGNTAG_MAX_IN_FLIGHT for "
        "a fixed limit; raise it for a batch job whose clients would rather wait than retry.",
    )
    admission_latency_ms: float = Field(
        default=150.0,
        gt=0,
        description="Latency an admitted request should see under overload: admission lets in the "
        "recent throughput (requests per busy second) times this many requests at a time, so by "
        "Little's law each waits about this long. Issue 16's target is a p99 of 250 ms at 3x overload.",
    )

    # --- long texts
    window_tokens: int | None = Field(
        default=None,
        description="Tokens per window; unset = the model's max_positions (it may not exceed them).",
    )
    window_overlap_tokens: int | None = Field(
        default=None, description="Tokens shared by consecutive windows; unset = a quarter of the window."
    )
    decoding: Literal["viterbi", "argmax"] = Field(
        default="viterbi",
        description="How token probabilities become spans: `viterbi` = the most probable well-formed "
        "BIO sequence over words (textfeatures.decode); `argmax` = each word's most probable label, "
        "an I- with no open span starting one. `argmax` is there to measure what structured "
        "decoding adds (reports/quality, variant no-structured-decoding), not to serve.",
    )

    words: Literal["as-written", "pretokens"] = Field(
        default="as-written",
        description="How text is cut into words, the unit of features and spans (textfeatures.words): "
        "`as-written` keeps `T2DM`, `IL-6` whole; `pretokens` = the tokenizer's pre-tokens "
        "(`T`, `2`, `DM`). A model is served only with the splitter it was built with (its manifest's "
        "`decoding.words`); `pretokens` is there to serve the ablation of words as written "
        "(reports/quality, variant no-user-words), not to serve users.",
    )

    # --- access
    api_key: SecretStr | None = Field(
        default=None, description="When set, POST endpoints require `Authorization: Bearer <key>`."
    )
    protect_metrics: bool = Field(
        default=False, description="Also require the API key on GET /metrics and GET /info."
    )

    # --- logging
    log_level: LogLevel = Field(default="info", description="Log level of the service's JSON logs.")
    log_requests_text: bool = Field(
        default=False, description="Put the request texts in the request log line."
    )

    @field_validator("log_level", "graph_optimization_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "max_chars_per_text",
        "max_texts_per_request",
        "max_body_bytes",
        "max_batch_tokens",
        "max_batch_requests",
        "max_queue",
        "retry_after_seconds",
        "max_in_flight",
        "min_in_flight",
    )
    @classmethod
    def _positive(cls, value: int, info: object) -> int:
        if value <= 0:
            name = getattr(info, "field_name", "value")
            raise ValueError(f"must be a positive integer; set ALIGNTAG_{str(name).upper()} to 1 or more")
        return value

    @field_validator("task_versions", mode="before")
    @classmethod
    def _task_versions(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f'not JSON ({e}); write a JSON object such as {{"methods": "<version directory>"}}'
                ) from None
        if not isinstance(value, dict):
            return value  # pydantic's own message: "Input should be a valid dictionary"
        for task in value:  # a name no task directory can have would pin nothing, silently
            if not TASK_NAME.fullmatch(str(task)):
                raise ValueError(f"{task!r} is not a task name ({TASK_NAME.pattern})")
        return value

    @field_validator("window_tokens")
    @classmethod
    def _window_size(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise ValueError("a window needs at least 2 tokens; raise ALIGNTAG_WINDOW_TOKENS or unset it")
        return value

    @field_validator("window_overlap_tokens")
    @classmethod
    def _overlap(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must be 0 or more; set ALIGNTAG_WINDOW_OVERLAP_TOKENS=0 for no overlap")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        # The built-in tasks' own settings are one more way to write task_versions: fold them in,
        # and refuse two different pins for one task rather than pick one silently.
        for task, pinned in (("concepts", self.concepts_version), ("acronyms", self.acronyms_version)):
            if pinned is None:
                continue
            other = self.task_versions.get(task)
            if other is not None and other != pinned:
                raise ValueError(
                    f"ALIGNTAG_{task.upper()}_VERSION={pinned} and ALIGNTAG_TASK_VERSIONS[{task!r}]={other} "
                    "disagree; set one of them"
                )
            self.task_versions[task] = pinned
        if (
            self.window_tokens is not None
            and self.window_overlap_tokens is not None
            and self.window_overlap_tokens >= self.window_tokens
        ):
            raise ValueError(
                f"ALIGNTAG_WINDOW_OVERLAP_TOKENS={self.window_overlap_tokens} must be smaller than "
                f"ALIGNTAG_WINDOW_TOKENS={self.window_tokens}: consecutive windows must advance"
            )
        if self.window_tokens is not None and self.window_tokens > self.max_batch_tokens:
            raise ValueError(
                f"ALIGNTAG_MAX_BATCH_TOKENS={self.max_batch_tokens} cannot hold one window of "
                f"ALIGNTAG_WINDOW_TOKENS={self.window_tokens}; raise the budget or lower the window"
            )
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("ALIGNTAG_API_KEY is blank; set a real key or unset it for an open API")
        if self.protect_metrics and self.api_key is None:
            raise ValueError("ALIGNTAG_PROTECT_METRICS=true needs ALIGNTAG_API_KEY; set a key or drop it")
        return self

    def window_for(self, max_positions: int) -> tuple[int, int]:
        """(window, overlap) in tokens for a model with `max_positions`; ValueError says how to fix."""
        window = self.window_tokens or max_positions
        if window > max_positions:
            raise ValueError(
                f"ALIGNTAG_WINDOW_TOKENS={window} exceeds the model's max_positions={max_positions}; "
                "lower it or unset it"
            )
        overlap = self.window_overlap_tokens if self.window_overlap_tokens is not None else window // 4
        if overlap >= window:
            raise ValueError(
                f"ALIGNTAG_WINDOW_OVERLAP_TOKENS={overlap} must be smaller than the window of {window} "
                "tokens; lower it or unset it for a quarter of the window"
            )
        if window > self.max_batch_tokens:
            raise ValueError(
                f"ALIGNTAG_MAX_BATCH_TOKENS={self.max_batch_tokens} cannot hold one window of {window} "
                "tokens; raise it or set a smaller ALIGNTAG_WINDOW_TOKENS"
            )
        return window, overlap
