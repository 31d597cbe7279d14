"""BPE tokenizer trained on the pretraining text.

Cased (acronyms need case), no normalizer (offsets stay exact), whitespace + isolated punctuation +
digit pre-tokenization so that raw text (`language (CNL)`) and the pre-tokenized SDU-2021 text
(`language ( CNL )`) give the same tokens. See docs/contracts.md section 2.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model_build.atomic import write_atomically

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, MASK]  # ids 0, 1, 2


def new_tokenizer() -> Tokenizer:
    # "##" marks word-internal pieces, so the encoder can tell word starts (where spans begin).
    tok = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=False),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, out_path: Path) -> Tokenizer:
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        # Every printable ASCII character is in the vocabulary even if the corpus lacks it.
        initial_alphabet=list(string.printable.strip()),
        show_progress=True,
    )
    tok.train_from_iterator(_batched(texts), trainer=trainer)
    for i, name in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(name) == i, f"special token {name} must have id {i}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out_path, lambda tmp: tok.save(str(tmp)))
    return tok


def _batched(texts: Iterable[str], size: int = 256) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
