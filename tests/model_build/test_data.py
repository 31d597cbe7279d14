"""Tokenizer conventions and span <-> BIO conversion, with exact expectations."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from model_build.data import bio_labels, windows
from model_build.finetune import length_grouped_batches
from model_build.model import ACRONYM_LABELS, CONCEPT_LABELS, IGNORE
from model_build.tokenizer import train_tokenizer
from textfeatures.decode import decode_spans
from textfeatures.features import TextInputs, encode_texts

TEXTS = [
    "We train convolutional neural networks (CNNs) with k-NN baselines on IoT data.",
    "A controlled natural language ( CNL ) is a subset of a natural language.",
] * 20


def encode(tokenizer, text: str) -> TextInputs:  # type: ignore[no-untyped-def]
    return encode_texts(tokenizer, [text])[0]


def one_hot(labels: list[int], n: int) -> np.ndarray:
    return np.eye(n)[labels]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return train_tokenizer(
        TEXTS, vocab_size=300, min_frequency=1, out_path=tmp_path_factory.mktemp("tok") / "t.json"
    )


def test_special_tokens_and_cased_offsets(tokenizer) -> None:  # type: ignore[no-untyped-def]
    assert [tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[MASK]")] == [0, 1, 2]
    text = "language (CNL) 😀 k-NN"
    enc = encode(tokenizer, text)
    pieces = [text[s:e] for s, e in enc.offsets]
    assert pieces[:4] == ["language", "(", "CNL", ")"]
    assert pieces[-3:] == ["k", "-", "NN"]
    assert "😀" in pieces  # unknown character: one [UNK] token, exact offsets
    # Raw and pre-tokenized parentheses give the same ids.
    assert encode(tokenizer, "language (CNL)").ids == encode(tokenizer, "language ( CNL )").ids


def test_bio_labels_cover_every_sub_token_and_decode_back(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "We train convolutional neural networks (CNNs) today."
    enc = encode(tokenizer, text)
    spans = [(9, 38, "long"), (40, 44, "short")]
    labels = bio_labels(enc.offsets, spans, ACRONYM_LABELS)
    names = [ACRONYM_LABELS[i] for i in labels]
    first_long = next(i for i, (s, _) in enumerate(enc.offsets) if s == 9)
    assert names[first_long] == "B-long"
    assert all(n == "I-long" for n, (s, e) in zip(names, enc.offsets, strict=True) if 9 < s < 38)
    probs = one_hot(labels, len(ACRONYM_LABELS))
    decoded = decode_spans(probs, enc.word_of_token, enc.words, ACRONYM_LABELS, enc.text)
    assert [(s, e, k) for s, e, k, _ in decoded] == spans


def test_ignore_regions_get_no_loss(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "natural language and natural language"
    enc = encode(tokenizer, text)
    labels = bio_labels(enc.offsets, [(0, 16, "concept")], CONCEPT_LABELS, ignore=[(21, 37)])
    assert labels[0] == 1 and all(
        x == IGNORE for x, (s, _) in zip(labels, enc.offsets, strict=True) if s >= 21
    )


def test_windows_overlap_and_cover() -> None:
    assert list(windows(10, 4, 3)) == [(0, 4), (3, 7), (6, 10)]
    assert list(windows(3, 4, 3)) == [(0, 3)]
    assert list(windows(0, 4, 3)) == [(0, 0)]


def test_read_span_file_rejects_out_of_range_spans(tmp_path: Path) -> None:
    from model_build.data import read_span_file

    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "abc", "spans": [{"start": 1, "end": 9, "label": "short"}]}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: span 1-9 outside the text"):
        read_span_file(path)


def test_length_grouped_batches_cover_every_piece_once_and_cut_padding() -> None:
    rng = random.Random(5)
    lengths = [rng.randint(5, 120) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 16, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    # pools of 50 batches (800 pieces): 50 full batches, then 200 pieces = 12 full and one of 8
    assert sorted(len(b) for b in batches) == [8] + [16] * 62
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    shuffled = random.Random(0).sample(range(1000), 1000)
    padded_random = sum(max(lengths[i] for i in shuffled[b : b + 16]) * 16 for b in range(0, 992, 16))
    assert padded < 0.7 * padded_random, (padded, padded_random)
    # deterministic for a seed, different across seeds
    assert batches == length_grouped_batches(lengths, 16, random.Random(0))
    assert batches != length_grouped_batches(lengths, 16, random.Random(1))
