"""Helpers shared by every test package: paths, free ports, starting the service process.

A plain module (not conftest.py) so that any test can `from testlib import ...`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(
    artifacts_dir: Path,
    port: int,
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
    log: IO[str] | None = None,
) -> subprocess.Popen:
    """The service as a subprocess; its log on a pipe the caller reads, or into `log`."""
    env = {
        **os.environ,
        "ALIGNTAG_ARTIFACTS_DIR": str(artifacts_dir),
        "ALIGNTAG_HOST": "127.0.0.1",
        "ALIGNTAG_PORT": str(port),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        args or [sys.executable, "-m", "service"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextmanager
def serving(artifacts_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Base URL of a ready service process, stopped at exit. Its log goes to `log_path`: a
    long-lived service logging into a pipe that nobody reads blocks once the pipe is full."""
    port = free_port()
    with log_path.open("w") as log:
        proc = start_service(artifacts_dir, port, extra_env, log=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base_url, proc)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e}\n{log_path.read_text()[-4000:]}") from e
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_ready(base_url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"service exited with {proc.returncode}:\n{out[-4000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url}/ready not 200 within {timeout} s")
