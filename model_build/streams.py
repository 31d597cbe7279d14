"""The tokenize stage: pretraining documents -> one token stream with aligned label and feature
streams, and the document boundaries (training windows never cross a document)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_build.atomic import write_atomically
from model_build.data import bio_labels
from model_build.model import ACRONYM_LABELS, CONCEPT_LABELS, IGNORE
from model_build.tokenizer import load_tokenizer
from textfeatures.features import FEATURE_NAMES, text_inputs

STREAM_KEYS = ("ids", "concepts", "acronyms", "features", "doc_starts")


def tokenize_corpus(
    corpus_docs: Iterable[dict], tokenizer_path: Path, out_path: Path
) -> dict[str, np.ndarray]:
    """Every document's tokens, back to back, with its weak labels and input features.

    Concept labels are IGNORE in documents without links (`concept_supervised` false) and inside
    `concept_ignore` regions, so unlinked text never teaches "nothing here is a concept".
    `doc_starts[d]` is the first token of document d (one more entry: the stream's end).
    """
    if out_path.exists():
        saved = dict(np.load(out_path))
        if set(saved) == set(STREAM_KEYS):
            return saved
    tok = load_tokenizer(tokenizer_path)
    ids: list[int] = []
    concepts: list[int] = []
    acronyms: list[int] = []
    features: list[np.ndarray] = []
    doc_starts = [0]
    for doc in tqdm(corpus_docs, desc=f"tokenize {out_path.stem}", unit="doc"):
        enc = tok.encode(doc["text"], add_special_tokens=False)
        inputs = text_inputs(doc["text"], enc.ids, enc.offsets)
        if not inputs.ids:
            continue
        ids.extend(inputs.ids)
        features.append(inputs.features.astype(np.int8))
        if doc.get("concept_supervised"):
            concept_spans = [(s["start"], s["end"], "concept") for s in doc.get("concepts", [])]
            ignore = [(s["start"], s["end"]) for s in doc.get("concept_ignore", [])]
            concepts.extend(bio_labels(inputs.offsets, concept_spans, CONCEPT_LABELS, ignore))
        else:
            concepts.extend([IGNORE] * len(inputs.ids))
        acronym_spans = [(s["start"], s["end"], s["label"]) for s in doc.get("acronyms", [])]
        acronyms.extend(bio_labels(inputs.offsets, acronym_spans, ACRONYM_LABELS))
        doc_starts.append(len(ids))
    arrays: dict[str, np.ndarray] = {
        "ids": np.asarray(ids, dtype=np.int32),
        "concepts": np.asarray(concepts, dtype=np.int16),
        "acronyms": np.asarray(acronyms, dtype=np.int16),
        "features": np.concatenate(features) if features else np.zeros((0, len(FEATURE_NAMES)), np.int8),
        "doc_starts": np.asarray(doc_starts, dtype=np.int64),
    }
    write_atomically(out_path, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]
    return arrays
