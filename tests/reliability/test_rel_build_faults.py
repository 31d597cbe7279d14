"""Build faults: `kill -9` of the build during the export stage.

The export writes `artifacts/<task>/.tmp-<version>/` and renames it into place after writing the
manifest last. Killed part-way, the rerun must resume (every earlier stage skipped as done) and
publish; meanwhile the service's loader must never see a half-written version: every directory
it could pick holds a manifest whose checksums verify, and with none it refuses with its message.

Kill during pretraining is covered by tests/model_build/test_pipeline.py
(`test_interrupted_build_resumes_and_publishes`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rel_helpers import REPO_ROOT, Report

from service.artifacts import MANIFEST, ArtifactError, find_version_dir, load_artifact


def build_command(data_dir: Path, work: Path, artifacts: Path) -> list[str]:
    return [sys.executable, "-m", "model_build", "build", "--config", "tiny", "--data-dir", str(data_dir),
            "--work-dir", str(work), "--artifacts-dir", str(artifacts)]  # fmt: skip


def visible_versions(artifacts: Path, task: str) -> list[Path]:
    """What the service's loader considers complete (it skips directories without a manifest)."""
    task_dir = artifacts / task
    return (
        [d for d in task_dir.iterdir() if d.is_dir() and (d / MANIFEST).is_file()]
        if task_dir.is_dir()
        else []
    )


def test_kill_during_export_then_rerun(
    tiny_build_dir: Path, labelled_data_dir: Path, tmp_path: Path, report: Report
) -> None:
    # A finished build's work directory: the rerun skips corpus .. finetune and goes to the export.
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    shutil.copytree(tiny_build_dir / "work", work)
    cmd = build_command(labelled_data_dir, work, artifacts)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    task_dir = artifacts / "concepts"
    deadline = t0 + 300
    while not (task_dir.is_dir() and any(d.name.startswith(".tmp-") for d in task_dir.iterdir())):
        assert proc.poll() is None, "the build ended before its export started"
        assert time.monotonic() < deadline, "no export within 300 s"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.monotonic() - t0
    leftovers = sorted(d.name for d in task_dir.iterdir())
    tmp_dirs = [task_dir / name for name in leftovers if name.startswith(".tmp-")]
    half_written = [d for d in tmp_dirs if not (d / MANIFEST).is_file()]

    # The service's view: no version it could pick is incomplete.
    for task in ("concepts", "acronyms"):
        for version in visible_versions(artifacts, task):
            load_artifact(artifacts, task, version.name)  # every checksum verifies
    if not visible_versions(artifacts, "concepts"):
        with pytest.raises(ArtifactError, match="no complete version directory"):
            find_version_dir(artifacts, "concepts", None)
    if not (artifacts / "acronyms").is_dir() or not visible_versions(artifacts, "acronyms"):
        with pytest.raises(ArtifactError):
            load_artifact(artifacts, "acronyms")

    t1 = time.monotonic()
    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    rerun_seconds = time.monotonic() - t1
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    stages = json.loads((work / "build-report.json").read_text())["stages"]
    assert stages.get("pretrain-aligned", 0) < 5, f"the rerun did not resume: {stages}"
    for task in ("concepts", "acronyms"):
        loaded = load_artifact(artifacts, task)
        assert loaded.directory.name.startswith("tiny-")
    stale = sorted(d.name for d in task_dir.iterdir() if d.name.startswith(".tmp-"))
    assert stale == [], f"the rerun left the killed export's temporary directories behind: {stale}"

    report.add(
        "Build faults: kill -9 during export",
        f"- Rerun of a finished tiny build into an empty artifacts dir, `SIGKILL` {killed_after:.2f} s in, "
        f"as soon as `concepts/.tmp-*` appeared. Left in `artifacts/concepts/`: {leftovers} "
        f"({len(half_written)} half-written, none of them visible to the service's loader, which "
        "answered `no complete version directory`).",
        f"- Rerun: exit 0 in {rerun_seconds:.1f} s, stages {stages} (corpus .. finetune skipped as "
        "done), both artifacts published and verified.",
        "- The rerun's export removed the killed run's temporary directory (none left).",
    )
