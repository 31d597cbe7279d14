"""A user's labelled examples, in the formats users already have, as span records.

Every reader returns records `{"id", "text", "spans": [(start, end, label), ...]}` (Python string
offsets, end exclusive, sorted), the shape of the built-in labelled files, or raises `DataError`
naming the file, the line and the problem. Nothing is written until every file has been read.

- Span JSONL (ours) and spaCy/Prodigy JSONL: `{"text": ..., "spans": [{"start", "end", "label"}]}`
  a line; Prodigy's records answered `reject` or `ignore` are not gold and are skipped; a span's
  optional `"text"` must equal the text it covers.
- CoNLL-style BIO (`.conll`, `.bio`, `.iob`): a token and its tag a line (the first and the last
  column), a blank line between sentences, `-DOCSTART-` lines skipped; a sentence becomes one
  record, its tokens joined by single spaces. An `I-x` after `O` or after another label starts a
  span (the IOB1 reading most CoNLL files need).
- BRAT standoff: a directory of `<name>.txt` + `<name>.ann` (or one `.ann` beside its `.txt`);
  text-bound `T` lines are spans, other annotation lines (relations, events, notes) are ignored.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from textfeatures.tasks import SPAN_LABEL
from textfeatures.words import strip_span

Record = dict  # {"id": str, "text": str, "spans": list[tuple[int, int, str]]}

CONLL_SUFFIXES = (".conll", ".bio", ".iob")
SKIPPED_ANSWERS = ("reject", "ignore")


class DataError(ValueError):
    """A labelled file that cannot be used as it is: `file:line: problem`."""


@dataclass
class Examples:
    records: list[Record]
    skipped: Counter = field(default_factory=Counter)  # why records were left out -> count

    @property
    def labels(self) -> list[str]:
        return sorted({label for r in self.records for _, _, label in r["spans"]})


def read_examples(path: Path, label_key: str = "label") -> Examples:
    """The examples of `path`, whose format is told by its name (a directory is BRAT)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_brat_dir(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path, label_key)
    if suffix in CONLL_SUFFIXES:
        return _read_conll(path)
    if suffix == ".ann":
        return Examples([_read_brat_pair(path.with_suffix(".txt"), path)])
    raise DataError(
        f"{path}: unknown format {suffix or '(no suffix)'!r}; use .jsonl (span or Prodigy JSONL), "
        f"{', '.join(CONLL_SUFFIXES)} (CoNLL BIO), .ann or a directory (BRAT standoff)"
    )


def check_spans(where: str, text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The spans sorted and without white space at their edges (annotation tools often take in a
    trailing space), or `DataError` for one outside the text, blank, badly labelled or
    overlapping another."""
    trimmed = []
    for start, end, label in spans:
        if not 0 <= start < end <= len(text):
            raise DataError(
                f"{where}: span {start}-{end} is outside the text ({len(text)} characters) or empty"
            )
        if not text[start:end].strip():
            raise DataError(f"{where}: span {start}-{end} covers only white space")
        trimmed.append((*strip_span(text, start, end), label))
        if not SPAN_LABEL.fullmatch(label):
            raise DataError(
                f"{where}: label {label!r} is not a name (a letter, then letters, digits, '_', '.' or "
                "'-', at most 40)"
            )
    ordered = sorted(trimmed)
    for (s1, e1, l1), (s2, e2, l2) in itertools.pairwise(ordered):
        if s2 < e1:
            raise DataError(
                f"{where}: spans overlap: {s1}-{e1} {l1} {text[s1:e1]!r} and {s2}-{e2} {l2} {text[s2:e2]!r}"
            )
    return ordered


def _read_jsonl(path: Path, label_key: str) -> Examples:
    out = Examples([])
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise DataError(f'{where}: a record needs a "text" string')
            if rec.get("answer") in SKIPPED_ANSWERS:
                out.skipped[f"answer {rec['answer']}"] += 1
                continue
            text, raw = rec["text"], rec.get("spans", [])
            if not isinstance(raw, list):
                raise DataError(f'{where}: "spans" must be a list')
            spans = []
            for s in raw:
                if not isinstance(s, dict) or not all(isinstance(s.get(k), int) for k in ("start", "end")):
                    raise DataError(f'{where}: a span needs integer "start" and "end": {s!r}')
                if not isinstance(s.get(label_key), str):
                    raise DataError(f"{where}: span {s['start']}-{s['end']} has no {label_key!r} string")
                if "text" in s and s["text"] != text[s["start"] : s["end"]]:
                    raise DataError(
                        f"{where}: span {s['start']}-{s['end']} says {s['text']!r} but the text there is "
                        f"{text[s['start'] : s['end']]!r}"
                    )
                spans.append((s["start"], s["end"], s[label_key]))
            out.records.append(
                {
                    "id": str(rec.get("id", f"{path.name}:{line_no}")),
                    "text": text,
                    "spans": check_spans(where, text, spans),
                }
            )
    return out


def _read_conll(path: Path) -> Examples:
    out = Examples([])
    tokens: list[str] = []
    tags: list[tuple[str, int]] = []  # tag, line number

    def flush() -> None:
        if not tokens:
            return
        text, spans, offset = " ".join(tokens), [], 0
        open_span: list | None = None  # [start, end, label]
        for token, (tag, line_no) in zip(tokens, tags, strict=True):
            start, end = offset, offset + len(token)
            offset = end + 1
            if tag == "O":
                open_span = None
                continue
            prefix, _, label = tag.partition("-")
            if prefix not in ("B", "I") or not label:
                raise DataError(f"{path}:{line_no}: unknown tag {tag!r} (expected O, B-<label> or I-<label>)")
            if prefix == "I" and open_span is not None and open_span[2] == label:
                open_span[1] = end
                continue
            open_span = [start, end, label]
            spans.append(open_span)
        first_line = tags[0][1]
        out.records.append(
            {
                "id": f"{path.name}:{first_line}",
                "text": text,
                "spans": check_spans(f"{path}:{first_line}", text, [tuple(s) for s in spans]),
            }
        )
        tokens.clear()
        tags.clear()

    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            columns = line.split()
            if not columns:
                flush()
                continue
            if columns[0] == "-DOCSTART-":
                continue
            if len(columns) < 2:
                raise DataError(f"{path}:{line_no}: expected a token and its tag, got {line.strip()!r}")
            tokens.append(columns[0])
            tags.append((columns[-1], line_no))
    flush()
    return out


def _read_brat_dir(directory: Path) -> Examples:
    anns = sorted(directory.glob("*.ann"))
    if not anns:
        raise DataError(f"{directory}: no .ann files (BRAT standoff: <name>.txt + <name>.ann)")
    return Examples([_read_brat_pair(ann.with_suffix(".txt"), ann) for ann in anns])


def _read_brat_pair(txt: Path, ann: Path) -> Record:
    if not txt.exists():
        raise DataError(f"{ann}: its text {txt.name} is missing")
    text = txt.read_text(encoding="utf-8")
    spans = []
    with ann.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.startswith("T"):
                continue  # relations, events, attributes, notes: not spans
            where = f"{ann}:{line_no}"
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise DataError(f"{where}: a text-bound line is 'T<n><TAB><label> <start> <end><TAB><text>'")
            label, _, offsets = parts[1].partition(" ")
            if ";" in offsets:
                raise DataError(f"{where}: discontinuous span {offsets!r} is not supported")
            try:
                start, end = (int(v) for v in offsets.split())
            except ValueError:
                raise DataError(f"{where}: offsets {offsets!r} are not '<start> <end>'") from None
            if parts[2] != text[start:end]:
                raise DataError(
                    f"{where}: span {start}-{end} says {parts[2]!r} but {txt.name} has {text[start:end]!r} there"
                )
            spans.append((start, end, label))
    return {"id": txt.stem, "text": text, "spans": check_spans(str(ann), text, spans)}
