"""From text + character spans to token ids + BIO label ids, and back.

Used by pretraining (weak labels), finetuning and evaluation (gold labels). Every sub-word token
inside a span is labelled, B on the first and I on the rest (docs/contracts.md section 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from model_build.model import IGNORE

Span = tuple[int, int, str]  # start, end (exclusive), label


@dataclass
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int]  # pre-tokenizer word of each token


def encode(tokenizer: Tokenizer, text: str) -> Encoded:
    enc = tokenizer.encode(text, add_special_tokens=False)
    return Encoded(
        ids=list(enc.ids),
        offsets=[(int(s), int(e)) for s, e in enc.offsets],
        word_ids=[-1 - i if w is None else int(w) for i, w in enumerate(enc.word_ids)],
    )


def word_level_labels(
    label_ids: Sequence[int], word_ids: Sequence[int], label_names: Sequence[str]
) -> list[int]:
    """Each word takes the label of its first sub-token: its other tokens become I of that span
    type, or O. Spans never start or end inside a word. The service decodes the same way."""
    index = {name: i for i, name in enumerate(label_names)}
    out = list(label_ids)
    for i in range(1, len(out)):
        if word_ids[i] == word_ids[i - 1]:
            name = label_names[out[i - 1]]
            out[i] = out[i - 1] if name == "O" else index["I-" + name.split("-", 1)[1]]
    return out


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


def decode_spans(
    offsets: Sequence[tuple[int, int]],
    label_ids: Sequence[int],
    label_names: Sequence[str],
    probs: Sequence[float] | None = None,
) -> list[tuple[int, int, str, float]]:
    """Spans from per-token label ids: a B starts a span, following I of the same type extend
    it; an I with no open span of its type starts one (lenient, as seqeval's default)."""
    spans: list[tuple[int, int, str, float]] = []
    cur: list | None = None  # [start, end, type, prob sum, count]
    for i, lid in enumerate(label_ids):
        name = label_names[lid]
        p = probs[i] if probs is not None else 1.0
        if name == "O":
            _close(cur, spans)
            cur = None
            continue
        prefix, kind = name.split("-", 1)
        if prefix == "I" and cur is not None and cur[2] == kind:
            cur[1] = offsets[i][1]
            cur[3] += p
            cur[4] += 1
        else:
            _close(cur, spans)
            cur = [offsets[i][0], offsets[i][1], kind, p, 1]
    _close(cur, spans)
    return spans


def _close(cur: list | None, spans: list) -> None:
    if cur is not None:
        spans.append((cur[0], cur[1], cur[2], cur[3] / cur[4]))


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
