"""Windowing and merging (service/tagging.py) on hand-made tokens and probabilities; decoding
itself is `textfeatures.decode`, tested in tests/textfeatures."""

from __future__ import annotations

import re

import numpy as np
import pytest

from service.batcher import run_sequences
from service.tagging import OffsetUnits, Span, merge_windows, plan_windows, rank_spans, tag_text
from textfeatures import features as tf

LABELS = ["O", "B-concept", "I-concept"]
O, B, I = 0, 1, 2  # noqa: E741 - BIO label ids


def words(text: str) -> tf.TextInputs:
    """Whitespace 'tokenizer' with exact offsets, one token a word; ids are the word lengths (a
    context-free feature)."""
    matches = list(re.finditer(r"\S+", text))
    return tf.TextInputs(
        text=text,
        ids=[len(m.group()) for m in matches],
        offsets=[(m.start(), m.end()) for m in matches],
        words=[(m.start(), m.end()) for m in matches],
        word_of_token=list(range(len(matches))),
        features=np.ones((len(matches), len(tf.FEATURE_NAMES)), dtype=np.int64),
    )


def one_hot(labels: list[int], p: float = 0.9) -> np.ndarray:
    probs = np.full((len(labels), len(LABELS)), (1 - p) / (len(LABELS) - 1), dtype=np.float32)
    probs[np.arange(len(labels)), labels] = p
    return probs


@pytest.mark.parametrize(
    ("n", "window", "overlap", "expected"),
    [
        (0, 8, 2, []),
        (5, 8, 2, [(0, 5)]),
        (8, 8, 2, [(0, 8)]),
        (9, 8, 2, [(0, 8), (1, 9)]),
        (20, 8, 2, [(0, 8), (6, 14), (12, 20)]),
        (21, 8, 2, [(0, 8), (6, 14), (12, 20), (13, 21)]),
        (10, 4, 0, [(0, 4), (4, 8), (6, 10)]),
    ],
)
def test_plan_windows(n: int, window: int, overlap: int, expected: list[tuple[int, int]]) -> None:
    assert plan_windows(n, window, overlap) == expected


def test_plan_windows_covers_every_token_with_the_promised_overlap() -> None:
    for n in range(1, 60):
        for window in range(2, 12):
            for overlap in range(window):
                ranges = plan_windows(n, window, overlap)
                assert all(end - start == min(n, window) for start, end in ranges)
                assert ranges[0][0] == 0 and ranges[-1][1] == n
                for (s1, e1), (s2, _) in zip(ranges, ranges[1:], strict=False):
                    assert s2 > s1 and e1 - s2 >= overlap


def test_plan_windows_refuses_overlap_not_below_window() -> None:
    with pytest.raises(ValueError, match=r"overlap 8 must be in \[0, window=8\)"):
        plan_windows(20, 8, 8)


def test_merge_takes_each_token_from_its_most_central_window() -> None:
    # 10 tokens, windows (0,6) and (4,10): tokens 4 and 5 are in both. Centrality = distance to
    # the nearer inner edge: token 4 is 1 from the first window's right edge, 0 from the second's
    # left edge -> first window; token 5 is 0 in the first and 1 in the second -> second window.
    first = one_hot([O, O, O, O, B, B])
    second = one_hot([I, I, O, O, O, O])
    merged = merge_windows(10, [(0, 6), (4, 10)], [first, second])
    assert merged.argmax(-1).tolist() == [O, O, O, O, B, I, O, O, O, O]


def test_merge_ignores_edges_that_are_the_texts_own_edges() -> None:
    # Token 0 sits on the first window's left edge, which is the text start: it is not an edge.
    merged = merge_windows(6, [(0, 4), (2, 6)], [one_hot([B, I, I, I]), one_hot([O, O, O, O])])
    assert merged.argmax(-1).tolist()[0] == B


def test_min_score_filters_spans() -> None:
    enc = words("a b")
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.5, 0.4]], dtype=np.float32)  # "a" B; "b" B, or I at 0.4
    ranges = [(0, 2)]
    # "a": as sure as its least sure boundary, min(0.8, 1 - 0.4); "b": 0.5.
    assert [s.score for s in tag_text(enc, ranges, [probs], LABELS, 0.0)] == pytest.approx([0.6, 0.5])
    assert [s.score for s in tag_text(enc, ranges, [probs], LABELS, 0.55)] == pytest.approx([0.6])


def context_free_model(ids: np.ndarray, mask: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Logits from the token id alone: windowing cannot change any token's prediction."""
    table = np.array([[0, 3, 0], [3, 0, 0], [0, 0, 3], [0, 0, 3], [0, 3, 0], [3, 0, 0]], dtype=np.float32)
    return table[ids % len(table)]


def spans_with_window(enc: tf.TextInputs, size: int, overlap: int) -> list[Span]:
    ranges = plan_windows(len(enc.ids), size, overlap)
    probs = run_sequences(context_free_model, [tf.window(enc, s, e) for s, e in ranges], pad_id=0)
    return tag_text(enc, ranges, probs, LABELS, 0.0)


def test_windowed_spans_equal_unwindowed_spans_for_a_context_free_model() -> None:
    rng = np.random.default_rng(0)
    text = " ".join("x" * int(n) for n in rng.integers(1, 7, size=400))
    enc = words(text)
    reference = spans_with_window(enc, len(enc.ids), 0)
    assert len(reference) > 50
    for window, overlap in [(2, 0), (2, 1), (7, 3), (16, 4), (64, 16), (100, 0)]:
        assert spans_with_window(enc, window, overlap) == reference, (window, overlap)


def test_a_span_across_a_window_edge_is_found_once() -> None:
    # Word lengths 1 -> B... in context_free_model: id 4 -> B, ids 2/3 -> I, id 1 -> O.
    text = " ".join(["x"] * 10 + ["xxxx"] + ["xx", "xxx"] * 6 + ["x"] * 10)  # span: tokens 10..22
    enc = words(text)
    spans = spans_with_window(enc, 16, 4)  # windows (0,16), (12,28), (18,34): edges inside the span
    (span,) = spans
    assert text[span.start : span.end] == " ".join(["xxxx"] + ["xx", "xxx"] * 6)


@pytest.mark.parametrize(
    "text", ["plain ASCII", "emoji 😀 then T2DM", "日本語 (NLP)", "e\u0301cole 𝔘 IL-6", "\U0001f600" * 3]
)
def test_offset_units_slice_the_encoded_text(text: str) -> None:
    for unit, encoding, width in (("utf16", "utf-16-le", 2), ("utf8", "utf-8", 1)):
        units = OffsetUnits(text, unit)
        encoded = text.encode(encoding)
        for start in range(len(text) + 1):
            for end in range(start, len(text) + 1):
                assert encoded[units(start) * width : units(end) * width].decode(encoding) == text[start:end]
    assert [OffsetUnits(text)(i) for i in range(len(text) + 1)] == list(range(len(text) + 1))
    with pytest.raises(ValueError, match="unknown offset unit"):
        OffsetUnits(text, "utf32")


def test_rank_spans() -> None:
    text = "Neural nets and neural Nets beat trees."
    spans = [Span(0, 11, "concept", 0.6), Span(16, 27, "concept", 0.9), Span(33, 38, "concept", 0.6)]
    assert rank_spans(text, spans, None, False) == spans  # neither option: text order, all
    assert rank_spans(text, spans, 2, False) == [spans[1], spans[0]]  # ties in text order
    assert rank_spans(text, spans, None, True) == [spans[1], spans[2]]  # best mention per phrase
    assert rank_spans(text, spans, 1, True) == [spans[1]]
