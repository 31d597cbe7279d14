"""The parts of speech WordNet 3.0 allows a word, inflected forms included.

Why: concept decoding (`textfeatures.decode`, `noun_final`) cuts a span's end words that WordNet
knows only as a verb, adjective or adverb (`plaintiff filed`, `patients received`): word endings
(`word_ending`) cannot tell `filed` from `field`.

The lexicon ships in this package (`lexicons/wordnet-pos.tsv.gz`), so the build and the service read
the same one and neither needs WordNet installed. It is generated from Debian's `wordnet-base`
(`python -m textfeatures.wordnet /usr/share/wordnet`; tests/textfeatures checks that the shipped
file is what that command writes). Lines are `L<TAB>lemma<TAB>mask` for every one-word lemma of
the index files and `X<TAB>form<TAB>mask` for the irregular forms of the exception lists (`went`,
`mice`, `better`), with the bits of the parts of speech whose lemma the form is. Regular
inflections are found at lookup with WordNet's own detachment rules (`morphy`): `knocked` ->
`knock` (verb), `patients` -> `patient` (noun).
"""

from __future__ import annotations

import gzip
import sys
from functools import lru_cache
from pathlib import Path

NOUN, VERB, ADJECTIVE, ADVERB = 1, 2, 4, 8
_FILES = (("noun", NOUN), ("verb", VERB), ("adj", ADJECTIVE), ("adv", ADVERB))
LEXICON = Path(__file__).resolve().parent / "lexicons" / "wordnet-pos.tsv.gz"

# WordNet's detachment rules (morphy(7WN)): an inflected ending and what replaces it in the lemma.
_DETACHMENT = (
    (NOUN, (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
            ("men", "man"), ("ies", "y"))),
    (VERB, (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
            ("ing", ""))),
    (ADJECTIVE, (("er", ""), ("est", ""), ("er", "e"), ("est", "e"))),
)  # fmt: skip


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, int], dict[str, int]]:
    """(lemma -> mask, irregular form -> mask), read once (~0.2 s)."""
    lemmas: dict[str, int] = {}
    irregular: dict[str, int] = {}
    with gzip.open(LEXICON, "rt", encoding="utf-8") as f:
        for line in f:
            kind, word, mask = line.rstrip("\n").split("\t")
            (lemmas if kind == "L" else irregular)[word] = int(mask)
    return lemmas, irregular


def preload() -> None:
    """Read the lexicon now (a service loading a model that needs it), not in the first request."""
    _lexicon()


@lru_cache(maxsize=65536)
def pos_mask(word: str) -> int:
    """Bits of the parts of speech WordNet allows the lower-cased `word` (0: not in WordNet)."""
    lemmas, irregular = _lexicon()
    mask = lemmas.get(word, 0) | irregular.get(word, 0)
    for part, rules in _DETACHMENT:
        if mask & part:
            continue
        for ending, replacement in rules:
            stem = word[: -len(ending)]
            if stem and word.endswith(ending) and lemmas.get(stem + replacement, 0) & part:
                mask |= part
                break
    return mask


def lexicon_lines(wordnet_dir: Path) -> list[str]:
    """The lexicon's lines, from WordNet's `index.*` and `*.exc` files (sorted: reproducible)."""
    lemmas: dict[str, int] = {}
    for name, bit in _FILES:
        for line in (wordnet_dir / f"index.{name}").read_text(encoding="utf-8").splitlines():
            if line.startswith(" "):  # the licence header
                continue
            lemma = line.split(" ", 1)[0]
            if "_" not in lemma:  # one-word lemmas: decoding looks up one word at a time
                lemmas[lemma] = lemmas.get(lemma, 0) | bit
    irregular: dict[str, int] = {}
    for name, bit in _FILES:
        for line in (wordnet_dir / f"{name}.exc").read_text(encoding="utf-8").splitlines():
            form, *bases = line.split()
            if "_" not in form and any(lemmas.get(b, 0) & bit for b in bases):
                irregular[form] = irregular.get(form, 0) | bit
    return [f"L\t{w}\t{m}" for w, m in sorted(lemmas.items())] + [
        f"X\t{w}\t{m}" for w, m in sorted(irregular.items())
    ]


def lexicon_bytes(wordnet_dir: Path) -> bytes:
    """The lexicon file, byte for byte the same for the same WordNet files (gzip without a time)."""
    return gzip.compress(("\n".join(lexicon_lines(wordnet_dir)) + "\n").encode("utf-8"), mtime=0)


if __name__ == "__main__":
    LEXICON.parent.mkdir(exist_ok=True)
    LEXICON.write_bytes(lexicon_bytes(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet")))
    print(f"wrote {LEXICON}")
