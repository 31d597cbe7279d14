"""The leakage rule, in code: pretraining never reads dev or test files.

A file's role comes from its name (docs/contracts.md section 1): a name containing `-dev`,
`_dev`, `dev.` is `dev`; `-test`, `_test`, `test.` is `test`; `-train`, `_train`, `train.` is
`train`; anything else is `unlabelled`. Every pretraining reader calls `check_pretraining_file`
before opening a file.
"""

from __future__ import annotations

from pathlib import Path

_MARKS = {
    "dev": ("-dev", "_dev", "dev."),
    "test": ("-test", "_test", "test."),
    "train": ("-train", "_train", "train."),
}


class LeakageError(ValueError):
    """A dev or test file was given to a pretraining reader."""


def file_role(path: str | Path) -> str:
    """`"train"`, `"dev"`, `"test"` or `"unlabelled"`, from the file name (see module doc)."""
    name = Path(path).name.lower()
    for role in ("test", "dev", "train"):
        if any(mark in name for mark in _MARKS[role]):
            return role
    return "unlabelled"


def check_pretraining_file(path: str | Path) -> None:
    """Raise `LeakageError` if `path` is a dev or test file."""
    role = file_role(path)
    if role in ("dev", "test"):
        raise LeakageError(
            f"{path}: refusing to read a {role} file for pretraining (leakage rule: pretraining "
            f"may read train and unlabelled files only; file names with -{role}/_{role}/{role}. "
            f"are {role} files)"
        )
