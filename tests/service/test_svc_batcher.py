"""The batcher (service/batcher.py) with injected runtimes: batching, overload, failures, departures."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import batcher as batcher_module
from service.batcher import Batcher, JobResult, length_groups, run_sequences
from service.errors import InferenceFailed, Overloaded
from service.metrics import Metrics
from textfeatures.features import FEATURE_NAMES, Window

N_LABELS = 3


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), timeout=20))


class RecordingRuntime:
    """Returns logits that encode the token id, records every call; can block or fail on demand."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False
        self.fail_calls: set[int] = set()  # 1-based numbers of the calls that fail

    def __call__(self, ids: np.ndarray, mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        self.calls.append(ids.copy())
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail or len(self.calls) in self.fail_calls:
            raise RuntimeError("boom")
        logits = np.zeros((*ids.shape, N_LABELS), dtype=np.float32)
        logits[..., 1] = ids  # label-1 logit = token id: lets the test recognise each sequence
        return logits


def seq(*ids: int) -> Window:
    """A window of token ids (features all 1: the batcher passes them through untouched)."""
    return Window(list(ids), np.ones((len(ids), len(FEATURE_NAMES)), dtype=np.int64))


def make(runtime: RecordingRuntime, **caps: int) -> Batcher:
    options = {"max_batch_tokens": 1000, "max_batch_requests": 100, "max_queue": 10, **caps}
    return Batcher("concepts", runtime, metrics=Metrics(), **options)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def rejected(batcher: Batcher, reason: str) -> float:
    value = batcher.metrics.registry.get_sample_value(
        "aligntag_rejected_requests_total", {"model": "concepts", "reason": reason}
    )
    return value or 0.0


def test_length_groups_keep_short_and_long_sequences_apart() -> None:
    assert length_groups([5, 5, 5]) == [[0, 1, 2]]
    assert length_groups([500, 5, 6]) == [[1, 2], [0]]
    assert length_groups([]) == []
    # 32 full windows: four a call (1,024 tokens), not one 8,192-token call
    assert [len(g) for g in length_groups([256] * 32)] == [4] * 8


def group_cost(lengths: list[int], groups: list[list[int]], call_tokens: int) -> int:
    return sum(call_tokens + len(g) * max(lengths[i] for i in g) for g in groups)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=9), st.integers(0, 50))
def test_length_groups_find_the_cheapest_cut(lengths: list[int], call_tokens: int) -> None:
    max_tokens = 600
    groups = length_groups(lengths, call_tokens=call_tokens, max_tokens=max_tokens)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(len(g) == 1 or len(g) * max(lengths[i] for i in g) <= max_tokens for g in groups)
    # Brute force: every way to cut the sorted order into contiguous groups within the cap.
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    costs = []
    for mask in range(1 << (len(order) - 1)):
        cuts = [0] + [k + 1 for k in range(len(order) - 1) if mask >> k & 1] + [len(order)]
        candidate = [order[a:b] for a, b in itertools.pairwise(cuts)]
        if all(len(g) == 1 or len(g) * max(lengths[i] for i in g) <= max_tokens for g in candidate):
            costs.append(group_cost(lengths, candidate, call_tokens))
    assert group_cost(lengths, groups, call_tokens) == min(costs)


def test_run_sequences_returns_unpadded_probabilities_in_input_order() -> None:
    runtime = RecordingRuntime()
    seqs = [seq(7, 8, 9), seq(4), seq(5, 6)]
    probs = run_sequences(runtime, seqs, pad_id=0)
    assert [p.shape for p in probs] == [(3, N_LABELS), (1, N_LABELS), (2, N_LABELS)]
    np.testing.assert_allclose(probs[0].sum(-1), 1.0, rtol=1e-6)
    assert probs[1][0].argmax() == 1


def test_a_large_batch_hands_freed_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trim follows the whole batch's padded tokens, not one call's: since batches are cut
    into groups of at most 1,024 tokens, no single call would ever reach the threshold."""
    trims = []
    monkeypatch.setattr(batcher_module, "release_freed_memory", lambda: trims.append(1))
    runtime = RecordingRuntime()
    run_sequences(runtime, [seq(*[5] * 256)] * 32, pad_id=0)  # 8,192 padded tokens in 1,024-token calls
    assert max(ids.size for ids in runtime.calls) <= 1024 and len(trims) == 1
    run_sequences(runtime, [seq(*[5] * 40)] * 16, pad_id=0)  # 640 tokens: no trim
    assert len(trims) == 1


def test_idle_batcher_runs_a_lone_request_at_once() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        result = await batcher.submit([seq(5, 6, 7)])
        assert len(result.probs) == 1 and result.batch_size == 1
        assert [c.tolist() for c in runtime.calls] == [[[5, 6, 7]]]
        await batcher.stop()

    run(scenario)


def test_requests_arriving_during_a_batch_run_together_next() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        runtime.gate.clear()
        first = batcher.submit([seq(1, 1)])
        await until(runtime.entered.is_set)  # the worker is busy with `first`
        later = [batcher.submit([seq(2, 2)]), batcher.submit([seq(3, 3, 3)]), batcher.submit([seq(4)])]
        assert batcher.queue_depth == 3
        runtime.gate.set()
        await first
        results = await asyncio.gather(*later)
        assert [r.batch_size for r in results] == [3, 3, 3]
        # One ONNX call per length group: [[4], [2, 2], [3, 3, 3]] sorted by length fit in one group.
        assert len(runtime.calls) == 2
        assert runtime.calls[1].tolist() == [[4, 0, 0], [2, 2, 0], [3, 3, 3]]
        await batcher.stop()

    run(scenario)


def test_token_budget_and_request_cap_split_batches_fifo() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime, max_batch_tokens=4, max_batch_requests=2)
        batcher.start()
        runtime.gate.clear()
        blocker = batcher.submit([seq(9)])
        await until(runtime.entered.is_set)
        job = batcher.submit([seq(1, 1), seq(2, 2), seq(3), seq(4), seq(5)])  # 5 sequences, 7 tokens
        runtime.gate.set()
        await blocker
        result = await job
        assert [p[0].argmax() for p in result.probs] == [1] * 5
        batches = [c.shape[0] for c in runtime.calls[1:]]
        assert batches == [2, 2, 1]  # ([1,1],[2,2]) tokens 4; ([3],[4]) cap 2; ([5])
        await batcher.stop()

    run(scenario)


def token_ids(probs: list[np.ndarray]) -> list[list[int]]:
    """The token ids a job's probabilities were computed from (the runtime's label-1 logit is the
    token id and the others are 0, so log(p1 / p0) gives it back), one list per sequence."""
    return [np.rint(np.log(p[:, 1] / p[:, 0])).astype(int).tolist() for p in probs]


def test_split_job_beside_other_jobs_gets_its_own_probabilities_in_order() -> None:
    """Four jobs queued together under an 8-token budget: the 6-sequence job is split over two
    batches, the first shared with the job before it, the second with the job after it; every
    job gets back the probabilities of its own sequences, in its order, though each batch is
    sorted by length, and the batches follow the queue's order (FIFO)."""

    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime, max_batch_tokens=8)
        batcher.start()  # the worker runs at the first await: all four jobs are queued by then
        jobs = {
            "a": [seq(11, 11)],
            "split": [seq(21, 21, 21), seq(22), seq(23, 23), seq(24, 24, 24), seq(25), seq(26, 26)],
            "b": [seq(31, 31), seq(32)],
            "c": [seq(41, 41, 41)],
        }
        futures = {name: batcher.submit(sequences) for name, sequences in jobs.items()}
        results = dict(zip(futures, await asyncio.gather(*futures.values()), strict=True))
        for name, sequences in jobs.items():
            assert token_ids(results[name].probs) == [list(s.ids) for s in sequences], name
        # Batch 1: a + split[0:3] (2+3+1+2 = 8 tokens); batch 2: split[3:6] + b[0] (3+1+2+2);
        # batch 3: b[1] + c. Each batch is one call (cheapest for so few tokens), rows by length.
        assert [c.tolist() for c in runtime.calls] == [
            [[22, 0, 0], [11, 11, 0], [23, 23, 0], [21, 21, 21]],
            [[25, 0, 0], [26, 26, 0], [31, 31, 0], [24, 24, 24]],
            [[32, 0, 0], [41, 41, 41]],
        ]
        assert {name: r.batch_size for name, r in results.items()} == {"a": 4, "split": 4, "b": 4, "c": 2}
        assert batcher.queue_depth == 0
        await batcher.stop()

    run(scenario)


def test_small_job_behind_a_256_text_job_runs_in_the_big_jobs_last_batch() -> None:
    """Head-of-line: a 1-text job queued behind a 256-text job waits for the batches that hold
    the big job's earlier texts (FIFO: it never overtakes them) and no longer: it runs in the
    batch that takes the big job's last texts, as does a job that arrives while the first batch
    runs. With a 100-sequence cap: batches of 100, 100 and 56 + 2."""

    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime, max_batch_tokens=1000, max_batch_requests=100)
        batcher.start()
        runtime.gate.clear()
        big = batcher.submit([seq(1, 1, 1, 1)] * 256)
        small = batcher.submit([seq(7, 7)])
        await until(runtime.entered.is_set)  # the first batch is running
        later = batcher.submit([seq(8, 8)])
        runtime.gate.set()
        big_result, small_result, later_result = await asyncio.gather(big, small, later)
        assert [c.shape for c in runtime.calls] == [(100, 4), (100, 4), (58, 4)]
        assert all((c == 1).all() for c in runtime.calls[:2])  # only the big job's texts
        assert runtime.calls[2][:2].tolist() == [[7, 7, 0, 0], [8, 8, 0, 0]]
        assert (runtime.calls[2][2:] == 1).all()
        assert token_ids(small_result.probs) == [[7, 7]] and token_ids(later_result.probs) == [[8, 8]]
        assert token_ids(big_result.probs) == [[1, 1, 1, 1]] * 256
        assert small_result.batch_size == later_result.batch_size == 58
        assert big_result.batch_size == 100
        await batcher.stop()

    run(scenario)


def test_failed_first_batch_of_a_split_job_fails_that_job_only() -> None:
    """The first batch of a job split over two fails: the job fails with InferenceFailed and its
    remaining sequence is dropped unrun (the failed job is removed from the queue head); the jobs
    queued behind it run in the next batches and succeed."""

    async def scenario() -> None:
        runtime = RecordingRuntime()
        runtime.fail_calls = {1}
        batcher = make(runtime, max_batch_tokens=4)
        batcher.start()
        split = batcher.submit([seq(21, 21), seq(22, 22), seq(23, 23)])  # 6 tokens: 4 + 2
        b = batcher.submit([seq(31, 31), seq(32, 32)])
        c = batcher.submit([seq(41)])
        outcome, b_result, c_result = await asyncio.gather(split, b, c, return_exceptions=True)
        assert isinstance(outcome, InferenceFailed)
        assert str(outcome) == "inference failed on the concepts model (RuntimeError)"
        assert isinstance(b_result, JobResult) and isinstance(c_result, JobResult)
        assert token_ids(b_result.probs) == [[31, 31], [32, 32]] and token_ids(c_result.probs) == [[41]]
        # [23, 23] never ran: the failed batch, then b (4 tokens: c does not fit), then c.
        assert [call.tolist() for call in runtime.calls] == [
            [[21, 21], [22, 22]],
            [[31, 31], [32, 32]],
            [[41]],
        ]
        assert batcher.queue_depth == 0
        assert rejected(batcher, "client_disconnected") == 0  # a failed job is not a departed client
        await batcher.stop()

    run(scenario)


def test_full_queue_refuses_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime, max_queue=1)
        batcher.start()
        runtime.gate.clear()
        running = batcher.submit([seq(1)])
        await until(runtime.entered.is_set)
        waiting = batcher.submit([seq(2)])
        with pytest.raises(Overloaded) as refused:
            batcher.submit([seq(3)])
        assert refused.value.message == "the concepts queue is full (1 requests waiting); retry later"
        assert refused.value.headers == {"Retry-After": "1"}
        assert rejected(batcher, "queue_full") == 1
        runtime.gate.set()
        await asyncio.gather(running, waiting)
        await batcher.stop()

    run(scenario)


def test_failed_batch_fails_every_waiter_and_the_worker_carries_on() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        runtime.gate.clear()
        blocker = batcher.submit([seq(1)])
        await until(runtime.entered.is_set)
        doomed = [batcher.submit([seq(2)]), batcher.submit([seq(3), seq(4)])]
        runtime.fail = True
        runtime.gate.set()
        outcomes = await asyncio.gather(blocker, *doomed, return_exceptions=True)
        assert all(isinstance(o, InferenceFailed) for o in outcomes)
        assert str(outcomes[0]) == "inference failed on the concepts model (RuntimeError)"
        runtime.fail = False
        assert len((await batcher.submit([seq(5)])).probs) == 1  # still serving
        await batcher.stop()

    run(scenario)


def test_job_of_a_departed_client_is_dropped_before_running() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        runtime.gate.clear()
        blocker = batcher.submit([seq(1)])
        await until(runtime.entered.is_set)
        gone = batcher.submit([seq(7, 7, 7)])
        kept = batcher.submit([seq(2)])
        gone.cancel()  # what the handler does when the client disconnects
        runtime.gate.set()
        await asyncio.gather(blocker, kept)
        assert [c.tolist() for c in runtime.calls] == [[[1]], [[2]]]  # [7, 7, 7] never ran
        assert rejected(batcher, "client_disconnected") == 1
        await batcher.stop()

    run(scenario)


def test_empty_job_resolves_without_running() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        result = await batcher.submit([])
        assert result.probs == [] and runtime.calls == []
        await batcher.stop()

    run(scenario)


def test_metrics_record_batches() -> None:
    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime)
        batcher.start()
        await batcher.submit([seq(1, 2, 3), seq(4, 5)])
        registry = batcher.metrics.registry
        labels = {"model": "concepts"}
        assert registry.get_sample_value("aligntag_batch_size_sum", labels) == 2
        assert registry.get_sample_value("aligntag_batch_tokens_sum", labels) == 5
        assert registry.get_sample_value("aligntag_inference_seconds_count", labels) == 1
        assert registry.get_sample_value("aligntag_queue_wait_seconds_count", labels) == 1
        assert registry.get_sample_value("aligntag_queue_depth", labels) == 0
        await batcher.stop()

    run(scenario)


@pytest.mark.parametrize("onnx_file", ["model.onnx", "model.int8.onnx"])
def test_padding_changes_no_probability_of_the_real_model(tiny_artifacts_dir, onnx_file: str) -> None:  # type: ignore[no-untyped-def]
    """The service's ONNX Runtime path on the tiny model: windows of different lengths padded into
    one call get the probabilities they get alone, so the attention mask reaches the graph. fp32
    must match closely (through the length groups too); int8 re-scales its activations per call,
    so there the padded rows must stay much closer to their lone run than the same call with the
    mask dropped (padding attended to) comes, in mean absolute logit change summed over the padded
    rows. Measured on four tiny builds: int8's per-call scales move them by 0.008-0.017, a dropped
    mask by 0.2-0.8 (the max over one row was too noisy a measure: a 35-token row padded to 64
    moved by 0.03-0.04 from scales and by only 0.08-0.12 from a dropped mask on the 500-step tiny
    model). A runtime that dropped the mask would fail both."""
    from service.artifacts import load_artifact
    from service.models import onnx_runtime_factory
    from service.settings import Settings
    from textfeatures.features import encode_texts, pad_batch, window

    artifact = load_artifact(tiny_artifacts_dir, "concepts", onnx_file=onnx_file)
    runtime = onnx_runtime_factory(artifact, Settings(artifacts_dir=tiny_artifacts_dir))
    texts = ["We train convolutional neural networks (CNNs) on the controlled natural language corpus "
             "(CNLC), then compare them with support vector machines (SVMs) and conditional random "
             "fields (CRFs) on named entity recognition (NER) and part-of-speech (POS) tagging.",
             "SVM", "A support vector machine (SVM) and named entity recognition (NER) for parsing."]  # fmt: skip
    windows = [
        window(inputs, 0, min(len(inputs.ids), artifact.max_positions))
        for inputs in encode_texts(artifact.tokenizer, texts)
    ]
    if onnx_file == "model.onnx":  # the service's path: length groups, padding, softmax
        alone = [run_sequences(runtime, [w], pad_id=0)[0] for w in windows]
        for grouped, single in zip(run_sequences(runtime, windows, pad_id=0), alone, strict=True):
            np.testing.assert_allclose(grouped, single, atol=1e-4)
    ids, mask, features = pad_batch(windows, 0)
    assert mask.min() == 0, "nothing is padded: the test would check nothing"
    joint = runtime(ids, mask, features)
    blind = runtime(ids, np.ones_like(mask), features)
    error = drift = 0.0
    for row, w in enumerate(windows):
        n = len(w)
        if n == ids.shape[1]:
            continue  # the longest window has no padding to hide
        single = runtime(*pad_batch([w], 0))[0]
        drift += float(np.abs(blind[row, :n] - single).mean())
        error += float(np.abs(joint[row, :n] - single).mean())
        if onnx_file == "model.onnx":
            np.testing.assert_allclose(joint[row, :n], single, atol=1e-3)
    assert error < drift / 4, (error, drift)


def test_queued_work_over_the_wait_bound_is_refused() -> None:
    """The bound is in expected seconds (sequences queued and running x their measured cost), so
    a few large jobs are refused where as many small ones would not be."""

    async def scenario() -> None:
        runtime = RecordingRuntime()
        batcher = make(runtime, max_queue=100)
        batcher.start()
        assert batcher.expected_wait() == 0.0  # nothing measured yet: nothing refused on a guess
        await batcher.submit([seq(1), seq(2)])  # measures what a sequence costs
        runtime.gate.clear()
        running = batcher.submit([seq(3), seq(4), seq(5), seq(6)])
        await until(lambda: len(runtime.calls) == 2)
        cost = batcher.expected_wait() / 4  # the running batch alone: 4 sequences
        assert cost > 0
        batcher.max_queue_wait_seconds = 6.5 * cost  # derived from the measured cost: no timing race
        accepted = [batcher.submit([seq(7), seq(8)]), batcher.submit([seq(9), seq(10)])]  # waits 4, 6
        assert batcher.expected_wait() == pytest.approx(8 * cost)
        with pytest.raises(Overloaded) as refused:
            batcher.submit([seq(11)])
        assert refused.value.message.startswith("the concepts queue holds about ")
        assert refused.value.message.endswith(" ms of work (over %.0f ms); retry later" % (6500 * cost))
        assert refused.value.headers == {"Retry-After": "1"}
        assert rejected(batcher, "queue_work") == 1 and rejected(batcher, "queue_full") == 0
        runtime.gate.set()
        await asyncio.gather(running, *accepted)
        assert batcher.expected_wait() == 0.0  # drained: the next request is taken
        await batcher.submit([seq(12)])
        await batcher.stop()

    run(scenario)
