"""Session fixtures shared by every test package.

Nothing is cached between sessions: the tiny model is built from the real corpora (FOLDOC and
Jargon from Debian, the labelled data directory) once per test session, and the service runs as a
real subprocess on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import data_dir, serving


@pytest.fixture(scope="session")
def labelled_data_dir() -> Path:
    d = data_dir()
    # A missing input fails the suite instead of silently skipping the tests that read it.
    for sub in ("acronyms", "concepts", "wikitext"):
        assert (d / sub).is_dir(), f"{d / sub} not found: set ALIGNTAG_DATA_DIR to the shared data directory"
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


@pytest.fixture(scope="session")
def running_service(tiny_artifacts_dir: Path) -> Iterator[str]:
    """Base URL of a real service process serving the tiny artifacts."""
    with serving(tiny_artifacts_dir, tiny_artifacts_dir.parent / "running-service.log") as base_url:
        yield base_url
