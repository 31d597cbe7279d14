"""Find the served tasks, and find and verify one task's artifact version directory
(docs/contracts.md section 3).

The service trusts nothing it has not checked: the manifest's schema version, the task, the
sha256 of every file the manifest lists, the label list (section 2) and the tokenizer. Any
failure raises `ArtifactError` whose message names the offending file, so the log line says
exactly what to rebuild or restore. This module is independent of model_build on purpose:
the artifact directory is the only contract between the two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from textfeatures.features import FEATURE_NAMES, FEATURE_VERSION
from textfeatures.tasks import SPAN_LABEL, TASK_NAME
from textfeatures.words import word_splitter

SCHEMA_VERSION = 3
MANIFEST = "manifest.json"
BUILTIN_TASKS = ("concepts", "acronyms")  # always served, with their own routes /tag and /acronyms
BUILTIN_LABELS: dict[str, list[str]] = {
    "concepts": ["O", "B-concept", "I-concept"],
    "acronyms": ["O", "B-short", "I-short", "B-long", "I-long"],
}


class ArtifactError(Exception):
    """The artifact cannot be served; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Artifact:
    task: str
    version: str
    directory: Path
    manifest: dict[str, Any]
    labels: list[str]
    tokenizer: Tokenizer
    onnx_path: Path
    max_positions: int
    pad_token_id: int
    reads_features: bool  # the graph takes the `features` input (textfeatures.features)
    noun_final: bool = False  # spans decoded to end on a noun (manifest `decoding`; textfeatures.decode)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: manifest is not a JSON object")
    return manifest


def _created(path: Path) -> datetime:
    created = read_manifest(path).get("created")
    try:
        return datetime.fromisoformat(str(created))
    except ValueError as e:
        raise ArtifactError(f"{path}: 'created' is not an ISO 8601 time: {created!r}") from e


def has_complete_version(task_dir: Path) -> bool:
    """Whether some version directory of `task_dir` holds its manifest (written last)."""
    try:
        return any(d.is_dir() and (d / MANIFEST).is_file() for d in task_dir.iterdir())
    except OSError:  # not a directory, vanished, unreadable: nothing to serve from it
        return False


def find_tasks(artifacts_dir: Path) -> tuple[list[str], list[str]]:
    """(user tasks, ignored directories): the directories of `artifacts_dir` other than the
    built-in tasks' that hold a complete version, sorted; those whose name is not a task name
    (TASK_NAME) are ignored. Hidden names (`.staging-x`) are neither."""
    try:
        entries = sorted(artifacts_dir.iterdir())
    except OSError:  # the built-in tasks report a missing artifact directory
        return [], []
    tasks: list[str] = []
    ignored: list[str] = []
    for entry in entries:
        if entry.name in BUILTIN_TASKS or entry.name.startswith(".") or not has_complete_version(entry):
            continue
        (tasks if TASK_NAME.fullmatch(entry.name) else ignored).append(entry.name)
    return tasks, ignored


def version_setting(task: str) -> str:
    """The settings that pin a task's version (docs/service.md, Settings), for messages."""
    general = f"ALIGNTAG_TASK_VERSIONS[{task!r}]"
    return f"ALIGNTAG_{task.upper()}_VERSION or {general}" if task in BUILTIN_TASKS else general


def find_version_dir(artifacts_dir: Path, task: str, version: str | None) -> Path:
    """The named version, or the complete version (manifest present) with the newest `created`."""
    task_dir = artifacts_dir / task
    if version is not None:
        chosen = task_dir / version
        if not (chosen / MANIFEST).is_file():
            raise ArtifactError(
                f"{chosen / MANIFEST}: not found ({version_setting(task)} = {version!r}); "
                "name a complete version directory or unset the setting"
            )
        return chosen
    if not task_dir.is_dir():
        raise ArtifactError(f"{task_dir}: no such directory (check ALIGNTAG_ARTIFACTS_DIR)")
    # Directories being built have no manifest yet (it is written last), so they are skipped.
    complete = [d for d in task_dir.iterdir() if d.is_dir() and (d / MANIFEST).is_file()]
    if not complete:
        raise ArtifactError(f"{task_dir}: no complete version directory (none holds {MANIFEST})")
    return max(complete, key=lambda d: (_created(d / MANIFEST), d.name))


def load_artifact(
    artifacts_dir: Path, task: str, version: str | None = None, onnx_file: str | None = None
) -> Artifact:
    """Resolve, read and verify one task's artifact; raises ArtifactError naming the bad file."""
    directory = find_version_dir(artifacts_dir, task, version)
    manifest_path = directory / MANIFEST
    manifest = read_manifest(manifest_path)

    schema = manifest.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise ArtifactError(
            f"{manifest_path}: unknown schema_version {schema!r} (this service reads {SCHEMA_VERSION})"
        )
    if manifest.get("task") != task:
        raise ArtifactError(f"{manifest_path}: task is {manifest.get('task')!r}, expected {task!r}")

    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{manifest_path}: 'files' must map file names to sha256 digests")
    for name, expected in sorted(files.items()):
        path = directory / name
        if Path(name).name != name:
            raise ArtifactError(f"{manifest_path}: file name {name!r} is not a plain file name")
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in the manifest)")
        if sha256_file(path) != expected:
            raise ArtifactError(f"{path}: sha256 does not match the manifest")

    served = onnx_file or (manifest.get("serve") or {}).get("onnx_file")
    for required in ("tokenizer.json", "labels.json", served):
        if not required or required not in files:
            raise ArtifactError(
                f"{directory / str(required or 'serve.onnx_file')}: not listed in the manifest's files"
            )
    assert served is not None  # checked just above; tells the type checker

    labels = _read_labels(directory / "labels.json", task)
    try:
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    except Exception as e:  # the Rust binding raises a plain Exception on bad JSON
        raise ArtifactError(f"{directory / 'tokenizer.json'}: not a loadable tokenizer ({e})") from e

    model = manifest.get("model") or {}
    max_positions = model.get("max_positions")
    if not isinstance(max_positions, int) or max_positions < 2:
        raise ArtifactError(f"{manifest_path}: model.max_positions must be an integer >= 2")
    num_labels = model.get("num_labels", len(labels))
    if num_labels != len(labels):
        raise ArtifactError(
            f"{manifest_path}: model.num_labels={num_labels} but labels.json has {len(labels)}"
        )
    reads_features = _check_features(manifest_path, manifest.get("features"))
    noun_final = _read_decoding(manifest_path, manifest.get("decoding"))
    return Artifact(
        task=task,
        version=str(manifest.get("version", directory.name)),
        directory=directory,
        manifest=manifest,
        labels=labels,
        tokenizer=tokenizer,
        onnx_path=directory / served,
        max_positions=max_positions,
        pad_token_id=int(model.get("pad_token_id", 0)),
        reads_features=reads_features,
        noun_final=noun_final,
    )


def _check_features(manifest_path: Path, features: object) -> bool:
    """Whether the model reads token features; refuses features this service cannot compute."""
    if features is None:
        return False
    if not isinstance(features, dict):
        raise ArtifactError(f"{manifest_path}: 'features' must be null or an object")
    if features.get("version") != FEATURE_VERSION or features.get("names") != list(FEATURE_NAMES):
        raise ArtifactError(
            f"{manifest_path}: the model needs features version {features.get('version')!r} "
            f"{features.get('names')!r}; this service computes version {FEATURE_VERSION} "
            f"{list(FEATURE_NAMES)}: serve it with the aligntag release that built it, or rebuild it"
        )
    return True


def _read_decoding(manifest_path: Path, decoding: object) -> bool:
    """`noun_final` of the manifest's `decoding`: how the build decoded when it scored the model;
    a setting this service does not know is refused, so that it never decodes otherwise. The
    model's words (`words`; absent in manifests written before it: `as-written`) must be the
    ones this service splits (`ALIGNTAG_WORDS`)."""
    if not isinstance(decoding, dict) or not {"noun_final"} <= set(decoding) <= {"noun_final", "words"}:
        raise ArtifactError(
            f"{manifest_path}: 'decoding' must be an object with 'noun_final' and optionally 'words'"
        )
    if not isinstance(decoding["noun_final"], bool):
        raise ArtifactError(f"{manifest_path}: decoding.noun_final must be true or false")
    words = decoding.get("words", "as-written")
    if words != word_splitter():
        raise ArtifactError(
            f"{manifest_path}: the model was built on words split {words!r}; this service splits "
            f"{word_splitter()!r} (ALIGNTAG_WORDS)"
        )
    return decoding["noun_final"]


def span_labels(labels: list[str]) -> list[str]:
    """The span labels of a head's label list (`["O", "B-short", "I-short", ...]` -> `["short"]`)."""
    return [name[2:] for name in labels[1::2]]


def _read_labels(path: Path, task: str) -> list[str]:
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: unreadable ({e})") from e
    problem = labels_problem(labels)
    if problem:
        raise ArtifactError(f"{path}: {problem}")
    if task in BUILTIN_LABELS and labels != BUILTIN_LABELS[task]:
        raise ArtifactError(f"{path}: labels {labels!r}, expected {BUILTIN_LABELS[task]!r} for task {task}")
    return list(labels)


def labels_problem(labels: object) -> str | None:
    """What is wrong with a labels.json list (section 3: "O", then B-x, I-x pairs of distinct
    labels x), or None. Decoding reads the B-/I- pairing from the names, so a list that breaks
    it would decode into spans the model never meant."""
    if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
        return f"labels must be a JSON list of strings, got {labels!r}"
    if not labels:
        return 'an empty list; expected "O" then a B-x, I-x pair for each span label x'
    if labels[0] != "O":
        return f'the first label must be "O", got {labels[0]!r}'
    if len(labels) < 3 or len(labels) % 2 == 0:
        return f'{len(labels)} labels: expected "O" then a B-x, I-x pair for each span label x'
    seen: set[str] = set()
    for i in range(1, len(labels), 2):
        begin, inside = labels[i], labels[i + 1]
        label = begin[2:]
        if not begin.startswith("B-") or not SPAN_LABEL.fullmatch(label):
            return f"label {i} must be B-<label> with <label> matching {SPAN_LABEL.pattern}, got {begin!r}"
        if inside != f"I-{label}":
            return f"label {i + 1} must be {'I-' + label!r} (after {begin!r}), got {inside!r}"
        if label in seen:
            return f"span label {label!r} appears twice"
        seen.add(label)
    return None
