"""Word boundaries as users write them: the unit every span starts and ends on.

A word is a run of non-space characters, cut before and after brackets, quotes, `,`, `;`, `:`,
`=`, `!` and `?`; a final `.` and a possessive `'s` are cut off too. Hyphens, digits, inner dots,
slashes and apostrophes stay inside: `T2DM`, `IL-6`, `BM25`, `HEK293T`, `TNF-α`, `TCP/IP`,
`Retrieval-augmented` are one word each. Pre-tokenized text (`IL - 6`, `language ( CNL )`) keeps
the words its spaces give it.
"""

from __future__ import annotations

import re
import unicodedata

Word = tuple[int, int]  # start, end (exclusive): character offsets into the text

# How `split_words` cuts, process-wide: "as-written" (above), or "pretokens", the tokenizer's
# pre-tokens (white space split, every punctuation mark alone, digit runs apart from letters:
# `T2DM` -> `T`, `2`, `DM`), as words were before issue 13's part 5. "pretokens" exists only
# for the ablation of that part; a build sets its config's splitter (`BuildConfig.words`), the
# service its setting (`ALIGNTAG_WORDS`), and a manifest names the one its model was built with.
WORD_SPLITTERS = ("as-written", "pretokens")
_active = ["as-written"]


def use_word_splitter(name: str) -> None:
    if name not in WORD_SPLITTERS:
        raise ValueError(f"unknown word splitter {name!r}; use one of {', '.join(WORD_SPLITTERS)}")
    _active[0] = name


def word_splitter() -> str:
    return _active[0]


_CUT = '()[]{}<>,;:!?="“”‘’«»'
# Unicode White_Space, as the tokenizer's whitespace split (Rust `char::is_whitespace`) has it.
# Python's `\s` also takes U+001C..U+001F, which the tokenizer keeps as tokens: with `\s` such a
# token would belong to no word.
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PIECE = re.compile(r"[" + re.escape(_CUT) + r"]|[^" + _SPACE + re.escape(_CUT) + r"]+")
_SPACE_CHAR = re.compile("[" + _SPACE + "]")
_TAIL = re.compile(r"(?:'s|’s|\.+|')$")


def split_words(text: str) -> list[Word]:
    """The words of `text`, in order, covering every non-space character exactly once."""
    if _active[0] == "pretokens":
        return _split_pretokens(text)
    words: list[Word] = []
    for m in _PIECE.finditer(text):
        start, end = m.span()
        tail = _TAIL.search(text, start, end) if end - start > 1 else None
        if tail is not None and tail.start() > start and text[tail.start() - 1].isalnum():
            words.append((start, tail.start()))
            start = tail.start()
        words.append((start, end))
    return words


def _char_kind(c: str) -> str:
    """As the tokenizer's pre-tokenizer sees a character (Rust `is_whitespace`, HF `Punctuation`:
    ASCII punctuation or Unicode category P*, `Digits`: Rust `is_numeric`, category N*)."""
    if _SPACE_CHAR.fullmatch(c):
        return "space"
    category = unicodedata.category(c)
    if (c.isascii() and not c.isalnum() and c.isprintable()) or category.startswith("P"):
        return "punct"
    return "digit" if category.startswith("N") else "other"


def _split_pretokens(text: str) -> list[Word]:
    words: list[Word] = []
    start, kind = 0, "space"
    for i, c in enumerate(text):
        k = _char_kind(c)
        if k != kind or k == "punct":
            if kind != "space":
                words.append((start, i))
            start, kind = i, k
    if kind != "space":
        words.append((start, len(text)))
    return words


def word_of_offsets(words: list[Word], offsets: list[tuple[int, int]]) -> list[int]:
    """Index of the word holding each token (by the token's first character). Tokens never cross
    a word boundary: the tokenizer splits at every space and isolates every punctuation mark."""
    out: list[int] = []
    w = 0
    n = len(words)
    for start, _ in offsets:
        while w + 1 < n and words[w][1] <= start:
            w += 1
        out.append(w)
    return out


def strip_span(text: str, start: int, end: int) -> Word:
    """`(start, end)` without the white space at either edge."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
