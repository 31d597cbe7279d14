"""Readers of the corpus stage: dictd (FOLDOC / Jargon), wikitext and MediaWiki dumps, span
JSONL and plain text, and the leakage rule. Exact expectations, nothing cached."""

from __future__ import annotations

import bz2
import json
import os
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from model_build.corpus.dictd import b64_decode, dictd_paths, parse_entry, parse_links, read_dictd
from model_build.corpus.plain import read_span_jsonl, read_text_file
from model_build.corpus.roles import LeakageError, check_pretraining_file, file_role
from model_build.corpus.wikitext import (
    iter_dump_pages,
    read_mediawiki_dump,
    read_wikitext_dir,
    strip_templates,
    wikitext_to_text,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
WIKITEXT = DATA_DIR / "wikitext"
DICTD_DIR = Path("/usr/share/dictd")


def anchors(text: str, links: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    return [(text[s:e], target) for s, e, target in links]


# ------------------------------------------------------------------------------ leakage rule


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("sdu21-dev.jsonl", "dev"),
        ("inspec_dev.jsonl", "dev"),
        ("dev.txt", "dev"),
        ("scienceie-test.jsonl", "test"),
        ("x_test.jsonl", "test"),
        ("test.txt", "test"),
        ("sdu21-train.jsonl", "train"),
        ("train.txt", "train"),
        ("simplewiki-latest-pages-articles.xml.bz2", "unlabelled"),
        ("enwiki-latest.xml.bz2", "unlabelled"),
        ("inspec-valid.jsonl", "dev"),
        ("inspec-validation.jsonl", "dev"),
        ("conll_val.txt", "dev"),
        ("contest.txt", "unlabelled"),
        ("attrain.jsonl", "unlabelled"),
        ("foldoc.index", "unlabelled"),
        ("corpus.txt", "unlabelled"),
    ],
)
def test_file_role(name: str, role: str) -> None:
    assert file_role(Path("/some/dir") / name) == role


def test_pretraining_readers_refuse_dev_and_test_files(tmp_path: Path) -> None:
    for name in ("inspec-dev.jsonl", "sdu21_test.jsonl"):
        p = tmp_path / name
        p.write_text('{"id": "1", "text": "some text", "spans": []}\n')
        with pytest.raises(LeakageError, match="refusing to read a (dev|test) file for pretraining"):
            list(read_span_jsonl(p))
    t = tmp_path / "notes-dev.txt"
    t.write_text("hello\n")
    with pytest.raises(LeakageError):
        list(read_text_file(t))
    x = tmp_path / "wiki-test.xml"
    x.write_text("<mediawiki/>")
    with pytest.raises(LeakageError):
        list(read_mediawiki_dump(x))
    check_pretraining_file(tmp_path / "sdu21-train.jsonl")  # no error


# ------------------------------------------------------------------------------------- dictd


def test_b64_offsets() -> None:
    assert b64_decode("A") == 0
    assert b64_decode("/") == 63
    assert b64_decode("BA") == 64
    assert b64_decode("Gb9L") == 6 * 64**3 + 27 * 64**2 + 61 * 64 + 11


def test_dictd_links_trails_external_and_literal_braces() -> None:
    assert parse_links("See {compiler}s and {parse tree}.") == (
        "See compilers and parse tree.",
        [(4, 13, "compiler"), (18, 28, "parse tree")],
        0,
    )
    # External links keep their text, unlinked; a URL-only one vanishes.
    assert parse_links("A {Home page (http://example.com/)} and {(rfc:1034)}.") == (
        "A Home page and .",
        [],
        2,
    )
    # FOLDOC's {display (entry)} form links the display text to the entry.
    assert parse_links("{loops (loop)} and {x;y} and {}") == ("loops and {x;y} and {}", [(0, 5, "loop")], 0)
    # Braces in maths and code stay literal; LaTeX entries are real links.
    assert parse_links("lub { f z : z in Z } and {\\subseteq}") == (
        "lub { f z : z in Z } and \\subseteq",
        [(25, 34, "\\subseteq")],
        0,
    )
    assert parse_links("if (0) {\n  code();\n}") == ("if (0) {\n  code();\n}", [], 0)


def test_dictd_entry_header_domain_and_date_are_dropped() -> None:
    raw = (
        "abstract syntax\n\n   <language, data> A form of {representation}\n   of data.\n\n"
        "   See {concrete syntax\n   (concrete syntax)}.\n\n   (1998-05-26)\n"
    )
    assert parse_entry(raw) == (
        "abstract syntax",
        "A form of representation of data.\n\nSee concrete syntax.",
        [(10, 24, "representation"), (39, 54, "concrete syntax")],
        0,
    )
    assert parse_entry("00-database-short\n     The dictionary\n") is None


def test_foldoc_real_entries() -> None:
    counts: Counter = Counter()
    docs = {}
    for doc in read_dictd("foldoc", DICTD_DIR, counts):
        if doc.id in ("foldoc:abstract syntax", "foldoc:additive", "foldoc:A3D"):
            docs[doc.id] = doc
    a = docs["foldoc:abstract syntax"]
    assert a.source == "foldoc"
    assert a.text.startswith(
        "A form of representation of data that is independent of machine-oriented structures and "
        "encodings and also of the physical representation of the data."
    )
    assert anchors(a.text, a.links or []) == [
        ("compiler", "compiler"),
        ("abstract syntax tree", "abstract syntax tree"),
        ("identifier", "identifier"),
        ("concrete syntax", "concrete syntax"),
        ("parse tree", "parse tree"),
        ("abstract syntax tree", "abstract syntax tree"),
    ]
    assert not a.text.rstrip().endswith("(1998-05-26)")
    # Literal maths braces are kept as text; the maths lines keep their line breaks.
    add = docs["foldoc:additive"]
    assert "f (lub Z)  =  lub { f z : z in Z }" in add.text
    assert anchors(add.text, add.links or []) == [
        ("lubs", "lubs"),
        ("cpos", "cpos"),
        ("continuous", "continuous"),
        ("LaTeX", "LaTeX"),
        ("\\subseteq", "\\subseteq"),
    ]
    # An entry whose only other link is a bare URL: no link spans, URL gone.
    a3d = docs["foldoc:A3D"]
    assert "http" not in a3d.text and "{" not in a3d.text
    assert counts["documents"] > 11000 and counts["links"] > 50000 and counts["external_links"] > 2000


def test_jargon_link_trail() -> None:
    foo = next(d for d in read_dictd("jargon", DICTD_DIR) if d.id == "jargon:foo")
    assert foo.text.startswith("1. interj. Term of disgust.\n\n2. [very common] Used very generally")
    assert anchors(foo.text, foo.links or [])[:3] == [
        ("metasyntactic variables", "metasyntactic variable"),
        ("bar", "bar"),
        ("baz", "baz"),
    ]


def test_missing_dictd_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dict-foldoc dict-jargon"):
        dictd_paths("foldoc", tmp_path)


# -------------------------------------------------------------------------------- wikitext


def test_nested_templates() -> None:
    assert strip_templates("A {{Infobox|name={{nested|x={{deeper}}}}|y=1}}B{{{param}}}C") == "A BC"
    assert wikitext_to_text("x {{a|{{b}}}} y") == ("x y", [])


def test_link_forms_and_trails() -> None:
    text, links = wikitext_to_text("The [[bank]]s of the [[river|River]]ine and [[Foo (bar)|]] here.")
    assert text == "The banks of the Riverine and Foo here."
    assert links == [(4, 9, "Bank"), (17, 25, "River"), (30, 33, "Foo (bar)")]


def test_refs_comments_tables() -> None:
    assert wikitext_to_text(
        "Text.<ref name=a>{{cite web|url=x}}</ref> More<ref name=b/> end.<!-- [[No]] -->"
    ) == (
        "Text. More end.",
        [],
    )
    text, links = wikitext_to_text(
        "Before\n{| class=wikitable\n|-\n| [[Cell]] || x\n|}\nAfter [[Target#Sec|anchor]]."
    )
    assert (text, links) == ("Before\nAfter anchor.", [(13, 19, "Target")])


def test_files_categories_interlanguage_dropped() -> None:
    src = "[[File:Foo.jpg|thumb|A caption with [[Link]].]]Kept [[Category:Things]][[de:Ding]] text."
    assert wikitext_to_text(src) == ("Kept text.", [])
    src = "'''Bold''' and ''italic'' and '''''both''''' [http://example.com an example] [[wikt:word|word]]."
    assert wikitext_to_text(src) == ("Bold and italic and both an example word.", [])


def test_headings_become_paragraph_breaks() -> None:
    text, links = wikitext_to_text(
        "== Heading ==\nPara one [[a|alpha]].\n\n=== Sub ===\n* item [[b]]\n* item two"
    )
    assert text == "Para one alpha.\n\nitem b\nitem two"
    assert links == [(9, 14, "A"), (22, 23, "B")]


def test_real_page_chemical_biology() -> None:
    text, links = wikitext_to_text((WIKITEXT / "Chemical-biology.txt").read_text(encoding="utf-8"))
    paras = text.split("\n\n")
    assert paras[0] == (
        "Chemical biology is a scientific discipline spanning the fields of chemistry, biology, and "
        "physics. It involves the application of chemical techniques, tools, and analyses, and often "
        "compounds produced through synthetic chemistry, to the study and manipulation of biological "
        "systems. Chemical biologists attempt to use chemical principles to modulate systems to either "
        "investigate the underlying biology or create new function. Research done by chemical biologists "
        "is often closer related to that of cell biology than biochemistry. Biochemists study the "
        "chemistry of biomolecules and regulation of biochemical pathways within cells and tissues, e.g. "
        "cAMP or cGMP, while chemical biologists deal with novel chemical compounds applied to biology."
    )
    assert anchors(text, links)[:13] == [
        ("chemistry", "Chemistry"),
        ("biology", "Biology"),
        ("physics", "Physics"),
        ("synthetic chemistry", "Chemical synthesis"),
        ("cell biology", "Cell biology"),
        ("biochemistry", "Biochemistry"),
        ("biochemistry", "Biochemistry"),
        ("genetics", "Genetics"),
        ("molecular biology", "Molecular biology"),
        ("mutagenesis", "Site-directed mutagenesis"),
        ("in vitro", "In vitro"),
        ("in vivo", "In vivo"),
        ("small molecules", "Small molecule"),  # [[small molecule]]s
    ]
    assert links[0][0] == paras[0].index("chemistry")


def test_real_page_rndis_refs_and_bold() -> None:
    text, links = wikitext_to_text((WIKITEXT / "RNDIS.txt").read_text(encoding="utf-8"))
    assert text.split("\n\n")[0] == (
        "The Remote Network Driver Interface Specification (RNDIS) is a Microsoft proprietary protocol "
        "used mostly on top of USB. It provides a virtual Ethernet link to most versions of the Windows, "
        "Linux, and FreeBSD operating systems. A partial RNDIS specification is available from Microsoft, "
        "but Windows implementations have been observed to issue requests not included in that "
        "specification, and to have undocumented constraints."
    )
    assert anchors(text, links)[:7] == [
        ("Microsoft", "Microsoft"),
        ("proprietary protocol", "Proprietary protocol"),
        ("USB", "USB"),
        ("Ethernet", "Ethernet"),
        ("Windows", "Microsoft Windows"),
        ("Linux", "Linux"),
        ("FreeBSD", "FreeBSD"),
    ]


def test_real_page_bodmin_pronunciation_template() -> None:
    text, links = wikitext_to_text((WIKITEXT / "Bodmin.txt").read_text(encoding="utf-8"))
    assert text.split("\n\n")[0] == (
        "Bodmin is a civil parish and historic town in Cornwall, England, United Kingdom. "
        "It is situated south-west of Bodmin Moor."
    )
    assert anchors(text, links)[:3] == [
        ("civil parish", "Civil parishes in England"),
        ("Cornwall", "Cornwall"),
        ("Bodmin Moor", "Bodmin Moor"),
    ]


def test_all_real_pages_clean() -> None:
    """No markup survives in 69 of the 70 pages (United-Kingdom.txt has a broken ref in the
    source) and every link span is a trimmed, non-empty anchor."""
    for p in sorted(WIKITEXT.glob("*.txt")):
        text, links = wikitext_to_text(p.read_text(encoding="utf-8"))
        for s, e, _ in links:
            assert text[s:e] and text[s:e] == text[s:e].strip(), p.name
        if p.name != "United-Kingdom.txt":
            for mark in ("{{", "}}", "[[", "]]", "<ref", "''"):
                assert mark not in text, (p.name, mark)


def _dump(pages: list[tuple[str, str, str, bool]]) -> str:
    xml = ['<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">']
    xml.append("<siteinfo><sitename>Test</sitename></siteinfo>")
    for title, ns, text, redirect in pages:
        red = f'<redirect title="{escape(title)}" />' if redirect else ""
        xml.append(
            f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>1</id>{red}"
            f'<revision><id>2</id><text xml:space="preserve">{escape(text)}</text></revision></page>'
        )
    xml.append("</mediawiki>")
    return "\n".join(xml)


@pytest.mark.parametrize("suffix", [".xml", ".xml.bz2"])
def test_mediawiki_dump_reader(tmp_path: Path, suffix: str) -> None:
    names = ["Chemical-biology", "RNDIS", "Bodmin", "anarchism", "Mozilla-Firefox"]
    pages = [
        (n.replace("-", " "), "0", (WIKITEXT / f"{n}.txt").read_text(encoding="utf-8"), False) for n in names
    ]
    pages.insert(2, ("Talk:RNDIS", "1", "talk page [[x]]", False))
    pages.insert(3, ("Old name", "0", "#REDIRECT [[RNDIS]]", True))
    pages.append(("Toronto redirect", "0", (WIKITEXT / "redirect.txt").read_text(encoding="utf-8"), False))
    xml = _dump(pages)
    path = tmp_path / f"testwiki-pages{suffix}"
    if suffix.endswith(".bz2"):
        path.write_bytes(bz2.compress(xml.encode("utf-8")))
    else:
        path.write_text(xml, encoding="utf-8")
    counts: Counter = Counter()
    docs = list(read_mediawiki_dump(path, source="testwiki", counts=counts))
    assert [d.id for d in docs] == [f"testwiki:{n.replace('-', ' ')}" for n in names]
    assert counts["pages"] == 8 and counts["skipped_namespace"] == 1 and counts["skipped_redirect"] == 2
    for d, n in zip(docs, names, strict=True):
        text, links = wikitext_to_text((WIKITEXT / f"{n}.txt").read_text(encoding="utf-8"))
        assert (d.text, d.links) == (text, links)
    # Two worker processes give the same documents, in the same order.
    assert [(d.id, d.text, d.links) for d in read_mediawiki_dump(path, source="testwiki", workers=2)] == [
        (d.id, d.text, d.links) for d in docs
    ]
    assert [t for t, _ in iter_dump_pages(path)] == [n.replace("-", " ") for n in names]


def test_wikitext_dir_reader_skips_redirects() -> None:
    counts: Counter = Counter()
    docs = list(read_wikitext_dir(sorted(WIKITEXT.glob("*.txt")), counts=counts))
    assert len(docs) == 69 and counts["skipped_redirect"] == 1
    assert docs[0].id == "wikitext:2008 British motorcycle Grand Prix"


# ------------------------------------------------------------------------- span JSONL, text


def test_span_jsonl_reader_ignores_gold_keeps_links(tmp_path: Path) -> None:
    p = tmp_path / "mine-train.jsonl"
    recs = [
        {"id": "a", "text": "Plain text.", "spans": [{"start": 0, "end": 5, "label": "concept"}]},
        {"id": "b", "text": "A linked word.", "links": [{"start": 2, "end": 8, "target": "Link"}]},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    docs = list(read_span_jsonl(p))
    assert [(d.id, d.source, d.text, d.links) for d in docs] == [
        ("mine-train:a", "mine-train", "Plain text.", None),
        ("mine-train:b", "mine-train", "A linked word.", [(2, 8, "Link")]),
    ]


def test_text_reader_paragraph_grouping(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("one\nline two\n\n\npara 2\n  \npara 3\n")
    assert [d.text for d in read_text_file(p)] == ["one\nline two\n\npara 2\n\npara 3"]
    assert [d.text for d in read_text_file(p, paragraphs_per_doc=2)] == ["one\nline two\n\npara 2", "para 3"]
    assert [d.id for d in read_text_file(p, paragraphs_per_doc=2)] == [
        "notes:notes.txt#0",
        "notes:notes.txt#1",
    ]
    assert all(d.links is None for d in read_text_file(p))


def test_declared_roles_keep_dev_files_out_of_training() -> None:
    from model_build.corpus.roles import check_declared_roles

    check_declared_roles(train=["a/x-train.jsonl"], dev=["a/x-dev.jsonl"], pretraining=["a/x-train.jsonl"])
    with pytest.raises(LeakageError, match=r"^a/notes\.jsonl: declared both as train and as a dev file"):
        check_declared_roles(train=["a/notes.jsonl"], dev=["a/notes.jsonl"], pretraining=[])
    with pytest.raises(LeakageError, match=r"declared both as pretraining text and as a dev file"):
        check_declared_roles(train=[], dev=["a/notes.jsonl"], pretraining=["a/notes.jsonl"])
    with pytest.raises(LeakageError, match=r"^a/x-valid\.jsonl: refusing to read a dev file for finetuning"):
        check_declared_roles(train=["a/x-valid.jsonl"], dev=[], pretraining=[])
    with pytest.raises(LeakageError, match=r"refusing to read a test file for pretraining"):
        check_declared_roles(train=[], dev=[], pretraining=["b/wiki_test.txt"])
