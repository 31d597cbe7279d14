"""The per-character measures that let tokenizers of different vocabularies compare."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.pretraining_curves import chars_per_token, unigram_nats_per_char


def test_unigram_entropy_per_character() -> None:
    lengths = np.array([1.0, 2.0, 2.0, 2.0, 2.0])  # token 0 unused
    uniform = np.array([1, 2, 3, 4] * 5)
    assert chars_per_token(uniform, lengths) == 2.0
    assert unigram_nats_per_char(uniform, lengths) == pytest.approx(math.log(4) / 2)
    # One token type, repeated: no information at all.
    assert unigram_nats_per_char(np.array([0] * 8), lengths) == 0.0
