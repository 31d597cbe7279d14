"""Helpers shared by every test package: paths, free ports, starting the service process.

A plain module (not conftest.py) so that any test can `from testlib import ...`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(
    artifacts_dir: Path, port: int, extra_env: dict[str, str] | None = None, args: list[str] | None = None
) -> subprocess.Popen:
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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


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
