"""Fixtures of the service tests (on top of tests/conftest.py: tiny_artifacts_dir, running_service).

`make_client` builds an in-process app (FastAPI TestClient, lifespan included) on the tiny
artifacts, with any settings and an optional runtime factory: faster than a subprocess and able to
inject a runtime that blocks or fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MakeClient

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def make_client(tiny_artifacts_dir: Path) -> Iterator[MakeClient]:
    clients: list[TestClient] = []

    def make(runtime_factory: Any = None, **settings: Any) -> TestClient:
        settings.setdefault("artifacts_dir", tiny_artifacts_dir)
        client = TestClient(create_app(Settings(**settings), runtime_factory), raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: load, verify, warm up
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def artifacts_copy(tiny_artifacts_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny artifacts, free to corrupt."""
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, copy)
    return copy
