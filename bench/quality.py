"""What users get: the answers of a running service, scored against the dev sets.

The build scores the model's raw spans (`model_build.evaluate`). A client of `POST /acronyms`
reads something else: `acronyms`, every short form with the long form that the text defines for
it (service/pairing.py), and, apart, `long_forms` that define nothing. This posts every dev text
to the running service, as a client would, and scores with the build's scorer:

- `all spans`: every span in the answer (for acronyms: short forms, paired and unpaired long
  forms), which is the model's raw output after the service's decoding;
- `acronyms list` (acronyms only): the short forms and their paired long forms, i.e. what a client
  that reads only `acronyms` gets.

Scores are exact character spans in percent; for acronyms the headline is the official SDU macro
F1, for concepts micro F1 (as in the build).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

from bench.inputs import data_dir
from bench.loadgen import HOST

DEV_SETS = (
    ("acronyms", "/acronyms", "acronyms/sdu21-dev.jsonl"),
    ("acronyms", "/acronyms", "acronyms/sdu22-sci-dev.jsonl"),
    ("concepts", "/tag", "concepts/inspec-dev.jsonl"),
    ("concepts", "/tag", "concepts/scienceie-dev.jsonl"),
)
ScoredSpan = tuple[int, int, str, float]  # start, end, label, score
TEXTS_PER_REQUEST = 32


def post_texts(port: int, path: str, texts: list[str]) -> list[dict]:
    """The `results` of one batch request; any status but 200 is an error."""
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request("POST", path, json.dumps({"texts": texts}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"POST {path}: {response.status} {body[:300]!r}")
    return json.loads(body)["results"]


def spans_of(task: str, result: dict) -> dict[str, list[ScoredSpan]]:
    """The answer for one text as scored spans, one list per way of reading it (`unpaired long
    forms`: the long forms that define nothing, which the issue asks to be worth returning)."""

    def scored(span: dict, label: str) -> ScoredSpan:
        return (span["start"], span["end"], label, span["score"])

    if task == "concepts":
        return {"all spans": sorted(scored(c, "concept") for c in result["concepts"])}
    shorts = {scored(a, "short") for a in result["acronyms"]}
    paired = {scored(a["long_form"], "long") for a in result["acronyms"] if a["long_form"]}
    unpaired = {scored(s, "long") for s in result["long_forms"]}
    return {
        "all spans": sorted(shorts | paired | unpaired),
        "acronyms list": sorted(shorts | paired),
        "unpaired long forms": sorted(unpaired),
    }


def served_answers(port: int, task: str, route: str, texts: list[str]) -> list[dict[str, list[ScoredSpan]]]:
    """Every text posted once (in batch requests), its answer read every way `spans_of` knows."""
    return [
        spans_of(task, result)
        for chunk in batches(texts, TEXTS_PER_REQUEST)
        for result in post_texts(port, route, chunk)
    ]


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def served_quality(port: int, directory: Path | None = None) -> list[dict]:
    """One row per dev set and reading: {task, dataset, output, headline, p, r, f1 per label}."""
    from model_build.data import read_span_file
    from model_build.evaluate import headline, score
    from model_build.model import TASK_LABELS

    rows = []
    for task, route, name in DEV_SETS:
        path = (directory or data_dir()) / name
        if not path.is_file():
            continue
        records = read_span_file(path)
        answers = served_answers(port, task, route, [r["text"] for r in records])
        for output in answers[0] if answers else ():
            if output == "unpaired long forms":
                continue
            metrics = score(records, [a[output] for a in answers], TASK_LABELS[task])
            rows.append(
                {
                    "task": task,
                    "dataset": path.stem,
                    "output": output,
                    "texts": len(records),
                    "headline": round(headline(task, metrics), 2),
                    "labels": {
                        label: {k: round(v[k], 1) for k in ("p", "r", "f1")}
                        for label, v in metrics["labels"].items()
                    },
                }
            )
    return rows
