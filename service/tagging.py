"""From text to token windows, and from per-window label probabilities back to character spans.

Pure functions, no I/O and no ONNX Runtime: the handlers call them around the batcher, and the
unit tests drive them with hand-made probabilities.

- Tokens come from the artifact's tokenizer with `add_special_tokens=False`; their offsets are
  Python string indices (the `tokenizers` binding reports code-point offsets), so a span is
  `text[first token start : last token end]` and `text[start:end] == span.text` holds by
  construction.
- A text longer than the window is cut into windows overlapping by `overlap` tokens. Each token
  takes its prediction from the window in which it sits farthest from a window edge (an edge that
  is also the text's edge does not count), and spans are decoded once over the merged token
  sequence, so a span crossing a window edge is found once.
- BIO decoding: B starts a span, I of the same type extends it, an I with no open span of its type
  starts one (lenient, as seqeval). The score of a span is the mean over its tokens of the
  highest label probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int]  # pre-tokenizer word of each token


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str  # span type: "concept", "short", "long"
    score: float

    def as_json(self, text: str) -> dict[str, object]:
        return {"text": text[self.start : self.end], "start": self.start, "end": self.end,
                "score": round(self.score, 4)}  # fmt: skip


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Encoded]:
    if len(texts) == 1:  # encode_batch spins up the Rust thread pool; not worth it for one text
        encodings = [tokenizer.encode(texts[0], add_special_tokens=False)]
    else:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    # The binding already hands out Python lists of ints and (int, int) tuples: no copies here,
    # this runs on the event loop for every text.
    return [Encoded(ids=e.ids, offsets=e.offsets, word_ids=_word_ids(e.word_ids)) for e in encodings]


def _word_ids(word_ids: list[int | None]) -> list[int]:
    """None (a token outside any word; never produced without special tokens) becomes a word of
    its own, numbered below zero so it cannot join a neighbour."""
    if None not in word_ids:
        return word_ids  # type: ignore[return-value]
    return [-1 - i if w is None else w for i, w in enumerate(word_ids)]


def plan_windows(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token ranges covering n tokens; consecutive ranges share `overlap` tokens.
    The last window ends at the text's end (it may overlap its neighbour by more)."""
    if not 0 <= overlap < window:
        raise ValueError(f"overlap {overlap} must be in [0, window={window})")
    if n_tokens <= window:
        return [(0, n_tokens)] if n_tokens else []
    stride = window - overlap
    ranges = []
    start = 0
    while start + window < n_tokens:
        ranges.append((start, start + window))
        start += stride
    ranges.append((n_tokens - window, n_tokens))  # full-size last window: more context, same cost
    return ranges


def merge_windows(
    n_tokens: int, ranges: Sequence[tuple[int, int]], window_probs: Sequence[np.ndarray]
) -> np.ndarray:
    """Per-token label probabilities (n_tokens x labels), each token from its most central window.

    Centrality is the distance to the nearer window edge that is not also an edge of the text;
    ties go to the earlier window, so the result does not depend on batch order.
    """
    if not ranges:
        return np.zeros((0, 0), dtype=np.float32)
    if len(ranges) == 1:  # one window holds the whole text: nothing to merge
        return np.asarray(window_probs[0][:n_tokens], dtype=np.float32)
    merged = np.empty((n_tokens, window_probs[0].shape[-1]), dtype=np.float32)
    best = np.full(n_tokens, -1, dtype=np.int64)
    for (start, end), probs in zip(ranges, window_probs, strict=True):
        positions = np.arange(start, end)
        left = positions - start if start > 0 else np.full(end - start, n_tokens)
        right = end - 1 - positions if end < n_tokens else np.full(end - start, n_tokens)
        centrality = np.minimum(left, right)
        take = centrality > best[start:end]
        merged[start:end][take] = probs[: end - start][take]
        best[start:end][take] = centrality[take]
    return merged


def word_level_labels(
    label_ids: Sequence[int], word_ids: Sequence[int], label_names: Sequence[str]
) -> list[int]:
    """Each word takes the label of its first sub-token (the model build scores the same way):
    its other tokens become I of that span type, or O. Spans therefore never start or end inside
    a word (no `utions` out of `evolutions`).

    A copy of `model_build.data.word_level_labels` on purpose: the two halves share only the
    artifact contract (docs/contracts.md), and the service must not import the torch-side build.
    tests/service/test_svc_tagging.py checks that both give the same labels."""
    index = {name: i for i, name in enumerate(label_names)}
    out = list(label_ids)
    for i in range(1, len(out)):
        if word_ids[i] == word_ids[i - 1]:
            name = label_names[out[i - 1]]
            out[i] = out[i - 1] if name == "O" else index["I-" + name.split("-", 1)[1]]
    return out


def decode_bio(
    offsets: Sequence[tuple[int, int]], probs: np.ndarray, label_names: Sequence[str],
    word_ids: Sequence[int] | None = None,
) -> list[Span]:  # fmt: skip
    """Spans from per-token probabilities (argmax label per token, word-level when `word_ids` is
    given), sorted and non-overlapping."""
    if len(offsets) == 0:
        return []
    label_ids = probs.argmax(-1)
    if word_ids is not None:
        label_ids = np.asarray(word_level_labels(label_ids.tolist(), word_ids, label_names))
    top = probs.max(-1)
    kinds = [None if name == "O" else name.split("-", 1) for name in label_names]
    spans: list[Span] = []
    open_span: list | None = None  # [start, end, kind, score sum, token count]
    previous = -2  # index of the last token looked at; a gap means "O" tokens in between

    def close() -> None:
        if open_span is not None:
            spans.append(Span(open_span[0], open_span[1], open_span[2], open_span[3] / open_span[4]))

    # Only the tokens labelled other than "O" are visited (most tokens are "O"); an "O" token
    # shows up as a gap in the indices and closes the open span, as it would in a full scan.
    is_outside = np.array([kind is None for kind in kinds])
    label_list = label_ids.tolist()
    for i in np.flatnonzero(~is_outside[label_ids]).tolist():
        start, end = offsets[i]
        prefix, span_type = kinds[label_list[i]]
        if start >= end:  # a zero-width token (never from this tokenizer) ends any span
            close()
            open_span, previous = None, i
            continue
        if prefix == "I" and open_span is not None and open_span[2] == span_type and previous == i - 1:
            open_span[1] = end
            open_span[3] += float(top[i])
            open_span[4] += 1
        else:
            close()
            open_span = [start, end, span_type, float(top[i]), 1]
        previous = i
    close()
    return spans


def tag_text(
    encoded: Encoded, ranges: Sequence[tuple[int, int]], window_probs: Sequence[np.ndarray],
    label_names: Sequence[str], min_score: float,
) -> list[Span]:  # fmt: skip
    probs = merge_windows(len(encoded.ids), ranges, window_probs)
    spans = decode_bio(encoded.offsets, probs, label_names, encoded.word_ids)
    return [s for s in spans if s.score >= min_score]
