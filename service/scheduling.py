"""Who gets the CPU first: the event loop, then the threads that do a request's work.

The event loop reads requests, refuses them when admission says so and writes the answers; the
prep thread (tokens, features, decoding), each model's inference thread and ONNX Runtime's own
threads do the work. With all of them at one priority, on a 2-core machine at overload a refusal
waits for a core behind the work of the requests that were admitted. The worker threads run
`ALIGNTAG_WORKER_NICENESS` steps nicer than the process (Linux schedules threads one by one and a
thread inherits its creator's niceness, so ONNX Runtime's pool, created by a session made in a
worker thread, inherits it too). Raising niceness needs no privilege. Process-wide, set once by
`python -m service` (`set_worker_niceness`) before any worker thread starts.

Measured (small model, 2 cores, `pytest tests/reliability/test_rel_load.py --reliability-full -k
overload --artifacts-dir artifacts`, runs minutes apart, 2026-12-02), refusal median / p99 and
accepted p99 at 3x overload: 1-text requests 5.9 / 123 / 225 ms at one priority, 2.96 / 24.3 / 185
ms with the workers 10 steps nicer; 8-text requests 3.04 / 20.1 / 215 -> 2.32 / 12.8 / 210 ms.
A shorter GIL switch interval (1 ms for Python's 5) was measured beside it and not kept: with the
workers nicer, 1-text refusals 2.02 / 36.8 ms, 8-text 2.17 / 14.0 ms, within what a rerun moves.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("aligntag.scheduling")
_worker_niceness = [0]


def set_worker_niceness(steps: int) -> None:
    _worker_niceness[0] = steps


def lower_priority() -> None:
    """Make the calling thread a worker: `worker_niceness` steps nicer (a thread pool's initializer)."""
    steps = _worker_niceness[0]
    if not steps:
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError as e:  # a sandbox that forbids it: serve at one priority rather than not at all
        log.warning("worker threads keep the loop's priority: %s", e)


def in_worker_thread(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a new thread at worker priority, its result or its exception; the threads
    `fn` creates (an ONNX Runtime session's thread pool) inherit that priority."""
    with ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="worker-start", initializer=lower_priority
    ) as pool:
        return pool.submit(fn, *args).result()
