"""The code version of a build stage: part of every stage fingerprint, so that a change to the
code of a stage (masking, calibration, features) reruns it instead of reusing stale output."""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def code_version(*modules: str) -> str:
    """Digest of the source files of the named modules or packages (dotted names in this repo); a
    package counts with every file under it, data included (`textfeatures/lexicons/`: the lexicon)."""
    digest = hashlib.sha256()
    for name in modules:
        path = REPO_ROOT / Path(*name.split("."))
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        else:
            files = [path.with_suffix(".py")]
        for source in files:
            digest.update(source.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]
