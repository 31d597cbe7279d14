"""`python -m model_build.corpus.acronyms score FILE [--caps-rule]`: the acronym matcher
(`textfeatures.acronyms`) scored as a detector on a span JSONL file with the official SDU macro."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model_build.spanmetrics import format_prf, span_prf
from textfeatures.acronyms import LONG, SHORT, label_acronyms


def score_file(path: Path, caps_rule: bool = False) -> dict:
    """Score the matcher as a detector on a span JSONL file (labels short/long)."""
    gold: list[set[tuple[int, int, str]]] = []
    pred: list[set[tuple[int, int, str]]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            gold.append({(s["start"], s["end"], s["label"]) for s in rec["spans"]})
            pred.append(set(label_acronyms(rec["text"], caps_rule=caps_rule)[0]))
    return span_prf(gold, pred, labels=(SHORT, LONG))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_build.corpus.acronyms")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("score", help="score the matcher on a span JSONL file (SDU macro)")
    sc.add_argument("file", type=Path)
    sc.add_argument("--caps-rule", action="store_true", help="also label tokens with 2+ capitals")
    sc.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = ap.parse_args(argv)
    scores = score_file(args.file, caps_rule=args.caps_rule)
    print(json.dumps(scores, indent=2) if args.json else format_prf(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
