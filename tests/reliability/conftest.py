"""Fixtures of the reliability suite (on top of tests/conftest.py: tiny_artifacts_dir, tiny_build_dir).

Two modes:
- default (plain `pytest`, CI): the tiny model, a bounded number of fuzzing examples, a 3-second
  overload and a 2,000-request soak, so every check's logic runs in a few minutes;
- `--reliability-full` (`make reliability`): 200 fuzzing examples per operation, 20 s at 3x
  saturation and a 50,000-request soak, on `--artifacts-dir` (default: the tiny model).

The figures go to `reports/reliability/report.md` (full mode) or `report-fast.md` (default mode).

The options are declared here, not in tests/conftest.py: pytest reads this file before parsing
the command line when `tests/reliability` is named on it (`make reliability`); under a plain
`pytest` from the repository root it is loaded during collection, its options then take their
defaults, and `--reliability-full` on that command line would be refused (name the directory).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench` (the load generator) is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

import rel_helpers  # noqa: E402
from rel_helpers import Mode, Report, Service, start_service  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "aligntag reliability suite")
    group.addoption(
        "--reliability-full",
        action="store_true",
        default=False,
        help="full reliability runs: 20 s overload at 3x saturation, 50,000-request soak, 200 fuzz examples",
    )
    group.addoption(
        "--artifacts-dir",
        default=None,
        help="artifacts root for the reliability suite's load tests (default: the tiny model built in-session)",
    )


def pytest_configure(config: pytest.Config) -> None:
    rel_helpers.MODE = Mode.from_config(config)


@pytest.fixture(scope="session")
def mode() -> Mode:
    return rel_helpers.MODE


@pytest.fixture(scope="session")
def rel_artifacts_dir(request: pytest.FixtureRequest, mode: Mode) -> Path:
    """The option's artifacts root, else the tiny model built in this session."""
    if mode.artifacts_dir is not None:
        path = Path(mode.artifacts_dir).resolve()
        assert list(path.glob("concepts/*/manifest.json")), f"{path}: no concepts/<version>/manifest.json"
        return path
    tiny: Path = request.getfixturevalue("tiny_artifacts_dir")
    return tiny


@pytest.fixture(scope="session")
def report(mode: Mode) -> Iterator[Report]:
    collected = Report(mode)
    yield collected
    collected.write(REPO_ROOT / "reports" / "reliability")


@pytest.fixture(scope="session")
def shared_service(rel_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the fuzzing, hostile-input and disconnect tests."""
    service = start_service(rel_artifacts_dir, tmp_path_factory.mktemp("shared-service"))
    yield service
    service.stop()
