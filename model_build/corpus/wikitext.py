"""MediaWiki: wikitext -> plain text with internal-link spans, and an XML dump reader.

`wikitext_to_text(src)` returns `(text, links)`; `links` are `(start, end, target)` spans over
the visible anchor text. Rules:

- `[[Target]]` and `[[Target|anchor]]` are links over `Target` / `anchor`; the pipe trick
  `[[Foo (bar)|]]` shows `Foo`; a link trail of lower-case letters extends the anchor
  (`[[bank]]s` -> `banks`); the target drops a `#section` and its first letter is upper-cased;
- file / image / media / category links (any language's usual names: `Datei`, `Kategorie`,
  ...) and interlanguage links (`[[de:...]]`) are dropped entirely, caption included; other
  prefixed links (`[[wikt:word|word]]`, `[[Wikipedia:...]]`) keep their text without a span;
- templates `{{...}}` (nested, `{{{param}}}` included), tables `{| ... |}`, HTML comments,
  `<ref>...</ref>` and `<ref .../>`, `<math>`, `<gallery>`, `<timeline>`, code blocks and
  `__MAGIC__` words are removed; other HTML tags are removed keeping their text; HTML entities
  are decoded;
- `''italic''` / `'''bold'''` quotes are removed; `[http://x text]` external links keep `text`;
- headings (`== H ==`) are dropped and become paragraph breaks; list markers are stripped (one
  item a line); paragraphs are separated by a blank line.

`read_mediawiki_dump(path)` streams a `pages-articles` dump (`.xml` or `.xml.bz2`) with
`iterparse`, clearing each page once read (flat memory), keeps the main namespace (`ns` 0) and
skips redirects; `workers > 1` converts pages in a process pool.
"""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from multiprocessing import Pool
from pathlib import Path
from typing import IO

from model_build.corpus.documents import RawDocument
from model_build.corpus.roles import check_pretraining_file

_DROP_NAMESPACES = frozenset(
    "file image media category lêer datei bild kategorie kategori fichier catégorie archivo imagen categoría categoria immagine ficheiro arquivo bestand afbeelding categorie plik kategoria файл категория изображение".split()  # noqa: SIM905
)
# Interlanguage prefixes look like `de`, `zh-min-nan`, `simple`.
_INTERLANG = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z]{2,8})*|simple)$")

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_REF_SELF = re.compile(r"<ref\b[^>]*/\s*>", re.IGNORECASE)
_DROP_TAGS = "ref|math|gallery|timeline|syntaxhighlight|source|imagemap|score|chem|ce|graph|mapframe|templatedata|references"
_TAG_BLOCK = re.compile(rf"<({_DROP_TAGS})\b[^>]*(?<!/)>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_TAG_SELF = re.compile(rf"<(?:{_DROP_TAGS})\b[^>]*/\s*>", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_EXTLINK = re.compile(r"\[(?:https?:|ftp:|mailto:|//)[^\s\]]*(?:\s+([^\]]*))?\]")
_QUOTES = re.compile(r"'{2,5}")
_MAGIC = re.compile(r"__[A-Z]+__")
_HEADING = re.compile(r"^\s*(=+)(.*?)\1\s*$")
_LIST = re.compile(r"^[*#:;]+\s*")
_TRAIL = re.compile(r"[a-z]+")
_MEDIA_FILE = re.compile(r"\.(?:jpe?g|png|gif|svg|tiff?|ogg|ogv|webm|mp3|pdf|djvu)\s*$", re.IGNORECASE)
# Markup stored entity-escaped (`&lt;ref&gt;`): unescape once before parsing.
_ESCAPED_MARKUP = re.compile(r"&lt;(?:ref|!--|/?[a-z]+(?:\s|&gt;|/))")
# Headings not at a line start (pages flattened onto one line).
_INLINE_HEADING = re.compile(r"(?<=\s)(={2,6})[^=\n]{1,200}?\1(?=\s)")
# Brackets left empty by removed templates: `Bodmin ({{IPAc-en|...}})` -> `Bodmin`.
_EMPTY_BRACKETS = re.compile(r"[ \t]?(?:\(\s*[,;:]?\s*\)|\[\s*\])")
_LINK_TOKENS = re.compile(r"\[\[|\]\]|\n\n")
_BRACES = re.compile(r"\{\{|\}\}")
_TWO_ALNUM = re.compile(r"[^\W_][\s\S]*?[^\W_]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_REDIRECT = re.compile(r"^\s*#\s*(?:redirect|weiterleitung|doorverwijzing|aanstuur)\b", re.IGNORECASE)

# Private-use markers around link anchors while the text is cleaned: START id SEP anchor END.
_START, _SEP, _END = "\ue000", "\ue002", "\ue001"
_MARKED = re.compile(f"{_START}(\\d+){_SEP}(.*?){_END}", re.DOTALL)


def is_redirect(src: str) -> bool:
    return bool(_REDIRECT.match(src))


def strip_templates(src: str) -> str:
    """Remove `{{...}}` templates and `{{{param}}}` parameters, nested to any depth (an unclosed
    one runs to the end)."""
    if "{{" not in src:
        return src
    out: list[str] = []
    stack: list[int] = []
    i = 0
    n = len(src)
    start = 0
    while i < n:
        m = _BRACES.search(src, i)
        if m is None:
            break
        i = m.start()
        if src.startswith("{{", i):
            if not stack:
                out.append(src[start:i])
            width = 3 if src.startswith("{{{", i) and not src.startswith("{{{{", i) else 2
            stack.append(width)
            i += width
        elif stack and src.startswith("}}", i):
            width = 3 if stack[-1] == 3 and src.startswith("}}}", i) else 2
            stack.pop()
            i += width
            if not stack:
                start = i
        else:
            i += 1  # a `}}` outside any template
    if not stack:
        out.append(src[start:])
    return "".join(out)


def strip_tables(src: str) -> str:
    """Remove `{| ... |}` tables (nested), line by line."""
    if "{|" not in src:
        return src
    out = []
    depth = 0
    for line in src.split("\n"):
        s = line.lstrip()
        if s.startswith("{|"):
            depth += 1
            continue
        if depth:
            if s.startswith("|}"):
                depth -= 1
            continue
        out.append(line)
    return "\n".join(out)


def _find_link_end(src: str, i: int) -> int:
    """Index just after the `]]` closing the `[[` at `i` (nested links allowed); -1 if none."""
    depth = 0
    for m in _LINK_TOKENS.finditer(src, i):
        tok = m.group()
        if tok == "[[":
            depth += 1
        elif tok == "]]":
            depth -= 1
            if depth == 0:
                return m.end()
        else:
            return -1  # links do not cross paragraphs
    return -1


def _normalise_target(target: str) -> str:
    target = target.split("#", 1)[0].replace("_", " ").strip()
    target = " ".join(target.split())
    return target[:1].upper() + target[1:]


def _mark_links(src: str, targets: list[str]) -> str:
    """Replace `[[...]]` links by marked anchors (see module doc for which links count)."""
    out: list[str] = []
    i = 0
    while True:
        j = src.find("[[", i)
        if j < 0:
            out.append(src[i:])
            break
        out.append(src[i:j])
        end = _find_link_end(src, j)
        if end < 0:
            out.append("[[")
            i = j + 2
            continue
        inner = src[j + 2 : end - 2]
        i = end
        target, pipe, anchor = inner.partition("|")
        target = target.strip()
        leading_colon = target.startswith(":")
        target = target.lstrip(":").strip()
        prefix, colon, rest = target.partition(":")
        p = prefix.strip().lower()
        if colon and not leading_colon and (p in _DROP_NAMESPACES or _MEDIA_FILE.search(target)):
            continue  # file / image / category: dropped with its caption
        if colon and _INTERLANG.match(prefix.strip()) and not leading_colon:
            continue  # interlanguage link
        if "[[" in anchor:  # a nested link in an anchor: keep only its text
            anchor = _mark_links(anchor, []).replace(_START, "").replace(_END, "")
            anchor = re.sub(f"\\d+{_SEP}", "", anchor)
        if not pipe:
            anchor = target
        elif not anchor.strip():  # pipe trick
            anchor = re.sub(r"\s*\([^()]*\)\s*$", "", rest if colon else target)
        trail = _TRAIL.match(src, i)
        if trail:
            anchor += trail.group()
            i = trail.end()
        if colon and (p in _DROP_NAMESPACES or _INTERLANG.match(prefix.strip()) or p in _OTHER_NAMESPACES):
            out.append(anchor)  # visible, but not an article link
            continue
        if "\n" in anchor:
            out.append(anchor)
            continue
        targets.append(_normalise_target(target))
        out.append(f"{_START}{len(targets) - 1}{_SEP}{anchor}{_END}")
    return "".join(out)


_OTHER_NAMESPACES = frozenset(
    "wikt wiktionary wikipedia wp project help template talk user portal special mediawiki module draft s q n b v voy commons wikisource wikiquote wikinews wikibooks wikiversity meta species wikidata d mw".split()  # noqa: SIM905
)


def _clean_lines(src: str) -> str:
    lines = []
    for line in src.split("\n"):
        if _HEADING.match(line):
            lines.append("")
            continue
        s = line.strip()
        if s.startswith(("|", "!", "{|", "|}")) or s.startswith("----"):
            lines.append("")
            continue
        s = _LIST.sub("", s)
        s = _SPACES.sub(" ", s).strip()
        lines.append(s)
    paras: list[str] = []
    cur: list[str] = []
    for s in lines:
        if s:
            cur.append(s)
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    if cur:
        paras.append("\n".join(cur))
    keep = []
    for para in paras:
        visible = _MARKED.sub(lambda m: m.group(2), para)
        if _TWO_ALNUM.search(visible):
            keep.append(para)
    return "\n\n".join(keep)


def wikitext_to_text(src: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Plain text and internal-link spans of a wikitext page (see module doc)."""
    if _ESCAPED_MARKUP.search(src):
        src = html.unescape(src)
    s = _COMMENT.sub("", src)
    s = _REF_SELF.sub("", s)
    s = _TAG_BLOCK.sub("", s)
    s = _TAG_SELF.sub("", s)
    s = strip_templates(s)
    s = strip_tables(s)
    s = _BR.sub(" ", s)
    s = _TAG.sub("", s)
    s = _MAGIC.sub("", s)
    s = _INLINE_HEADING.sub("\n\n", s)
    targets: list[str] = []
    s = _mark_links(s, targets)
    s = _EXTLINK.sub(lambda m: m.group(1) or "", s)
    s = _QUOTES.sub("", s)
    s = html.unescape(s)
    s = _EMPTY_BRACKETS.sub("", s)
    s = _clean_lines(s)
    out: list[str] = []
    links: list[tuple[int, int, str]] = []
    pos = 0
    n = 0
    for m in _MARKED.finditer(s):
        out.append(s[pos : m.start()])
        n += m.start() - pos
        anchor = m.group(2)
        lead = len(anchor) - len(anchor.lstrip())
        core = anchor.strip()
        if core:
            links.append((n + lead, n + lead + len(core), targets[int(m.group(1))]))
        out.append(anchor)
        n += len(anchor)
        pos = m.end()
    out.append(s[pos:])
    return "".join(out), links


# ---------------------------------------------------------------------------------- dumps


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def iter_dump_pages(path: str | Path, counts: Counter | None = None) -> Iterator[tuple[str, str]]:
    """`(title, wikitext)` of the main-namespace, non-redirect pages of a dump, streamed."""
    path = Path(path)
    check_pretraining_file(path)
    counts = counts if counts is not None else Counter()
    with _open(path) as f:
        root: ET.Element | None = None
        for event, elem in ET.iterparse(f, events=("start", "end")):
            if root is None and event == "start":
                root = elem
            if event != "end" or _local(elem.tag) != "page":
                continue
            counts["pages"] += 1
            title = ns = text = ""
            redirect = False
            for child in elem.iter():
                name = _local(child.tag)
                if name == "title":
                    title = child.text or ""
                elif name == "ns":
                    ns = (child.text or "").strip()
                elif name == "redirect":
                    redirect = True
                elif name == "text":
                    text = child.text or ""
            elem.clear()
            if root is not None:
                root.clear()
            if ns not in ("0", ""):
                counts["skipped_namespace"] += 1
                continue
            if (
                ns == ""
                and ":" in title
                and title.split(":", 1)[0].lower() in _DROP_NAMESPACES | _OTHER_NAMESPACES
            ):
                counts["skipped_namespace"] += 1
                continue
            if redirect or is_redirect(text):
                counts["skipped_redirect"] += 1
                continue
            yield title, text


def _convert(item: tuple[str, str]) -> tuple[str, str, list[tuple[int, int, str]]]:
    title, src = item
    text, links = wikitext_to_text(src)
    return title, text, links


def convert_pages(
    pages: Iterable[tuple[str, str]], workers: int = 1, chunksize: int = 16
) -> Iterator[tuple[str, str, list[tuple[int, int, str]]]]:
    """`(title, text, links)` for `(title, wikitext)` pages, in order, in `workers` processes."""
    if workers <= 1:
        yield from map(_convert, pages)
        return
    with Pool(workers) as pool:
        yield from pool.imap(_convert, pages, chunksize=chunksize)


def _documents(
    converted: Iterable[tuple[str, str, list[tuple[int, int, str]]]], source: str, counts: Counter
) -> Iterator[RawDocument]:
    for title, text, links in converted:
        counts["documents"] += 1
        counts["links"] += len(links)
        yield RawDocument(f"{source}:{title}", source, text, links)


def read_mediawiki_dump(
    path: str | Path, source: str = "wiki", workers: int = 1, counts: Counter | None = None
) -> Iterator[RawDocument]:
    """Documents of a MediaWiki XML dump (see module doc)."""
    counts = counts if counts is not None else Counter()
    yield from _documents(convert_pages(iter_dump_pages(path, counts), workers), source, counts)


def title_from_filename(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ")


def read_wikitext_dir(
    paths: Iterable[str | Path], source: str = "wikitext", counts: Counter | None = None
) -> Iterator[RawDocument]:
    """Documents of raw wikitext page files (title = file name), redirects skipped."""
    counts = counts if counts is not None else Counter()

    def pages() -> Iterator[tuple[str, str]]:
        for p in map(Path, paths):
            check_pretraining_file(p)
            src = p.read_text(encoding="utf-8", errors="replace")
            if is_redirect(src):
                counts["skipped_redirect"] += 1
                continue
            yield title_from_filename(p), src

    yield from _documents(convert_pages(pages()), source, counts)
