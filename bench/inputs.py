"""Request inputs: a fixed pool of real sentences (25-40 words) and ~5k-word documents.

Sentences come from the dev files of the labelled data directory (`ALIGNTAG_DATA_DIR`, default
`../shared/data`): the SDU@AAAI-21 acronym dev set (already one sentence a line) and the Inspec
abstracts (cut into sentences). Dev files only, read in file order: the pool is the same in every
run, and nothing here was used to train the model. The data itself never enters the repository.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("acronyms/sdu21-dev.jsonl", "concepts/inspec-dev.jsonl")
MIN_WORDS, MAX_WORDS = 25, 40
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def data_dir() -> Path:
    return Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def _texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def sentence_pool(size: int = 512, directory: Path | None = None) -> list[str]:
    """`size` sentences of 25-40 words, alternating between the sources (deterministic)."""
    directory = directory or data_dir()
    per_source: list[list[str]] = []
    for name in SOURCES:
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found; set ALIGNTAG_DATA_DIR to the labelled data directory"
            )
        found = []
        for text in _texts(path):
            for sentence in SENTENCE_END.split(text.strip()):
                if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                    found.append(" ".join(sentence.split()))
        per_source.append(found)
    pool: list[str] = []
    for i in range(max(len(s) for s in per_source)):
        pool.extend(s[i] for s in per_source if i < len(s))
    if len(pool) < size:
        raise ValueError(f"only {len(pool)} sentences of {MIN_WORDS}-{MAX_WORDS} words in {directory}")
    return pool[:size]


def long_documents(count: int = 4, words: int = 5000, directory: Path | None = None) -> list[str]:
    """`count` documents of about `words` words each: consecutive Inspec dev abstracts, joined."""
    texts = _texts((directory or data_dir()) / "concepts/inspec-dev.jsonl")
    docs: list[str] = []
    current: list[str] = []
    n = i = 0
    while len(docs) < count:
        text = texts[i % len(texts)]
        i += 1
        current.append(text)
        n += len(text.split())
        if n >= words:
            docs.append("\n\n".join(current))
            current, n = [], 0
    return docs
