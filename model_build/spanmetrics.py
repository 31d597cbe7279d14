"""Exact-match span scoring shared by the corpus stage and the evaluation stage.

`span_prf(gold, pred)` takes, for each document, the set of gold and predicted spans as
`(start, end, label)` tuples and returns (all values in percent):

- `labels`: per-label `{"p", "r", "f1", "tp", "fp", "fn"}`;
- `micro`: the same over all labels pooled;
- `sdu_macro`: the official SDU@AAAI acronym score: P = mean of per-label P, R = mean of
  per-label R, F1 = 2PR/(P+R); a label with no predicted spans counts P = 100, a label with no
  gold spans counts R = 100.

Spans match only on exact boundaries and label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Span = tuple[int, int, str]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = 100.0 * tp / (tp + fp) if tp + fp else 100.0
    r = 100.0 * tp / (tp + fn) if tp + fn else 100.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def document_counts(
    gold: Sequence[set[Span]], pred: Sequence[set[Span]], labels: Sequence[str]
) -> list[dict[str, list[int]]]:
    """Per document and label, `[tp, fp, fn]` (the experiment bootstraps over documents)."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents, pred has {len(pred)}")
    out = []
    for g, p in zip(gold, pred, strict=True):
        counts = {lab: [0, 0, 0] for lab in labels}
        for span in g | p:
            c = counts.setdefault(span[2], [0, 0, 0])
            c[0 if span in g and span in p else 1 if span in p else 2] += 1
        out.append(counts)
    return out


def scores_from_counts(counts: dict[str, list[int]]) -> dict:
    """`span_prf`'s output from summed `[tp, fp, fn]` per label."""
    per_label = {lab: _prf(*c) for lab, c in sorted(counts.items())}
    tp = sum(c[0] for c in counts.values())
    fp = sum(c[1] for c in counts.values())
    fn = sum(c[2] for c in counts.values())
    if per_label:
        mp = sum(v["p"] for v in per_label.values()) / len(per_label)
        mr = sum(v["r"] for v in per_label.values()) / len(per_label)
    else:
        mp = mr = 100.0
    mf = 2 * mp * mr / (mp + mr) if mp + mr else 0.0
    return {"labels": per_label, "micro": _prf(tp, fp, fn), "sdu_macro": {"p": mp, "r": mr, "f1": mf}}


def span_prf(
    gold: Sequence[set[Span]],
    pred: Sequence[set[Span]],
    labels: Iterable[str] | None = None,
) -> dict:
    """Score predicted spans against gold spans, document by document (see module doc)."""
    totals: dict[str, list[int]] = {}
    for doc in document_counts(gold, pred, list(labels or ())):
        for lab, c in doc.items():
            total = totals.setdefault(lab, [0, 0, 0])
            for i in range(3):
                total[i] += c[i]
    return scores_from_counts(totals)


def format_prf(scores: dict) -> str:
    """A small fixed-width table of `span_prf` output."""
    lines = [f"{'label':<10} {'P':>6} {'R':>6} {'F1':>6} {'tp':>6} {'fp':>6} {'fn':>6}"]
    for lab, v in scores["labels"].items():
        lines.append(
            f"{lab:<10} {v['p']:6.1f} {v['r']:6.1f} {v['f1']:6.1f} {v['tp']:6d} {v['fp']:6d} {v['fn']:6d}"
        )
    m = scores["micro"]
    lines.append(
        f"{'micro':<10} {m['p']:6.1f} {m['r']:6.1f} {m['f1']:6.1f} {m['tp']:6d} {m['fp']:6d} {m['fn']:6d}"
    )
    s = scores["sdu_macro"]
    lines.append(f"{'sdu_macro':<10} {s['p']:6.1f} {s['r']:6.1f} {s['f1']:6.1f}")
    return "\n".join(lines)
