"""The served models, one per task: loading (verify, session, warm-up) and one prediction end to end.

`predict` is the only path from a handler to a model: tokenize + window here, then the batcher,
then merge + decode here. Handlers never see the ONNX Runtime session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from service.artifacts import BUILTIN_TASKS, Artifact, ArtifactError, load_artifact, span_labels
from service.batcher import Batcher, JobResult
from service.errors import ClientDisconnected, ModelUnavailable
from service.metrics import Metrics
from service.runtime import OnnxRuntime, Runtime, warm_up
from service.scheduling import in_worker_thread, lower_priority
from service.settings import Settings
from service.tagging import Span, plan_windows, tag_text
from textfeatures import wordnet
from textfeatures.features import TextInputs, Window, encode_texts, window

log = logging.getLogger("aligntag.models")

RuntimeFactory = Callable[[Artifact, Settings], Runtime]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
T = TypeVar("T")

# The Python work of a request (tokens, the six token features, decoding) runs in this one thread,
# not in the event loop: with it in the loop, at 3x overload every request, the ones that would be
# refused too, waited behind that work (1-text requests at 3x, contended machine: refusal median
# 102 ms with it in the loop, 10 ms here; docs/service.md, "Admission and slow clients"). One
# thread, because the GIL lets only one run at a time anyway; the loop keeps parsing, refusing and
# answering while it runs. `timings.tokenize` includes the wait for this thread.
_prep = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prep", initializer=lower_priority)
# Except for a short request that is alone: it does that work on the loop. Nothing waits behind it
# there, and the two hand-offs to the thread and back cost it ~0.3 ms of its ~5 ms (sequential
# requests, docs/service.md). Short, because a request that arrives meanwhile waits for the loop:
# 1,000 characters (~150 words) take ~2 ms (features ~0.45 ms a 30-word sentence).
INLINE_MAX_CHARS = 1000
_predicting = 0  # requests inside `predict`, all models together


async def run_prep_work(fn: Callable[..., T], *args: Any, chars: int) -> T:
    """`fn(*args)` in the prep thread, or on the loop for a short request that is alone."""
    if _predicting == 1 and chars <= INLINE_MAX_CHARS:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(_prep, fn, *args)


def onnx_runtime_factory(artifact: Artifact, settings: Settings) -> Runtime:
    return OnnxRuntime(artifact.onnx_path, len(artifact.labels), settings, artifact.reads_features)


@dataclass
class RequestTimings:
    """Filled by `predict`, read by the request middleware (Server-Timing header, log line)."""

    tokenize: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    batch_size: int = 0


@dataclass
class Model:
    task: str
    status: str = "loading"  # loading | ready | failed
    reason: str = "loading"
    artifact: Artifact | None = None
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    window: int = 0
    overlap: int = 0
    structured_decoding: bool = True  # ALIGNTAG_DECODING
    active: int = 0  # `predict` calls using this model now; a replaced model drains to 0 (reload.py)

    @property
    def version(self) -> str:
        return self.artifact.version if self.artifact else ""

    @property
    def builtin(self) -> bool:
        return self.task in BUILTIN_TASKS

    @property
    def span_labels(self) -> list[str]:
        return span_labels(self.artifact.labels) if self.artifact else []


def pinned_version(task: str, settings: Settings) -> str | None:
    """The version directory a setting pins for `task` (ALIGNTAG_TASK_VERSIONS, where
    ALIGNTAG_CONCEPTS_VERSION / ALIGNTAG_ACRONYMS_VERSION land too), or None = newest."""
    return settings.task_versions.get(task)


def load_model(task: str, settings: Settings, factory: RuntimeFactory) -> Model:
    """Everything blocking about start-up (runs in a thread). Never raises: a model that cannot be
    served is returned `failed` with the reason, and the service stays up to report it."""
    model = Model(task=task)
    try:
        artifact = load_artifact(
            settings.artifacts_dir, task, pinned_version(task, settings), settings.onnx_file
        )
        try:
            model.window, model.overlap = settings.window_for(artifact.max_positions)
            model.structured_decoding = settings.decoding == "viterbi"
        except ValueError as e:
            raise ArtifactError(f"{artifact.directory / 'manifest.json'}: {e}") from e
        runtime = in_worker_thread(factory, artifact, settings)  # its threads: worker priority
        if artifact.noun_final:
            wordnet.preload()
        try:
            warm_up(runtime, artifact.max_positions, len(artifact.labels), artifact.pad_token_id)
        except Exception as e:  # any failure of the graph on a plain input means: do not serve it
            raise ArtifactError(f"{artifact.onnx_path}: warm-up failed: {e}") from e
    except ArtifactError as e:
        model.status, model.reason = "failed", str(e)
        log.error("cannot serve %s: %s", task, e, extra={"fields": {"task": task, "reason": str(e)}})
        return model
    except Exception as e:  # a bug or an environment problem: still report it rather than crash-loop
        model.status, model.reason = "failed", f"{type(e).__name__}: {e}"
        log.exception("cannot serve %s", task, extra={"fields": {"task": task, "reason": model.reason}})
        return model
    model.artifact, model.runtime = artifact, runtime
    model.status, model.reason = "ready", "ready"
    log.info(
        "serving %s %s (%s)", task, artifact.version, artifact.onnx_path.name,
        extra={"fields": {"task": task, "version": artifact.version, "onnx_file": artifact.onnx_path.name,
                          "window": model.window, "overlap": model.overlap}},
    )  # fmt: skip
    return model


def start_batcher(model: Model, settings: Settings, metrics: Metrics) -> None:
    assert model.runtime is not None and model.artifact is not None
    model.batcher = Batcher(
        model.task,
        model.runtime,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_requests=settings.max_batch_requests,
        max_queue=settings.max_queue,
        max_queue_wait_seconds=None
        if settings.max_queue_wait_ms is None
        else settings.max_queue_wait_ms / 1000,
        retry_after_seconds=settings.retry_after_seconds,
        pad_id=model.artifact.pad_token_id,
        metrics=metrics,
    )
    model.batcher.start()
    metrics.model_info.labels(model.task, model.artifact.version, model.artifact.onnx_path.name).set(1)


async def _result_unless_disconnected(future: asyncio.Future[JobResult], receive: Receive) -> JobResult:
    """Wait for the batcher, or for the client to leave; then cancel the job so it never runs."""

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher: asyncio.Future[None] = asyncio.ensure_future(client_gone())
    waiting: set[asyncio.Future[Any]] = {future, watcher}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if future.done():
        return future.result()
    future.cancel()
    raise ClientDisconnected()


async def predict(
    model: Model, texts: Sequence[str], min_score: float, metrics: Metrics, timings: RequestTimings,
    receive: Receive,
) -> list[list[Span]]:  # fmt: skip
    if model.status != "ready" or model.artifact is None or model.batcher is None:
        raise ModelUnavailable(f"the {model.task} model is not available: {model.reason}")
    # Counted from here, before the first await: a reload that swaps this model out while the
    # request runs waits for it to finish on this model's batcher before closing it.
    global _predicting
    model.active += 1
    _predicting += 1
    try:
        return await _predict(
            model, model.artifact, model.batcher, texts, min_score, metrics, timings, receive
        )
    finally:
        model.active -= 1
        _predicting -= 1


async def _predict(
    model: Model, artifact: Artifact, batcher: Batcher, texts: Sequence[str], min_score: float,
    metrics: Metrics, timings: RequestTimings, receive: Receive,
) -> list[list[Span]]:  # fmt: skip
    batcher.refuse_if_full()

    started = time.perf_counter()
    chars = sum(len(t) for t in texts)
    encoded, plans, sequences = await run_prep_work(
        prepare, artifact, texts, model.window, model.overlap, chars=chars
    )
    timings.tokenize = time.perf_counter() - started
    metrics.tokenization.labels(model.task).observe(timings.tokenize)

    result = await _result_unless_disconnected(batcher.submit(sequences), receive)
    timings.queue, timings.inference = result.queue_seconds, result.inference_seconds
    timings.batch_size = result.batch_size
    return await run_prep_work(
        decode, artifact, encoded, plans, result.probs, min_score, model.structured_decoding, chars=chars
    )


def prepare(
    artifact: Artifact, texts: Sequence[str], window_tokens: int, overlap: int
) -> tuple[list[TextInputs], list[list[tuple[int, int]]], list[Window]]:
    """Tokens and features of each text, its windows, and the windows in order (prep thread)."""
    encoded = encode_texts(artifact.tokenizer, texts)
    plans = [plan_windows(len(e.ids), window_tokens, overlap) for e in encoded]
    sequences = [
        window(e, start, end) for e, ranges in zip(encoded, plans, strict=True) for start, end in ranges
    ]
    return encoded, plans, sequences


def decode(
    artifact: Artifact, encoded: Sequence[TextInputs], plans: Sequence[Sequence[tuple[int, int]]],
    probs: Sequence[Any], min_score: float, structured: bool,
) -> list[list[Span]]:  # fmt: skip
    """Spans of each text from its windows' probabilities (prep thread)."""
    spans: list[list[Span]] = []
    position = 0
    for e, ranges in zip(encoded, plans, strict=True):
        window_probs = probs[position : position + len(ranges)]
        position += len(ranges)
        spans.append(
            tag_text(e, ranges, window_probs, artifact.labels, min_score, structured, artifact.noun_final)
        )
    return spans
