"""Session fixtures shared by every test package.

Nothing is cached between sessions: the tiny model is built from the real corpora (FOLDOC and
Jargon from Debian, the labelled data directory) once per test session, and the service runs as a
real subprocess on it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def labelled_data_dir() -> Path:
    d = data_dir()
    assert (d / "acronyms").is_dir(), f"labelled data not found at {d}: set ALIGNTAG_DATA_DIR"
    return d


@pytest.fixture(scope="session")
def tiny_build_dir(tmp_path_factory: pytest.TempPathFactory, labelled_data_dir: Path) -> Path:
    """Work directory of one `tiny` build (corpus, tokenizer, checkpoints) for the session."""
    from model_build.pipeline import build

    root = tmp_path_factory.mktemp("tiny-build")
    build("tiny", labelled_data_dir, root / "work", root / "artifacts")
    return root


@pytest.fixture(scope="session")
def tiny_artifacts_dir(tiny_build_dir: Path) -> Path:
    """Artifacts root with concepts/<version>/ and acronyms/<version>/ from the tiny build."""
    return tiny_build_dir / "artifacts"


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


@pytest.fixture(scope="session")
def running_service(tiny_artifacts_dir: Path) -> Iterator[str]:
    """Base URL of a real service process serving the tiny artifacts."""
    port = free_port()
    proc = start_service(tiny_artifacts_dir, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
