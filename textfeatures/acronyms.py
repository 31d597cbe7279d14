"""Pseudo acronym labels: a Schwartz & Hearst (2003) style short-form / long-form matcher.

Pairs are found around parentheses, in both orders:

- `long form (SF)`: the short-form candidate is the text inside the parentheses (up to the first
  `,` or `;`); the long form is searched among the at most min(|SF| + 5, 2 |SF|) words before
  the parenthesis (|SF| in characters), matching the short form's letters and digits right to
  left, the first one at the start of a word (S&H `findBestLongForm`); the shortest such long
  form wins.
- `SF (long form)`: when the parenthesised text is not a short-form candidate and has at least
  two words, the word before the parenthesis is tried as the short form and the long form must
  cover the parenthesised text (up to the first `,` or `;`) from its first word.

Definitions without parentheses are found too (`find_separated_pairs`): a short-form candidate, a
separator (`=`, `:`, `]` as in `[ SF ] long form`, `stands for`, `refers to`, `denotes`), then the
most words (at most the window above) whose initials spell the short form, inside the clause.

Pre-tokenized text (`language ( CNL )`, `k - NN`) works the same, and hyphens surrounded by
spaces count as joining characters inside a short form.

Short-form candidates must look like acronyms (tuned for precision): 2 to 10 characters, start
with a letter or digit, contain a letter and an upper-case letter, at most 2 words, only
letters, digits and `-./&+'`, and not be a plain capitalised word (`Fig`) or a small roman
numeral.

A Greek letter stands for its name (`latin_letters`): `TNF-α` is matched as `TNF-a`, so it
pairs with `tumour necrosis factor alpha` and with `tumor necrosis factor-α`.

Every later occurrence of a found short form in the same document (case-sensitive, on word
boundaries, also with a plural `s` added or removed) is labelled `short` too. An optional
"caps rule" also labels every other token with two or more upper-case letters (`ISO`,
`IoT`) as a short form: much higher recall on SDU-style data, at some cost in precision.

`python -m model_build.corpus.acronyms score FILE [--caps-rule]` scores the matcher as a
detector on a span JSONL file (labels `short` / `long`) with the official SDU macro.

This module is shared by the model build (weak labels for pretraining) and the service (the
matcher's tags are an input feature of the served acronym model), so it has no dependency
beyond the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textfeatures.words import strip_span

SHORT = "short"
LONG = "long"

# Each Greek letter -> the first Latin letter of its name (alpha a, beta b, gamma g, delta d,
# epsilon e, zeta z, eta e, theta t, iota i, kappa k, lambda l, mu m, nu n, xi x, omicron o, pi p,
# rho r, sigma s, tau t, upsilon u, phi p, chi c, psi p, omega o; the micro sign is mu). One
# character for one, so offsets hold: a short form's `α` is matched by `alpha` or `α`.
_LATIN_OF_GREEK = str.maketrans(
    "αβγδεζηθικλμνξοπρσςτυφχψωµΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
    "abgdezetiklmnxoprsstupcpomABGDEZETIKLMNXOPRSTUPCPO",
)


def latin_letters(text: str) -> str:
    """`text` with every Greek letter replaced by the first Latin letter of its name (`TNF-α` ->
    `TNF-a`); same length, so offsets into the result are offsets into `text`."""
    return text.translate(_LATIN_OF_GREEK)


_SF_ALLOWED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-./&+']*(?: [A-Za-z0-9][A-Za-z0-9\-./&+']*)?$")
_ROMAN = re.compile(r"^(?:I{1,3}|IV|VI{0,3}|IX|XI{0,3}|X{1,3})$")
_NONSPACE = re.compile(r"\S+")
# The window for a long form ends at these (a long form does not cross them).
_WINDOW_CUT = re.compile(r"[()\[\];]|[.!?:](?=\s)")
_CAPS_TOKEN = re.compile(r"(?<![A-Za-z0-9\-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9\-])")


@dataclass(frozen=True)
class Pair:
    """One short-form / long-form pair found in a text (character offsets, end-exclusive)."""

    short_start: int
    short_end: int
    long_start: int
    long_end: int


def _compact(sf: str) -> str:
    """`k - NN` -> `k-NN` (pre-tokenized hyphens)."""
    return sf.replace(" - ", "-").replace(" / ", "/")


def is_short_form_candidate(sf: str) -> bool:
    """Whether `sf` looks like an acronym (see the module doc for the rules)."""
    c = latin_letters(_compact(sf))
    if not 2 <= len(c) <= 10 or not _SF_ALLOWED.match(c):
        return False
    if not any(ch.isalpha() for ch in c):
        return False
    upper = sum(ch.isupper() for ch in c)
    if upper == 0:
        return False
    if upper == 1 and c[0].isupper() and c[1:].isalpha() and c[1:].islower():
        return False  # a plain capitalised word: Fig, Table, Smith
    return not _ROMAN.match(c)


def _alnum_words(s: str) -> int:
    return sum(1 for w in s.split() if any(ch.isalnum() for ch in w))


def find_best_long_form(sf: str, lf: str) -> tuple[int, int] | None:
    """S&H `findBestLongForm`: match the letters and digits of `sf` right to left inside `lf`,
    the first short-form character at the start of a word. Returns `(start, end)` in `lf`: the
    start of the word holding the first match and the end of the word holding the last match
    (S&H keep everything up to the end of `lf`; trailing words such as `model` or `method` that
    hold no short-form character are left out here). None when there is no match."""
    sf, lf = latin_letters(sf), latin_letters(lf)
    s_index = len(sf) - 1
    l_index = len(lf) - 1
    last = -1
    while s_index >= 0:
        ch = sf[s_index].lower()
        if not ch.isalnum():
            s_index -= 1
            continue
        while l_index >= 0 and (
            lf[l_index].lower() != ch or (s_index == 0 and l_index > 0 and lf[l_index - 1].isalnum())
        ):
            l_index -= 1
        if l_index < 0:
            return None
        if last < 0:
            last = l_index
        l_index -= 1
        s_index -= 1
    end = lf.find(" ", last)
    return lf.rfind(" ", 0, l_index + 1) + 1, (len(lf) if end < 0 else end)


_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "over",
        "the",
        "to",
        "under",
        "using",
        "via",
        "with",
    ]
)
_UNIT = re.compile(r"[A-Za-z0-9]+(?:'s)?")


def initials_long_form(sf: str, lf: str) -> int | None:
    """Prefer long forms whose words' initials spell the short form (`Cross Caption Consistency
    Loss` for CCCL, where S&H would stop at `Caption`): every word (hyphen parts count as words)
    from the start of the long form to the end of `lf` contributes its initial, optionally
    followed by more of its letters in order (`Rectified` -> `Re` in ReLU); inner stop words
    may contribute nothing. Returns the start in `lf`, or None."""
    letters = [ch.lower() for ch in latin_letters(sf) if ch.isalnum()]
    if len(letters) >= 3 and sf[-1] == "s" and sf[-2].isupper():
        letters = letters[:-1]  # plural: CNNs
    units = [(m.start(), m.group().lower()) for m in _UNIT.finditer(latin_letters(lf))]
    if not letters or not units:
        return None

    def is_subsequence(part: list[str], word: str) -> bool:
        it = iter(word)
        return all(ch in it for ch in part)

    def match(s: int, u: int) -> int | None:
        # Match letters[:s] with units[..u] so that units[u] is used (or skipped) next.
        if s == 0:
            return None
        if u < 0:
            return None
        start, word = units[u]
        for k in range(1, s + 1):
            first = s - k
            if letters[first] != word[0] or not is_subsequence(letters[first + 1 : s], word[1:]):
                continue
            if first == 0:
                return start
            r = match(first, u - 1)
            if r is not None:
                return r
        if word in _STOPWORDS and s < len(letters):
            return match(s, u - 1)
        return None

    return match(len(letters), len(units) - 1)


def _max_words(sf: str) -> int:
    n = len(sf)
    return min(n + 5, 2 * n)


def _first_chunk(text: str, start: int, end: int) -> tuple[int, int]:
    """Cut at the first `,` or `;` (S&H take the part before it)."""
    m = re.search(r"[,;]", text[start:end])
    if m:
        end = start + m.start()
    return strip_span(text, start, end)


def _long_form_before(text: str, paren: int, sf: str) -> tuple[int, int] | None:
    """Long form for `sf` among the words just before the parenthesis at `paren`."""
    end = paren
    while end > 0 and text[end - 1].isspace():
        end -= 1
    # Window start: last cut character before the parenthesis, then at most max_words words.
    win_start = 0
    for m in _WINDOW_CUT.finditer(text, max(0, end - 400), end):
        win_start = m.end()
    words = [m for m in _NONSPACE.finditer(text, win_start, end)]
    max_words = _max_words(sf)
    counted = 0
    for w in reversed(words):
        if any(ch.isalnum() for ch in w.group()):
            counted += 1
        if counted > max_words:
            break
        win_start = w.start()
    if win_start >= end:
        return None
    return match_long_form(sf, text, win_start, end)


def match_long_form(sf: str, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The long form of `sf` inside `text[start:end]`, ending at `end` when the initials rule
    matches, else by the S&H rule (trailing words without short-form letters dropped)."""
    window = text[start:end]
    rel = initials_long_form(sf, window)
    if rel is not None:
        s, e = strip_span(text, start + rel, end)
    else:
        m = find_best_long_form(sf, window)
        if m is None:
            return None
        s, e = strip_span(text, start + m[0], start + m[1])
    if s >= e or text[s:e].split()[0].lower() in _STOPWORDS:
        return None
    return s, e


def _valid_pair(text: str, sf: str, lf_start: int, lf_end: int) -> bool:
    lf = text[lf_start:lf_end]
    if len(lf) <= len(sf) or any(ch in lf for ch in "()[]"):
        return False
    if not lf[0].isalnum() or not (lf[-1].isalnum() or lf[-1] in ")'"):
        return False
    if _alnum_words(lf) > _max_words(sf):
        return False
    # The short form must not appear as a word inside its long form.
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(sf) + r"(?![A-Za-z0-9])", lf) is None


def find_pairs(text: str) -> list[Pair]:
    """All short-form / long-form pairs in `text`, in text order."""
    pairs: list[Pair] = []
    for m in re.finditer(r"\(", text):
        open_ = m.start()
        close = text.find(")", open_ + 1, open_ + 200)
        if close < 0 or "(" in text[open_ + 1 : close]:
            continue
        in_start, in_end = _first_chunk(text, open_ + 1, close)
        if in_start >= in_end:
            continue
        inner = text[in_start:in_end]
        if is_short_form_candidate(inner):
            sf = _compact(inner)
            lf = _long_form_before(text, open_, sf)
            if lf is not None and _valid_pair(text, sf, *lf):
                pairs.append(Pair(in_start, in_end, lf[0], lf[1]))
            continue
        if _alnum_words(inner) < 2:
            continue
        # SF (long form): the word before the parenthesis, `k - NN` style hyphens included.
        before = text[max(0, open_ - 100) : open_].rstrip()
        wm = re.search(r"(?:[A-Za-z0-9]+ - )?[^\s()]+$", before)
        if wm is None:
            continue
        sf_start, sf_end = max(0, open_ - 100) + wm.start(), max(0, open_ - 100) + wm.end()
        sf_text = text[sf_start:sf_end]
        if not is_short_form_candidate(sf_text):
            continue
        sf = _compact(sf_text)
        lf = match_long_form(sf, text, in_start, in_end)
        if lf is None or lf[0] != in_start or not _valid_pair(text, sf, *lf):
            continue
        pairs.append(Pair(sf_start, sf_end, lf[0], lf[1]))
    return pairs


# `SF = long form`, `SF : long form`, `[ SF ] long form`, `SF stands for long form`: glossaries,
# table legends and definitions written without parentheses (sdu21-train: 166 gold long forms
# after `:` or `=` that the parenthesis patterns miss; sdu22-sci-train: 411 after `=`). The
# separators were chosen by the long forms they find and add on the training files
# (`python -m model_build.corpus.acronyms score`), never on dev.
DEFINITION_SEPARATOR = re.compile(r"[ \t]*(?:=|:|\])[ \t]*|[ \t]+(?:stands for|refers to|denotes)[ \t]+")
_DEFINED_TOKEN = re.compile(r"(?<![A-Za-z0-9\-=:])[A-Za-z0-9][A-Za-z0-9\-./&+']*(?<![.\-])")
_DEFINITION_END = re.compile(r"[()\[\]{};,=:\n]|[.!?](?=\s|$)")


def _long_form_after(text: str, start: int, sf: str) -> tuple[int, int] | None:
    """The long form of `sf` starting at `start`: the most words (at most max_words, inside the
    clause that starts there) whose initials spell the short form. The most, not the fewest: a
    word may give several letters, so `confidence` alone spells CI in `CI = confidence interval`,
    while every content word of a match must give its initial, so a longer match does not run on
    into the sentence (`SD stands for standard deviation of the data` stops at `deviation`)."""
    cut = _DEFINITION_END.search(text, start, start + 200)
    end = cut.start() if cut else min(len(text), start + 200)
    words = list(_NONSPACE.finditer(text, start, end))[: _max_words(sf)]
    for w in reversed(words):
        if initials_long_form(sf, text[start : w.end()]) == 0:
            s, e = strip_span(text, start, w.end())
            if s < e and text[s:e].split()[0].lower() not in _STOPWORDS:
                return s, e
            return None
    return None


def find_separated_pairs(text: str) -> list[Pair]:
    """Pairs written `SF <separator> long form` (see DEFINITION_SEPARATOR), in text order."""
    pairs: list[Pair] = []
    for m in _DEFINED_TOKEN.finditer(text):
        sep = DEFINITION_SEPARATOR.match(text, m.end())
        if sep is None or not is_short_form_candidate(m.group()):
            continue
        lf = _long_form_after(text, sep.end(), m.group())
        if lf is not None and _valid_pair(text, m.group(), *lf):
            pairs.append(Pair(m.start(), m.end(), lf[0], lf[1]))
    return pairs


def _boundary_re(forms: set[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(r"(?<![A-Za-z0-9])(?:" + alts + r")(?![A-Za-z0-9])")


def label_acronyms(text: str, caps_rule: bool = False) -> tuple[list[tuple[int, int, str]], list[Pair]]:
    """Acronym spans `(start, end, "short"|"long")` for `text` (sorted, non-overlapping) and the
    pairs they come from."""
    pairs = find_pairs(text)
    pairs += find_separated_pairs(text)
    spans: list[tuple[int, int, str]] = []
    for p in pairs:
        spans.append((p.short_start, p.short_end, SHORT))
        spans.append((p.long_start, p.long_end, LONG))
    forms: set[str] = set()
    for p in pairs:
        sf = text[p.short_start : p.short_end]
        forms.add(sf)
        if sf.endswith("s") and is_short_form_candidate(sf[:-1]):
            forms.add(sf[:-1])
        else:
            forms.add(sf + "s")
    if forms:
        for m in _boundary_re(forms).finditer(text):
            spans.append((m.start(), m.end(), SHORT))
    if caps_rule and not _mostly_upper(text):
        for m in _CAPS_TOKEN.finditer(text):
            tok = m.group()
            if sum(ch.isupper() for ch in tok) >= 2 and is_short_form_candidate(tok):
                spans.append((m.start(), m.end(), SHORT))
    return _non_overlapping(spans), pairs


def _mostly_upper(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) >= 20 and sum(ch.isupper() for ch in letters) > 0.5 * len(letters)


def _non_overlapping(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Keep spans in list order (pair spans first), dropping any that overlaps a kept one."""
    if not spans:
        return []
    taken = bytearray(max(e for _, e, _ in spans))
    kept: list[tuple[int, int, str]] = []
    for s in spans:
        if any(taken[s[0] : s[1]]):
            continue
        taken[s[0] : s[1]] = b"\x01" * (s[1] - s[0])
        kept.append(s)
    return sorted(kept)
