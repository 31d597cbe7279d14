"""Artifact verification (service/artifacts.py) on copies of the tiny build's artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from svc_helpers import flip_byte, version_dir

from service.artifacts import ArtifactError, find_version_dir, load_artifact


def error_of(artifacts_dir: Path, task: str = "concepts", **kwargs: str) -> str:
    with pytest.raises(ArtifactError) as e:
        load_artifact(artifacts_dir, task, **kwargs)
    return str(e.value)


def test_tiny_artifacts_load(tiny_artifacts_dir: Path) -> None:
    for task, n_labels in (("concepts", 3), ("acronyms", 5)):
        artifact = load_artifact(tiny_artifacts_dir, task)
        assert artifact.task == task and len(artifact.labels) == n_labels
        assert artifact.onnx_path.name == artifact.manifest["serve"]["onnx_file"]
        assert artifact.max_positions == artifact.manifest["model"]["max_positions"]


def test_checksum_mismatch_names_the_file(artifacts_copy: Path) -> None:
    directory = version_dir(artifacts_copy, "concepts")
    flip_byte(directory / "model.int8.onnx")
    assert error_of(artifacts_copy) == f"{directory / 'model.int8.onnx'}: sha256 does not match the manifest"


def test_missing_file_names_the_file(artifacts_copy: Path) -> None:
    directory = version_dir(artifacts_copy, "acronyms")
    (directory / "tokenizer.json").unlink()
    assert (
        error_of(artifacts_copy, "acronyms")
        == f"{directory / 'tokenizer.json'}: missing (listed in the manifest)"
    )


def test_unknown_schema_version(artifacts_copy: Path) -> None:
    manifest_path = version_dir(artifacts_copy, "concepts") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_version"] = 3
    manifest_path.write_text(json.dumps(manifest))
    assert error_of(artifacts_copy) == f"{manifest_path}: unknown schema_version 3 (this service reads 2)"


def test_unreadable_manifest(artifacts_copy: Path) -> None:
    manifest_path = version_dir(artifacts_copy, "concepts") / "manifest.json"
    manifest_path.write_text("{not json")
    assert error_of(artifacts_copy).startswith(f"{manifest_path}: unreadable manifest (")


def test_missing_task_directory(tmp_path: Path) -> None:
    message = error_of(tmp_path)
    assert message == f"{tmp_path / 'concepts'}: no such directory (check ALIGNTAG_ARTIFACTS_DIR)"


def test_onnx_override_must_be_listed(artifacts_copy: Path) -> None:
    directory = version_dir(artifacts_copy, "concepts")
    assert (
        load_artifact(artifacts_copy, "concepts", onnx_file="model.onnx").onnx_path
        == directory / "model.onnx"
    )
    assert error_of(artifacts_copy, onnx_file="other.onnx") == (
        f"{directory / 'other.onnx'}: not listed in the manifest's files"
    )


def test_newest_complete_version_is_chosen(artifacts_copy: Path) -> None:
    current = version_dir(artifacts_copy, "concepts")
    newer = current.parent / "zz-newer"
    shutil.copytree(current, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["created"] = "2999-01-01T00:00:00Z"
    (newer / "manifest.json").write_text(json.dumps(manifest))
    incomplete = current.parent / ".tmp-being-built"
    shutil.copytree(current, incomplete)
    (incomplete / "manifest.json").unlink()
    assert find_version_dir(artifacts_copy, "concepts", None) == newer
    assert find_version_dir(artifacts_copy, "concepts", current.name) == current
    with pytest.raises(ArtifactError, match=r"not found \(ALIGNTAG_CONCEPTS_VERSION=nope\)"):
        find_version_dir(artifacts_copy, "concepts", "nope")
