"""The corpus stage: raw corpora -> pretraining documents with weak labels (docs/contracts.md §1).

`build_corpus(cfg, data_dir, out_dir)` reads every configured source (dictd dictionaries,
MediaWiki pages and dumps, span JSONL and text files), labels each document (concepts, see
labels.py; pseudo acronyms) and writes into `out_dir`:

- `train-00000.jsonl`, ..., `valid-00000.jsonl`: one document a line, `cfg.shard_docs` a shard;
  a document goes to `valid` when the hash of its id falls below `cfg.valid_fraction`
  (deterministic, independent of order and of the other documents);
- `stats.json`: counts and timings; `config.json`: the resolved config plus a fingerprint of the
  inputs (by content), of the format version and of this package's source code.

The output is built in a temporary sibling directory and renamed into place, so `out_dir` is
either the previous complete corpus or the new complete one. When `config.json` already holds
the same fingerprint, nothing is rebuilt and the saved stats are returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from model_build.codeversion import code_version
from model_build.corpus.dictd import dictd_paths, read_dictd
from model_build.corpus.documents import RawDocument
from model_build.corpus.labels import (
    CONCEPT_LABELS,
    LATER_MENTIONS,
    PhraseIndex,
    as_term,
    concept_labels,
    link_concepts,
    term_runs,
)
from model_build.corpus.plain import read_span_jsonl, read_text_file
from model_build.corpus.roles import check_pretraining_file
from model_build.corpus.wikitext import read_mediawiki_dump, read_wikitext_dir
from textfeatures.acronyms import label_acronyms
from textfeatures.words import word_splitter

log = logging.getLogger(__name__)

# Bump when the output format or the labelling rules change: it invalidates saved corpora.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CorpusConfig:
    """Settings of the corpus stage. Relative paths are relative to the data directory."""

    # dictd databases read from `dictd_dir` (Debian: apt-get install dict-foldoc dict-jargon).
    dictd: tuple[str, ...] = ("foldoc", "jargon")
    dictd_dir: str = "/usr/share/dictd"
    # Directory of raw wikitext pages (`*.txt`, title = file name); None to skip.
    wikitext_dir: str | None = "wikitext"
    # MediaWiki XML dumps (`.xml` or `.xml.bz2`), e.g. simplewiki-latest-pages-articles.xml.bz2.
    mediawiki_dumps: tuple[str, ...] = ()
    # Span JSONL files whose *text* is used unlabelled (their gold spans are never read);
    # a record with a `links` key is a hyperlinked (concept-supervised) document.
    span_files: tuple[str, ...] = (
        "acronyms/sdu21-train.jsonl",
        "acronyms/sdu22-sci-train.jsonl",
        "concepts/inspec-train.jsonl",
        "concepts/scienceie-train.jsonl",
    )
    # Plain UTF-8 text files; one document per file, or per `text_paragraphs_per_doc` paragraphs.
    text_files: tuple[str, ...] = ()
    text_paragraphs_per_doc: int | None = None
    # Cap on documents read from each source (None = all); for quick builds and tests.
    max_docs_per_source: int | None = None
    # Concept labels (labels.py): "links" = the link spans of hyperlinked documents; "term-runs" =
    # in every document, the content-word runs holding a term of the hyperlinked sources.
    concept_labels: str = "links"
    # Later unlinked mentions of a linked anchor: "label" | "ignore" | "none" (labels.py; "links" only).
    later_mentions: str = "label"
    # Also label every token with 2+ capitals as a short form (acronyms.py); off = pairs and
    # their propagated short forms only.
    acronym_caps_rule: bool = False
    # Share of documents (by id hash) in the validation split.
    valid_fraction: float = 0.02
    shard_docs: int = 5000
    # Part of the split hash: another seed gives another (still deterministic) split.
    seed: int = 0
    # Documents with fewer characters (after stripping) are skipped.
    min_chars: int = 20

    def __post_init__(self) -> None:
        if self.concept_labels not in CONCEPT_LABELS:
            raise ValueError(f"concept_labels must be one of {CONCEPT_LABELS}, got {self.concept_labels!r}")
        if self.later_mentions not in LATER_MENTIONS:
            raise ValueError(f"later_mentions must be one of {LATER_MENTIONS}, got {self.later_mentions!r}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.shard_docs < 1:
            raise ValueError(f"shard_docs must be >= 1, got {self.shard_docs}")


@dataclass
class _Source:
    name: str
    kind: str  # dictd | wikitext | mediawiki | spans | text
    paths: list[Path] = field(default_factory=list)


def _resolve(p: str, data_dir: Path) -> Path:
    path = Path(p)
    return path if path.is_absolute() else data_dir / path


def resolve_sources(cfg: CorpusConfig, data_dir: Path) -> list[_Source]:
    """Every input that exists, leakage-checked; missing optional inputs are skipped with a
    warning, missing dictd databases raise (with the apt-get command)."""
    sources: list[_Source] = []
    for name in cfg.dictd:
        index, data = dictd_paths(name, cfg.dictd_dir)
        sources.append(_Source(name, "dictd", [index, data]))
    if not data_dir.is_dir():
        log.warning("data dir %s not found: skipping wikitext, span and text inputs under it", data_dir)
    if cfg.wikitext_dir is not None:
        d = _resolve(cfg.wikitext_dir, data_dir)
        if d.is_dir():
            pages = sorted(d.glob("*.txt"))
            for p in pages:
                check_pretraining_file(p)
            sources.append(_Source("wikitext", "wikitext", pages))
        else:
            log.warning("wikitext dir %s not found: skipped", d)
    for kind, files in (
        ("mediawiki", cfg.mediawiki_dumps),
        ("spans", cfg.span_files),
        ("text", cfg.text_files),
    ):
        for f in files:
            path = _resolve(f, data_dir)
            check_pretraining_file(path)
            if not path.is_file():
                log.warning("%s file %s not found: skipped", kind, path)
                continue
            name = path.name.split(".")[0]
            if kind == "mediawiki":
                name = name.split("-")[0] or "mediawiki"
            sources.append(_Source(name, kind, [path]))
    return sources


def corpus_fingerprint(cfg: CorpusConfig, sources: list[_Source]) -> dict[str, Any]:
    """What the corpus is made of: the inputs by content, the settings, the format version and this
    package's source code.

    Inputs count by their bytes, not their paths or mtimes: a data directory copied afresh (a new
    clone, a new container, a re-synced volume) holds the same corpus and must not send the whole
    build (pretraining included) round again. Paths and sizes are recorded for people to read but
    stay out of the digest. Hashing the ~13 MB of inputs takes well under a second.
    """
    files = []
    for src in sources:
        for p in src.paths:
            with p.open("rb") as f:
                content = hashlib.file_digest(f, "sha256").hexdigest()
            files.append({"source": src.name, "name": p.name, "sha256": content,
                          "path": str(p.resolve()), "size": p.stat().st_size})  # fmt: skip
    body = {
        "format_version": FORMAT_VERSION,
        "code_sha256": code_version("model_build.corpus", "textfeatures"),
        "config": dataclasses.asdict(cfg),
        "words": word_splitter(),  # the concept labels' term runs are runs of words
        "inputs": [(f["source"], f["name"], f["sha256"]) for f in files],
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"sha256": digest, **body, "files": files}


def _iter_source(src: _Source, cfg: CorpusConfig, counts: Counter) -> Iterator[RawDocument]:
    if src.kind == "dictd":
        yield from read_dictd(src.name, cfg.dictd_dir, counts)
    elif src.kind == "wikitext":
        yield from read_wikitext_dir(src.paths, counts=counts)
    elif src.kind == "mediawiki":
        yield from read_mediawiki_dump(src.paths[0], source=src.name, counts=counts)
    elif src.kind == "spans":
        yield from read_span_jsonl(src.paths[0], source=src.name, counts=counts)
    elif src.kind == "text":
        yield from read_text_file(src.paths[0], cfg.text_paragraphs_per_doc, source=src.name, counts=counts)
    else:  # pragma: no cover
        raise ValueError(src.kind)


def split_of(doc_id: str, valid_fraction: float, seed: int = 0) -> str:
    """`"valid"` or `"train"`, from a hash of the document id (deterministic)."""
    h = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return "valid" if int.from_bytes(h, "big") / 2**64 < valid_fraction else "train"


def _documents(src: _Source, cfg: CorpusConfig, counts: Counter) -> Iterator[RawDocument]:
    """The documents of one source, at most `cfg.max_docs_per_source` of them."""
    for n, doc in enumerate(_iter_source(src, cfg, counts)):
        if cfg.max_docs_per_source is not None and n >= cfg.max_docs_per_source:
            return
        yield doc


def collect_terms(cfg: CorpusConfig, sources: list[_Source]) -> PhraseIndex:
    """The term list of the `term-runs` labels: every link anchor of the hyperlinked documents,
    and the headwords of the dictionaries and wikis (the document id after `source:`)."""
    terms: set[str] = set()
    for src in sources:
        for doc in _documents(src, cfg, Counter()):
            if doc.links is None:
                continue
            phrases = [doc.text[s:e] for s, e in link_concepts(doc.text, doc.links)]
            if src.kind in ("dictd", "wikitext", "mediawiki"):
                phrases.append(doc.id.split(":", 1)[1])
            terms.update(t for t in map(as_term, phrases) if t is not None)
    return PhraseIndex(terms)


def label_document(doc: RawDocument, cfg: CorpusConfig, terms: PhraseIndex) -> tuple[dict[str, Any], int]:
    """The output record of one document (contracts §1) and its number of acronym pairs; `terms`
    is `collect_terms`'s list (used by `concept_labels = "term-runs"` only)."""
    concepts: list[tuple[int, int]] = []
    ignore: list[tuple[int, int]] = []
    if cfg.concept_labels == "term-runs":
        concepts = term_runs(doc.text, terms)
    elif doc.links is not None:
        concepts, ignore = concept_labels(doc.text, doc.links, cfg.later_mentions)
    acr, pairs = label_acronyms(doc.text, caps_rule=cfg.acronym_caps_rule)
    rec = {
        "id": doc.id,
        "source": doc.source,
        "text": doc.text,
        "concept_supervised": cfg.concept_labels == "term-runs" or doc.links is not None,
        "concepts": [{"start": s, "end": e} for s, e in concepts],
        "concept_ignore": [{"start": s, "end": e} for s, e in ignore],
        "acronyms": [{"start": s, "end": e, "label": lab} for s, e, lab in acr],
    }
    return rec, len(pairs)


class _ShardWriter:
    def __init__(self, out_dir: Path, split: str, shard_docs: int) -> None:
        self.out_dir, self.split, self.shard_docs = out_dir, split, shard_docs
        self.n = 0
        self.shards = 0
        self.f: TextIO | None = None

    def write(self, rec: dict[str, Any]) -> None:
        if self.f is None or self.n % self.shard_docs == 0:
            if self.f is not None:
                self.f.close()
            self.f = open(self.out_dir / f"{self.split}-{self.shards:05d}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
            self.shards += 1
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.n += 1

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
        elif self.n == 0:  # always leave at least one (empty) shard per split
            (self.out_dir / f"{self.split}-00000.jsonl").touch()
            self.shards = 1


def _saved_stats(out_dir: Path, fp: dict[str, Any]) -> dict[str, Any] | None:
    try:
        saved = json.loads((out_dir / "config.json").read_text())
        stats = json.loads((out_dir / "stats.json").read_text())
    except (OSError, ValueError):
        return None
    if saved.get("fingerprint", {}).get("sha256") != fp["sha256"]:
        return None
    return stats


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def build_corpus(cfg: CorpusConfig, data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Build (or reuse) the corpus in `out_dir`; returns the stats (see module doc)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    sources = resolve_sources(cfg, data_dir)
    fp = corpus_fingerprint(cfg, sources)
    saved = _saved_stats(out_dir, fp)
    if saved is not None:
        log.info("corpus in %s is up to date (fingerprint %s)", out_dir, fp["sha256"][:12])
        return saved

    t0 = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        stats = _write_corpus(cfg, sources, tmp)
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        config = {"config": dataclasses.asdict(cfg), "data_dir": str(data_dir), "fingerprint": fp}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _write_corpus(cfg: CorpusConfig, sources: list[_Source], tmp: Path) -> dict[str, Any]:
    writers = {s: _ShardWriter(tmp, s, cfg.shard_docs) for s in ("train", "valid")}
    terms = collect_terms(cfg, sources) if cfg.concept_labels == "term-runs" else PhraseIndex(())
    per_source: dict[str, Counter] = {}
    total: Counter = Counter()
    try:
        for src in sources:
            counts = per_source.setdefault(src.name, Counter())
            reader_counts: Counter = Counter()
            bar = _progress(cfg.max_docs_per_source, f"corpus {src.name}")
            for doc in _documents(src, cfg, reader_counts):
                bar.update(1)
                if len(doc.text.strip()) < cfg.min_chars:
                    counts["skipped_short"] += 1
                    continue
                rec, n_pairs = label_document(doc, cfg, terms)
                split = split_of(doc.id, cfg.valid_fraction, cfg.seed)
                writers[split].write(rec)
                c = Counter(
                    documents=1,
                    words=len(doc.text.split()),
                    links=len(doc.links or ()),
                    concepts=len(rec["concepts"]),
                    concept_ignore=len(rec["concept_ignore"]),
                    acronym_pairs=n_pairs,
                    short=sum(a["label"] == "short" for a in rec["acronyms"]),
                    long=sum(a["label"] == "long" for a in rec["acronyms"]),
                    labelled_documents=int(bool(rec["concepts"] or rec["acronyms"])),
                    concept_supervised_documents=int(rec["concept_supervised"]),
                    concept_supervised_words=len(doc.text.split()) if rec["concept_supervised"] else 0,
                    **{f"{split}_documents": 1},
                )
                counts.update(c)
                total.update(c)
            bar.close()
            for k, v in reader_counts.items():
                if k not in ("documents", "links"):
                    counts[f"reader_{k}"] += v
    finally:
        for w in writers.values():
            w.close()
    words = total["words"] or 1
    docs = total["documents"] or 1
    return {
        "format_version": FORMAT_VERSION,
        "documents": total["documents"],
        "terms": sum(map(len, terms.by_word.values())) + len(terms.other),
        "train_documents": total["train_documents"],
        "valid_documents": total["valid_documents"],
        "train_shards": writers["train"].shards,
        "valid_shards": writers["valid"].shards,
        "words": total["words"],
        "links": total["links"],
        "concepts": total["concepts"],
        "concept_ignore": total["concept_ignore"],
        "link_spans_per_100_words": round(100.0 * total["links"] / words, 3),
        "link_spans_per_100_words_supervised": round(
            100.0 * total["links"] / (total["concept_supervised_words"] or 1), 3
        ),
        "concept_supervised_documents": total["concept_supervised_documents"],
        "acronym_pairs": total["acronym_pairs"],
        "acronym_short_spans": total["short"],
        "acronym_long_spans": total["long"],
        "labelled_document_share": round(total["labelled_documents"] / docs, 4),
        "per_source": {k: dict(sorted(v.items())) for k, v in per_source.items()},
    }


def iter_documents(corpus_dir: Path, split: str) -> Iterator[dict[str, Any]]:
    """The documents of one split (`"train"` or `"valid"`), shard by shard, as dicts."""
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / "stats.json").exists():
        raise FileNotFoundError(
            f"{corpus_dir}: no complete corpus (stats.json missing); run the corpus stage"
        )
    for shard in sorted(corpus_dir.glob(f"{split}-*.jsonl")):
        with open(shard, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
