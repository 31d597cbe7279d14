"""The weak labellers as stand-alone taggers: the rule baselines every quality figure is set beside.

- `rule-matcher`: the Schwartz–Hearst matcher alone; `rule-matcher+caps`: plus the all-caps rule
  (what the acronym model reads as its `acronym_rule` input feature);
- `rule-content-runs`: every run of content words between function words and punctuation (the
  candidate rule of RAKE; what the concept model reads as its `phrase_rule` input feature).
"""

from __future__ import annotations

from textfeatures.acronyms import label_acronyms
from textfeatures.features import PHRASE_BEGIN, PHRASE_INSIDE, phrase_tags
from textfeatures.words import split_words

RULE_BASELINES = {"acronyms": ("rule-matcher", "rule-matcher+caps"), "concepts": ("rule-content-runs",)}


def rule_spans(rule: str, text: str) -> list[tuple[int, int, str]]:
    """The spans `(start, end, label)` that rule `rule` (a name of RULE_BASELINES) finds in `text`."""
    if rule in ("rule-matcher", "rule-matcher+caps"):
        spans, _ = label_acronyms(text, caps_rule=rule.endswith("caps"))
        return [(s, e, label) for s, e, label in spans]
    if rule != "rule-content-runs":
        raise ValueError(f"unknown rule {rule!r}")
    words = split_words(text)
    out: list[tuple[int, int, str]] = []
    for (start, end), tag in zip(words, phrase_tags(text, words), strict=True):
        if tag == PHRASE_INSIDE and out:
            out[-1] = (out[-1][0], end, "concept")
        elif tag == PHRASE_BEGIN:
            out.append((start, end, "concept"))
    return out
