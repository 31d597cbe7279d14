"""Per-model dynamic batching, after text-embeddings-inference (`core/src/queue.rs`, `infer.rs`).

A request is a *job*: the token windows of its texts (ids and features, one per window). Jobs wait in a FIFO
queue; a single worker task per model takes, each time the model is free, whatever has arrived
since the previous batch started, up to `max_batch_tokens` tokens and `max_batch_requests`
sequences, and runs it as ONE call in a worker thread, so the event loop keeps serving HTTP.
There is no wait timer: an idle service runs a lone request at once (batch-1 latency), and under
load batches grow by themselves because requests pile up while the previous batch runs.

- A job larger than the budget is split over several batches; the queue stays FIFO.
- Inside a batch, sequences are sorted by length and cut into the groups that cost least to run
  (padding against the fixed cost of a call, `length_groups`): a 5-token and a 500-token sequence
  are never padded together, and neither are 30- and 50-token sentences of one batch request.
- The queue is bounded: past `max_queue` waiting jobs, or, when `max_queue_wait_seconds` is set
  (opt-in), when the work already queued would keep a new job waiting longer than it
  (`expected_wait`), `submit` raises `Overloaded` at once. A bound in jobs cannot bound the wait
  (64 jobs of 8 texts are 8 times the work of 64 of one); the wait bound does, whatever the request
  size. The work before the queue (tokens, features) is bounded by admission
  (`ALIGNTAG_MAX_IN_FLIGHT`, service/admission.py).
- A job whose future was cancelled (its client went away) is dropped before it runs.
- A failing batch sets `InferenceFailed` on the future of every job in it; the worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.errors import InferenceFailed, Overloaded
from service.metrics import Metrics
from service.runtime import TRIM_AFTER_TOKENS, release_freed_memory
from service.scheduling import lower_priority
from textfeatures.features import Window, pad_batch

log = logging.getLogger("aligntag.batcher")

RunFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (ids, mask, features) -> logits


@dataclass(frozen=True)
class JobResult:
    probs: list[np.ndarray]  # per sequence: tokens x labels, softmax probabilities
    queue_seconds: float  # enqueue -> start of the job's first batch
    inference_seconds: float  # sum over the batches that ran the job's sequences
    batch_size: int  # largest batch (sequences) the job was part of


@dataclass(eq=False)
class _Job:
    sequences: Sequence[Window]
    future: asyncio.Future[JobResult]
    enqueued_at: float
    probs: list[np.ndarray | None] = field(default_factory=list)
    next_index: int = 0  # sequences before it have been handed to a batch
    done_count: int = 0
    started_at: float | None = None
    inference_seconds: float = 0.0
    batch_size: int = 0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


# Cost of one ONNX Runtime call, in padded tokens, for `length_groups`. Measured on the 512x3 int8
# model with 2 threads (bench sentences, sorted by length): a call costs about 0.3 ms plus 25 us a
# padded token, so the fixed part is worth ~12 tokens. Past ~1,000 tokens a call gets slower per
# token (24.4 us at 24x40, 26.2 at 64x40, 31.7 at 4x256, 38.6 at 32x256: the activations leave
# the cache), so a group stops there unless one sequence alone is longer.
GROUP_CALL_TOKENS = 12
GROUP_MAX_TOKENS = 1024


def length_groups(
    lengths: Sequence[int], call_tokens: int = GROUP_CALL_TOKENS, max_tokens: int = GROUP_MAX_TOKENS
) -> list[list[int]]:
    """Indices sorted by length and cut into the groups that cost least to run, one call each.

    A group costs `call_tokens` plus its padded size (rows x longest), and holds at most
    `max_tokens` padded tokens. Sixteen unsorted bench sentences padded together cost 1.51 ms a
    text against 1.01 ms in sorted groups. Groups are contiguous runs of the sorted order, so the
    best cut is an O(n^2) dynamic programme, vectorised over the start of the last group.
    """
    n = len(lengths)
    order = sorted(range(n), key=lambda i: lengths[i])
    ordered = np.asarray([lengths[i] for i in order], dtype=np.float64)
    starts = np.arange(n, dtype=np.float64)
    best = np.zeros(n + 1)  # best[j]: least cost of the first j sorted sequences
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last group of that best cost starts
    for j in range(1, n + 1):
        longest = ordered[j - 1]
        rows = j - starts[:j]  # rows of a group from start i to j
        cost = best[:j] + call_tokens + rows * longest
        cost[(rows * longest > max_tokens) & (rows > 1)] = np.inf
        cut[j] = int(np.argmin(cost))
        best[j] = cost[cut[j]]
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def run_sequences(run: RunFn, sequences: Sequence[Window], pad_id: int) -> list[np.ndarray]:
    """Probabilities for each sequence, computed in length groups (runs in the worker thread)."""
    out: list[np.ndarray | None] = [None] * len(sequences)
    padded = 0
    for group in length_groups([len(s) for s in sequences]):
        ids, mask, features = pad_batch([sequences[i] for i in group], pad_id)
        padded += ids.size
        probs = softmax(np.asarray(run(ids, mask, features), dtype=np.float32))
        if probs.shape[:2] != ids.shape:
            raise RuntimeError(f"model returned logits of shape {probs.shape} for input {ids.shape}")
        for row, i in enumerate(group):
            out[i] = probs[row, : len(sequences[i])]
    if padded >= TRIM_AFTER_TOKENS:
        release_freed_memory()
    return [p for p in out if p is not None]


class Batcher:
    def __init__(
        self,
        model: str,
        run: RunFn,
        *,
        max_batch_tokens: int,
        max_batch_requests: int,
        max_queue: int,
        max_queue_wait_seconds: float | None = None,
        retry_after_seconds: int = 1,
        pad_id: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.model = model
        self.run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.max_queue = max_queue
        self.max_queue_wait_seconds = max_queue_wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.pad_id = pad_id
        self.metrics = metrics or Metrics()
        self._queue: deque[_Job] = deque()
        self._running_sequences = 0  # in the batch being run now
        # Seconds a sequence costs in the recent batches (moving average; None before the first).
        self._sequence_seconds: float | None = None
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        # One thread per model: one batch in flight per model, and the event loop stays free.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"infer-{model}", initializer=lower_priority
        )

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(InferenceFailed(f"the {self.model} model is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def expected_wait(self) -> float:
        """Seconds a job queued now would wait before its first batch: the sequences queued and
        running times the recent cost of a sequence (0 before any batch has run)."""
        if self._sequence_seconds is None:
            return 0.0
        queued = sum(len(job.sequences) - job.next_index for job in self._queue)
        return (queued + self._running_sequences) * self._sequence_seconds

    def refuse_if_full(self) -> None:
        """Raise Overloaded when the queue is full, in jobs or in expected wait. `predict` asks
        before it tokenizes, so an overloaded service refuses at once instead of computing features
        it will not use."""
        if len(self._queue) >= self.max_queue:
            self._refuse("queue_full", f"the {self.model} queue is full ({self.max_queue} requests waiting)")
        if self.max_queue_wait_seconds is not None:
            wait = self.expected_wait()
            if wait > self.max_queue_wait_seconds:
                self._refuse(
                    "queue_work",
                    f"the {self.model} queue holds about {wait * 1000:.0f} ms of work "
                    f"(over {self.max_queue_wait_seconds * 1000:.0f} ms)",
                )

    def _refuse(self, reason: str, why: str) -> None:
        self.metrics.rejected.labels(self.model, reason).inc()
        raise Overloaded(f"{why}; retry later", headers={"Retry-After": str(self.retry_after_seconds)})

    def submit(self, sequences: Sequence[Window]) -> asyncio.Future[JobResult]:
        """Queue a job; its future resolves with the probabilities of every sequence, in order.

        Raises Overloaded when the queue is full; the caller cancels the future if its client leaves.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobResult] = loop.create_future()
        if not sequences:
            future.set_result(JobResult(probs=[], queue_seconds=0.0, inference_seconds=0.0, batch_size=0))
            return future
        self.refuse_if_full()
        job = _Job(sequences=sequences, future=future, enqueued_at=time.perf_counter(),
                   probs=[None] * len(sequences))  # fmt: skip
        self._queue.append(job)
        self.metrics.queue_depth.labels(self.model).set(len(self._queue))
        self._wakeup.set()
        return future

    def _take_batch(self) -> list[tuple[_Job, int]]:
        """(job, sequence index) pairs for the next batch, FIFO, within the token and size caps."""
        batch: list[tuple[_Job, int]] = []
        tokens = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # cancelled by a departed client, or failed in an earlier batch
                self._queue.popleft()
                if job.future.cancelled() and job.next_index == 0:
                    self.metrics.rejected.labels(self.model, "client_disconnected").inc()
                continue
            while job.next_index < len(job.sequences):
                length = len(job.sequences[job.next_index])
                full = len(batch) >= self.max_batch_requests or tokens + length > self.max_batch_tokens
                if full and batch:  # an oversized lone sequence still runs, alone
                    return batch
                batch.append((job, job.next_index))
                tokens += length
                job.next_index += 1
            self._queue.popleft()
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            self.metrics.queue_depth.labels(self.model).set(len(self._queue))
            if not batch:
                continue
            started = time.perf_counter()
            for job, _ in batch:
                if job.started_at is None:
                    job.started_at = started
                    self.metrics.queue_wait.labels(self.model).observe(started - job.enqueued_at)
            sequences = [job.sequences[i] for job, i in batch]
            self._running_sequences = len(sequences)
            try:
                probs = await loop.run_in_executor(
                    self._executor, run_sequences, self.run, sequences, self.pad_id
                )
                seconds = time.perf_counter() - started
                self._note_cost(seconds, len(sequences))
                self._deliver(batch, probs, seconds)
            except Exception as e:  # the batch failed: every waiter hears about it, the worker lives on
                log.exception("batch of %d sequences failed on the %s model", len(batch), self.model)
                failure = InferenceFailed(f"inference failed on the {self.model} model ({type(e).__name__})")
                for job, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(failure)
                continue
            finally:
                self._running_sequences = 0
            self.metrics.inference.labels(self.model).observe(seconds)
            self.metrics.batch_size.labels(self.model).observe(len(batch))
            self.metrics.batch_tokens.labels(self.model).observe(sum(len(s) for s in sequences))

    def _note_cost(self, seconds: float, sequences: int) -> None:
        # A moving average over about the last five batches: it follows the batch sizes of the
        # present load (a sequence costs less in a full batch than alone) and a slow spell.
        per_sequence = seconds / sequences
        previous = self._sequence_seconds
        self._sequence_seconds = per_sequence if previous is None else 0.8 * previous + 0.2 * per_sequence

    def _deliver(self, batch: list[tuple[_Job, int]], probs: list[np.ndarray], seconds: float) -> None:
        for job in {id(job): job for job, _ in batch}.values():
            job.inference_seconds += seconds
            job.batch_size = max(job.batch_size, len(batch))
        for (job, index), p in zip(batch, probs, strict=True):
            job.probs[index] = p
            job.done_count += 1
            if job.done_count == len(job.sequences) and not job.future.done():
                assert job.started_at is not None
                job.future.set_result(
                    JobResult(
                        probs=[p for p in job.probs if p is not None],
                        queue_seconds=job.started_at - job.enqueued_at,
                        inference_seconds=job.inference_seconds,
                        batch_size=job.batch_size,
                    )
                )
