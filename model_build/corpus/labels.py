"""Weak concept labels, in one of two ways (`CONCEPT_LABELS`, the corpus setting `concept_labels`).

`"term-runs"`: distant supervision, in every document. The terms are the link anchors and the
headwords (dictionary entries, wiki titles) of the hyperlinked sources; a concept is a run of
content words (`rule-content-runs` of textfeatures.rules: the words between function words and
punctuation) that contains a mention of a term, matched case-insensitively. So a link anchor
grows to the noun phrase around it (`convolutional neural networks` from the term `neural
networks`), and unlinked text (the text of the labelled training files, never their labels) gets
concepts too. Chosen on the training files: as a tagger it scores 30.9 micro F1 on inspec-train
(content runs alone 25.2; the terms' own mentions 4.6, most being single words) and 26.7 on
scienceie-train (26.0); dropping frequent one-word terms did not help.

`"links"`: the hyperlinks themselves, in hyperlinked documents only. Rules (per document):

- every link span is a concept span over its visible anchor text, with surrounding whitespace
  stripped; empty or whitespace-only anchors are dropped; overlapping links keep the earlier
  (then the longer) one;
- `later_mentions` decides what happens to later *unlinked* mentions of a linked anchor (exact,
  case-sensitive, on word boundaries, after the anchor's first linked occurrence, not
  overlapping a link; longer anchors first). Hyperlinked text usually links only the first
  mention of a concept, so an unlinked later mention is a concept the editors did not mark:
  - `"label"` (default): they become concept spans too;
  - `"ignore"`: they go into `concept_ignore` (their tokens are left out of the concept loss);
  - `"none"`: they stay outside (label O), exactly as the editors marked the text.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

from textfeatures.rules import rule_spans
from textfeatures.words import strip_span

CONCEPT_LABELS = ("term-runs", "links")
LATER_MENTIONS = ("label", "ignore", "none")

CharRange = tuple[int, int]  # start, end (exclusive)


def link_concepts(text: str, links: list[tuple[int, int, str]]) -> list[CharRange]:
    """Link spans -> sorted, non-overlapping, stripped, non-empty concept spans."""
    kept: list[CharRange] = []
    for s, e, _ in sorted(links, key=lambda link: (link[0], -link[1])):
        span = strip_span(text, s, e)
        if span[0] >= span[1] or (kept and span[0] < kept[-1][1]):
            continue
        kept.append(span)
    return kept


def concept_labels(
    text: str, links: list[tuple[int, int, str]], later_mentions: str = "label"
) -> tuple[list[CharRange], list[CharRange]]:
    """(`concepts`, `concept_ignore`) for a hyperlinked document (see module doc)."""
    if later_mentions not in LATER_MENTIONS:
        raise ValueError(f"later_mentions must be one of {LATER_MENTIONS}, got {later_mentions!r}")
    concepts = link_concepts(text, links)
    if later_mentions == "none" or not concepts:
        return concepts, []
    first: dict[str, int] = {}
    for s, e in concepts:
        anchor = text[s:e]
        if any(ch.isalnum() for ch in anchor):
            first.setdefault(anchor, s)
    if not first:
        return concepts, []
    linked = bytearray(len(text))
    for s, e in concepts:
        linked[s:e] = b"\x01" * (e - s)
    later: list[CharRange] = []
    for s, e in find_mentions(text, first):
        if s > first[text[s:e]] and not any(linked[s:e]):
            later.append((s, e))
    if later_mentions == "label":
        return sorted(concepts + later), []
    return concepts, later


def fold_case(text: str) -> str:
    """`text` lower-cased character by character, so that offsets into the result are offsets
    into `text` (`str.lower` lengthens a few characters, e.g. `İ`)."""
    folded = text.lower()
    if len(folded) == len(text):
        return folded
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


def as_term(phrase: str) -> str | None:
    """`phrase` as an entry of the term list (case-folded, stripped), or None when it is too
    short (under 3 characters) or has no letter to be a concept."""
    term = fold_case(phrase.strip())
    if len(term) < 3 or not any(ch.isalpha() for ch in term):
        return None
    return term


def term_runs(text: str, terms: PhraseIndex) -> list[CharRange]:
    """The content runs of `text` that contain a case-insensitive mention of a term (module doc);
    `terms` indexes case-folded terms (`as_term`)."""
    mentions = terms.find(fold_case(text))
    if not mentions:
        return []
    starts = [s for s, _ in mentions]
    out: list[CharRange] = []
    for start, end, _ in rule_spans("rule-content-runs", text):
        i = bisect_left(starts, start)
        if i < len(mentions) and mentions[i][1] <= end:
            out.append((start, end))
    return out


_WORD_CHARS = re.compile(r"\w+")


class PhraseIndex:
    """Phrases indexed by their first word, so that `find` is linear in the text whatever the
    number of phrases (the term list holds ~25k)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.by_word: dict[str, list[str]] = {}
        self.other: list[str] = []  # rare: phrases starting with punctuation, e.g. `.NET`
        for ph in set(phrases):
            if not ph:
                continue
            m = _WORD_CHARS.match(ph)
            if m:
                self.by_word.setdefault(m.group(), []).append(ph)
            else:
                self.other.append(ph)
        for v in self.by_word.values():
            v.sort(key=len, reverse=True)

    def find(self, text: str) -> list[CharRange]:
        r"""Occurrences of the phrases in `text`: exact, case-sensitive, not inside a longer word
        (`(?<!\w)phrase(?!\w)`), scanning left to right, longest phrase first at each position,
        non-overlapping."""
        n = len(text)
        found: list[CharRange] = []
        for m in _WORD_CHARS.finditer(text):
            p = m.start()
            for ph in self.by_word.get(m.group(), ()):
                e = p + len(ph)
                if text.startswith(ph, p) and not (
                    e < n and _is_word_char(text[e]) and _is_word_char(ph[-1])
                ):
                    found.append((p, e))
                    break
        for ph in self.other:
            i = text.find(ph)
            while i >= 0:
                e = i + len(ph)
                ok_start = i == 0 or not (_is_word_char(text[i - 1]) and _is_word_char(ph[0]))
                ok_end = e >= n or not (_is_word_char(text[e]) and _is_word_char(ph[-1]))
                if ok_start and ok_end:
                    found.append((i, e))
                i = text.find(ph, i + 1)
        found.sort(key=lambda sp: (sp[0], -sp[1]))
        kept: list[CharRange] = []
        for sp in found:
            if kept and sp[0] < kept[-1][1]:
                continue
            kept.append(sp)
        return kept


def find_mentions(text: str, phrases: Iterable[str]) -> list[CharRange]:
    """`PhraseIndex(phrases).find(text)`, for one text."""
    return PhraseIndex(phrases).find(text)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
