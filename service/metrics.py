"""Every Prometheus metric of the service, declared here and nowhere else.

The names are a contract (docs/contracts.md section 4): dashboards are built on them, do not
rename. Each app instance owns its own registry, so several apps in one process (tests) do not
share counts.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# `*_created` series double the exposition size and no dashboard of ours uses them.
disable_created_metrics()

# Request and stage latencies are milliseconds on a warm CPU model; the tail reaches seconds for
# maximal requests (256 texts of 100k characters), hence 0.5 ms .. 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKENS_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aligntag_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "aligntag_request_duration_seconds",
            "Time from request received to response sent, by route and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenization = Histogram(
            "aligntag_tokenization_seconds",
            "Tokenizing (and windowing) the texts of one request.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "aligntag_queue_wait_seconds",
            "Time a request waited in the model's queue before its first batch started.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "aligntag_inference_seconds",
            "One batch through ONNX Runtime (including softmax).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "aligntag_batch_size",
            "Sequences in one batch.",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "aligntag_batch_tokens",
            "Tokens in one batch (sum of sequence lengths, padding excluded).",
            ["model"],
            buckets=BATCH_TOKENS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "aligntag_in_flight_requests",
            "POST /tag, /acronyms and /tasks/{task} requests being processed.",
            registry=r,
        )
        self.admission_limit = Gauge(
            "aligntag_admission_limit",
            "Requests admission lets in at a time now: the recent throughput times "
            "ALIGNTAG_ADMISSION_LATENCY_MS, between ALIGNTAG_MIN_IN_FLIGHT and ALIGNTAG_MAX_IN_FLIGHT.",
            registry=r,
        )
        self.queue_depth = Gauge(
            "aligntag_queue_depth", "Requests waiting in the model's queue.", ["model"], registry=r
        )
        self.rejected = Counter(
            "aligntag_rejected_requests",
            "Requests refused or dropped: in_flight (503 from admission: aligntag_admission_limit reached), "
            "queue_full and queue_work (503 from the batcher: too many requests waiting, or too much "
            "work), client_disconnected (dropped before running).",
            ["model", "reason"],
            registry=r,
        )
        self.client_timeouts = Counter(
            "aligntag_client_timeouts",
            "Connections closed because a client was too slow: `headers` (408, headers not complete "
            "within ALIGNTAG_HEADER_TIMEOUT_SECONDS), `body` (408, ALIGNTAG_BODY_TIMEOUT_SECONDS), "
            "`idle` (a new connection that sent nothing within the header timeout).",
            ["phase"],
            registry=r,
        )
        self.model_info = Gauge(
            "aligntag_model_info",
            "1 for each model being served, labelled with its version and ONNX file.",
            ["task", "version", "onnx_file"],
            registry=r,
        )

        self.model_reloads = Counter(
            "aligntag_model_reloads",
            "Attempts to serve a new version of a task: swapped (now serving it) or refused "
            "(the old version keeps serving; the reason is in the log and in /info).",
            ["task", "outcome"],
            registry=r,
        )
        self.model_reload_refused = Gauge(
            "aligntag_model_reload_refused",
            "1 while the newest version of the task was refused at its last reload, else 0.",
            ["task"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
