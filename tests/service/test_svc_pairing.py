"""Acronym pairing (service/pairing.py) on constructed span lists: independent of model quality."""

from __future__ import annotations

from service.pairing import letters_match, pair_acronyms, short_form_key
from service.tagging import Span


def span(text: str, part: str, label: str, occurrence: int = 0, score: float = 0.9) -> Span:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(part, start + 1)
    return Span(start, start + len(part), label, score)


def pairs(text: str, spans: list[Span]) -> list[tuple[str, str | None]]:
    result = pair_acronyms(text, spans)
    return [
        (text[a.short.start : a.short.end], text[a.long.start : a.long.end] if a.long else None)
        for a in result.acronyms
    ]


def test_long_form_then_parenthesised_plural_short_form() -> None:
    text = "We train convolutional neural networks (CNNs) on images."
    spans = [span(text, "convolutional neural networks", "long"), span(text, "CNNs", "short")]
    assert pairs(text, spans) == [("CNNs", "convolutional neural networks")]
    assert pair_acronyms(text, spans).unpaired_long_forms == []


def test_short_form_then_parenthesised_long_form() -> None:
    text = "CNL (controlled natural language) is easy to read."
    spans = [span(text, "CNL", "short"), span(text, "controlled natural language", "long")]
    assert pairs(text, spans) == [("CNL", "controlled natural language")]


def test_pre_tokenized_parentheses() -> None:
    text = "a controlled natural language ( CNL ) for rules"
    spans = [span(text, "controlled natural language", "long"), span(text, "CNL", "short")]
    assert pairs(text, spans) == [("CNL", "controlled natural language")]


def test_two_definitions_in_one_text() -> None:
    text = "Both support vector machines (SVM) and random forests (RF) were tried; SVM won over RF."
    spans = sorted(
        [
            span(text, "support vector machines", "long"),
            span(text, "SVM", "short"),
            span(text, "random forests", "long"),
            span(text, "RF", "short"),
            span(text, "SVM", "short", occurrence=1),
            span(text, "RF", "short", occurrence=1),
        ],
        key=lambda s: s.start,
    )
    assert pairs(text, spans) == [
        ("SVM", "support vector machines"),
        ("RF", "random forests"),
        ("SVM", "support vector machines"),
        ("RF", "random forests"),
    ]


def test_acronym_used_before_its_definition_gets_the_long_form() -> None:
    text = "NLP is everywhere. Natural language processing (NLP) studies text; NLP tools abound."
    spans = [
        span(text, "NLP", "short"),
        span(text, "Natural language processing", "long"),
        span(text, "NLP", "short", occurrence=1),
        span(text, "NLP", "short", occurrence=2),
    ]
    assert pairs(text, spans) == [("NLP", "Natural language processing")] * 3


def test_plural_use_takes_the_singular_definition() -> None:
    text = "A graphics processing unit (GPU) is fast; two GPUs are faster."
    spans = [span(text, "graphics processing unit", "long"), span(text, "GPU", "short"),
             span(text, "GPUs", "short")]  # fmt: skip
    assert pairs(text, spans) == [("GPU", "graphics processing unit"), ("GPUs", "graphics processing unit")]


def test_inside_parentheses_the_short_form_ends_at_a_comma_or_semicolon() -> None:
    """Schwartz & Hearst: `(RBF, or Gaussian)`, `( ART ; see ... )` still define the short form."""
    text = "kernels such as the radial basis function (RBF, or Gaussian) and adaptive resonance theory ( ART ; see [3] )."
    spans = [
        span(text, "radial basis function", "long"),
        span(text, "RBF", "short"),
        span(text, "adaptive resonance theory", "long"),
        span(text, "ART", "short"),
    ]
    assert pairs(text, spans) == [("RBF", "radial basis function"), ("ART", "adaptive resonance theory")]
    text = "the radial basis function (see RBF, below)"  # only the parenthesis' first item counts
    spans = [span(text, "radial basis function", "long"), span(text, "RBF", "short")]
    assert pairs(text, spans) == [("RBF", None)]


def test_a_quoted_long_form_before_its_parenthesis() -> None:
    text = "The first component is the 'Semantic Alignment Network' (SAN), and the \u201cMIT bag model\u201d (MBM) too."
    spans = [
        span(text, "Semantic Alignment Network", "long"),
        span(text, "SAN", "short"),
        span(text, "MIT bag model", "long"),
        span(text, "MBM", "short"),
    ]
    assert pairs(text, spans) == [("SAN", "Semantic Alignment Network"), ("MBM", "MIT bag model")]


def test_a_spaced_dash_defines_when_the_letters_agree() -> None:
    text = "Solid State Disk \u2013 SSD and NVM - fast storage"
    spans = [
        span(text, "Solid State Disk", "long"),
        span(text, "SSD", "short"),
        span(text, "NVM", "short"),
        span(text, "fast storage", "long"),
    ]
    assert pairs(text, spans) == [("SSD", "Solid State Disk"), ("NVM", None)]
    text = "Peak Signal-to-Noise Ratio-PSNR"  # unspaced: a compound, not a definition
    spans = [span(text, "Peak Signal-to-Noise Ratio", "long"), span(text, "PSNR", "short")]
    assert pairs(text, spans) == [("PSNR", None)]


def test_letters_must_match() -> None:
    text = "We use deep learning (CNN) here."
    spans = [span(text, "deep learning", "long"), span(text, "CNN", "short")]
    result = pair_acronyms(text, spans)
    assert pairs(text, spans) == [("CNN", None)]
    assert [(s.start, s.end) for s in result.unpaired_long_forms] == [(7, 20)]


def test_definition_separator_pairs_a_short_form_written_first() -> None:
    text = "CI = confidence interval; RSSI stands for received signal strength indicator. The CI is wide."
    spans = [
        span(text, "CI", "short"),
        span(text, "confidence interval", "long"),
        span(text, "RSSI", "short"),
        span(text, "received signal strength indicator", "long"),
        span(text, "CI", "short", occurrence=1),
    ]
    assert pairs(text, spans) == [
        ("CI", "confidence interval"),
        ("RSSI", "received signal strength indicator"),
        ("CI", "confidence interval"),
    ]


def test_a_separator_needs_no_letter_test_but_a_parenthesis_does() -> None:
    """A tag glossary defines with `=`: `NNS = plural noun` pairs although its letters do not
    agree; the same spans around a parenthesis do not (`plural noun (NNS)`: an aside, maybe)."""
    text = "NN = singular noun; NNS = plural noun."
    spans = [
        span(text, "NN", "short"),
        span(text, "singular noun", "long"),
        span(text, "NNS", "short"),
        span(text, "plural noun", "long"),
    ]
    assert pairs(text, spans) == [("NN", "singular noun"), ("NNS", "plural noun")]
    text = "a plural noun (NNS) here"
    assert pairs(text, [span(text, "plural noun", "long"), span(text, "NNS", "short")]) == [("NNS", None)]


def test_a_long_form_written_before_its_short_form_needs_a_parenthesis() -> None:
    text = "confidence interval = CI"  # the separator joins only `SF = long form`
    spans = [span(text, "confidence interval", "long"), span(text, "CI", "short")]
    assert pairs(text, spans) == [("CI", None)]


def test_adjacency_is_required() -> None:
    text = "Convolutional neural networks are common. CNN results (see below) vary."
    spans = [span(text, "Convolutional neural networks", "long"), span(text, "CNN", "short")]
    assert pairs(text, spans) == [("CNN", None)]
    assert len(pair_acronyms(text, spans).unpaired_long_forms) == 1


def test_one_or_two_words_may_stand_between_a_long_form_and_its_parenthesis() -> None:
    text = "Markov chain Monte Carlo sampling (MCMC) and Terminology Data banks (TD) are used."
    spans = [
        span(text, "Markov chain Monte Carlo", "long"), span(text, "MCMC", "short"),
        span(text, "Terminology Data", "long"), span(text, "TD", "short"),
    ]  # fmt: skip
    assert pairs(text, spans) == [("MCMC", "Markov chain Monte Carlo"), ("TD", "Terminology Data")]
    two = "Language Resources and Evaluation (LREC)"
    assert pairs(two, [span(two, "Language Resources", "long"), span(two, "LREC", "short")]) == [
        ("LREC", "Language Resources")
    ]


def test_words_before_the_parenthesis_need_agreeing_letters_and_at_most_two_words() -> None:
    text = "image features extracted (CNN) and support vector machines trained on them (SVM)."
    spans = [
        span(text, "image features", "long"), span(text, "CNN", "short"),
        span(text, "support vector machines", "long"), span(text, "SVM", "short"),
    ]  # fmt: skip
    assert pairs(text, spans) == [("CNN", None), ("SVM", None)]
    punctuated = "deep learning, as used here (DL)"
    assert pairs(
        punctuated, [span(punctuated, "deep learning", "long"), span(punctuated, "DL", "short")]
    ) == [("DL", None)]


def test_an_adjacent_long_form_wins_over_one_with_words_between() -> None:
    text = "data layer deep learning (DL)"
    spans = [span(text, "data layer", "long"), span(text, "deep learning", "long"), span(text, "DL", "short")]
    assert pairs(text, spans) == [("DL", "deep learning")]
    assert [text[s.start : s.end] for s in pair_acronyms(text, spans).unpaired_long_forms] == ["data layer"]


def test_unpaired_short_and_long_forms() -> None:
    text = "The API is documented; the long form application programming interface stands alone."
    spans = [span(text, "API", "short"), span(text, "application programming interface", "long")]
    result = pair_acronyms(text, spans)
    assert pairs(text, spans) == [("API", None)]
    assert [text[s.start : s.end] for s in result.unpaired_long_forms] == [
        "application programming interface"
    ]


def test_nearest_preceding_definition_wins_for_a_redefined_short_form() -> None:
    text = "PM (project manager) meets PM (prime minister); later the PM spoke."
    spans = [
        span(text, "PM", "short"), span(text, "project manager", "long"),
        span(text, "PM", "short", 1), span(text, "prime minister", "long"),
        span(text, "PM", "short", 2),
    ]  # fmt: skip
    assert pairs(text, spans) == [
        ("PM", "project manager"),
        ("PM", "prime minister"),
        ("PM", "prime minister"),
    ]


def test_letters_match_rules() -> None:
    assert letters_match("CNNs", "convolutional neural networks")
    assert letters_match("HMM", "hidden Markov model")
    assert letters_match("3D", "3 dimensional")
    assert not letters_match("CNN", "neural networks")  # first letter must start the long form
    assert not letters_match("XYZ", "x-ray")
    assert not letters_match("", "anything")
    assert letters_match("TNF-α", "tumour necrosis factor alpha")  # a Greek letter stands for its name
    assert letters_match("IFN-γ", "interferon-γ")
    assert not letters_match("TNF-β", "tumour necrosis factor alpha")
    assert short_form_key("CNNs") == "CNN"
    assert short_form_key("Ts") == "Ts" and short_form_key("BUS") == "BUS"
