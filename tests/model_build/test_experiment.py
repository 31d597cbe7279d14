"""The experiment on the `tiny` config: equal compute between arms, no labelled text in the
transfer arm, code-versioned fingerprints, paired bootstrap intervals, the report and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model_build import codeversion
from model_build.config import PretrainConfig, fingerprint
from model_build.data import read_span_file
from model_build.evaluate import headline
from model_build.experiment import ARMS, FINETUNE_CODE, ExperimentConfig, run_experiment
from model_build.experiment_report import bootstrap, headline_from_counts
from model_build.pretrain import make_batch
from model_build.spanmetrics import document_counts, span_prf

EXP = ExperimentConfig(
    config="tiny",
    ablation_config=None,
    sizes=(0, 12),
    seeds=(0, 1),
    pretrain_seeds=(0,),
    finetune_min_steps=4,
    finetune_max_steps=8,
    datasets={
        "acronyms": [("acronyms/sdu21-train.jsonl", "acronyms/sdu21-dev.jsonl")],
        "concepts": [("concepts/inspec-train.jsonl", "concepts/inspec-dev.jsonl")],
    },
    eval_max_examples=12,
    workers=1,
    bootstrap=50,
)
LABELLED = [f"{task}/{name}.jsonl" for task, names in (
    ("acronyms", ("sdu21-train", "sdu21-dev", "sdu22-sci-train", "sdu22-sci-dev")),
    ("concepts", ("inspec-train", "inspec-dev", "scienceie-train", "scienceie-dev")),
) for name in names]  # fmt: skip


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory, labelled_data_dir: Path) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("experiment")
    results = run_experiment(EXP, labelled_data_dir, root / "work", root / "report")
    return root, results


def _stream(root: Path, corpus: str) -> dict[str, np.ndarray]:
    (path,) = (root / "work" / "experiment" / corpus).glob("tokens-train-*.npz")
    return dict(np.load(path))


def test_arms_see_equal_compute_and_mlm_and_transfer_identical_batches(
    experiment: tuple[Path, list[dict]],
) -> None:
    root, _ = experiment
    exp_dir = root / "work" / "experiment"
    summaries = {
        arm: json.loads((exp_dir / f"pretrain-tiny-{arm}-p0" / "pretrain.json").read_text()) for arm in ARMS
    }
    for key in ("steps", "batch_size", "seq_len"):
        assert len({s[key] for s in summaries.values()}) == 1, key
    assert {s["objectives"][0] for s in summaries.values()} == {"mlm"}
    # mlm and aligned-transfer read the same stream with the same seed: every batch and mask equal,
    # down to the token counts the runs recorded.
    assert summaries["mlm"]["tokens_seen"] == summaries["aligned-transfer"]["tokens_seen"]
    assert summaries["mlm"]["masked_tokens"] == summaries["aligned-transfer"]["masked_tokens"]
    stream = _stream(root, "transfer")
    cfg = {arm: PretrainConfig(**summaries[arm]["config"]) for arm in ARMS}
    assert replace(cfg["mlm"], recipe="aligned") == cfg["aligned-transfer"] == cfg["aligned"]
    vocab = summaries["mlm"]["model_config"]["vocab_size"]
    for step in range(3):
        a = make_batch(stream, cfg["mlm"], step, 0, vocab)
        b = make_batch(stream, cfg["aligned-transfer"], step, 0, vocab)
        for key in ("input_ids", "attention_mask", "mlm_labels", "features"):
            assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    # `aligned` reads more text (the training files'), at the same batch shape and masking rate.
    full = make_batch(_stream(root, "full"), cfg["aligned"], 0, 0, vocab)
    assert full["input_ids"].shape == a["input_ids"].shape


def test_transfer_arm_reads_no_text_of_any_labelled_file(
    experiment: tuple[Path, list[dict]], labelled_data_dir: Path
) -> None:
    root, _ = experiment
    exp_dir = root / "work" / "experiment"
    stats = json.loads((exp_dir / "transfer" / "corpus" / "stats.json").read_text())
    assert set(stats["per_source"]) <= {"foldoc", "jargon", "wikitext"}
    labelled_texts = {r["text"] for name in LABELLED for r in read_span_file(labelled_data_dir / name)}
    transfer_texts = [json.loads(line)["text"] for shard in (exp_dir / "transfer" / "corpus").glob("*-*.jsonl")
                      for line in shard.read_text().splitlines()]  # fmt: skip
    assert transfer_texts and not labelled_texts & set(transfer_texts)
    full_texts = {json.loads(line)["text"] for shard in (exp_dir / "full" / "corpus").glob("*-*.jsonl")
                  for line in shard.read_text().splitlines()}  # fmt: skip
    assert full_texts & labelled_texts  # the `aligned` arm does read the training files' text
    dev_texts = {
        r["text"] for name in LABELLED if "dev" in name for r in read_span_file(labelled_data_dir / name)
    }
    assert not dev_texts & full_texts
    # One tokenizer for every arm, trained on the transfer corpus only.
    assert not (exp_dir / "full" / "tokenizer").exists()


def test_report_results_and_resume(experiment: tuple[Path, list[dict]], labelled_data_dir: Path) -> None:
    root, results = experiment
    report = root / "report"
    rows = json.loads((report / "results.json").read_text())
    keys = {"task", "dataset", "recipe", "config", "n", "seed", "pretrain_seed", "metric", "value"}
    assert rows and all(set(r) == keys for r in rows)
    combos = {(r["dataset"], r["recipe"], r["n"], r["seed"]) for r in rows}
    for dataset in ("sdu21-dev", "inspec-dev"):
        for arm in ARMS:
            assert {(dataset, arm, 12, 0), (dataset, arm, 12, 1)} <= combos
        assert (dataset, "mlm", 0, 0) not in combos  # no zero-shot figure for an untrained head
        assert (dataset, "aligned", 0, 0) in combos
    assert {("sdu21-dev", "rule-matcher+caps", 0, 0), ("inspec-dev", "rule-content-runs", 0, 0)} <= combos
    text = (report / "report.md").read_text()
    assert "| acronyms | sdu21-dev | **aligned-transfer − mlm** |" in text
    assert "| concepts | inspec-dev | rule-content-runs (no training) |" in text
    assert (report / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finetuned = [r for r in results if r.get("finetune")]
    assert len(finetuned) == 2 * 3 * 2 and all(r["finetune"]["steps"] >= 4 for r in finetuned)
    # Rerun: every run is saved, nothing is recomputed.
    runs = sorted((root / "work" / "experiment" / "runs").glob("*.json"))
    saved = {p.name: p.stat().st_mtime_ns for p in runs}
    run_experiment(EXP, labelled_data_dir, root / "work", report)
    assert {p.name: p.stat().st_mtime_ns for p in runs} == saved


def test_a_change_to_the_code_of_a_stage_changes_its_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finetuning runs' fingerprint covers the finetuning code: one changed byte redoes them."""
    copy = tmp_path / "repo"
    for package in ("model_build", "textfeatures"):
        shutil.copytree(
            codeversion.REPO_ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    monkeypatch.setattr(codeversion, "REPO_ROOT", copy)
    before = fingerprint("run", codeversion.code_version(*FINETUNE_CODE))
    for module in ("model_build/finetune.py", "textfeatures/decode.py"):
        path = copy / module
        path.write_text(path.read_text() + "\n# changed\n")
        after = fingerprint("run", codeversion.code_version(*FINETUNE_CODE))
        assert after != before, module
        before = after


@pytest.mark.parametrize("task", ["acronyms", "concepts"])
def test_bootstrap_metric_is_the_scorers_headline(task: str) -> None:
    rng = np.random.default_rng(3)
    kinds = ["long", "short"] if task == "acronyms" else ["concept"]
    gold = [{(i, i + 1, rng.choice(kinds)) for i in rng.integers(0, 30, 5)} for _ in range(40)]
    pred = [{(i, i + 1, rng.choice(kinds)) for i in rng.integers(0, 30, 5)} | set(list(g)[:2]) for g in gold]
    counts = np.asarray([[c[k] for k in kinds] for c in document_counts(gold, pred, kinds)], dtype=float)
    assert headline_from_counts(task, counts.sum(0)) == pytest.approx(
        headline(task, span_prf(gold, pred, kinds))
    )
    # Identical arms differ by exactly zero; a better arm's interval lies above zero.
    point, lo, hi = bootstrap(task, [counts[None], counts[None]], rounds=200)[2]
    assert point == lo == hi == 0.0
    perfect = np.asarray([[c[k] for k in kinds] for c in document_counts(gold, gold, kinds)], dtype=float)
    point, lo, hi = bootstrap(task, [perfect[None], counts[None]], rounds=200)[2]
    assert 0 < lo <= point <= hi


def test_a_stopped_experiment_leaves_no_run_going(tmp_path: Path) -> None:
    """SIGTERM to the experiment's process alone (as `kill` or a scheduler sends it): its worker,
    busy with a run that would last a minute, exits within seconds instead of finishing it."""
    (tmp_path / "long_run.py").write_text(
        "import os, time\n"
        "def run(job):\n"
        "    open(job['pid_file'], 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "    return job\n"
    )
    pid_file = tmp_path / "worker.pid"
    script = (
        "import long_run\n"
        "from model_build.experiment import _run_pool\n"
        f"list(_run_pool(long_run.run, [{{'pid_file': {str(pid_file)!r}}}], 1, None, 'runs'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(codeversion.REPO_ROOT)])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "the worker never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker outlived the experiment by 10 s"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it waits only for its (gone) parent's reaper.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
