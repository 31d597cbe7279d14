"""The leakage rule, in code: pretraining never reads dev or test files, and neither does
finetuning (nor the calibration that runs on a slice of the training examples).

Two guards:

1. Declared roles. The build configuration names every labelled file with its role: `datasets`
   gives each task's train and dev file, `extra_train` more train files, and the corpus's
   `span_files` / `text_files` are pretraining text. `check_declared_roles` refuses a
   configuration that gives one file two roles that may not meet (pretraining text or train, and
   dev), or that declares as train or pretraining text a file whose name says dev or test.
2. File names, as a second guard for every file a pretraining reader opens
   (`check_pretraining_file`) and every file finetuning reads (`check_training_file`). The name
   is cut into tokens at `-`, `_` and `.`: a token `dev`, `valid`, `validation` or `val` means
   dev; `test` means test; `train` means train; anything else is unlabelled. So
   `inspec-valid.jsonl` is dev and `enwiki-latest.xml.bz2` is unlabelled (`latest` is not `test`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_ROLE_TOKENS = {
    "test": ("test",),
    "dev": ("dev", "valid", "validation", "val"),
    "train": ("train",),
}
HELD_OUT = ("dev", "test")


class LeakageError(ValueError):
    """A dev or test file was given to pretraining or finetuning."""


def file_role(path: str | Path) -> str:
    """`"train"`, `"dev"`, `"test"` or `"unlabelled"`, from the file name (see module doc)."""
    tokens = set(re.split(r"[-_.]", Path(path).name.lower()))
    for role in ("test", "dev", "train"):
        if tokens.intersection(_ROLE_TOKENS[role]):
            return role
    return "unlabelled"


def _refuse_held_out(path: str | Path, reader: str) -> None:
    role = file_role(path)
    if role in HELD_OUT:
        raise LeakageError(
            f"{path}: refusing to read a {role} file for {reader} (leakage rule: its file name "
            f"marks it {role}; {reader} may read train and unlabelled files only)"
        )


def check_pretraining_file(path: str | Path) -> None:
    """Raise `LeakageError` if `path` is a dev or test file by its name."""
    _refuse_held_out(path, "pretraining")


def check_training_file(path: str | Path) -> None:
    """Raise `LeakageError` if a file about to be finetuned on is a dev or test file by its name."""
    _refuse_held_out(path, "finetuning")


def check_declared_roles(train: Iterable[str], dev: Iterable[str], pretraining: Iterable[str]) -> None:
    """Refuse a configuration that gives a dev file another role, or declares as train or
    pretraining text a file whose name says dev or test (paths relative to the data directory)."""
    dev_files = set(dev)
    for role, names in (("train", train), ("pretraining text", pretraining)):
        for name in names:
            if name in dev_files:
                raise LeakageError(f"{name}: declared both as {role} and as a dev file (leakage rule)")
            _refuse_held_out(name, "finetuning" if role == "train" else "pretraining")
