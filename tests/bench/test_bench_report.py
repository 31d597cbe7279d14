"""The bench report's build-stage figures: the last full build survives later no-op reruns."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import build_figures

FULL = {"config": "small", "finished": "2026-11-26T06:51:10Z", "seconds": 1083.2,
        "stages": {"corpus": 7.3, "pretrain-aligned": 645.7, "finetune-concepts": 149.4, "export-concepts": 14.2}}  # fmt: skip
NO_OP = {"config": "small", "finished": "2026-11-26T07:20:00Z", "seconds": 1.8,
         "stages": {"corpus": 0.0, "pretrain-aligned": 0.1, "finetune-concepts": 0.7}}  # fmt: skip


def test_history_gives_the_last_full_build_and_the_last_invocation(tmp_path: Path) -> None:
    (tmp_path / "build-history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (FULL, NO_OP)))
    figures = build_figures(tmp_path, tmp_path)
    assert figures["build_full"]["seconds"] == 1083.2
    assert figures["build_full"]["finished"] == "2026-11-26T06:51:10Z"
    assert figures["build"]["seconds"] == 1.8


def test_a_build_without_history_falls_back_to_its_last_report(tmp_path: Path) -> None:
    (tmp_path / "build-report.json").write_text(json.dumps(NO_OP))
    figures = build_figures(tmp_path, tmp_path)
    assert figures["build"]["stages"] == NO_OP["stages"]
    assert "build_full" not in figures  # a no-op run is not a full build
    assert figures["build"]["source"].endswith("build-report.json")
