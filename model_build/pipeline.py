"""`make build-model`: every stage, for one named configuration, skipping what is done.

corpus -> tokenizer -> tokenize -> pretrain -> finetune (per task) -> export (per task).
Each stage's output carries the fingerprint of its inputs and settings; a stage whose output
matches is skipped, an interrupted pretraining resumes from its last checkpoint, and the
artifact directories are published atomically by the export stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from model_build.atomic import write_text_atomically
from model_build.checkpoint import load_encoder, save_checkpoint
from model_build.codeversion import code_version
from model_build.config import (
    TASKS,
    BuildConfig,
    as_dict,
    default_data_dir,
    default_work_dir,
    fingerprint,
    get_config,
)
from model_build.corpus import build_corpus, iter_documents
from model_build.corpus.roles import check_declared_roles, check_training_file
from model_build.data import read_span_file
from model_build.export import export_artifact
from model_build.finetune import finetune
from model_build.model import Encoder
from model_build.pretrain import pretrain
from model_build.streams import tokenize_corpus
from model_build.tokenizer import load_tokenizer, train_tokenizer
from textfeatures.words import use_word_splitter, word_splitter

log = logging.getLogger("model_build")


def _done(marker: Path, fp: str) -> bool:
    return marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fp


def _mark(marker: Path, fp: str, **info: object) -> None:
    write_text_atomically(marker, json.dumps({"fingerprint": fp, **info}, indent=2, default=str))


@dataclass(frozen=True)
class PretrainingText:
    """A pretraining corpus and the tokenizer that cuts it (trained on it, or on another corpus:
    the experiment tokenizes every arm's corpus with the one tokenizer of the transfer corpus)."""

    corpus_dir: Path
    corpus_fp: str
    tokenizer_path: Path
    tokenizer_fp: str

    @property
    def streams_fp(self) -> str:
        """The token streams follow the corpus, the tokenizer, the words their features are computed
        on and the code that tokenizes."""
        return fingerprint(
            self.corpus_fp,
            self.tokenizer_fp,
            word_splitter(),
            code_version(
                "model_build.streams",
                "model_build.data",
                "textfeatures.words",
                "textfeatures.acronyms",
                "textfeatures.features",
            ),
        )


class Stages:
    """The stages of one build, sharing a work directory. Each method is safe to rerun."""

    def __init__(self, cfg: BuildConfig, data_dir: Path, work_dir: Path) -> None:
        self.cfg, self.data_dir, self.work_dir = cfg, data_dir, work_dir
        use_word_splitter(cfg.words)  # process-wide: every stage computes words this way
        work_dir.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, t0: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 1)

    def corpus(self) -> tuple[Path, str]:
        t0 = time.perf_counter()
        out = self.work_dir / "corpus"
        build_corpus(self.cfg.corpus, self.data_dir, out)
        self._timed("corpus", t0)
        # Later stages follow the corpus by its content (the documents written), not by how it was
        # made: a change to the corpus code that leaves the documents as they were (a guard, a
        # reader refactor) reuses the tokenizer and the pretraining, and a clone elsewhere with the
        # same data does too (config.json names absolute paths, so it stays out).
        digest = hashlib.sha256()
        for shard in sorted(out.glob("*-*.jsonl")):
            digest.update(shard.name.encode() + b"\0")
            with shard.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        return out, digest.hexdigest()[:16]

    def tokenizer(self, corpus_dir: Path, corpus_fp: str) -> tuple[Path, str]:
        t0 = time.perf_counter()
        out_dir = self.work_dir / "tokenizer"
        out_dir.mkdir(exist_ok=True)
        path, marker = out_dir / "tokenizer.json", out_dir / "done.json"
        fp = fingerprint(corpus_fp, self.cfg.tokenizer, code_version("model_build.tokenizer"))
        if not _done(marker, fp):
            docs = iter_documents(corpus_dir, "train")
            texts = (
                d["text"]
                for i, d in enumerate(docs)
                if self.cfg.tokenizer.max_train_docs is None or i < self.cfg.tokenizer.max_train_docs
            )
            tok = train_tokenizer(
                texts, self.cfg.tokenizer.vocab_size, self.cfg.tokenizer.min_frequency, path
            )
            _mark(marker, fp, vocab_size=tok.get_vocab_size(), config=as_dict(self.cfg.tokenizer))
        self._timed("tokenizer", t0)
        return path, fp

    def pretraining_text(self) -> PretrainingText:
        """The corpus and the tokenizer trained on it."""
        corpus_dir, corpus_fp = self.corpus()
        tokenizer_path, tokenizer_fp = self.tokenizer(corpus_dir, corpus_fp)
        return PretrainingText(corpus_dir, corpus_fp, tokenizer_path, tokenizer_fp)

    def token_streams(self, text: PretrainingText) -> dict[str, dict]:
        t0 = time.perf_counter()
        streams = {
            split: tokenize_corpus(
                iter_documents(text.corpus_dir, split),
                text.tokenizer_path,
                self.stream_path(text, split),
            )
            for split in ("train", "valid")
        }
        self._timed("tokenize", t0)
        return streams

    def stream_path(self, text: PretrainingText, split: str) -> Path:
        return self.work_dir / f"tokens-{split}-{text.streams_fp}.npz"

    def prepare_pretraining_data(self) -> None:
        """Corpus, tokenizer and token streams: everything pretraining reads."""
        self.token_streams(self.pretraining_text())

    def pretrain(
        self, text: PretrainingText, recipe: str, stop_after: int | None = None
    ) -> tuple[Path, dict]:
        streams = self.token_streams(text)
        t0 = time.perf_counter()
        vocab = load_tokenizer(text.tokenizer_path).get_vocab_size()
        model_cfg = replace(self.cfg.model, vocab_size=vocab)
        pre_cfg = replace(self.cfg.pretrain, recipe=recipe)
        out_dir = self.work_dir / f"pretrain-{recipe}-{text.tokenizer_fp}"
        if len(streams["valid"]["ids"]) < pre_cfg.seq_len:
            streams["valid"] = streams["train"]  # a tiny corpus may put nothing in valid
        summary = pretrain(
            model_cfg,
            pre_cfg,
            streams["train"],
            streams["valid"],
            out_dir,
            data_fp=text.streams_fp,
            stop_after=stop_after,
        )
        self._timed(f"pretrain-{recipe}", t0)
        return out_dir / "final.pt", summary

    def train_files(self, task: str) -> list[str]:
        return [self.cfg.datasets[task][0], *self.cfg.extra_train.get(task, ())]

    def labelled(self, task: str, role: int, limit: int | None = None) -> list[dict]:
        """Train (role 0: the task's train file and its extra ones) or dev (role 1) records of a
        task, each with the `file` it comes from; a missing file contributes nothing."""
        names = self.train_files(task) if role == 0 else [self.cfg.datasets[task][1]]
        if role == 0:
            for name in names:  # every file checked before any is read
                check_training_file(self.data_dir / name)
        records: list[dict] = []
        for name in names:
            path = self.data_dir / name
            if not path.exists():
                log.warning(
                    "no labelled data at %s: %s", path, "zero-shot head" if role == 0 else "no evaluation"
                )
                continue
            records += [{**rec, "file": name} for rec in read_span_file(path, limit)]
        return records

    def finetune(
        self, task: str, checkpoint: Path, recipe: str, pretrain_fp: str, tokenizer_path: Path
    ) -> tuple[Encoder, dict]:
        t0 = time.perf_counter()
        ft_cfg = self.cfg.finetune
        out_dir = self.work_dir / f"finetune-{task}-{recipe}"
        out_dir.mkdir(exist_ok=True)
        train = self.labelled(task, 0)
        noun_final = task in self.cfg.noun_final_tasks
        fp = fingerprint(
            pretrain_fp,
            ft_cfg,
            self.train_files(task),
            len(train),
            noun_final,
            code_version("model_build.finetune", "model_build.evaluate", "model_build.data", "textfeatures"),
        )
        marker, model_path = out_dir / "done.json", out_dir / "model.pt"
        if _done(marker, fp):
            model, _ = load_encoder(model_path)
            summary = json.loads(marker.read_text())["summary"]
        else:
            encoder, _ = load_encoder(checkpoint)
            if train:
                model, summary = finetune(
                    encoder,
                    recipe,
                    task,
                    train,
                    load_tokenizer(tokenizer_path),
                    ft_cfg,
                    noun_final=noun_final,
                    zero_shot_candidate=recipe == "aligned",
                )
                summary["dataset"] = "+".join(self.train_files(task))
                summary["zero_shot"] = False
            else:  # no labelled data: serve the aligned pretraining head as it is
                model, summary = (
                    encoder,
                    {"dataset": None, "examples": 0, "seed": ft_cfg.seed, "zero_shot": True},
                )
            save_checkpoint(model_path, model)
            _mark(marker, fp, summary=summary)
        self._timed(f"finetune-{task}", t0)
        return model, {**summary, "fingerprint": fp}


def build(
    config_name: str = "small",
    data_dir: Path | None = None,
    work_dir: Path | None = None,
    artifacts_dir: Path = Path("artifacts"),
    recipe: str = "aligned",
    pretrain_seed: int | None = None,
) -> dict[str, Path]:
    """Run every stage; return {task: artifact version directory}. `pretrain_seed` replaces the
    config's pretraining seed (the manifest records the resolved config)."""
    t_start = time.perf_counter()
    cfg = get_config(config_name)
    if pretrain_seed is not None:
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, seed=pretrain_seed))
    data_dir = data_dir or default_data_dir()
    work_dir = work_dir or default_work_dir(config_name, pretrain_seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    check_declared_roles(
        train=[name for task in TASKS for name in (cfg.datasets[task][0], *cfg.extra_train.get(task, ()))],
        dev=[cfg.datasets[task][1] for task in TASKS],
        pretraining=[*cfg.corpus.span_files, *cfg.corpus.text_files],
    )
    stages = Stages(cfg, data_dir, work_dir)
    text = stages.pretraining_text()
    checkpoint, pre_summary = stages.pretrain(text, recipe)
    corpus_stats = json.loads((text.corpus_dir / "stats.json").read_text())
    published: dict[str, Path] = {}
    for task in TASKS:
        model, ft_summary = stages.finetune(
            task, checkpoint, recipe, pre_summary["run_id"], text.tokenizer_path
        )
        export_fp = fingerprint(
            ft_summary["fingerprint"], cfg.export, cfg.datasets[task][1], code_version("model_build.export")
        )
        existing = _existing_artifact(artifacts_dir / task, export_fp)
        if existing is not None:
            published[task] = existing
            continue
        t0 = time.perf_counter()
        dev = stages.labelled(task, 1, cfg.finetune.eval_max_examples)
        version = version_name(cfg.name, export_fp)
        extra = manifest_extra(cfg, model, recipe, pre_summary, corpus_stats, ft_summary, export_fp, data_dir)
        published[task] = export_artifact(
            model, task, text.tokenizer_path, dev, cfg.export, artifacts_dir, version, extra,
            noun_final=task in cfg.noun_final_tasks,
        )  # fmt: skip
        stages._timed(f"export-{task}", t0)
    total = time.perf_counter() - t_start
    report = {
        "config": cfg.name,
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(total, 1),
        "stages": stages.timings,
        "artifacts": {k: str(v) for k, v in published.items()},
    }
    (work_dir / "build-report.json").write_text(json.dumps(report, indent=2))
    # build-report.json describes this invocation only (a no-op rerun takes seconds); the history
    # keeps every invocation, so the full build's stage times survive later reruns.
    with (work_dir / "build-history.jsonl").open("a") as history:
        history.write(json.dumps(report) + "\n")
    return published


def version_name(prefix: str, export_fp: str) -> str:
    """An artifact version directory's name: what made it, when, and its export fingerprint."""
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{export_fp[:6]}"


def manifest_extra(
    cfg: BuildConfig,
    model: Encoder,
    recipe: str,
    pre_summary: dict,
    corpus_stats: dict,
    ft_summary: dict,
    export_fp: str,
    data_dir: Path,
) -> dict:
    """The manifest sections that say how a model was made (docs/contracts.md section 3)."""
    return {
        "model": {
            "config_name": cfg.name,
            **{
                k: getattr(model.cfg, k)
                for k in ("hidden", "layers", "heads", "intermediate", "vocab_size", "max_positions")
            },
        },
        "pretraining": {
            "recipe": recipe,
            "objectives": pre_summary["objectives"],
            "corpora": corpus_stats.get("per_source", {}),
            "steps": pre_summary["steps"],
            "seed": pre_summary["seed"],
            "tokens_per_second": pre_summary.get("tokens_per_second"),
            "valid_losses": pre_summary.get("valid_losses"),
        },
        "finetuning": {
            k: ft_summary.get(k)
            for k in (
                "dataset",
                "examples",
                "seed",
                "zero_shot",
                "steps",
                "best_epoch",
                "best_selection_score",
                "label_offsets",
                "calibrated_selection_score",
                "crossfit_selection_score",
            )
        },
        "build": {"fingerprint": export_fp, "config": as_dict(cfg), "data_dir": str(data_dir)},
    }


def _existing_artifact(task_dir: Path, export_fp: str) -> Path | None:
    if not task_dir.exists():
        return None
    for version_dir in sorted(task_dir.iterdir()):
        manifest = version_dir / "manifest.json"
        if (
            manifest.exists()
            and json.loads(manifest.read_text()).get("build", {}).get("fingerprint") == export_fp
        ):
            return version_dir
    return None
