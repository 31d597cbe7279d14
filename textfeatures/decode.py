"""From per-token label probabilities to spans: constrained BIO Viterbi over words.

Both the build's scorer and the service decode with this function, so a dev score measures
exactly what the service answers.

- A word takes the label distribution of its first token: spans start and end on words as users
  write them (`textfeatures.words`), never inside one.
- The label sequence over words is the most probable one in which every `I-x` follows `B-x` or
  `I-x` (Viterbi over log-probabilities); when the per-word argmax already obeys that, it is the
  answer and the search is skipped.
- A span's score is the lowest probability among the labels that make it (each word's label,
  and the next word's not continuing it): a span is as sure as its least sure boundary.
- A span never starts or ends on a word of punctuation alone (`continuum random phase
  approximation (`, `CNOMA - SWIPT -`): such edge words are dropped, unless a bracket or quote
  closes inside the span (`MP ( F4 )`, `“MIT bag model”`); a span of punctuation alone is dropped.
  On the training files, 0.3% of gold spans end on such a word, nearly all of them annotation
  slips (`L2T.`, `patch search (`); 0.3% of the served concept spans did.
- A span never holds a bracket that it does not also close or open: it is split there, the
  bracket dropped (`type 2 diabetes mellitus (T2DM` -> `type 2 diabetes mellitus`, `T2DM`). 7 of
  the 15,746 gold concept spans of the training files hold an unpaired bracket (`quantum
  chromodynamics (QCD`), against 115 with a paired one (`polyethylene naphthalate (PEN)
  substrates`, kept whole).
- `noun_final=True` (a task whose manifest asks for it: the built-in concepts): a span loses
  the words at its end that WordNet knows, but not as a noun (`plaintiff filed` -> `plaintiff`,
  `knocked` and `scalable` -> no span; `textfeatures.wordnet`); words WordNet does not know
  (`BRCA1`) stay. Why: on the held-out slice of the concept training files the served
  spans ending on such a word were right 9-12% of the time, against 32-36% for the rest, while
  1.7% (Inspec) and 3.2% (ScienceIE) of the gold spans of the training files end on one; the
  trim lifted the slice's micro F1 from 42.3 to 43.6 (Inspec) and 41.8 to 42.7 (ScienceIE).
  Cutting leading verbs too lost 1 point on ScienceIE (its Process spans start on verbs).
  A lower-case article, preposition, conjunction or determiner at the end goes too
  (`outbreak of` -> `outbreak`; `_CLOSED_CLASS`): 1 of the 15,688 gold concept spans of the
  training files ends on one (`‘hop’ into`), against 7 of the 2,510 spans served on the
  held-out slice, none of them right (`thin films of`, `field of`).

`structured=False` is the decoding before Viterbi (per-word argmax; an `I-x` with no open span
starts one): the ablation of structured decoding in reports/quality (`ALIGNTAG_DECODING=argmax`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from textfeatures.wordnet import NOUN, pos_mask
from textfeatures.words import Word

Decoded = tuple[int, int, str, float]  # start, end (exclusive), span type, score


def allowed_transitions(label_names: Sequence[str]) -> np.ndarray:
    """allowed[i, j]: label j may follow label i. Row len(label_names) is the start of a text."""
    n = len(label_names)
    allowed = np.ones((n + 1, n), dtype=bool)
    for j, name in enumerate(label_names):
        if name.startswith("I-"):
            kind = name[2:]
            allowed[:, j] = False
            for i, prev in enumerate(label_names):
                if prev in (f"B-{kind}", f"I-{kind}"):
                    allowed[i, j] = True
    return allowed


def is_well_formed(labels: Sequence[int], allowed: np.ndarray) -> bool:
    previous = allowed.shape[0] - 1
    for label in labels:
        if not allowed[previous, label]:
            return False
        previous = label
    return True


def viterbi(log_probs: np.ndarray, allowed: np.ndarray) -> list[int]:
    """Most probable label sequence (words x labels log-probabilities) under `allowed`."""
    n_words, n_labels = log_probs.shape
    if n_words == 0:
        return []
    penalty = np.where(allowed, 0.0, -np.inf)
    score = log_probs[0] + penalty[-1]
    back = np.zeros((n_words, n_labels), dtype=np.int64)
    for w in range(1, n_words):
        total = score[:, None] + penalty[:-1]  # previous label x label
        back[w] = total.argmax(0)
        score = total.max(0) + log_probs[w]
    path = [int(score.argmax())]
    for w in range(n_words - 1, 0, -1):
        path.append(int(back[w, path[-1]]))
    return path[::-1]


_CLOSER = {"(": ")", "[": "]", "{": "}", "<": ">", "“": "”", "‘": "’", "«": "»", '"': '"', "'": "'"}
_OPENER = {close: open_ for open_, close in _CLOSER.items()}


def _trim_punctuation(text: str, words: Sequence[Word], first: int, last: int) -> tuple[int, int]:
    """`(first, last)` word indices without edge words of punctuation alone, except a bracket or
    quote that its partner closes inside the span. `first > last` when nothing is left."""

    def bare(w: int) -> bool:
        return not any(ch.isalnum() for ch in text[words[w][0] : words[w][1]])

    while first <= last and bare(first):
        mark = text[words[first][0] : words[first][1]]
        if mark in _CLOSER and _CLOSER[mark] in text[words[first][1] : words[last][1]]:
            break
        first += 1
    while last >= first and bare(last):
        mark = text[words[last][0] : words[last][1]]
        if mark in _OPENER and _OPENER[mark] in text[words[first][0] : words[last][0]]:
            break
        last -= 1
    return first, last


# The brackets a span must pair (`<`, quotes and guillemets are left to `_trim_punctuation`).
_BRACKETS = {open_: _CLOSER[open_] for open_ in "([{"}


def _balanced_pieces(text: str, words: Sequence[Word], first: int, last: int) -> list[tuple[int, int]]:
    """`(first, last)` cut at every bracket word that is not paired inside it, each piece trimmed
    (`_trim_punctuation`); pieces with nothing left are dropped."""
    unpaired: list[int] = []
    open_: list[tuple[int, str]] = []  # (word index, the bracket that closes it)
    for w in range(first, last + 1):
        mark = text[words[w][0] : words[w][1]]
        if mark in _BRACKETS:
            open_.append((w, _BRACKETS[mark]))
        elif mark in _BRACKETS.values():
            if open_ and open_[-1][1] == mark:
                open_.pop()
            else:
                unpaired.append(w)
    unpaired = sorted(unpaired + [w for w, _ in open_])
    pieces = []
    for cut_before, cut_after in zip([first - 1, *unpaired], [*unpaired, last + 1], strict=True):
        piece = _trim_punctuation(text, words, cut_before + 1, cut_after - 1)
        if piece[0] <= piece[1]:
            pieces.append(piece)
    return pieces


_LETTER_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
# Closed-class words that WordNet leaves out, as written (lower-case: `vitamin A` and `Police IT`
# keep theirs). Narrower than the phrase rule's function words (`textfeatures.features`): gold
# concepts do end on `use`, `up` or `one` (`land use`, `speed up`, `Capital One`).
_CLOSED_CLASS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "these",
        "those",
        "that",
        "which",
        "who",
        "whom",
        "whose",
        "where",
        "when",
        "its",
        "their",
        "our",
        "his",
        "her",
        "my",
        "your",
        "such",
        "of",
        "in",
        "into",
        "onto",
        "on",
        "to",
        "from",
        "at",
        "as",
        "by",
        "for",
        "with",
        "via",
        "per",
        "upon",
        "within",
        "without",
        "between",
        "among",
        "through",
        "over",
        "under",
        "toward",
        "towards",
        "about",
        "across",
        "against",
        "during",
        "after",
        "before",
        "since",
        "until",
        "and",
        "or",
        "nor",
        "but",
        "than",
        "while",
        "whereas",
        "whether",
        "if",
        "because",
        "although",
        "though",
    ]
)


def _noun_final(text: str, words: Sequence[Word], first: int, last: int) -> tuple[int, int]:
    """`(first, last)` without the end words that WordNet knows but not as a noun, or that are
    `_CLOSED_CLASS`, each cut followed by `_trim_punctuation`. `first > last` when nothing is left."""
    while first <= last:
        word = text[words[last][0] : words[last][1]]
        if word not in _CLOSED_CLASS:
            mask = pos_mask(word.lower()) if _LETTER_WORD.fullmatch(word) else 0
            if not mask or mask & NOUN:
                break
        first, last = _trim_punctuation(text, words, first, last - 1)
    return first, last


def decode_spans(
    token_probs: np.ndarray,
    word_of_token: Sequence[int],
    words: Sequence[Word],
    label_names: Sequence[str],
    text: str,
    structured: bool = True,
    noun_final: bool = False,
) -> list[Decoded]:
    """Spans (sorted, non-overlapping, well-formed) of `text` from its token probabilities
    (tokens x labels)."""
    if len(word_of_token) == 0:
        return []
    index = np.asarray(word_of_token, dtype=np.int64)
    first = np.ones(len(index), dtype=bool)
    first[1:] = index[1:] != index[:-1]
    word_ids = index[first]  # the words that have tokens, in order
    probs = np.asarray(token_probs, dtype=np.float64)[first]
    labels = probs.argmax(-1)
    allowed = allowed_transitions(label_names)
    if structured and not is_well_formed(labels.tolist(), allowed):
        labels = np.asarray(viterbi(np.log(np.clip(probs, 1e-12, 1.0)), allowed), dtype=np.int64)
    chosen = probs[np.arange(len(labels)), labels]
    kinds = [None if name == "O" else name.split("-", 1) for name in label_names]
    inside = {kind[1]: j for j, kind in enumerate(kinds) if kind is not None and kind[0] == "I"}
    spans: list[Decoded] = []
    label_list = labels.tolist()
    w = 0
    n = len(label_list)
    while w < n:
        kind = kinds[label_list[w]]
        if kind is None:
            w += 1
            continue
        span_type = kind[1]
        end = w + 1
        while end < n and kinds[label_list[end]] == ["I", span_type]:
            end += 1
        score = float(chosen[w:end].min())
        if end < n and span_type in inside:
            score = min(score, 1.0 - float(probs[end, inside[span_type]]))
        for first_word, last_word in _balanced_pieces(text, words, int(word_ids[w]), int(word_ids[end - 1])):
            if noun_final:
                first_word, last_word = _noun_final(text, words, first_word, last_word)
                if first_word > last_word:
                    continue
            spans.append((words[first_word][0], words[last_word][1], span_type, score))
        w = end
    return spans
