"""Model inputs of one text: token ids, the word of each token, and per-token feature ids.

The features give a small encoder what BPE hides from it and what the rules already know:

| column | name | values |
|---|---|---|
| 0 | `word_shape` | shape of the token's word: lower, Capitalised, ALLCAPS, MiXed (2+ capitals), letters+digits, number, punctuation, other |
| 1 | `word_start` | the token starts its word, or continues it |
| 2 | `acronym_rule` | the Schwartz–Hearst matcher + caps rule tag of the token (O, B/I-short, B/I-long), or "hidden" |
| 3 | `phrase_rule` | candidate-phrase tag: punctuation, function word, B/I of a run of content words |
| 4 | `repeats` | how often the word's lower-cased form (a plural `s` aside) occurs in the whole text: once, twice, 3+ (content words) |
| 5 | `word_ending` | the word's ending class: noun-like (-tion, -ment, ...), adjective-like (-al, -ive, ...), verb-like (-ize, ...), -ing, -ed, -ly, -er/-or, plural -s, none |

Id 0 of every column is padding. A model's manifest names the feature version it was trained on
(`FEATURE_VERSION`); the service refuses a model whose features it cannot compute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from textfeatures.acronyms import label_acronyms
from textfeatures.words import Word, split_words, word_of_offsets

FEATURE_VERSION = 4  # 4: acronym_rule reads Greek letters in short forms (3: definitions without parentheses)
FEATURE_NAMES = ("word_shape", "word_start", "acronym_rule", "phrase_rule", "repeats", "word_ending")
# Number of ids of each column (padding included): the sizes of the model's embedding tables.
FEATURE_SIZES = (9, 3, 7, 5, 5, 11)
ACRONYM_RULE_COLUMN = 2
ACRONYM_RULE_HIDDEN = 6  # the rule's tags withheld (pretraining drops them now and then)

# word_shape ids
_LOWER, _CAPITALISED, _ALLCAPS, _MIXED, _ALNUM, _NUMBER, _PUNCT, _OTHER = range(1, 9)
# acronym_rule ids: 1 + the index in this list
_ACRONYM_TAGS = ("O", "B-short", "I-short", "B-long", "I-long")
# phrase_rule ids
_P_PUNCT, _P_FUNCTION, PHRASE_BEGIN, PHRASE_INSIDE = range(1, 5)
# repeats ids: not a content word, then once, twice, three times or more in the text
_R_NOT_CONTENT = 1
# word_ending ids: not an alphabetic word, none of the endings, then 3 + the index in WORD_ENDINGS.
# Why: a few hundred training documents cannot teach which of the words that BPE keeps whole are
# nouns and adjectives; the ending says it for words the model has never seen. Checked in order,
# on words of 5 letters or more (the plural class: 4), the plural `s` stripped for the classes
# after -ed ("applications" is noun-like, "computers" -er/-or).
_E_NOT_WORD, _E_NONE = 1, 2
WORD_ENDINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("-ly", ("ly",)),
    ("-ing", ("ing",)),
    ("-ed", ("ed",)),
    (
        "noun",
        (
            "tion",
            "sion",
            "ment",
            "ness",
            "ity",
            "ance",
            "ence",
            "ancy",
            "ency",
            "ism",
            "ist",
            "ure",
            "ogy",
            "ics",
            "ship",
        ),
    ),
    (
        "adjective",
        ("al", "ive", "ous", "ic", "able", "ible", "ful", "less", "ary", "ory", "ant", "ent", "ar"),
    ),
    ("verb", ("ize", "ise", "ate", "ify")),
    ("-er/-or", ("er", "or")),
)
_E_PLURAL = 3 + len(WORD_ENDINGS)

# Closed-class English words (determiners, pronouns, prepositions, conjunctions, auxiliaries and
# a few very common verbs and adverbs): a keyphrase rarely starts or ends on one.
FUNCTION_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "across",
        "after",
        "again",
        "against",
        "all",
        "also",
        "although",
        "am",
        "among",
        "an",
        "and",
        "another",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "done",
        "down",
        "during",
        "each",
        "either",
        "else",
        "etc",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "however",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "least",
        "less",
        "many",
        "may",
        "me",
        "might",
        "more",
        "most",
        "much",
        "must",
        "my",
        "near",
        "neither",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "often",
        "on",
        "once",
        "one",
        "only",
        "onto",
        "or",
        "other",
        "others",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "rather",
        "same",
        "several",
        "shall",
        "she",
        "should",
        "since",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "therefore",
        "these",
        "they",
        "this",
        "those",
        "though",
        "through",
        "thus",
        "to",
        "too",
        "toward",
        "towards",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "use",
        "used",
        "uses",
        "using",
        "very",
        "via",
        "was",
        "we",
        "well",
        "were",
        "what",
        "whatever",
        "when",
        "where",
        "whereas",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
_DIGIT = re.compile(r"\d")


def word_shape(word: str) -> int:
    letters = [c for c in word if c.isalpha()]
    if not letters:
        if _DIGIT.search(word):
            return _NUMBER
        return _PUNCT if not any(c.isalnum() for c in word) else _OTHER
    if _DIGIT.search(word):
        return _ALNUM
    upper = sum(c.isupper() for c in letters)
    if upper == 0:
        return _LOWER
    if upper == len(letters) and len(letters) >= 2:
        return _ALLCAPS
    if upper >= 2:
        return _MIXED
    return _CAPITALISED if letters[0].isupper() and word[0].isalpha() else _OTHER


def phrase_tags(text: str, words: Sequence[Word]) -> list[int]:
    """Candidate phrases as runs of content words between function words and punctuation (the
    candidate rule of RAKE, Rose et al. 2010)."""
    tags: list[int] = []
    previous_content = False
    for start, end in words:
        w = text[start:end]
        if not any(c.isalnum() for c in w):
            tags.append(_P_PUNCT)
            previous_content = False
        elif w.lower() in FUNCTION_WORDS:
            tags.append(_P_FUNCTION)
            previous_content = False
        else:
            tags.append(PHRASE_INSIDE if previous_content else PHRASE_BEGIN)
            previous_content = True
    return tags


def acronym_rule_tags(text: str, words: Sequence[Word]) -> list[int]:
    """The matcher's spans (pairs, propagated short forms, caps rule) as a BIO tag per word. A
    word that a rule span covers in part counts as covered."""
    spans, _ = label_acronyms(text, caps_rule=True)
    tags = [1] * len(words)
    w = 0
    for start, end, label in spans:
        while w < len(words) and words[w][1] <= start:
            w += 1
        first = True
        k = w
        while k < len(words) and words[k][0] < end:
            tags[k] = 1 + _ACRONYM_TAGS.index(("B-" if first else "I-") + label)
            first = False
            k += 1
    return tags


def _singular(word: str) -> str | None:
    """`word` without its plural `s` ("networks" -> "network"), or None when it has none."""
    if len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return None


def word_ending(word: str) -> int:
    """The `word_ending` id of one word (of a hyphenated word, its last part)."""
    last = word.rsplit("-", 1)[-1].lower()
    if not last.isalpha():
        return _E_NOT_WORD
    singular = _singular(last)
    for k, (_, endings) in enumerate(WORD_ENDINGS):
        for form in (last,) if k < 3 or singular is None else (last, singular):
            if len(form) >= 5 and form.endswith(endings):
                return 3 + k
    return _E_PLURAL if singular is not None else _E_NONE


def repeat_counts(text: str, words: Sequence[Word], phrase: Sequence[int]) -> list[int]:
    """The `repeats` id of every word: how often its lower-cased form, singular, occurs in the text."""
    keys: list[str | None] = []
    for (start, end), tag in zip(words, phrase, strict=True):
        if tag in (PHRASE_BEGIN, PHRASE_INSIDE):
            lower = text[start:end].lower()
            keys.append(_singular(lower) or lower)
        else:
            keys.append(None)
    counts: dict[str, int] = {}
    for key in keys:
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return [_R_NOT_CONTENT if key is None else 1 + min(3, counts[key]) for key in keys]


@dataclass(frozen=True)
class TextInputs:
    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    words: list[Word]
    word_of_token: list[int]
    features: np.ndarray  # (tokens, len(FEATURE_NAMES)) int64


def text_inputs(text: str, ids: list[int], offsets: list[tuple[int, int]]) -> TextInputs:
    """Features of one tokenized text (`ids` and `offsets` from the model's tokenizer)."""
    words = split_words(text)
    word_of_token = word_of_offsets(words, offsets)
    n = len(ids)
    features = np.zeros((n, len(FEATURE_NAMES)), dtype=np.int64)
    if n:
        per_word = np.empty((len(words), 5), dtype=np.int64)
        per_word[:, 0] = [word_shape(text[s:e]) for s, e in words]
        per_word[:, 1] = acronym_rule_tags(text, words)
        phrase_of_word = phrase_tags(text, words)
        per_word[:, 2] = phrase_of_word
        per_word[:, 3] = repeat_counts(text, words, phrase_of_word)
        per_word[:, 4] = [word_ending(text[s:e]) for s, e in words]
        index = np.asarray(word_of_token, dtype=np.int64)
        starts = np.ones(n, dtype=bool)
        starts[1:] = index[1:] != index[:-1]
        features[:, 0] = per_word[index, 0]
        features[:, 1] = np.where(starts, 1, 2)
        acronym = per_word[index, 1]
        # A word's continuation tokens carry I of its tag (B on its first token only).
        begin = (acronym == 2) | (acronym == 4)
        acronym = np.where(begin & ~starts, acronym + 1, acronym)
        features[:, 2] = acronym
        phrase = per_word[index, 2]
        features[:, 3] = np.where((phrase == PHRASE_BEGIN) & ~starts, PHRASE_INSIDE, phrase)
        features[:, 4] = per_word[index, 3]
        features[:, 5] = per_word[index, 4]
    return TextInputs(
        text=text, ids=ids, offsets=offsets, words=words, word_of_token=word_of_token, features=features
    )


@dataclass(frozen=True)
class Window:
    """A run of one text's tokens that the model sees in one row: ids and their features."""

    ids: Sequence[int]
    features: np.ndarray  # (len(ids), len(FEATURE_NAMES)) int64

    def __len__(self) -> int:
        return len(self.ids)


def window(inputs: TextInputs, start: int, end: int) -> Window:
    return Window(inputs.ids[start:end], inputs.features[start:end])


def pad_batch(windows: Sequence[Window], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, features) arrays for windows of different lengths, padded with
    `pad_id` and feature id 0 (the padding id of every feature column)."""
    width = max(1, max((len(w) for w in windows), default=1))
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    features = np.zeros((len(windows), width, len(FEATURE_NAMES)), dtype=np.int64)
    for row, w in enumerate(windows):
        n = len(w)
        ids[row, :n] = w.ids
        mask[row, :n] = 1
        features[row, :n] = w.features
    return ids, mask, features


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[TextInputs]:
    """`text_inputs` of every text, tokenized without special tokens (docs/contracts.md §2)."""
    if len(texts) == 1:  # encode_batch spins up the Rust thread pool; not worth it for one text
        encodings = [tokenizer.encode(texts[0], add_special_tokens=False)]
    else:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [text_inputs(t, e.ids, e.offsets) for t, e in zip(texts, encodings, strict=True)]
