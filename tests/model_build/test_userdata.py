"""A user's labelled files in the formats they already have: the same records from each, and an
error naming the file, the line and the problem for each kind of malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_build.userdata import DataError, read_examples

TEXT = "We fine-tune BERT on the CoNLL corpus for named entity recognition ."
# (start, end, label) of "BERT", "CoNLL corpus", "named entity recognition"
SPANS = [(13, 17, "Method"), (25, 37, "Material"), (42, 66, "Task")]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def span_jsonl(path: Path, records: list[dict]) -> Path:
    return write_lines(path, [json.dumps(r) for r in records])


def test_span_texts_are_what_the_test_says() -> None:
    assert [TEXT[s:e] for s, e, _ in SPANS] == ["BERT", "CoNLL corpus", "named entity recognition"]


def test_span_jsonl(tmp_path: Path) -> None:
    spans = [{"start": s, "end": e, "label": lab} for s, e, lab in reversed(SPANS)]
    examples = read_examples(
        span_jsonl(tmp_path / "train.jsonl", [{"id": "a", "text": TEXT, "spans": spans}])
    )
    assert examples.records == [{"id": "a", "text": TEXT, "spans": SPANS}]  # sorted
    assert examples.labels == ["Material", "Method", "Task"]


def test_prodigy_jsonl_skips_rejected_and_ignored(tmp_path: Path) -> None:
    spans = [{"start": s, "end": e, "label": lab, "token_start": 0, "token_end": 0} for s, e, lab in SPANS]
    records = [
        {"text": TEXT, "spans": spans, "answer": "accept", "_input_hash": 1},
        {"text": "A rejected one.", "spans": [{"start": 0, "end": 1, "label": "Task"}], "answer": "reject"},
        {"text": "An ignored one.", "spans": [], "answer": "ignore"},
    ]
    examples = read_examples(span_jsonl(tmp_path / "prodigy.jsonl", records))
    assert [r["text"] for r in examples.records] == [TEXT]
    assert examples.records[0]["spans"] == SPANS
    assert examples.skipped == {"answer reject": 1, "answer ignore": 1}


def test_label_key_reads_another_field(tmp_path: Path) -> None:
    spans = [{"start": s, "end": e, "label": "concept", "type": lab} for s, e, lab in SPANS]
    examples = read_examples(span_jsonl(tmp_path / "t.jsonl", [{"text": TEXT, "spans": spans}]), "type")
    assert examples.records[0]["spans"] == SPANS


def test_conll_bio(tmp_path: Path) -> None:
    tags = {"BERT": "B-Method", "CoNLL": "B-Material", "corpus": "I-Material", "named": "B-Task",
            "entity": "I-Task", "recognition": "I-Task"}  # fmt: skip
    lines = ["-DOCSTART- O", ""] + [f"{tok}\tNN\t{tags.get(tok, 'O')}" for tok in TEXT.split()]
    lines += ["", "Cells B-Material", "divide O"]
    examples = read_examples(write_lines(tmp_path / "train.conll", lines))
    assert [r["text"] for r in examples.records] == [TEXT, "Cells divide"]
    assert examples.records[0]["spans"] == SPANS
    assert examples.records[1]["spans"] == [(0, 5, "Material")]


def test_conll_iob1_continuation_starts_a_span(tmp_path: Path) -> None:
    lines = ["a O", "time I-Task", "series I-Task", "of O", "cells I-Material", "nuclei I-Task"]
    (record,) = read_examples(write_lines(tmp_path / "t.bio", lines)).records
    text = record["text"]
    assert [(text[s:e], lab) for s, e, lab in record["spans"]] == [
        ("time series", "Task"), ("cells", "Material"), ("nuclei", "Task")
    ]  # fmt: skip


def test_brat_directory(tmp_path: Path) -> None:
    (tmp_path / "doc1.txt").write_text(TEXT, encoding="utf-8")
    ann = [f"T{i}\t{lab} {s} {e}\t{TEXT[s:e]}" for i, (s, e, lab) in enumerate(SPANS, 1)]
    write_lines(tmp_path / "doc1.ann", [*ann, "R1\tUsed-for Arg1:T1 Arg2:T3", "#1\tAnnotatorNotes T1\tnote"])
    examples = read_examples(tmp_path)
    assert examples.records == [{"id": "doc1", "text": TEXT, "spans": SPANS}]
    assert read_examples(tmp_path / "doc1.ann").records == examples.records


def test_trailing_space_in_a_span_is_trimmed(tmp_path: Path) -> None:
    spans = [{"start": 13, "end": 18, "label": "Method"}]  # "BERT "
    (record,) = read_examples(span_jsonl(tmp_path / "t.jsonl", [{"text": TEXT, "spans": spans}])).records
    assert record["spans"] == [(13, 17, "Method")]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"text": TEXT, "spans": [{"start": 13, "end": 99, "label": "Method"}]},
            "t.jsonl:2: span 13-99 is outside",
        ),
        (
            {
                "text": TEXT,
                "spans": [
                    {"start": 13, "end": 17, "label": "Method"},
                    {"start": 15, "end": 20, "label": "Task"},
                ],
            },
            "t.jsonl:2: spans overlap: 13-17 Method 'BERT' and 15-20 Task",
        ),
        (
            {"text": TEXT, "spans": [{"start": 13, "end": 17, "label": "Method", "text": "BART"}]},
            "t.jsonl:2: span 13-17 says 'BART' but the text there is 'BERT'",
        ),
        (
            {"text": TEXT, "spans": [{"start": 13, "end": 17, "label": "A|B"}]},
            "t.jsonl:2: label 'A|B' is not a name",
        ),
        ({"text": TEXT, "spans": [{"start": 13, "end": 17}]}, "t.jsonl:2: span 13-17 has no 'label' string"),
        ({"spans": []}, 't.jsonl:2: a record needs a "text" string'),
    ],
)
def test_malformed_jsonl_names_file_line_and_problem(tmp_path: Path, record: dict, message: str) -> None:
    path = write_lines(tmp_path / "t.jsonl", [json.dumps({"text": "fine", "spans": []}), json.dumps(record)])
    with pytest.raises(DataError) as e:
        read_examples(path)
    assert message in str(e.value)


def test_malformed_inputs_of_the_other_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"t\.jsonl:1: not JSON"):
        read_examples(write_lines(tmp_path / "t.jsonl", ["{oops"]))
    with pytest.raises(DataError, match=r"t\.conll:2: unknown tag 'E-Task'"):
        read_examples(write_lines(tmp_path / "t.conll", ["a O", "b E-Task"]))
    with pytest.raises(DataError, match=r"t\.conll:1: expected a token and its tag"):
        read_examples(write_lines(tmp_path / "t.conll", ["lonely"]))
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "d.txt").write_text(TEXT, encoding="utf-8")
    write_lines(brat / "d.ann", ["T1\tTask 42 48;49 55\tnamed entity"])
    with pytest.raises(DataError, match=r"d\.ann:1: discontinuous span"):
        read_examples(brat)
    write_lines(brat / "d.ann", ["T1\tMethod 13 17\tBART"])
    with pytest.raises(DataError, match=r"d\.ann:1: span 13-17 says 'BART' but d\.txt has 'BERT'"):
        read_examples(brat)
    (brat / "d.txt").unlink()
    with pytest.raises(DataError, match=r"its text d\.txt is missing"):
        read_examples(brat)
    with pytest.raises(DataError, match=r"unknown format '\.csv'"):
        read_examples(write_lines(tmp_path / "t.csv", ["a,b"]))
