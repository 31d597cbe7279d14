"""From text to token windows, and from per-window label probabilities back to character spans.

Pure functions, no I/O and no ONNX Runtime: the handlers call them around the batcher, and the
unit tests drive them with hand-made probabilities. Token ids, features, words and decoding come
from `textfeatures`, the code the model build uses too, so the service computes exactly the
inputs the model was trained on and decodes exactly as the build's scorer does.

- Offsets are Python string indices (the `tokenizers` binding reports code-point offsets); a
  span runs from the start of its first word to the end of its last word. Answers convert them
  to the unit the client asked for (`OffsetUnits`).
- A text longer than the window is cut into windows overlapping by `overlap` tokens. Each token
  takes its prediction from the window in which it sits farthest from a window edge (an edge that
  is also the text's edge does not count), and spans are decoded once over the merged token
  sequence, so a span crossing a window edge is found once.
- Decoding: constrained BIO Viterbi over words (`textfeatures.decode`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from textfeatures.decode import decode_spans
from textfeatures.features import TextInputs


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str  # span label: "concept", "short", "long", or a user task's
    score: float

    def as_json(
        self, text: str, offsets: OffsetUnits | None = None, with_label: bool = False
    ) -> dict[str, object]:
        """The span in an answer, its offsets in the client's unit (default: code points); `/tag`
        and `/acronyms` leave the label out (their keys say it)."""
        units = offsets or OffsetUnits(text)
        out: dict[str, object] = {
            "text": text[self.start : self.end],
            "start": units(self.start),
            "end": units(self.end),
        }
        if with_label:
            out["label"] = self.label
        out["score"] = round(self.score, 4)
        return out


OFFSET_UNITS = ("codepoints", "utf16", "utf8")


class OffsetUnits:
    """Code-point offsets into one text, converted to the unit a client counts in: code points
    (Python), UTF-16 code units (JavaScript, Java, C#) or UTF-8 bytes (Go, Rust). Outside the
    Basic Multilingual Plane a character is 2 UTF-16 units; UTF-8 takes 1-4 bytes."""

    def __init__(self, text: str, unit: str = "codepoints") -> None:
        if unit not in OFFSET_UNITS:
            raise ValueError(f"unknown offset unit {unit!r}")
        self.ends: list[int] | None = None  # ends[i] = offset of code point i in the unit
        if unit != "codepoints" and not text.isascii():
            if unit == "utf16":
                widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
            else:
                widths = [len(ch.encode("utf-8", "surrogatepass")) for ch in text]
            self.ends = [0, *itertools.accumulate(widths)]

    def __call__(self, index: int) -> int:
        return index if self.ends is None else self.ends[index]


def rank_spans(text: str, spans: Sequence[Span], top_k: int | None, unique: bool) -> list[Span]:
    """Spans as asked: `unique` keeps the best-scoring mention of each phrase (compared
    case-insensitively), `top_k` the k best; with either, ranked by score (ties: text order);
    with neither, all of them in text order."""
    if not unique and top_k is None:
        return list(spans)
    chosen = sorted(spans, key=lambda s: (-s.score, s.start))
    if unique:
        seen: set[str] = set()
        kept = []
        for span in chosen:
            phrase = text[span.start : span.end].casefold()
            if phrase not in seen:
                seen.add(phrase)
                kept.append(span)
        chosen = kept
    return chosen if top_k is None else chosen[:top_k]


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


def tag_text(
    inputs: TextInputs, ranges: Sequence[tuple[int, int]], window_probs: Sequence[np.ndarray],
    label_names: Sequence[str], min_score: float, structured: bool = True, noun_final: bool = False,
) -> list[Span]:  # fmt: skip
    probs = merge_windows(len(inputs.ids), ranges, window_probs)
    spans = decode_spans(
        probs, inputs.word_of_token, inputs.words, label_names, inputs.text, structured, noun_final
    )
    return [Span(start, end, label, score) for start, end, label, score in spans if score >= min_score]
