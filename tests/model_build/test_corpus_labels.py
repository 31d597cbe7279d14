"""Weak labels of the corpus stage (link concepts, later mentions, pseudo acronyms), the span
scorer, and the matcher's SDU score on the real dev set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_build.corpus.acronyms import score_file
from model_build.corpus.labels import (
    PhraseIndex,
    as_term,
    concept_labels,
    find_mentions,
    fold_case,
    link_concepts,
    term_runs,
)
from model_build.spanmetrics import span_prf
from textfeatures.acronyms import find_best_long_form, is_short_form_candidate, label_acronyms

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def spans_text(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    return [(text[s:e], label) for s, e, label in spans]


# ------------------------------------------------------------------------------- concepts

TEXT = "A compiler reads code. The compiler, unlike a compilers list, emits code. See parse tree."
#       0 2       10                 27      35
LINKS = [(2, 10, "compiler"), (78, 88, "parse tree"), (19, 21, "x"), (61, 62, " ")]


def test_link_concepts_strip_drop_empty_and_overlaps() -> None:
    text = "see  linked words  here"
    links = [(4, 18, "a"), (6, 12, "b"), (18, 19, "blank")]
    assert link_concepts(text, links) == [(5, 17)]


@pytest.mark.parametrize(
    ("mode", "concepts", "ignore"),
    [
        ("label", [(2, 10), (19, 21), (27, 35), (78, 88)], []),
        ("ignore", [(2, 10), (19, 21), (78, 88)], [(27, 35)]),
        ("none", [(2, 10), (19, 21), (78, 88)], []),
    ],
)
def test_later_mentions(mode: str, concepts: list, ignore: list) -> None:
    # "compiler" at 27 is a later unlinked mention; "compilers" (47) is not (word boundary);
    # the blank link at 61 is dropped; "de" (19:21, inside "code") has no later mention.
    assert concept_labels(TEXT, LINKS, mode) == (concepts, ignore)


def test_later_mentions_case_sensitive_and_only_after_first_link() -> None:
    text = "Parse tree first. A parse tree is linked here: parse tree. Then parse tree again."
    links = [(20, 30, "parse tree")]
    assert concept_labels(text, links, "label") == ([(20, 30), (47, 57), (64, 74)], [])


def test_later_mentions_bad_mode() -> None:
    with pytest.raises(ValueError, match="later_mentions must be one of"):
        concept_labels("x", [], "sometimes")


def test_find_mentions_longest_first_word_boundaries() -> None:
    text = "New York City and New York and York, C++ and C."
    assert find_mentions(text, ["New York", "New York City", "York", "C++", "C"]) == [
        (0, 13),
        (18, 26),
        (31, 35),
        (37, 40),
        (45, 46),
    ]


# ------------------------------------------------------------------------------- acronyms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "We use a controlled natural language (CNL) here.",
            [("controlled natural language", "long"), ("CNL", "short")],
        ),
        (  # pre-tokenized parentheses, and a later mention
            "a controlled natural language ( CNL ) is used . The CNL is simple .",
            [("controlled natural language", "long"), ("CNL", "short"), ("CNL", "short")],
        ),
        (  # plural short form; its singular is propagated
            "Convolutional Neural Networks (CNNs) work well. A CNN is deep.",
            [("Convolutional Neural Networks", "long"), ("CNNs", "short"), ("CNN", "short")],
        ),
        (
            "the Internet of Things (IoT) connects IoT devices.",
            [("Internet of Things", "long"), ("IoT", "short"), ("IoT", "short")],
        ),
        (
            "k - nearest neighbours ( k - NN ) and k - NN again",
            [("k - nearest neighbours", "long"), ("k - NN", "short"), ("k - NN", "short")],
        ),
        (
            "the k-nearest neighbours (k-NN) classifier; k-NN is simple.",
            [("k-nearest neighbours", "long"), ("k-NN", "short"), ("k-NN", "short")],
        ),
        (  # SF (long form)
            "We train a CNN (convolutional neural network) on images.",
            [("CNN", "short"), ("convolutional neural network", "long")],
        ),
        (
            "COVID-19 (coronavirus disease 2019) spread.",
            [("COVID-19", "short"), ("coronavirus disease 2019", "long")],
        ),
        (  # initials beat S&H's shortest match; trailing non-matching words are left out
            "the Cross Caption Consistency Loss ( CCCL ) and Long Short Term Memory networks ( LSTM ) models",
            [
                ("Cross Caption Consistency Loss", "long"),
                ("CCCL", "short"),
                ("Long Short Term Memory", "long"),
                ("LSTM", "short"),
            ],
        ),
        (
            "Rectified Linear Units (ReLUs) and the Quality of Service (QoS).",
            [
                ("Rectified Linear Units", "long"),
                ("ReLUs", "short"),
                ("Quality of Service", "long"),
                ("QoS", "short"),
            ],
        ),
        (  # definitions without parentheses: the most words whose initials spell the short form
            "Table 2: CI = confidence interval; OR = odds ratio. SD stands for standard deviation of "
            "the data. [ WSN ] Wireless Sensor Networks .",
            [
                ("CI", "short"),
                ("confidence interval", "long"),
                ("OR", "short"),
                ("odds ratio", "long"),
                ("SD", "short"),
                ("standard deviation", "long"),
                ("WSN", "short"),
                ("Wireless Sensor Networks", "long"),
            ],
        ),
        (  # a Greek letter stands for its name, spelled out or not
            "Tumour necrosis factor alpha (TNF-α) and interferon-γ (IFN-γ) were measured.",
            [
                ("Tumour necrosis factor alpha", "long"),
                ("TNF-α", "short"),
                ("interferon-γ", "long"),
                ("IFN-γ", "short"),
            ],
        ),
        (  # not definitions: no acronym-like word before the separator, or no initials after it
            "Note: Attention Is All You Need. BERT: Pre-training of Deep Transformers. N = 100; "
            "the ROC stands for nothing here.",
            [],
        ),
        (  # not acronyms
            "As shown (see Figure 3) and (Smith, 2003) and (a) (i.e. the model) results (Table 2) for Spain (ES).",
            [],
        ),
    ],
)
def test_label_acronyms(text: str, expected: list[tuple[str, str]]) -> None:
    spans, _ = label_acronyms(text)
    assert spans_text(text, spans) == expected
    assert spans == sorted(spans)


def test_caps_rule() -> None:
    text = "ISO and IEEE publish standards; the Internet of Things (IoT) too. II and Fig."
    assert spans_text(text, label_acronyms(text, caps_rule=True)[0]) == [
        ("ISO", "short"),
        ("IEEE", "short"),
        ("Internet of Things", "long"),
        ("IoT", "short"),
    ]
    assert spans_text(text, label_acronyms(text)[0]) == [("Internet of Things", "long"), ("IoT", "short")]


@pytest.mark.parametrize(
    ("sf", "ok"),
    [
        ("CNN", True),
        ("CNNs", True),
        ("IoT", True),
        ("k-NN", True),
        ("k - NN", True),
        ("COVID-19", True),
        ("mAP", True),
        ("Fig", False),
        ("a", False),
        ("see", False),
        ("2003", False),
        ("III", False),
        ("TOOLONGACRONYM", False),
        ("A B C", False),
    ],
)
def test_short_form_candidates(sf: str, ok: bool) -> None:
    assert is_short_form_candidate(sf) is ok


def test_find_best_long_form_schwartz_hearst() -> None:
    lf = "using heat shock protein"
    start, end = find_best_long_form("HSP", lf) or (0, 0)
    assert lf[start:end] == "heat shock protein"
    assert find_best_long_form("XYZ", lf) is None


# ---------------------------------------------------------------------------- spanmetrics


def test_span_prf_and_sdu_macro() -> None:
    gold = [{(0, 3, "short"), (5, 10, "long")}, {(0, 2, "short")}]
    pred = [{(0, 3, "short"), (5, 9, "long")}, {(0, 2, "short"), (4, 6, "short")}]
    r = span_prf(gold, pred, labels=("short", "long"))
    assert r["labels"]["short"] == {"p": 200 / 3, "r": 100.0, "f1": 80.0, "tp": 2, "fp": 1, "fn": 0}
    assert r["labels"]["long"] == {"p": 0.0, "r": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 1}
    assert r["micro"]["p"] == 50.0 and r["micro"]["r"] == pytest.approx(200 / 3)
    assert r["sdu_macro"]["p"] == pytest.approx(100 / 3)
    assert r["sdu_macro"]["r"] == 50.0
    assert r["sdu_macro"]["f1"] == pytest.approx(40.0)


def test_span_prf_label_without_predictions_counts_full_precision() -> None:
    r = span_prf([{(0, 1, "long"), (2, 3, "short")}], [{(2, 3, "short")}], labels=("short", "long"))
    assert r["labels"]["long"]["p"] == 100.0 and r["labels"]["long"]["r"] == 0.0
    assert r["sdu_macro"] == {"p": 100.0, "r": 50.0, "f1": pytest.approx(200 / 3)}


@pytest.mark.skipif(
    not (DATA_DIR / "acronyms" / "sdu21-dev.jsonl").exists(), reason=f"labelled data not found at {DATA_DIR}"
)
def test_matcher_on_sdu21_dev() -> None:
    """Evaluation only (never training): the matcher as a detector with the official macro."""
    r = score_file(DATA_DIR / "acronyms" / "sdu21-dev.jsonl")
    assert r["sdu_macro"]["f1"] >= 75.0
    assert r["labels"]["long"]["p"] >= 96.0
    caps = score_file(DATA_DIR / "acronyms" / "sdu21-dev.jsonl", caps_rule=True)
    assert caps["sdu_macro"]["f1"] >= 85.0


def test_term_runs_grow_terms_to_their_content_runs() -> None:
    text = "We propose a novel method for Image Segmentation using convolutional neural networks."
    spans = term_runs(text, PhraseIndex({"image segmentation", "neural networks"}))
    assert [text[s:e] for s, e in spans] == ["Image Segmentation", "convolutional neural networks"]
    assert term_runs(text, PhraseIndex({"segment"})) == []  # not on a word boundary
    assert term_runs("", PhraseIndex({"neural networks"})) == []


def test_fold_case_keeps_offsets() -> None:
    text = "İstanbul DATA"  # "İ".lower() is two characters
    folded = fold_case(text)
    assert len(folded) == len(text) and folded.endswith("data")
    spans = term_runs("Visit İstanbul Data Centres now", PhraseIndex({"data centres"}))
    assert spans and "Data Centres" in "Visit İstanbul Data Centres now"[spans[0][0] : spans[0][1]]


def test_as_term_keeps_phrases_that_can_be_concepts() -> None:
    assert as_term("  Neural Networks ") == "neural networks"
    assert as_term("C") is None and as_term("42") is None and as_term("C++") == "c++"
