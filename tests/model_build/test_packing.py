"""Packed pretraining rows: several documents in one row read exactly as each document alone."""

from __future__ import annotations

import numpy as np
import torch

from model_build.config import PretrainConfig
from model_build.model import Encoder, ModelConfig
from model_build.pretrain import make_batch
from textfeatures.features import FEATURE_NAMES

MODEL = ModelConfig(
    vocab_size=50, hidden=32, layers=2, heads=2, intermediate=64, max_positions=32, dropout=0.0
)


def _stream(lengths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    return {
        "ids": rng.integers(5, MODEL.vocab_size, n).astype(np.int32),
        "concepts": np.zeros(n, np.int16),
        "acronyms": np.zeros(n, np.int16),
        "features": np.zeros((n, len(FEATURE_NAMES)), np.int8),
        "doc_starts": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }


def test_a_packed_row_reads_each_document_as_if_alone() -> None:
    torch.manual_seed(0)
    encoder = Encoder(MODEL).eval()
    ids = torch.randint(5, MODEL.vocab_size, (1, 20))
    features = torch.zeros(1, 20, len(FEATURE_NAMES), dtype=torch.long)
    segments = torch.tensor([[0] * 7 + [1] * 9 + [2] * 4])
    mask = torch.ones(1, 20, dtype=torch.long)
    with torch.no_grad():
        packed = encoder.encode(ids, mask, features, segments)
        for start, end in ((0, 7), (7, 16), (16, 20)):
            alone = encoder.encode(ids[:, start:end], mask[:, start:end], features[:, start:end])
            torch.testing.assert_close(packed[:, start:end], alone, atol=1e-5, rtol=1e-5)
        # Without segments the documents see each other: the check above can fail.
        glued = encoder.encode(ids, mask, features)
    assert not torch.allclose(glued[:, 7:16], packed[:, 7:16], atol=1e-3)


def test_packed_batches_fill_every_slot_and_mark_documents() -> None:
    lengths = [3, 40, 7, 1, 12, 60, 5, 9]
    stream = _stream(lengths)
    # The concept label stream carries each token's document index, so the batch shows which
    # document every slot came from.
    stream["concepts"] = np.repeat(np.arange(len(lengths)), lengths).astype(np.int16)
    cfg = PretrainConfig(batch_size=16, seq_len=24, pack_documents=True)
    for step in range(5):
        batch = make_batch(stream, cfg, step, 0, MODEL.vocab_size)
        assert bool(batch["attention_mask"].all())  # no padding
        documents = batch["concepts"].numpy()
        assert (np.diff(documents, axis=1) >= 0).all()  # consecutive tokens of the stream
        assert (batch["segments"].numpy() == documents + 1).all()
    unpacked = make_batch(stream, PretrainConfig(batch_size=16, seq_len=24, pack_documents=False), 0, 0, 50)
    assert "segments" not in unpacked
    assert not bool(unpacked["attention_mask"].all())  # windows stop at their document's end
