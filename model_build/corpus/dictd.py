"""Reader for dictd hypertext dictionaries (Debian `dict-foldoc`, `dict-jargon`).

A dictd database is `NAME.index` (lines `headword<TAB>offset<TAB>length`, offset and length in
dictd's base64 digits `A-Za-z0-9+/`, into the uncompressed text) and `NAME.dict.dz` (gzip, with
dictzip random-access tables that we do not need) or `NAME.dict`. Several headwords may point at
the same entry; each entry is read once, in file order, by streaming through the gzip file, so
memory stays at one entry.

One document per entry:

- the header (the headword lines up to the first blank line, and Jargon's pronunciation /
  part-of-speech line) is dropped and the first headword becomes the id (`foldoc:abstract
  syntax`); FOLDOC's leading `<domain, tags>` and its trailing `(1998-05-26)` date are dropped;
- paragraphs are separated by a blank line; a paragraph whose lines all sit at the body's indent
  is re-flowed onto one line, a more deeply indented one (code, maths) keeps its lines;
- `{target}` is a link over its visible text `target`, `{text (target)}` a link over `text`
  (FOLDOC's "display text (entry)" form), letters right after `}` extend the anchor (Jargon's
  `{metasyntactic variable}s`); `{text (http://...)}`, `(ftp:...)`, `(rfc:1034)`, `(/pub/..)`,
  `(page.html)` are external links: their text is kept, unlinked, the URL dropped;
- braces that do not look like a link stay literal text: content that starts or ends with
  whitespace (`lub { f z : z in Z }`), is empty, has nested braces, holds `;` or `=` (code), or
  is longer than 120 characters;
- entries whose body is only a link (`A4C -> {Authentication, ...}` aliases) and the
  `00-database-*` meta entries are skipped.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from model_build.corpus.documents import RawDocument
from model_build.corpus.roles import check_pretraining_file

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(B64)}
INSTALL_HINT = "apt-get install dict-foldoc dict-jargon"

_DATE = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)\.?$")
_DOMAIN = re.compile(r"^<[a-z0-9 ,.'/-]*>\s*")
_URLISH = re.compile(r"://|^/|^[a-z]+:|@|\.(?:html?|pdf|txt|ps|gz|zip)$", re.IGNORECASE)
_DISPLAY_TARGET = re.compile(r"^(.*?)\s*\(([^()]*)\)$", re.DOTALL)
_TRAIL = re.compile(r"[a-z]+")


def b64_decode(s: str) -> int:
    """dictd's base64 number encoding (`Gb9L` -> an offset)."""
    n = 0
    for c in s:
        n = n * 64 + _B64_VALUE[c]
    return n


def dictd_paths(name: str, dictd_dir: str | Path) -> tuple[Path, Path]:
    """(`NAME.index`, `NAME.dict.dz` or `NAME.dict`); a clear error when they are missing."""
    d = Path(dictd_dir)
    index = d / f"{name}.index"
    data = d / f"{name}.dict.dz"
    if not data.exists() and (d / f"{name}.dict").exists():
        data = d / f"{name}.dict"
    if not index.exists() or not data.exists():
        raise FileNotFoundError(
            f"dictd database {name!r} not found in {d} (need {index.name} and {data.name}); "
            f"install it with: {INSTALL_HINT}"
        )
    return index, data


def read_index(index: Path) -> list[tuple[int, int, str]]:
    """Unique `(offset, length, first headword)` entries, sorted by offset."""
    seen: dict[tuple[int, int], str] = {}
    with open(index, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            key = (b64_decode(parts[1]), b64_decode(parts[2]))
            seen.setdefault(key, parts[0])
    return sorted((off, ln, hw) for (off, ln), hw in seen.items())


def _open_data(data: Path) -> BinaryIO:
    if data.suffix == ".dz":
        return gzip.open(data, "rb")  # type: ignore[return-value]
    return open(data, "rb")


def iter_entries(name: str, dictd_dir: str | Path) -> Iterator[str]:
    """Raw entry texts (header included), in file order, streamed."""
    index, data = dictd_paths(name, dictd_dir)
    check_pretraining_file(index)
    entries = read_index(index)
    pos = 0
    with _open_data(data) as f:
        for off, length, _ in entries:
            if off < pos:  # overlapping entries: read again from the start (rare)
                f.seek(0)
                pos = 0
            if off > pos:
                f.seek(off - pos, 1)
            raw = f.read(length)
            pos = off + len(raw)
            yield raw.decode("utf-8", errors="replace")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _paragraphs(body_lines: list[str]) -> list[str]:
    """Body lines -> paragraphs (re-flowed unless more deeply indented)."""
    nonblank = [ln for ln in body_lines if ln.strip()]
    if not nonblank:
        return []
    base = min(_indent(ln) for ln in nonblank)
    paras: list[list[str]] = [[]]
    for ln in body_lines:
        if ln.strip():
            paras[-1].append(ln.expandtabs(8))
        elif paras[-1]:
            paras.append([])
    out = []
    for lines in paras:
        if not lines:
            continue
        if all(_indent(ln) <= base for ln in lines):
            out.append(" ".join(ln.strip() for ln in lines))
        else:
            out.append("\n".join(ln[base:].rstrip() if _indent(ln) >= base else ln.strip() for ln in lines))
    return out


def _is_link_content(content: str) -> bool:
    return (
        bool(content)
        and not content[0].isspace()
        and not content[-1].isspace()
        and len(content) <= 120
        and not any(c in content for c in ";={")
    )


def parse_links(para: str) -> tuple[str, list[tuple[int, int, str]], int]:
    """Resolve `{...}` in one paragraph: (text, link spans, number of external links)."""
    out: list[str] = []
    links: list[tuple[int, int, str]] = []
    n_out = 0
    external = 0
    i = 0
    while True:
        j = para.find("{", i)
        if j < 0:
            out.append(para[i:])
            break
        k = para.find("}", j + 1)
        content = para[j + 1 : k] if k >= 0 else ""
        if k < 0 or not _is_link_content(content):
            out.append(para[i : j + 1])
            n_out += j + 1 - i
            i = j + 1
            continue
        out.append(para[i:j])
        n_out += j - i
        display, target = content, content
        m = _DISPLAY_TARGET.match(content)
        if m and m.group(2).strip():
            display, target = m.group(1), m.group(2).strip()
        display = " ".join(display.split())
        trail = _TRAIL.match(para, k + 1)
        is_external = bool(m) and bool(_URLISH.search(target))
        if is_external:
            external += 1
            out.append(display)
            n_out += len(display)
            i = k + 1
            continue
        start = n_out
        out.append(display)
        n_out += len(display)
        i = k + 1
        if trail:
            out.append(trail.group())
            n_out += len(trail.group())
            i = trail.end()
        if display.strip():
            links.append((start, n_out, " ".join(target.split())))
    return "".join(out), links, external


def parse_entry(raw: str) -> tuple[str, str, list[tuple[int, int, str]], int] | None:
    """One raw dictd entry -> (headword, text, links, external links); None for meta entries."""
    lines = raw.strip("\n").split("\n")
    if not lines or not lines[0].strip():
        return None
    headword = lines[0].strip()
    if headword.startswith("00-database") or headword.startswith("00database"):
        return None
    h = 0
    while h < len(lines) and lines[h].strip():
        h += 1
    paras = _paragraphs(lines[h:])
    if paras:
        paras[0] = _DOMAIN.sub("", paras[0], count=1)
    paras = [p for p in paras if p.strip() and not _DATE.match(p.strip())]
    texts: list[str] = []
    links: list[tuple[int, int, str]] = []
    external = 0
    pos = 0
    for p in paras:
        t, ls, ext = parse_links(p)
        if not t.strip():
            continue
        if texts:
            pos += 2  # the "\n\n" separator
        links.extend((s + pos, e + pos, tg) for s, e, tg in ls)
        texts.append(t)
        pos += len(t)
        external += ext
    return headword, "\n\n".join(texts), links, external


def read_dictd(
    name: str, dictd_dir: str | Path = "/usr/share/dictd", counts: Counter | None = None
) -> Iterator[RawDocument]:
    """Documents of dictd database `name` (e.g. `foldoc`), one per entry; updates `counts`
    (`entries`, `documents`, `links`, `external_links`, `skipped_meta`, `skipped_alias`)."""
    counts = counts if counts is not None else Counter()
    seen_ids: Counter = Counter()
    for raw in iter_entries(name, dictd_dir):
        counts["entries"] += 1
        parsed = parse_entry(raw)
        if parsed is None:
            counts["skipped_meta"] += 1
            continue
        headword, text, links, external = parsed
        if not text or (len(links) == 1 and links[0][0] == 0 and links[0][1] >= len(text.rstrip(". "))):
            counts["skipped_alias"] += 1
            continue
        seen_ids[headword] += 1
        doc_id = f"{name}:{headword}" + (f"#{seen_ids[headword]}" if seen_ids[headword] > 1 else "")
        counts["documents"] += 1
        counts["links"] += len(links)
        counts["external_links"] += external
        yield RawDocument(doc_id, name, text, links)
