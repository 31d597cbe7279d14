"""The corpus stage: raw hyperlinked text -> pretraining documents with aligned weak labels.

Public entry points (see `build.py` and docs/corpus.md):

- `CorpusConfig`, `build_corpus(cfg, data_dir, out_dir) -> stats`, `iter_documents(dir, split)`;
- `file_role(path)`, `LeakageError` (the leakage rule);
- readers: `read_dictd`, `read_mediawiki_dump`, `read_wikitext_dir`, `read_span_jsonl`,
  `read_text_file`; converters/labellers: `wikitext_to_text`, `concept_labels`,
  `label_acronyms`, `find_pairs`.

Names are imported lazily so that `python -m model_build.corpus.acronyms` runs cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model_build.corpus.build import CorpusConfig, build_corpus, iter_documents
    from model_build.corpus.dictd import read_dictd
    from model_build.corpus.labels import concept_labels
    from model_build.corpus.plain import read_span_jsonl, read_text_file
    from model_build.corpus.roles import LeakageError, check_pretraining_file, file_role
    from model_build.corpus.wikitext import read_mediawiki_dump, read_wikitext_dir, wikitext_to_text
    from textfeatures.acronyms import find_pairs, label_acronyms

_EXPORTS = {
    "CorpusConfig": "build",
    "build_corpus": "build",
    "iter_documents": "build",
    "file_role": "roles",
    "check_pretraining_file": "roles",
    "LeakageError": "roles",
    "read_dictd": "dictd",
    "read_mediawiki_dump": "wikitext",
    "read_wikitext_dir": "wikitext",
    "wikitext_to_text": "wikitext",
    "read_span_jsonl": "plain",
    "read_text_file": "plain",
    "concept_labels": "labels",
}

__all__ = [
    "CorpusConfig",
    "LeakageError",
    "build_corpus",
    "check_pretraining_file",
    "concept_labels",
    "file_role",
    "find_pairs",
    "iter_documents",
    "label_acronyms",
    "read_dictd",
    "read_mediawiki_dump",
    "read_span_jsonl",
    "read_text_file",
    "read_wikitext_dir",
    "wikitext_to_text",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"model_build.corpus.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'model_build.corpus' has no attribute {name!r}")
