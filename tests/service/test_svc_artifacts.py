"""Artifact verification (service/artifacts.py) on copies of the tiny build's artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from svc_helpers import copy_as_user_task, flip_byte, version_dir

from service.artifacts import ArtifactError, find_tasks, find_version_dir, load_artifact
from textfeatures.words import use_word_splitter


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
        # Concept spans end on a noun (docs/contracts.md section 2); acronym spans as tagged.
        assert artifact.noun_final is (task == "concepts")


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
    manifest["schema_version"] = 4
    manifest_path.write_text(json.dumps(manifest))
    assert error_of(artifacts_copy) == f"{manifest_path}: unknown schema_version 4 (this service reads 3)"


@pytest.mark.parametrize("decoding", [None, {"noun_final": "yes"}, {"noun_final": True, "stemming": True}])
def test_decoding_the_service_does_not_know_is_refused(artifacts_copy: Path, decoding: object) -> None:
    manifest_path = version_dir(artifacts_copy, "concepts") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["decoding"] = decoding
    manifest_path.write_text(json.dumps(manifest))
    assert error_of(artifacts_copy).startswith(f"{manifest_path}: ")
    assert "decoding" in error_of(artifacts_copy)


def test_a_model_built_on_other_words_is_refused(artifacts_copy: Path) -> None:
    """The manifest names the words its model was built on; a service that splits others refuses
    it (ALIGNTAG_WORDS), one that splits the same serves it, and a manifest written before the
    field reads as words as written."""
    manifest_path = version_dir(artifacts_copy, "concepts") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["decoding"] == {"noun_final": True, "words": "as-written"}
    manifest["decoding"]["words"] = "pretokens"
    manifest_path.write_text(json.dumps(manifest))
    assert error_of(artifacts_copy) == (
        f"{manifest_path}: the model was built on words split 'pretokens'; this service splits "
        "'as-written' (ALIGNTAG_WORDS)"
    )
    use_word_splitter("pretokens")
    try:
        assert load_artifact(artifacts_copy, "concepts").noun_final is True
    finally:
        use_word_splitter("as-written")
    del manifest["decoding"]["words"]
    manifest_path.write_text(json.dumps(manifest))
    assert load_artifact(artifacts_copy, "concepts").noun_final is True


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
    with pytest.raises(
        ArtifactError,
        match=r"not found \(ALIGNTAG_CONCEPTS_VERSION or ALIGNTAG_TASK_VERSIONS\['concepts'\] = 'nope'\)",
    ):
        find_version_dir(artifacts_copy, "concepts", "nope")


# ------------------------------------------------------------------------------------ user tasks


def test_user_task_loads_with_its_own_labels(artifacts_copy: Path) -> None:
    copy_as_user_task(
        artifacts_copy,
        "acronyms",
        "gene-products",
        labels=["O", "B-Gene", "I-Gene", "B-gene.product", "I-gene.product"],
    )
    artifact = load_artifact(artifacts_copy, "gene-products")
    assert artifact.task == "gene-products" and artifact.manifest["task"] == "gene-products"
    assert artifact.labels == ["O", "B-Gene", "I-Gene", "B-gene.product", "I-gene.product"]


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (["O", "B-method", "B-other"], "label 2 must be 'I-method' (after 'B-method'), got 'B-other'"),
        (["O", "B-method", "O"], "label 2 must be 'I-method' (after 'B-method'), got 'O'"),
        (["B-method", "I-method", "O"], """the first label must be "O", got 'B-method'"""),
        (
            ["O", "I-method", "B-method"],
            "label 1 must be B-<label> with <label> matching [A-Za-z][A-Za-z0-9_.-]{0,39}, got 'I-method'",
        ),
        (
            ["O", "B-1st", "I-1st"],
            "label 1 must be B-<label> with <label> matching [A-Za-z][A-Za-z0-9_.-]{0,39}, got 'B-1st'",
        ),
        (["O", "B-x", "I-x", "B-x", "I-x"], "span label 'x' appears twice"),
        (["O", "B-x", "I-x", "B-y"], """4 labels: expected "O" then a B-x, I-x pair for each span label x"""),
        (["O"], """1 labels: expected "O" then a B-x, I-x pair for each span label x"""),
        ([], """an empty list; expected "O" then a B-x, I-x pair for each span label x"""),
        ({"O": 0}, "labels must be a JSON list of strings, got {'O': 0}"),
        (["O", "B-x", 3], "labels must be a JSON list of strings, got ['O', 'B-x', 3]"),
    ],
)
def test_malformed_user_labels_are_refused_with_the_reason(
    artifacts_copy: Path, labels: object, problem: str
) -> None:
    directory = copy_as_user_task(artifacts_copy, "concepts", "methods", labels=labels)  # type: ignore[arg-type]
    assert error_of(artifacts_copy, "methods") == f"{directory / 'labels.json'}: {problem}"


def test_built_in_labels_must_be_their_fixed_lists(artifacts_copy: Path) -> None:
    copy_as_user_task(artifacts_copy, "concepts", "methods", labels=["O", "B-method", "I-method"])
    shutil.rmtree(artifacts_copy / "concepts")
    (artifacts_copy / "methods").rename(artifacts_copy / "concepts")
    directory = version_dir(artifacts_copy, "concepts")
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["task"] = "concepts"
    manifest_path.write_text(json.dumps(manifest))
    assert error_of(artifacts_copy) == (
        f"{directory / 'labels.json'}: labels ['O', 'B-method', 'I-method'], "
        "expected ['O', 'B-concept', 'I-concept'] for task concepts"
    )


def test_manifest_task_must_be_the_directory_name(artifacts_copy: Path) -> None:
    source = version_dir(artifacts_copy, "concepts")
    shutil.copytree(source, artifacts_copy / "methods" / source.name)  # manifest still says concepts
    manifest_path = artifacts_copy / "methods" / source.name / "manifest.json"
    assert error_of(artifacts_copy, "methods") == f"{manifest_path}: task is 'concepts', expected 'methods'"


def test_find_tasks(artifacts_copy: Path) -> None:
    assert find_tasks(artifacts_copy) == ([], [])
    copy_as_user_task(artifacts_copy, "concepts", "methods")
    copy_as_user_task(artifacts_copy, "acronyms", "abbrev_2")
    (artifacts_copy / "incomplete" / "v1").mkdir(parents=True)  # no manifest yet: being built
    (artifacts_copy / "empty").mkdir()
    (artifacts_copy / "notes.txt").write_text("a file, not a task")
    shutil.copytree(version_dir(artifacts_copy, "concepts"), artifacts_copy / ".hidden" / "v1")
    shutil.copytree(version_dir(artifacts_copy, "concepts"), artifacts_copy / "Methods" / "v1")
    shutil.copytree(version_dir(artifacts_copy, "concepts"), artifacts_copy / ("x" * 41) / "v1")
    assert find_tasks(artifacts_copy) == (["abbrev_2", "methods"], ["Methods", "x" * 41])
    assert find_tasks(artifacts_copy / "missing") == ([], [])
