"""The shared feature code: words as users write them, the features a model reads, and decoding."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from model_build.streams import tokenize_corpus
from model_build.tokenizer import train_tokenizer
from textfeatures import wordnet
from textfeatures.decode import allowed_transitions, decode_spans, is_well_formed, viterbi
from textfeatures.features import (
    FEATURE_NAMES,
    FEATURE_SIZES,
    WORD_ENDINGS,
    encode_texts,
    text_inputs,
    word_ending,
    word_shape,
)
from textfeatures.words import Word, split_words, strip_span, use_word_splitter, word_splitter

CONCEPT_LABELS = ["O", "B-concept", "I-concept"]
ACRONYM_LABELS = ["O", "B-short", "I-short", "B-long", "I-long"]

SAMPLE = (
    "Patients with type 2 diabetes mellitus (T2DM) had high IL-6 and TNF-α; BRCA1 in HEK293T "
    "cells. Retrieval-augmented generation (RAG) beats BM25, e.g. on TCP/IP logs. CNN's layers."
)


def words_of(text: str) -> list[str]:
    return [text[s:e] for s, e in split_words(text)]


def test_words_follow_how_users_write_them() -> None:
    assert words_of(SAMPLE) == [
        "Patients", "with", "type", "2", "diabetes", "mellitus", "(", "T2DM", ")", "had", "high",
        "IL-6", "and", "TNF-α", ";", "BRCA1", "in", "HEK293T", "cells", ".", "Retrieval-augmented",
        "generation", "(", "RAG", ")", "beats", "BM25", ",", "e.g", ".", "on", "TCP/IP", "logs", ".",
        "CNN", "'s", "layers", ".",
    ]  # fmt: skip
    # Pre-tokenized text keeps the words its spaces give it.
    assert words_of("language ( CNL ) , IL - 6") == ["language", "(", "CNL", ")", ",", "IL", "-", "6"]
    assert words_of("BI=Bioinformatician") == ["BI", "=", "Bioinformatician"]


WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2003\u2028\u3000"  # a sample of Unicode White_Space


@given(st.text(alphabet=st.sampled_from(list("aZ9 -.'()=,é\n\tα\x1c\x1f\u2003\x85")), max_size=60))
def test_words_cover_every_non_space_character_once(text: str) -> None:
    """Every character outside Unicode White_Space is in exactly one word (U+001C..U+001F, which
    Python's str.split takes for spaces and the tokenizer does not, included)."""
    words = split_words(text)
    covered = "".join(text[s:e] for s, e in words)
    assert covered == "".join(c for c in text if c not in WHITE_SPACE)
    assert all(s < e for s, e in words) and all(a[1] <= b[0] for a, b in itertools.pairwise(words))


def test_strip_span() -> None:
    assert strip_span("  ab c \n", 0, 8) == (2, 6)
    assert strip_span("   ", 0, 3) == (3, 3)


@pytest.mark.parametrize(
    ("word", "shape"),
    [("cell", 1), ("Cell", 2), ("CNN", 3), ("CNNs", 4), ("IoT", 4), ("T2DM", 5), ("IL-6", 5),
     ("2019", 6), ("(", 7), ("a", 1), ("A", 2)],
)  # fmt: skip
def test_word_shape(word: str, shape: int) -> None:
    assert word_shape(word) == shape


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    texts = [SAMPLE, "language ( CNL ) and convolutional neural networks (CNNs) are models"] * 20
    return train_tokenizer(texts, 300, 1, tmp_path_factory.mktemp("tok") / "tokenizer.json")


@given(st.text(alphabet=st.sampled_from(list("aZ9½ -.'()=,_©é\n\tα\x1c\u2003😀")), max_size=60))
def test_pretoken_words_are_the_tokenizers_pretokens(tokenizer: Tokenizer, text: str) -> None:
    """The ablation of words as users write them (`pretokens`) cuts where the tokenizer's
    pre-tokenizer cuts, character for character; the default splitter is back afterwards."""
    expected = [span for _, span in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    use_word_splitter("pretokens")
    try:
        assert split_words(text) == expected
        assert words_of("mellitus (T2DM), IL-6") == [
            "mellitus",
            "(",
            "T",
            "2",
            "DM",
            ")",
            ",",
            "IL",
            "-",
            "6",
        ]
    finally:
        use_word_splitter("as-written")
    assert word_splitter() == "as-written" and words_of("IL-6") == ["IL-6"]
    with pytest.raises(ValueError, match="unknown word splitter 'chars'"):
        use_word_splitter("chars")


def test_features_of_a_defined_acronym(tokenizer: Tokenizer) -> None:
    text = "We use convolutional neural networks (CNNs) and an LSTM."
    (inputs,) = encode_texts(tokenizer, [text])
    assert inputs.features.shape == (len(inputs.ids), len(FEATURE_NAMES))
    assert all(
        (inputs.features[:, c] >= 1).all() and (inputs.features[:, c] < size).all()
        for c, size in enumerate(FEATURE_SIZES)
    )
    by_word: dict[str, int] = {}
    for t, w in enumerate(inputs.word_of_token):
        start, end = inputs.words[w]
        by_word.setdefault(text[start:end], int(inputs.features[t, 2]))
    # Acronym rule column: 1 O, 2 B-short, 3 I-short, 4 B-long, 5 I-long.
    assert [by_word[w] for w in ("use", "convolutional", "neural", "networks", "CNNs", "LSTM")] == [
        1, 4, 5, 5, 2, 2,
    ]  # fmt: skip
    # Word start column: 1 on the first token of each word, 2 on the rest.
    starts = [int(f) for f in inputs.features[:, 1]]
    assert starts == [1 if t == 0 or inputs.word_of_token[t] != inputs.word_of_token[t - 1] else 2
                      for t in range(len(starts))]  # fmt: skip


@pytest.mark.parametrize(
    ("word", "ending"),
    [("segmentation", "noun"), ("applications", "noun"), ("convolutional", "adjective"), ("optimize", "verb"),
     ("using", "-ing"), ("self-supervised", "-ed"), ("quickly", "-ly"), ("computers", "-er/-or"),
     ("networks", "plural"), ("fields", "plural"), ("method", "none"), ("analysis", "none"), ("status", "none"),
     ("bed", "none"), ("BRCA1", "not a word"), ("(", "not a word")],
)  # fmt: skip
def test_word_ending(word: str, ending: str) -> None:
    names = ["not a word", "none", *(name for name, _ in WORD_ENDINGS), "plural"]
    assert names[word_ending(word) - 1] == ending


def test_repeats_count_a_words_forms_over_the_whole_text(tokenizer: Tokenizer) -> None:
    text = "Neural networks learn. A neural network, and the Neural Network of networks."
    (inputs,) = encode_texts(tokenizer, [text])
    column = FEATURE_NAMES.index("repeats")
    by_word = {}
    for t, w in enumerate(inputs.word_of_token):
        start, end = inputs.words[w]
        by_word.setdefault(text[start:end], int(inputs.features[t, column]))
    # 1 = not a content word, 2 = once, 3 = twice, 4 = three times or more (case and plural aside).
    assert [by_word[w] for w in ("Neural", "networks", "learn", "A", "the", "of")] == [4, 4, 2, 1, 1, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("aBcD9 -.()=,é\nα\x1c\u2003😀")), max_size=80),
        min_size=1,
        max_size=6,
    )
)
def test_build_and_service_compute_identical_features(tokenizer: Tokenizer, texts: list[str]) -> None:
    """The build tokenizes one document at a time (`tokenize_corpus`), the service a batch of texts
    (`encode_texts`): both must hand the model the same ids and features; every token lies inside
    the word it is counted in."""
    served = encode_texts(tokenizer, texts)
    for text, inputs in zip(texts, served, strict=True):
        for (start, end), w in zip(inputs.offsets, inputs.word_of_token, strict=True):
            assert inputs.words[w][0] <= start < end <= inputs.words[w][1], (text, start, end)
        enc = tokenizer.encode(text, add_special_tokens=False)
        built = text_inputs(text, enc.ids, enc.offsets)
        assert built.ids == inputs.ids
        np.testing.assert_array_equal(built.features, inputs.features)


def test_pretraining_streams_carry_the_same_features(tokenizer: Tokenizer, tmp_path: Path) -> None:
    docs = [{"text": SAMPLE}, {"text": "no links here (NLH) at all"}]
    tokenizer.save(str(tmp_path / "tok.json"))
    streams = tokenize_corpus(iter(docs), tmp_path / "tok.json", tmp_path / "tokens.npz")
    served = encode_texts(tokenizer, [d["text"] for d in docs])
    np.testing.assert_array_equal(streams["features"], np.concatenate([s.features for s in served]))
    assert streams["doc_starts"].tolist() == [0, len(served[0].ids), len(served[0].ids) + len(served[1].ids)]


def brute_force(log_probs: np.ndarray, allowed: np.ndarray) -> list[int]:
    best, best_score = None, -np.inf
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        if is_well_formed(path, allowed):
            score = sum(log_probs[i, label] for i, label in enumerate(path))
            if score > best_score:
                best, best_score = list(path), score
    assert best is not None
    return best


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5), st.randoms(use_true_random=False))
def test_viterbi_is_the_best_well_formed_sequence(n: int, rnd) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(rnd.randint(0, 10**6))
    log_probs = np.log(rng.dirichlet(np.ones(5), size=n))
    allowed = allowed_transitions(ACRONYM_LABELS)
    path = viterbi(log_probs, allowed)
    assert is_well_formed(path, allowed)
    assert sum(log_probs[i, lab] for i, lab in enumerate(path)) == pytest.approx(
        sum(log_probs[i, lab] for i, lab in enumerate(brute_force(log_probs, allowed)))
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.lists(st.floats(0.01, 1.0), min_size=5, max_size=5)), max_size=30)
)
def test_decoding_never_yields_an_ill_formed_span(tokens: list[tuple[bool, list[float]]]) -> None:
    """Any probabilities: spans are sorted, disjoint, start and end on word edges, and never
    start on an `I` label; every span's score is a probability."""
    word_of_token, words, w = [], [], -1
    for i, (continues, _) in enumerate(tokens):
        if not continues or i == 0:
            w += 1
            words.append((3 * w, 3 * w + 2))
        word_of_token.append(w)
    probs = np.asarray([p for _, p in tokens], dtype=np.float64).reshape(-1, 5)
    probs /= probs.sum(-1, keepdims=True)
    text = "".join("-- " if i % 3 == 2 else "ab " for i in range(len(words)))  # bare punctuation too
    spans = decode_spans(probs, word_of_token, words, ACRONYM_LABELS, text)
    starts, ends = {s for s, _ in words}, {e for _, e in words}
    for a, b in itertools.pairwise(spans):
        assert a[1] <= b[0]
    for start, end, label, score in spans:
        assert start in starts and end in ends and start < end and label in ("short", "long")
        assert text[start : start + 2] == "ab" and text[end - 2 : end] == "ab"
        assert 0.0 <= score <= 1.0


def test_decoding_repairs_a_continuation_without_a_start() -> None:
    # "time series data": argmax says O I I, which no span can be; Viterbi picks B I I or O O O.
    words = [(0, 4), (5, 11), (12, 16)]
    probs = np.array([[0.5, 0.45, 0.05], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    (span,) = decode_spans(probs, [0, 1, 2], words, CONCEPT_LABELS, "time series data")
    assert span[:3] == (0, 16, "concept")
    assert span[3] == pytest.approx(0.45)  # as sure as its least sure word


def test_a_word_takes_the_label_of_its_first_token() -> None:
    words = [(0, 7), (8, 18)]  # "natural evolutions": natural | evol ##utions
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    assert decode_spans(probs, [0, 1, 1], words, CONCEPT_LABELS, "natural evolutions") == []
    probs[1], probs[2] = [0.1, 0.7, 0.2], [0.9, 0.05, 0.05]
    spans = decode_spans(probs, [0, 1, 1], words, CONCEPT_LABELS, "natural evolutions")
    assert [s[:3] for s in spans] == [(8, 18, "concept")]


def test_span_score_counts_the_next_word_continuing_it() -> None:
    words = [(0, 1), (2, 3)]
    probs = np.array([[0.05, 0.9, 0.05], [0.55, 0.05, 0.4]])  # "a" B (0.9); "b" O, but I at 0.4
    ((*_, score),) = decode_spans(probs, [0, 1], words, CONCEPT_LABELS, "a b")
    assert score == pytest.approx(0.6)


def concept_labels_of(text: str, tags: str) -> tuple[np.ndarray, list[Word]]:
    """One-hot concept probabilities for the words of `text` (`split_words`) from a tag string,
    one letter a word: O, B or I."""
    words = split_words(text)
    assert len(words) == len(tags)
    probs = np.full((len(words), 3), 0.05)
    probs[np.arange(len(words)), ["OBI".index(t) for t in tags]] = 0.9
    return probs, words


@pytest.mark.parametrize(
    ("text", "tags", "expected"),
    [
        # An opening bracket tagged inside a span is not part of it...
        ("continuum random phase approximation ( RPA )", "BIIIIOO", ["continuum random phase approximation"]),
        ("the CNOMA - SWIPT - OAM scheme", "OBIIIOO", ["CNOMA - SWIPT"]),
        ("see ( deep learning", "OBII", ["deep learning"]),
        # ... but brackets and quotes closed inside the span stay.
        ("MP ( F4 ) here", "BIIIO", ["MP ( F4 )"]),
        ("the “MIT bag model” of", "OBIIIIO", ["“MIT bag model”"]),
        # A span of punctuation alone is no span.
        ("a ( b", "OBO", []),
        # A bracket the span does not pair splits it, and goes.
        ("type 2 diabetes mellitus ( T2DM ) and", "BIIIIIOO", ["type 2 diabetes mellitus", "T2DM"]),
        ("raised interleukin-6 ( IL-6 levels", "BIIIO", ["raised interleukin-6", "IL-6"]),
        ("x ) y ( z", "BIIII", ["x", "y", "z"]),
        (
            "polyethylene naphthalate ( PEN ) substrates",
            "BIIIII",
            ["polyethylene naphthalate ( PEN ) substrates"],
        ),
        ("a ( ( b )", "BIIII", ["a", "( b )"]),
    ],
)
def test_spans_never_start_or_end_on_bare_punctuation(text: str, tags: str, expected: list[str]) -> None:
    probs, words = concept_labels_of(text, tags)
    spans = decode_spans(probs, list(range(len(words))), words, CONCEPT_LABELS, text)
    assert [text[s:e] for s, e, *_ in spans] == expected


def test_argmax_decoding_starts_a_span_at_an_orphan_continuation() -> None:
    """`structured=False` (the ablation): `O I I` becomes a span from the first `I`, where the
    structured decoding picks the best well-formed sequence instead."""
    text = "time series data"
    probs = np.array([[0.5, 0.45, 0.05], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    words = split_words(text)
    argmax = decode_spans(probs, [0, 1, 2], words, CONCEPT_LABELS, text, structured=False)
    structured = decode_spans(probs, [0, 1, 2], words, CONCEPT_LABELS, text)
    assert [text[s:e] for s, e, *_ in argmax] == ["series data"]
    assert [text[s:e] for s, e, *_ in structured] == ["time series data"]


@pytest.mark.parametrize(
    ("text", "tags", "expected"),
    [
        ("The plaintiff filed a motion", "OBIOO", ["plaintiff"]),  # `filed`: a verb only
        ("We knocked out", "OBO", []),  # nothing left: no span
        ("patients received inhibitors", "BII", ["patients received inhibitors"]),  # ends on a noun
        ("patients received , scalable", "BIII", ["patients"]),  # trimmed again after the cut
        ("the BRCA1 knockout", "OBI", ["BRCA1 knockout"]),
        ("outbreak of", "BI", ["outbreak"]),  # a closed-class word: cut
        ("thin films of the", "BIII", ["thin films"]),
        ("Police IT", "BI", ["Police IT"]),  # as written: `IT` is not `it`
        ("of", "B", []),
        ("BRCA1 knockouts", "BI", ["BRCA1 knockouts"]),  # not in WordNet, a noun: stays
        ("a well-known", "OB", []),  # a hyphenated adjective WordNet knows
    ],
)
def test_noun_final_spans_lose_end_words_that_are_not_nouns(
    text: str, tags: str, expected: list[str]
) -> None:
    probs, words = concept_labels_of(text, tags)
    spans = decode_spans(probs, list(range(len(words))), words, CONCEPT_LABELS, text, noun_final=True)
    assert [text[s:e] for s, e, *_ in spans] == expected


def test_without_noun_final_spans_keep_their_end_words() -> None:
    """Acronyms and user tasks (`noun_final` off) get the spans as tagged."""
    text = "The plaintiff filed a motion"
    probs, words = concept_labels_of(text, "OBIOO")
    spans = decode_spans(probs, list(range(len(words))), words, CONCEPT_LABELS, text)
    assert [text[s:e] for s, e, *_ in spans] == ["plaintiff filed"]


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("knocked", {"verb"}),  # regular inflection: WordNet's detachment rules
        ("filed", {"verb"}),  # what word endings cannot tell from "field"
        ("field", {"noun", "verb"}),
        ("patients", {"noun"}),
        ("went", {"verb"}),  # irregular: the exception lists
        ("mice", {"noun"}),
        ("quickly", {"adverb"}),
        ("segmentation", {"noun"}),
        ("brca1", set()),  # not in WordNet
    ],
)
def test_pos_mask_is_what_wordnet_allows(word: str, parts: set[str]) -> None:
    bits = {
        "noun": wordnet.NOUN,
        "verb": wordnet.VERB,
        "adjective": wordnet.ADJECTIVE,
        "adverb": wordnet.ADVERB,
    }
    assert wordnet.pos_mask(word) == sum(bits[p] for p in parts)


def test_shipped_lexicon_is_what_wordnet_base_gives() -> None:
    """The lexicon in the package is regenerated, byte for byte, from Debian's wordnet-base by
    `python -m textfeatures.wordnet`: nobody edits it by hand."""
    source = Path("/usr/share/wordnet")
    if not (source / "index.noun").is_file():
        pytest.fail(
            "WordNet is not installed: apt-get install wordnet-base (make debian-deps; CI installs it)"
        )
    assert wordnet.LEXICON.read_bytes() == wordnet.lexicon_bytes(source)
