"""The corpus stage end to end: output layout (contracts §1), deterministic split, stats,
idempotent rebuild, atomic output, missing inputs and the leakage rule."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from model_build.corpus import CorpusConfig, LeakageError, build_corpus, iter_documents
from model_build.corpus import build as build_mod
from model_build.corpus.build import split_of

DICTD_DIR = Path("/usr/share/dictd")
needs_dictd = pytest.mark.skipif(
    not (DICTD_DIR / "foldoc.index").exists(),
    reason="dictd databases missing: apt-get install dict-foldoc dict-jargon",
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A small synthetic data dir: two wikitext pages, a train span file, a dev span file."""
    d = tmp_path / "data"
    (d / "wikitext").mkdir(parents=True)
    (d / "wikitext" / "Compiler.txt").write_text(
        "{{Infobox}}\nA '''compiler''' translates [[source code]] into [[machine code]]. "
        "The source code is parsed first.<ref>{{cite}}</ref>\n\n== History ==\n"
        "Early compilers were written in [[assembly language]] (AL) by hand.\n"
    )
    (d / "wikitext" / "Old.txt").write_text("#REDIRECT [[Compiler]]")
    (d / "acronyms").mkdir()
    (d / "acronyms" / "toy-train.jsonl").write_text(
        json.dumps(
            {
                "id": "T1",
                "text": "We use a controlled natural language ( CNL ) here .",
                "spans": [{"start": 0, "end": 2, "label": "short"}],
            }
        )
        + "\n"
    )
    (d / "acronyms" / "toy-dev.jsonl").write_text(
        '{"id": "D1", "text": "dev text must never be read", "spans": []}\n'
    )
    return d


def small_cfg(**kw: object) -> CorpusConfig:
    base: dict = dict(
        dictd=(),
        span_files=("acronyms/toy-train.jsonl",),
        valid_fraction=0.0,
        shard_docs=1,
        min_chars=10,
    )
    base.update(kw)
    return CorpusConfig(**base)


def read_all(out: Path) -> list[dict]:
    return list(iter_documents(out, "train")) + list(iter_documents(out, "valid"))


def test_output_layout_and_labels(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    stats = build_corpus(small_cfg(), data_dir, out)
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "config.json",
        "stats.json",
        "train-00000.jsonl",
        "train-00001.jsonl",
        "valid-00000.jsonl",
    ]
    docs = {d["id"]: d for d in read_all(out)}
    assert set(docs) == {"wikitext:Compiler", "toy-train:T1"}
    wiki = docs["wikitext:Compiler"]
    assert wiki["text"] == (
        "A compiler translates source code into machine code. The source code is parsed first.\n\n"
        "Early compilers were written in assembly language (AL) by hand."
    )
    assert wiki["source"] == "wikitext" and wiki["concept_supervised"] is True
    t = wiki["text"]
    assert [t[c["start"] : c["end"]] for c in wiki["concepts"]] == [
        "source code",
        "machine code",
        "source code",  # later unlinked mention, labelled (default later_mentions="label")
        "assembly language",
    ]
    assert wiki["concept_ignore"] == []
    assert [(t[a["start"] : a["end"]], a["label"]) for a in wiki["acronyms"]] == [
        ("assembly language", "long"),
        ("AL", "short"),
    ]
    toy = docs["toy-train:T1"]
    assert toy["concept_supervised"] is False and toy["concepts"] == [] and toy["concept_ignore"] == []
    assert [(toy["text"][a["start"] : a["end"]], a["label"]) for a in toy["acronyms"]] == [
        ("controlled natural language", "long"),
        ("CNL", "short"),
    ]
    assert stats["documents"] == 2 and stats["train_documents"] == 2 and stats["valid_documents"] == 0
    assert stats["acronym_pairs"] == 2 and stats["links"] == 3 and stats["concepts"] == 4
    assert stats["labelled_document_share"] == 1.0
    assert stats["per_source"]["wikitext"]["reader_skipped_redirect"] == 1
    # Link density counted by hand: 3 links ([[source code]], [[machine code]], [[assembly
    # language]]; the redirect page is skipped) in 24 + 11 = 35 whitespace-separated words
    # ("A compiler ... by hand." is 24, "We use a controlled ... here ." is 11); only the
    # wikitext page (24 words) is concept-supervised.
    assert stats["words"] == 35
    assert stats["link_spans_per_100_words"] == 8.571  # 100 * 3 / 35
    assert stats["link_spans_per_100_words_supervised"] == 12.5  # 100 * 3 / 24
    saved = json.loads((out / "stats.json").read_text())
    assert saved == stats
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["later_mentions"] == "label"
    assert {Path(f["path"]).name for f in config["fingerprint"]["files"]} == {
        "Compiler.txt",
        "Old.txt",
        "toy-train.jsonl",
    }


def test_later_mentions_ignore(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    build_corpus(small_cfg(later_mentions="ignore"), data_dir, out)
    wiki = next(d for d in read_all(out) if d["id"] == "wikitext:Compiler")
    t = wiki["text"]
    assert [t[c["start"] : c["end"]] for c in wiki["concepts"]] == [
        "source code",
        "machine code",
        "assembly language",
    ]
    assert [t[c["start"] : c["end"]] for c in wiki["concept_ignore"]] == ["source code"]


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="later_mentions"):
        CorpusConfig(later_mentions="maybe")
    with pytest.raises(ValueError, match="valid_fraction"):
        CorpusConfig(valid_fraction=1.5)


def test_idempotent_rebuild(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    first = build_corpus(small_cfg(), data_dir, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = build_corpus(small_cfg(), data_dir, out)
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # A changed input or setting rebuilds.
    page = data_dir / "wikitext" / "Compiler.txt"
    page.write_text(page.read_text() + "\nMore text about [[linkers]] here.\n")
    third = build_corpus(small_cfg(), data_dir, out)
    assert third["links"] == 4
    fourth = build_corpus(small_cfg(later_mentions="none"), data_dir, out)
    assert fourth["concepts"] == 4


def test_term_runs_label_every_document(data_dir: Path, tmp_path: Path) -> None:
    """`concept_labels="term-runs"`: terms from the wiki's anchors and title, matched in every
    document (the unlinked training text too), each grown to its run of content words."""
    out = tmp_path / "corpus"
    stats = build_corpus(small_cfg(concept_labels="term-runs"), data_dir, out)
    docs = {d["id"]: d for d in read_all(out)}
    wiki, toy = docs["wikitext:Compiler"], docs["toy-train:T1"]
    t = wiki["text"]
    # "compilers" is no term ("compiler" is, as a title, but not on a word boundary here).
    assert [t[c["start"] : c["end"]] for c in wiki["concepts"]] == [
        "compiler translates source code",
        "machine code",
        "source code",
        "assembly language",
    ]
    assert wiki["concept_ignore"] == []
    assert toy["concept_supervised"] is True and toy["concepts"] == []
    assert stats["terms"] == 4  # source code, machine code, assembly language, compiler
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["concept_labels"] == "term-runs"


def test_atomic_output_on_failure(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "corpus"
    build_corpus(small_cfg(), data_dir, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = {"n": 0}
    real = build_mod.label_document

    def failing(doc, cfg, terms):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(doc, cfg, terms)

    monkeypatch.setattr(build_mod, "label_document", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_corpus(small_cfg(later_mentions="ignore"), data_dir, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "data"]  # no temp dir left


def test_missing_inputs_are_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "corpus"
    with caplog.at_level(logging.WARNING):
        stats = build_corpus(small_cfg(), tmp_path / "no-such-dir", out)
    assert stats["documents"] == 0
    assert "not found" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "stats.json",
        "train-00000.jsonl",
        "valid-00000.jsonl",
    ]
    assert list(iter_documents(out, "train")) == []


def test_missing_dictd_raises_with_install_hint(tmp_path: Path) -> None:
    cfg = small_cfg(dictd=("foldoc",), dictd_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dict-foldoc dict-jargon"):
        build_corpus(cfg, tmp_path, tmp_path / "corpus")


def test_dev_file_in_config_raises(data_dir: Path, tmp_path: Path) -> None:
    cfg = small_cfg(span_files=("acronyms/toy-train.jsonl", "acronyms/toy-dev.jsonl"))
    with pytest.raises(LeakageError, match="toy-dev.jsonl"):
        build_corpus(cfg, data_dir, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_split_is_deterministic_by_id() -> None:
    ids = [f"doc{i}" for i in range(2000)]
    splits = [split_of(i, 0.1) for i in ids]
    assert splits == [split_of(i, 0.1) for i in ids]
    assert 150 < splits.count("valid") < 250
    assert [split_of(i, 0.1, seed=1) for i in ids] != splits
    assert all(split_of(i, 0.0) == "train" for i in ids)


@needs_dictd
def test_dictd_sources_in_build(tmp_path: Path) -> None:
    cfg = CorpusConfig(
        wikitext_dir=None, span_files=(), max_docs_per_source=200, valid_fraction=0.1, shard_docs=100
    )
    stats = build_corpus(cfg, tmp_path, tmp_path / "corpus")
    assert (
        stats["per_source"]["foldoc"]["documents"] + stats["per_source"]["foldoc"].get("skipped_short", 0)
        == 200
    )
    assert set(stats["per_source"]) == {"foldoc", "jargon"}
    docs = read_all(tmp_path / "corpus")
    assert len(docs) == stats["documents"] and stats["valid_documents"] > 0
    for d in docs:
        assert d["concept_supervised"] is True
        for key in ("concepts", "concept_ignore", "acronyms"):
            spans = [(s["start"], s["end"]) for s in d[key]]
            assert spans == sorted(spans)
            assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:], strict=False))
            assert all(0 <= s < e <= len(d["text"]) for s, e in spans)


def test_fingerprint_follows_content_not_paths_or_mtimes(data_dir: Path, tmp_path: Path) -> None:
    """A data directory copied afresh (new clone, new container) is the same corpus: no rebuild.
    The same bytes under new mtimes and a new path keep the digest; one changed byte does not."""
    out = tmp_path / "corpus"
    build_corpus(small_cfg(), data_dir, out)
    before = json.loads((out / "config.json").read_text())["fingerprint"]["sha256"]
    copy = tmp_path / "copied-data"
    shutil.copytree(data_dir, copy)  # new path, new mtimes
    for page in copy.rglob("*"):
        os.utime(page, ns=(1, 1))
    stats_mtime = (out / "stats.json").stat().st_mtime_ns
    build_corpus(small_cfg(), copy, out)
    assert json.loads((out / "config.json").read_text())["fingerprint"]["sha256"] == before
    assert (out / "stats.json").stat().st_mtime_ns == stats_mtime  # reused, not rebuilt
    page = copy / "wikitext" / "Old.txt"
    page.write_bytes(page.read_bytes() + b" ")
    build_corpus(small_cfg(), copy, out)
    assert json.loads((out / "config.json").read_text())["fingerprint"]["sha256"] != before
