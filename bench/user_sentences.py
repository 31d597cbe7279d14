"""Sentences of a user's own, through the service: `python -m bench.user_sentences` -> reports/user-sentences/.

The dev sets say how the models score on the benchmarks' text; this says what a new user sees on
sentences of their own: fourteen sentences from computer science, medicine and law, written for
this check (not taken from any dataset), with the acronyms they define. They were written before
any model answered them, and they are not used to choose anything. `/acronyms` answers are
compared with the definitions each sentence makes, beside the Schwartz-Hearst matcher run on the
same sentences (`textfeatures.acronyms`); `/tag` answers are shown as they come.

A pair is right when the answer pairs the short form with exactly the expected long form, wrong
when it pairs a short form with anything else, and missed when an expected pair is not answered.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import servers
from bench.quality import post_texts
from textfeatures.acronyms import label_acronyms

Pair = tuple[str, str]  # (short form, long form) as written

SENTENCES: list[tuple[str, list[Pair]]] = [
    (
        "Patients with type 2 diabetes mellitus (T2DM) and raised interleukin-6 (IL-6) levels were "
        "followed for two years; T2DM onset was earlier in carriers.",
        [("T2DM", "type 2 diabetes mellitus"), ("IL-6", "interleukin-6")],
    ),
    (
        "We knocked out breast cancer gene 1 (BRCA1) in human embryonic kidney 293T (HEK293T) cells.",
        [("BRCA1", "breast cancer gene 1"), ("HEK293T", "human embryonic kidney 293T")],
    ),
    (
        "Tumour necrosis factor alpha (TNF-α) was measured by enzyme-linked immunosorbent assay (ELISA).",
        [("TNF-α", "Tumour necrosis factor alpha"), ("ELISA", "enzyme-linked immunosorbent assay")],
    ),
    (
        "We propose a novel method for image segmentation using convolutional neural networks (CNNs) "
        "and conditional random fields (CRFs).",
        [("CNNs", "convolutional neural networks"), ("CRFs", "conditional random fields")],
    ),
    (
        "Retrieval-augmented generation (RAG) combines a retriever with a large language model (LLM).",
        [("RAG", "Retrieval-augmented generation"), ("LLM", "large language model")],
    ),
    (
        "The General Data Protection Regulation (GDPR) applies to every data controller; under the "
        "GDPR, a Data Protection Officer (DPO) must be appointed.",
        [("GDPR", "General Data Protection Regulation"), ("DPO", "Data Protection Officer")],
    ),
    (
        "The plaintiff filed a motion under the Federal Rules of Civil Procedure (FRCP) before the "
        "Court of Appeals for the Ninth Circuit.",
        [("FRCP", "Federal Rules of Civil Procedure")],
    ),
    (
        "BM25 remains a strong baseline for information retrieval (IR), while dense passage retrieval "
        "(DPR) needs labelled pairs.",
        [("IR", "information retrieval"), ("DPR", "dense passage retrieval")],
    ),
    (
        "Abbreviations: CI = confidence interval; OR = odds ratio; HR = hazard ratio.",
        [("CI", "confidence interval"), ("OR", "odds ratio"), ("HR", "hazard ratio")],
    ),
    (
        "In this work, RL stands for reinforcement learning and PPO for proximal policy optimization.",
        [("RL", "reinforcement learning"), ("PPO", "proximal policy optimization")],
    ),
    (
        "The Internet of Things (IoT) connects devices over low-power wide-area networks (LPWANs).",
        [("IoT", "Internet of Things"), ("LPWANs", "low-power wide-area networks")],
    ),
    (
        "k-nearest neighbours (k-NN) and support vector machines (SVMs) were compared on the UCI data.",
        [("k-NN", "k-nearest neighbours"), ("SVMs", "support vector machines")],
    ),
    (
        "We report the area under the receiver operating characteristic curve (AUROC) and the F1 score.",
        [("AUROC", "area under the receiver operating characteristic curve")],
    ),
    (
        "Non-small cell lung cancer (NSCLC) patients received programmed death-ligand 1 (PD-L1) inhibitors.",
        [("NSCLC", "Non-small cell lung cancer"), ("PD-L1", "programmed death-ligand 1")],
    ),
]


def served_pairs(result: dict, text: str) -> set[Pair]:
    """The (short, long) pairs of one `/acronyms` answer; a short form without a long form pairs
    nothing."""
    return {
        (text[a["start"] : a["end"]], text[a["long_form"]["start"] : a["long_form"]["end"]])
        for a in result["acronyms"]
        if a["long_form"] is not None
    }


def rule_pairs(text: str) -> set[Pair]:
    _, pairs = label_acronyms(text, caps_rule=True)
    return {(text[p.short_start : p.short_end], text[p.long_start : p.long_end]) for p in pairs}


def compare(found: set[Pair], expected: list[Pair]) -> dict[str, list[Pair]]:
    return {
        "right": sorted(found & set(expected)),
        "wrong": sorted(found - set(expected)),
        "missed": sorted(set(expected) - found),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--out", type=Path, default=Path("reports/user-sentences"))
    args = parser.parse_args(argv)
    texts = [text for text, _ in SENTENCES]
    server = servers.start("service", ["-m", "service"], args.artifacts_dir, Path("build") / "quality-logs")
    try:
        acronyms = post_texts(server.port, "/acronyms", texts)
        concepts = post_texts(server.port, "/tag", texts)
        info = json.loads(servers.get(server.port, "/info")[1])
    finally:
        server.stop()
    rows: list[dict[str, Any]] = []
    for (text, expected), answer, tagged in zip(SENTENCES, acronyms, concepts, strict=True):
        rows.append({
            "text": text,
            "expected": expected,
            "model": compare(served_pairs(answer, text), expected),
            "rule": compare(rule_pairs(text), expected),
            "concepts": [text[s["start"] : s["end"]] for s in tagged["concepts"]],
        })  # fmt: skip
    totals = {
        who: {k: sum(len(r[who][k]) for r in rows) for k in ("right", "wrong", "missed")}
        for who in ("model", "rule")
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"totals": totals, "rows": rows}, indent=2))
    (args.out / "report.md").write_text(render(rows, totals, info))
    print(json.dumps(totals))
    return 0


def render(rows: list[dict], totals: dict, info: dict) -> str:
    versions = ", ".join(
        f"{task} {m['version']}" for task, m in sorted(info["models"].items()) if m.get("builtin")
    )
    expected = sum(len(r["expected"]) for r in rows)
    lines = [
        "# Sentences of a user's own",
        "",
        "Regenerate: `python -m bench.user_sentences` (after `make build-model`; serves",
        f"`artifacts/`). Served: {versions}. {len(rows)} sentences written for this check, {expected}",
        "defined acronyms. Model = the `acronyms` list of `POST /acronyms`; rule = the Schwartz-Hearst",
        "matcher with the caps rule (`textfeatures.acronyms`) on the same sentences.",
        "",
        "| | right | wrong | missed |",
        "|---|---|---|---|",
        *(f"| {who} | {t['right']} | {t['wrong']} | {t['missed']} |" for who, t in totals.items()),
        "",
        "| sentence | expected pairs | model: wrong / missed | rule: wrong / missed | concepts (`/tag`) |",
        "|---|---|---|---|---|",
    ]

    def pairs(ps: list) -> str:
        return "; ".join(f"{s} = {long}" for s, long in ps) or "-"

    for r in rows:
        model, rule = r["model"], r["rule"]
        lines.append(
            f"| {r['text']} | {pairs(r['expected'])} | {pairs(model['wrong'])} / {pairs(model['missed'])} | "
            f"{pairs(rule['wrong'])} / {pairs(rule['missed'])} | {'; '.join(r['concepts']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
