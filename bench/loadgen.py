"""A light HTTP/1.1 load generator: raw asyncio streams, keep-alive, hand-written request bytes.

`httpx.AsyncClient` saturates a core at ~470 req/s on the 2-core machine, i.e. it would measure
itself. This client writes the request bytes by hand and parses only the status line and the
`Content-Length` (and `Retry-After`) headers, so it costs a few tens of microseconds a request.

Three ways to drive a server, each returning a `Run` (one `Sample` per request):

- `sequential`: one connection, one request at a time.
- `closed_loop`: `concurrency` connections, each sending its next request as soon as the previous
  answer arrives, for `duration` seconds.
- `open_loop`: requests sent at a fixed arrival `rate` (Poisson arrivals, fixed seed) whatever the
  server does; each request's latency runs from its *intended* send time, so a stalled server is
  charged for the requests it delayed (no coordinated omission). Connections come from a pool that
  grows up to `max_connections`; a request waiting for a connection is still on the clock.

Only 127.0.0.1 is ever contacted: `Target` refuses any other host.

As a command (the reliability suite runs it in its own process), the spec as JSON on stdin:
`echo '{"mode": "closed", "port": 8000, "path": "/tag", "bodies": [{"text": "..."}],
"concurrency": 16, "duration": 5}' | python -m bench.loadgen` prints the `Run` as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"
STATUS_CONNECTION_ERROR = 0  # a request that got no HTTP answer (refused, reset, timed out)


@dataclass(frozen=True)
class Sample:
    status: int  # HTTP status, or 0 when the connection failed
    latency: float  # seconds, from the (intended) send time to the last byte of the answer
    retry_after: bool = False  # the answer carried a Retry-After header
    index: int = 0  # which of the target's requests it was


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0  # wall time from the first send to the last answer
    offered_rate: float | None = None  # open loop: the arrival rate asked for
    connections: int = 0  # connections opened

    @property
    def ok(self) -> list[float]:
        return [s.latency for s in self.samples if s.status == 200]

    def count(self, status: int) -> int:
        return sum(1 for s in self.samples if s.status == status)

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.status != 200)

    @property
    def rps(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "samples": [[s.status, round(s.latency, 7), s.retry_after, s.index] for s in self.samples],
            "seconds": self.seconds,
            "offered_rate": self.offered_rate,
            "connections": self.connections,
        }

    @classmethod
    def from_json(cls, data: dict) -> Run:
        return cls(
            samples=[Sample(int(s), float(t), bool(r), int(i)) for s, t, r, i in data["samples"]],
            seconds=float(data["seconds"]),
            offered_rate=data.get("offered_rate"),
            connections=int(data.get("connections", 0)),
        )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def request_bytes(port: int, path: str, body: bytes, extra_headers: Sequence[tuple[str, str]] = ()) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in extra_headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive HTTP/1.1 connection; `send` writes one request and reads one answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        return cls(reader, writer)

    async def send(self, payload: bytes) -> tuple[int, bool, bool]:
        """(status, retry_after present, server keeps the connection open)."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, retry_after, keep = 0, False, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry_after = True
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length:
            await self.reader.readexactly(length)
        return status, retry_after, keep

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Target:
    """Where the requests go (always 127.0.0.1) and what they carry: `bodies` POSTed to `path`, or
    `requests` as (path, body) pairs; sent in turn, round-robin."""

    def __init__(
        self,
        port: int,
        path: str = "/tag",
        bodies: Sequence[bytes] = (),
        requests: Sequence[tuple[str, bytes]] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        pairs = [(path, b) for b in bodies] + list(requests)
        if not pairs:
            raise ValueError("need at least one request body")
        self.port = port
        self.bodies = [b for _, b in pairs]
        self.payloads = [request_bytes(port, p, b, headers) for p, b in pairs]
        self._next = 0

    def next_payload(self) -> tuple[int, bytes]:
        index = self._next % len(self.payloads)
        self._next += 1
        return index, self.payloads[index]


async def _one(
    run: Run, conn: Connection | None, target: Target, payload: bytes, timeout: float
) -> tuple[Connection | None, int, bool]:
    """Send one request, opening a connection if needed; returns the connection to reuse (or None),
    the status and whether a Retry-After came with it.

    A reused keep-alive connection that the server closed while it sat idle (uvicorn closes them
    after 5 s) fails before any answer byte: like any HTTP client, retry once on a new connection.
    """
    reused = conn is not None
    try:
        if conn is None:
            run.connections += 1
            conn = await asyncio.wait_for(Connection.open(target.port), timeout)
        status, retry_after, keep = await asyncio.wait_for(conn.send(payload), timeout)
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as e:
        if conn is not None:
            conn.close()
        stale = not isinstance(e, asyncio.IncompleteReadError) or not e.partial
        if reused and stale:
            return await _one(run, None, target, payload, timeout)
        return None, STATUS_CONNECTION_ERROR, False
    except (OSError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        if conn is not None:
            conn.close()
        return None, STATUS_CONNECTION_ERROR, False
    if not keep:
        conn.close()
        return None, status, retry_after
    return conn, status, retry_after


async def sequential(target: Target, n: int, timeout: float = 60.0) -> Run:
    run = Run()
    conn: Connection | None = None
    started = time.perf_counter()
    for _ in range(n):
        index, payload = target.next_payload()
        t0 = time.perf_counter()
        conn, status, retry_after = await _one(run, conn, target, payload, timeout)
        run.samples.append(Sample(status, time.perf_counter() - t0, retry_after, index))
    run.seconds = time.perf_counter() - started
    if conn is not None:
        conn.close()
    return run


async def closed_loop(
    target: Target, concurrency: int, duration: float, timeout: float = 60.0, total: int | None = None
) -> Run:
    """`concurrency` users for `duration` seconds, or until `total` requests have been sent."""
    run = Run()
    started = time.perf_counter()
    deadline = started + duration
    sent = 0

    async def user() -> None:
        nonlocal sent
        conn: Connection | None = None
        while time.perf_counter() < deadline and (total is None or sent < total):
            sent += 1
            index, payload = target.next_payload()
            t0 = time.perf_counter()
            conn, status, retry_after = await _one(run, conn, target, payload, timeout)
            run.samples.append(Sample(status, time.perf_counter() - t0, retry_after, index))
            if status == STATUS_CONNECTION_ERROR:
                await asyncio.sleep(0.01)  # a refused connection would otherwise spin
        if conn is not None:
            conn.close()

    await asyncio.gather(*(user() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


async def open_loop(
    target: Target,
    rate: float,
    duration: float,
    max_connections: int = 1024,
    timeout: float = 60.0,
    seed: int = 0,
) -> Run:
    run = Run(offered_rate=rate)
    idle: list[Connection] = []
    slots = asyncio.Semaphore(max_connections)
    rng = random.Random(seed)
    tasks: set[asyncio.Task[None]] = set()

    async def one(intended: float, index: int, payload: bytes) -> None:
        async with slots:
            conn = idle.pop() if idle else None
            conn, status, retry_after = await _one(run, conn, target, payload, timeout)
            run.samples.append(Sample(status, time.perf_counter() - intended, retry_after, index))
            if conn is not None:
                idle.append(conn)

    started = time.perf_counter()
    intended = started
    while True:
        intended += rng.expovariate(rate)
        if intended - started >= duration:
            break
        # Behind schedule: still yield, so the requests already due get sent.
        await asyncio.sleep(max(0.0, intended - time.perf_counter()))
        task = asyncio.create_task(one(intended, *target.next_payload()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - started
    for conn in idle:
        conn.close()
    return run


def event_loop_policy() -> None:
    """uvloop when available: it halves the client's cost per request."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_spec(spec: dict) -> Run:
    """Run one load described by a JSON-able dict (the command-line interface)."""
    event_loop_policy()

    def encoded(body: object) -> bytes:
        return body.encode() if isinstance(body, str) else json.dumps(body).encode()

    target = Target(
        int(spec["port"]),
        spec.get("path", "/tag"),
        bodies=[encoded(b) for b in spec.get("bodies", [])],
        requests=[(r["path"], encoded(r["body"])) for r in spec.get("requests", [])],
    )
    timeout = float(spec.get("timeout", 60.0))
    mode = spec["mode"]
    if mode == "sequential":
        coro = sequential(target, int(spec["n"]), timeout)
    elif mode == "closed":
        total = spec.get("total")
        coro = closed_loop(
            target, int(spec["concurrency"]), float(spec.get("duration", 1e9)), timeout,
            None if total is None else int(total),
        )  # fmt: skip
    elif mode == "open":
        coro = open_loop(
            target,
            float(spec["rate"]),
            float(spec["duration"]),
            int(spec.get("max_connections", 1024)),
            timeout,
            int(spec.get("seed", 0)),
        )
    else:
        raise ValueError(f"unknown mode {mode!r}: sequential, closed or open")
    return asyncio.run(coro)


def main() -> None:
    if len(sys.argv) != 1:
        raise SystemExit("usage: python -m bench.loadgen < spec.json  (see the module docstring)")
    json.dump(run_spec(json.load(sys.stdin)).to_json(), sys.stdout)


__all__ = ["Run", "Sample", "Target", "closed_loop", "open_loop", "percentile", "run_spec", "sequential"]

if __name__ == "__main__":
    main()
