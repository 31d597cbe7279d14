"""`python -m model_build finetune`: a user task with its own labels, from the session's tiny build,
published under the artifact contract; bad input refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from testlib import serving

from bench.user_task_curve import typed_copy
from model_build.__main__ import main
from model_build.export import verify_artifact

TYPES = ("Material", "Process", "Task")


@pytest.fixture(scope="module")
def user_task(
    tiny_build_dir: Path,
    tiny_artifacts_dir: Path,
    labelled_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The user task published beside a copy of the tiny build's built-in tasks, as `make
    finetune` publishes it beside the default build's."""
    root = tmp_path_factory.mktemp("user-task")
    shutil.copytree(tiny_artifacts_dir, root / "artifacts")
    train = typed_copy(labelled_data_dir / "concepts" / "scienceie-train.jsonl", root / "sci-train.jsonl", 60)
    argv = ["finetune", "--config", "tiny", "--data-dir", str(labelled_data_dir),
            "--work-dir", str(tiny_build_dir / "work"), "--artifacts-dir", str(root / "artifacts"),
            "--task", "sci-types", "--train", str(train)]  # fmt: skip
    assert main(argv) == 0
    (version_dir,) = (root / "artifacts" / "sci-types").iterdir()
    return version_dir


def test_the_service_serves_the_user_task(user_task: Path, labelled_data_dir: Path, tmp_path: Path) -> None:
    """Built by the command, answered by a real service process: spans with the task's own labels,
    offsets that index the text; /info lists the task."""
    with (labelled_data_dir / "concepts" / "scienceie-train.jsonl").open() as f:
        text = json.loads(f.readline())["text"]
    with serving(user_task.parent.parent, tmp_path / "service.log") as base_url:
        answer = httpx.post(f"{base_url}/tasks/sci-types", json={"text": text}, timeout=30).json()
        info = httpx.get(f"{base_url}/info", timeout=10).json()
    assert answer["model"] == {"task": "sci-types", "version": user_task.name}
    assert answer["spans"], "the user task tagged nothing on one of its own training paragraphs"
    for span in answer["spans"]:
        assert span["label"] in TYPES
        assert text[span["start"] : span["end"]] == span["text"]
    assert sorted(info["models"]["sci-types"]["span_labels"]) == list(TYPES)


def test_user_task_artifact_follows_the_contract(user_task: Path) -> None:
    labels = json.loads((user_task / "labels.json").read_text())
    assert labels == ["O", *(f"{p}-{t}" for t in TYPES for p in ("B", "I"))]
    manifest = verify_artifact(user_task)  # schema and checksums, as the service reads it
    assert manifest["task"] == "sci-types"
    assert manifest["model"]["num_labels"] == 7
    assert manifest["finetuning"]["evaluated_on"] == "12 held-out examples"  # 20% of 60
    metrics = manifest["evaluation"]["fp32"]["metrics"]
    assert sorted(metrics["labels"]) == list(TYPES)
    # Evaluated on examples it never trained on: gold spans exist for every type.
    assert all(metrics["labels"][t]["tp"] + metrics["labels"][t]["fn"] > 0 for t in TYPES)
    assert manifest["evaluation"]["fp32"]["f1"] == pytest.approx(metrics["micro"]["f1"], abs=0.01)


def test_user_task_leaves_the_built_in_tasks_as_they_were(user_task: Path, tiny_artifacts_dir: Path) -> None:
    root = user_task.parent.parent
    assert sorted(p.name for p in root.iterdir()) == ["acronyms", "concepts", "sci-types"]
    for task in ("acronyms", "concepts"):
        assert sorted(p.name for p in (root / task).iterdir()) == sorted(
            p.name for p in (tiny_artifacts_dir / task).iterdir()
        )


@pytest.mark.parametrize(
    ("task", "train_line", "message"),
    [
        ("Bad Name", '{"text": "x", "spans": []}', "task name 'Bad Name'"),
        ("concepts", '{"text": "x", "spans": []}', "'concepts' is a built-in task"),
        (
            "mine",
            '{"text": "abc", "spans": [{"start": 0, "end": 9, "label": "X"}]}',
            "train.jsonl:1: span 0-9",
        ),
        ("mine", '{"text": "abc", "spans": []}', "no labelled span in any example"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, train_line: str, message: str
) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text(train_line + "\n")
    artifacts = tmp_path / "artifacts"
    argv = ["finetune", "--config", "tiny", "--work-dir", str(tmp_path / "work"),
            "--artifacts-dir", str(artifacts), "--task", task, "--train", str(train)]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not artifacts.exists() and not (tmp_path / "work").exists()


def test_a_dev_file_is_refused_as_training_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = tmp_path / "mine-dev.jsonl"
    dev.write_text('{"text": "abc", "spans": [{"start": 0, "end": 3, "label": "X"}]}\n')
    argv = ["finetune", "--config", "tiny", "--work-dir", str(tmp_path / "work"),
            "--artifacts-dir", str(tmp_path / "a"), "--task", "mine", "--train", str(dev)]  # fmt: skip
    assert main(argv) == 2
    assert "leakage rule" in capsys.readouterr().err
