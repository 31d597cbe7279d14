"""Weak concept labels from hyperlinks.

Rules (applied per document):

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
from collections.abc import Iterable

from textfeatures.words import strip_span

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


_WORD_CHARS = re.compile(r"\w+")


def find_mentions(text: str, phrases: Iterable[str]) -> list[CharRange]:
    r"""Occurrences of `phrases` in `text`: exact, case-sensitive, not inside a longer word
    (`(?<!\w)phrase(?!\w)`), scanning left to right, longest phrase first at each position,
    non-overlapping. Linear in the text (phrases are looked up by their first word)."""
    by_word: dict[str, list[str]] = {}
    other: list[str] = []
    for ph in set(phrases):
        if not ph:
            continue
        m = _WORD_CHARS.match(ph)
        if m:
            by_word.setdefault(m.group(), []).append(ph)
        else:
            other.append(ph)
    for v in by_word.values():
        v.sort(key=len, reverse=True)
    n = len(text)
    starts: list[tuple[int, list[str]]] = []
    for m in _WORD_CHARS.finditer(text):
        cands = by_word.get(m.group())
        if cands:
            starts.append((m.start(), cands))
    found: list[CharRange] = []
    for p, cands in starts:
        for ph in cands:
            e = p + len(ph)
            if text.startswith(ph, p) and not (e < n and _is_word_char(text[e]) and _is_word_char(ph[-1])):
                found.append((p, e))
                break
    for ph in other:  # rare: phrases starting with punctuation, e.g. `.NET`
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


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
