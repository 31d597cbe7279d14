"""Readers for user corpora: span JSONL files and plain text files.

- Span JSONL (`{"id", "text", ...}` a line, DESIGN.md): the text is used unlabelled; gold
  `spans` are never read. A record with a `links` key (`[{"start", "end", "target"}]`) is a
  hyperlinked document (concept-supervised).
- Plain text (`.txt`, UTF-8): paragraphs are separated by blank lines; one document per file, or
  one per `paragraphs_per_doc` paragraphs.

Both refuse dev/test files (`roles.check_pretraining_file`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from model_build.corpus.documents import RawDocument
from model_build.corpus.roles import check_pretraining_file

_BLANK = re.compile(r"\n[ \t]*\n")


def read_span_jsonl(
    path: str | Path, source: str | None = None, counts: Counter | None = None
) -> Iterator[RawDocument]:
    """Documents of a span JSONL file (gold spans ignored, `links` kept)."""
    path = Path(path)
    check_pretraining_file(path)
    source = source or path.name.split(".")[0]
    counts = counts if counts is not None else Counter()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            rec = json.loads(line)
            links = None
            if "links" in rec:
                links = [(int(x["start"]), int(x["end"]), str(x.get("target", ""))) for x in rec["links"]]
                counts["links"] += len(links)
            counts["documents"] += 1
            yield RawDocument(f"{source}:{rec.get('id', n)}", source, rec["text"], links)


def read_text_file(
    path: str | Path,
    paragraphs_per_doc: int | None = None,
    source: str | None = None,
    counts: Counter | None = None,
) -> Iterator[RawDocument]:
    """Documents of a plain text file: the whole file, or groups of `paragraphs_per_doc`
    blank-line separated paragraphs (streamed paragraph by paragraph)."""
    path = Path(path)
    check_pretraining_file(path)
    source = source or path.name.split(".")[0]
    counts = counts if counts is not None else Counter()
    group: list[str] = []
    n_doc = 0

    def flush() -> RawDocument:
        nonlocal n_doc
        doc = RawDocument(f"{source}:{path.name}#{n_doc}", source, "\n\n".join(group), None)
        n_doc += 1
        counts["documents"] += 1
        group.clear()
        return doc

    para: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                para.append(line.rstrip("\n"))
                continue
            if para:
                group.append("\n".join(para).strip())
                para = []
                if paragraphs_per_doc and len(group) >= paragraphs_per_doc:
                    yield flush()
        if para:
            group.append("\n".join(para).strip())
    if group:
        yield flush()
