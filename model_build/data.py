"""From text + character spans to BIO label ids per token; labelled files; token windows.

Used by pretraining (weak labels), finetuning and evaluation (gold labels). Every sub-word token
inside a span is labelled, B on the first and I on the rest (docs/contracts.md section 2). Model
inputs (ids, features) come from `textfeatures.features`, decoding from `textfeatures.decode`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from model_build.model import IGNORE
from model_build.spanmetrics import Span


def bio_labels(
    offsets: Sequence[tuple[int, int]],
    spans: Iterable[Span],
    label_names: Sequence[str],
    ignore: Iterable[tuple[int, int]] = (),
) -> list[int]:
    """BIO label id per token. A token belongs to a span when their characters overlap; tokens
    overlapping an `ignore` region get IGNORE (no loss)."""
    index = {name: i for i, name in enumerate(label_names)}
    labels = [index["O"]] * len(offsets)
    starts = np.array([s for s, _ in offsets], dtype=np.int64)
    ends = np.array([e for _, e in offsets], dtype=np.int64)
    for start, end in ignore:
        for i in np.nonzero((starts < end) & (ends > start))[0]:
            labels[i] = IGNORE
    for start, end, label in sorted(spans):
        inside = np.nonzero((starts < end) & (ends > start))[0]
        for n, i in enumerate(inside):
            labels[i] = index[("B-" if n == 0 else "I-") + label]
    return labels


def read_span_file(path: Path, limit: int | None = None) -> list[dict]:
    """Labelled span JSONL (DESIGN.md): id, text, spans[start, end, label]; extra keys ignored."""
    records = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec["text"]
            spans = []
            for s in rec.get("spans", []):
                start, end = int(s["start"]), int(s["end"])
                if not 0 <= start < end <= len(text):
                    raise ValueError(f"{path}:{line_no}: span {start}-{end} outside the text")
                spans.append((start, end, s["label"]))
            records.append({"id": str(rec.get("id", line_no)), "text": text, "spans": sorted(spans)})
            if limit is not None and len(records) >= limit:
                break
    return records


def windows(n_tokens: int, size: int, stride: int) -> Iterator[tuple[int, int]]:
    """[start, end) token windows covering n tokens, consecutive windows overlapping by
    size - stride tokens."""
    start = 0
    while True:
        end = min(n_tokens, start + size)
        yield start, end
        if end >= n_tokens:
            return
        start += stride
