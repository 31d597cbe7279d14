"""Served-output quality (bench/quality.py): the answers of a real service, scored with the build's
scorer."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from bench.quality import post_texts, served_quality, spans_of


def test_the_acronyms_list_keeps_short_forms_and_their_paired_long_forms_only() -> None:
    answer = {
        "acronyms": [
            {"text": "CNL", "start": 29, "end": 32, "score": 0.9,
             "long_form": {"text": "controlled natural language", "start": 0, "end": 27, "score": 0.8}},
            {"text": "API", "start": 40, "end": 43, "score": 0.7, "long_form": None},
        ],
        "long_forms": [{"text": "free text", "start": 50, "end": 59, "score": 0.6}],
    }  # fmt: skip
    readings = spans_of("acronyms", answer)
    assert readings["acronyms list"] == [(0, 27, "long", 0.8), (29, 32, "short", 0.9), (40, 43, "short", 0.7)]
    assert readings["unpaired long forms"] == [(50, 59, "long", 0.6)]
    assert readings["all spans"] == sorted(readings["acronyms list"] + readings["unpaired long forms"])
    concepts = spans_of("concepts", {"concepts": [{"text": "x", "start": 3, "end": 4, "score": 0.5}]})
    assert concepts == {"all spans": [(3, 4, "concept", 0.5)]}


def test_every_dev_text_is_answered_and_scored(
    running_service: str, labelled_data_dir: Path, tmp_path: Path
) -> None:
    """A real service, the first 40 texts of each dev file (two batch requests each): one row per
    reading, every text answered, scores in range, and the tiny model, which reads the acronym
    rule's tags, finds short forms (`spans_of` is checked above on a hand-made answer)."""
    for name in ("acronyms/sdu21-dev.jsonl", "concepts/inspec-dev.jsonl"):
        lines = (labelled_data_dir / name).read_text(encoding="utf-8").splitlines()[:40]
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    port = int(urlparse(running_service).port or 0)
    assert len(post_texts(port, "/acronyms", ["The CNN ( convolutional neural network ) works ."])) == 1

    rows = served_quality(port, tmp_path)
    outputs = {(r["task"], r["dataset"], r["output"]) for r in rows}
    assert outputs == {("acronyms", "sdu21-dev", "all spans"), ("acronyms", "sdu21-dev", "acronyms list"),
                       ("concepts", "inspec-dev", "all spans")}  # fmt: skip
    assert all(r["texts"] == 40 and 0.0 <= r["headline"] <= 100.0 for r in rows)
    acronyms = next(r for r in rows if r["task"] == "acronyms")
    assert set(acronyms["labels"]) == {"long", "short"} and acronyms["labels"]["short"]["f1"] > 50


def test_user_sentences_report_from_a_real_service(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    """`python -m bench.user_sentences` end to end on the tiny artifacts: every sentence answered,
    the rule's column is the matcher's own pairs, and the tallies add up to the expected pairs."""
    from bench import user_sentences

    assert user_sentences.main(["--artifacts-dir", str(tiny_artifacts_dir), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert len(report["rows"]) == len(user_sentences.SENTENCES)
    expected = sum(len(pairs) for _, pairs in user_sentences.SENTENCES)
    for who in ("model", "rule"):
        assert report["totals"][who]["right"] + report["totals"][who]["missed"] == expected
    # The matcher misses `PPO for ...` (no separator it knows) and pairs nothing wrongly.
    assert report["totals"]["rule"] == {"right": expected - 1, "wrong": 0, "missed": 1}
    assert "| rule | " in (tmp_path / "report.md").read_text()


def test_the_difference_from_the_rule_is_paired_and_has_an_interval(labelled_data_dir: Path) -> None:
    """`bench.quality_report.rule_difference_rows` on real dev documents: the rule's own answer
    differs from the rule by exactly 0; the gold answer beats it, with an interval above 0 that
    holds the point; and a model worse than the rule gets a negative difference."""
    from bench.quality_report import rule_difference_rows
    from model_build.data import read_span_file
    from textfeatures.rules import rule_spans

    records = read_span_file(labelled_data_dir / "acronyms" / "sdu21-dev.jsonl")[:200]

    rule_preds = [rule_spans("rule-matcher+caps", r["text"]) for r in records]

    def difference(preds: list[list]) -> tuple[float, float, float]:
        rows = rule_difference_rows("acronyms", "sdu21-dev", "v", records, preds, rule_preds)
        assert [r["metric"] for r in rows] == [
            "sdu-macro-f1-minus-rule-matcher+caps",
            "sdu-macro-f1-minus-rule-matcher+caps-ci95-low",
            "sdu-macro-f1-minus-rule-matcher+caps-ci95-high",
        ]
        point, low, high = (r["value"] for r in rows)
        return point, low, high

    assert difference(rule_preds) == (0.0, 0.0, 0.0)
    point, low, high = difference([[tuple(s) for s in r["spans"]] for r in records])
    assert 0 < low <= point <= high
    short_forms_only = [
        [s for s in rule_spans("rule-matcher+caps", r["text"]) if s[2] == "short"] for r in records
    ]
    assert difference(short_forms_only)[0] < 0


def test_the_report_sets_earlier_defaults_apart_from_the_default_and_its_ablations(tmp_path: Path) -> None:
    from bench.quality_report import is_earlier_default, write_report

    rows = [
        {
            "task": "acronyms",
            "dataset": "sdu21-dev",
            "variant": variant,
            "metric": "sdu-macro-f1",
            "value": value,
        }
        for variant, value in [
            ("default", 92.6),
            ("default-pretrain-seed1", 92.5),
            ("no-features", 83.8),
            ("default-2026-11-29", 92.1),
            ("default-select-before-calibration-pretrain-seed1", 92.4),
            ("rule-matcher+caps", 92.1),
        ]
    ]
    write_report(rows, tmp_path)
    report = (tmp_path / "report.md").read_text()
    now, earlier = report.split("## Earlier defaults")
    earlier = earlier.split("## How the figures came about")[0]
    for variant in ("default", "default-pretrain-seed1", "no-features", "rule-matcher+caps"):
        assert f"| {variant} |" in now and f"| {variant} |" not in earlier
    for variant in ("default-2026-11-29", "default-select-before-calibration-pretrain-seed1"):
        assert f"| {variant} |" in earlier and f"| {variant} |" not in now
    assert not is_earlier_default("default-long-windows")
