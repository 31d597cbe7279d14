"""Start, watch and stop one server process on 127.0.0.1 (the benchmark's four variants).

Each server runs in its own process, its log going to a file (never to a pipe nobody reads: the
service logs one line per request and a full pipe would stall it).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.inputs import REPO_ROOT
from bench.loadgen import HOST


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def rss_mb(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def log_lines(self) -> list[dict[str, Any]]:
        """The service's JSON log lines (a line that is not JSON comes back as {"raw": line})."""
        lines: list[dict[str, Any]] = []
        for line in self.log().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line})
        return lines

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(
    name: str,
    args: list[str],
    artifacts_dir: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    ready: bool = True,
) -> Server:
    """Start `python <args>` with the service settings pointing at `artifacts_dir`, on a free port;
    wait until `/ready` answers 200 (or, with `ready=False`, until the process answers at all)."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    full_env = {
        **os.environ,
        "ALIGNTAG_ARTIFACTS_DIR": str(artifacts_dir),
        "ALIGNTAG_HOST": HOST,
        "ALIGNTAG_PORT": str(port),
        **(env or {}),
    }
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(name, proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            status, _ = get(port, "/ready" if ready else "/health", timeout=2)
            if status == 200 or not ready:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{name}: not ready within {timeout} s:\n{server.log_tail()}")
