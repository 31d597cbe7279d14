"""Word boundaries as users write them: the unit every span starts and ends on.

A word is a run of non-space characters, cut before and after brackets, quotes, `,`, `;`, `:`,
`=`, `!` and `?`; a final `.` and a possessive `'s` are cut off too. Hyphens, digits, inner dots,
slashes and apostrophes stay inside: `T2DM`, `IL-6`, `BM25`, `HEK293T`, `TNF-α`, `TCP/IP`,
`Retrieval-augmented` are one word each. Pre-tokenized text (`IL - 6`, `language ( CNL )`) keeps
the words its spaces give it.
"""

from __future__ import annotations

import re

Word = tuple[int, int]  # start, end (exclusive): character offsets into the text

_CUT = '()[]{}<>,;:!?="“”‘’«»'
# Unicode White_Space, as the tokenizer's whitespace split (Rust `char::is_whitespace`) has it.
# Python's `\s` also takes U+001C..U+001F, which the tokenizer keeps as tokens: with `\s` such a
# token would belong to no word.
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PIECE = re.compile(r"[" + re.escape(_CUT) + r"]|[^" + _SPACE + re.escape(_CUT) + r"]+")
_TAIL = re.compile(r"(?:'s|’s|\.+|')$")


def split_words(text: str) -> list[Word]:
    """The words of `text`, in order, covering every non-space character exactly once."""
    words: list[Word] = []
    for m in _PIECE.finditer(text):
        start, end = m.span()
        tail = _TAIL.search(text, start, end) if end - start > 1 else None
        if tail is not None and tail.start() > start and text[tail.start() - 1].isalnum():
            words.append((start, tail.start()))
            start = tail.start()
        words.append((start, end))
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
