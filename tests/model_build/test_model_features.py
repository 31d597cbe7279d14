"""Which token-feature columns an encoder reads (`ModelConfig.ignored_features`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model_build.config import get_config
from model_build.model import Encoder, ModelConfig
from textfeatures.features import FEATURE_NAMES, FEATURE_SIZES

MODEL = ModelConfig(
    vocab_size=50, hidden=32, layers=1, heads=2, intermediate=64, max_positions=32, dropout=0.0
)


def _encode(encoder: Encoder, features: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)
    ids = torch.randint(5, MODEL.vocab_size, (1, 12))
    with torch.no_grad():
        return encoder.encode(ids, torch.ones(1, 12, dtype=torch.long), features)


def _features(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    columns = [torch.randint(1, size, (1, 12, 1), generator=g) for size in FEATURE_SIZES]
    return torch.cat(columns, dim=-1)


def test_an_encoder_reads_no_signal_from_its_ignored_columns() -> None:
    ignored = ("acronym_rule", "phrase_rule")
    torch.manual_seed(0)
    encoder = Encoder(dataclasses.replace(MODEL, ignored_features=ignored)).eval()
    base = _features(0)
    for k, name in enumerate(FEATURE_NAMES):
        changed = base.clone()
        changed[..., k] = _features(1)[..., k]
        moved = not torch.allclose(_encode(encoder, base), _encode(encoder, changed))
        assert moved is (name not in ignored), name


def test_the_default_reads_every_column_and_the_ablation_not_the_rules() -> None:
    assert len(Encoder(MODEL).feature_emb) == len(FEATURE_NAMES)
    ablation = get_config("small-no-rule-features").model
    assert set(ablation.ignored_features) == {"acronym_rule", "phrase_rule"}
    assert get_config("small").model.ignored_features == ()


def test_an_unknown_column_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no feature column"):
        Encoder(dataclasses.replace(MODEL, ignored_features=("shape",)))
