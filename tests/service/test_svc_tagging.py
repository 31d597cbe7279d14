"""Windowing, merging and BIO decoding (service/tagging.py) on hand-made tokens and probabilities."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_build.data import decode_spans as build_decode_spans
from model_build.data import word_level_labels as build_word_level_labels
from model_build.model import ACRONYM_LABELS
from service.batcher import run_sequences
from service.tagging import (
    Encoded,
    Span,
    decode_bio,
    merge_windows,
    plan_windows,
    tag_text,
    word_level_labels,
)

LABELS = ["O", "B-concept", "I-concept"]
O, B, I = 0, 1, 2  # noqa: E741 - BIO label ids


def words(text: str) -> Encoded:
    """Whitespace 'tokenizer' with exact offsets; ids are the word lengths (a context-free feature)."""
    matches = list(re.finditer(r"\S+", text))
    return Encoded(
        ids=[len(m.group()) for m in matches],
        offsets=[(m.start(), m.end()) for m in matches],
        word_ids=list(range(len(matches))),
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


def test_decode_bio_rules() -> None:
    text = "a b c d e f g h"
    enc = words(text)
    #          a  b  c  d  e  f  g  h
    labels = [B, I, O, I, I, B, B, I]
    spans = decode_bio(enc.offsets, one_hot(labels), LABELS)
    # B starts, I extends; a lone I starts a span (lenient); B after B starts a new one.
    assert [(text[s.start : s.end], s.label) for s in spans] == [
        ("a b", "concept"), ("d e", "concept"), ("f", "concept"), ("g h", "concept"),
    ]  # fmt: skip


def test_decode_bio_score_is_mean_top_probability() -> None:
    enc = words("x y z")
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]], dtype=np.float32)
    (span,) = decode_bio(enc.offsets, probs, LABELS)
    assert (span.start, span.end) == (0, 3)
    assert span.score == pytest.approx((0.8 + 0.6) / 2)


def test_decode_bio_does_not_join_different_types() -> None:
    labels = ["O", "B-short", "I-short", "B-long", "I-long"]
    enc = words("CNN convolutional nets")
    probs = np.eye(5, dtype=np.float32)[[1, 4, 4]]  # B-short, I-long, I-long
    spans = decode_bio(enc.offsets, probs, labels)
    assert [(s.start, s.end, s.label) for s in spans] == [(0, 3, "short"), (4, 22, "long")]


def test_min_score_filters_spans() -> None:
    enc = words("a b")
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.45, 0.45]], dtype=np.float32)  # second: B with 0.45
    ranges = [(0, 2)]
    assert [s.score for s in tag_text(enc, ranges, [probs], LABELS, 0.0)] == pytest.approx([0.8, 0.45])
    assert [s.score for s in tag_text(enc, ranges, [probs], LABELS, 0.5)] == pytest.approx([0.8])


def context_free_model(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logits from the token id alone: windowing cannot change any token's prediction."""
    table = np.array([[0, 3, 0], [3, 0, 0], [0, 0, 3], [0, 0, 3], [0, 3, 0], [3, 0, 0]], dtype=np.float32)
    return table[ids % len(table)]


def spans_with_window(enc: Encoded, window: int, overlap: int) -> list[Span]:
    ranges = plan_windows(len(enc.ids), window, overlap)
    probs = run_sequences(context_free_model, [enc.ids[s:e] for s, e in ranges], pad_id=0)
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


def test_a_word_takes_the_label_of_its_first_sub_token() -> None:
    from service.tagging import decode_bio

    labels = ["O", "B-concept", "I-concept"]
    # "natural evolutions": tokens natural | evol | ##utions ; the model tags only "##utions".
    offsets = [(0, 7), (8, 12), (12, 18)]
    word_ids = [0, 1, 1]
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]], dtype=np.float32)
    assert decode_bio(offsets, probs, labels, word_ids) == []
    probs[1] = [0.1, 0.7, 0.2]  # first sub-token B: the whole word is the span
    probs[2] = [0.9, 0.05, 0.05]
    (span,) = decode_bio(offsets, probs, labels, word_ids)
    assert (span.start, span.end, span.label) == (8, 18, "concept")


@given(st.lists(st.tuples(st.integers(0, len(ACRONYM_LABELS) - 1), st.booleans()), max_size=40))
def test_service_and_build_decode_words_alike(tokens: list[tuple[int, bool]]) -> None:
    """The service's copy of the word-level rule gives exactly the build's labels (the build scores
    with its own copy; the halves share no code)."""
    label_ids = [label for label, _ in tokens]
    word_ids, word = [], 0
    for i, (_, continues_word) in enumerate(tokens):
        word += 0 if (continues_word and i > 0) else 1
        word_ids.append(word)
    names = list(ACRONYM_LABELS)
    assert word_level_labels(label_ids, word_ids, names) == build_word_level_labels(
        label_ids, word_ids, names
    )


@given(st.lists(st.lists(st.floats(0.01, 1.0), min_size=5, max_size=5), max_size=40))
def test_service_and_build_decode_spans_alike(rows: list[list[float]]) -> None:
    """The service's decode (which visits only the non-O tokens) finds exactly the spans and scores
    of the build's full scan (`model_build.data.decode_spans`, which the dev figures come from)."""
    probs = np.asarray(rows, dtype=np.float32).reshape(-1, len(ACRONYM_LABELS))
    probs /= probs.sum(-1, keepdims=True)
    offsets = [(2 * i, 2 * i + 1) for i in range(len(probs))]
    names = list(ACRONYM_LABELS)
    ours = decode_bio(offsets, probs, names)
    theirs = build_decode_spans(offsets, probs.argmax(-1).tolist(), names, probs.max(-1).tolist())
    assert [(s.start, s.end, s.label) for s in ours] == [(a, b, k) for a, b, k, _ in theirs]
    assert [s.score for s in ours] == pytest.approx([p for *_, p in theirs])
