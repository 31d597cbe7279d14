"""`python -m model_build <command>`: the offline build's command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from model_build.config import CONFIGS, default_data_dir, default_work_dir, get_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_build", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default="small", choices=sorted(CONFIGS), help="named build configuration")
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="labelled data directory (default: $ALIGNTAG_DATA_DIR or ../shared/data)",
        )
        p.add_argument(
            "--work-dir", type=Path, default=None, help="intermediate outputs (default: build/<config>)"
        )

    p_build = sub.add_parser("build", help="run every stage and publish artifacts")
    common(p_build)
    p_build.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    p_build.add_argument("--recipe", default="aligned", choices=["aligned", "mlm"])
    p_build.add_argument(
        "--pretrain-seed",
        type=int,
        default=None,
        help="another pretraining seed than the config's (a second sample of a build; default work dir "
        "build/<config>-pretrain-seed<N>)",
    )

    p_corpus = sub.add_parser("corpus", help="corpus stage only: documents with weak labels")
    common(p_corpus)

    p_pre = sub.add_parser("pretrain", help="corpus, tokenizer and pretraining only (runs under torchrun)")
    common(p_pre)
    p_pre.add_argument("--recipe", default="aligned", choices=["aligned", "mlm"])

    p_ft = sub.add_parser(
        "finetune", help="your own task from a few hundred examples -> artifacts/<task>/<version>/"
    )
    common(p_ft)
    p_ft.add_argument("--task", required=True, help="its name: the route is POST /tasks/<task>")
    p_ft.add_argument(
        "--train", type=Path, required=True, help="span/Prodigy JSONL, CoNLL BIO, or a BRAT directory"
    )
    p_ft.add_argument("--dev", type=Path, default=None, help="evaluation file (default: hold out 20%%)")
    p_ft.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    p_ft.add_argument("--max-examples", type=int, default=None, help="use N examples (default: all)")
    p_ft.add_argument("--seed", type=int, default=0)
    p_ft.add_argument("--label-key", default="label", help="the JSONL span field that holds the label")

    p_exp = sub.add_parser(
        "experiment", help="mlm / aligned-transfer / aligned x N x seeds -> reports/experiment/"
    )
    p_exp.add_argument("--preset", choices=["gpu", "cpu"], default=None, help="default: gpu if one is found")
    p_exp.add_argument("--data-dir", type=Path, default=None)
    p_exp.add_argument("--work-dir", type=Path, default=Path("build/experiment"))
    p_exp.add_argument("--report-dir", type=Path, default=Path("reports/experiment"))
    p_exp.add_argument("--workers", type=int, default=None, help="parallel runs (default: the preset's)")
    p_exp.add_argument(
        "--config", default=None, choices=sorted(CONFIGS), help="architecture (default: small)"
    )
    p_exp.add_argument(
        "--ablation-config",
        default=None,
        help="its twin without input features, or 'none' (default: small-no-features)",
    )
    p_exp.add_argument("--report-only", action="store_true", help="rewrite the report from the saved runs")
    p_exp.add_argument(
        "--deadline-minutes", type=float, default=None, help="start no finetuning run after this long"
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("model_build").setLevel(logging.INFO)
    data_dir = args.data_dir or default_data_dir()
    work_dir = args.work_dir or default_work_dir(args.config, getattr(args, "pretrain_seed", None))
    t0 = time.perf_counter()
    if args.command == "build":
        from model_build.pipeline import build

        published = build(
            args.config, data_dir, work_dir, args.artifacts_dir, args.recipe, args.pretrain_seed
        )
        report = json.loads((work_dir / "build-report.json").read_text())
        print(
            f"build {args.config} finished in {time.perf_counter() - t0:.1f} s; stage seconds: {report['stages']}"
        )
        for task, path in published.items():
            print(f"  {task}: {path}")
        return 0
    if args.command == "experiment":
        from dataclasses import replace

        from model_build.experiment import PRESETS, report_from_saved, run_experiment

        exp = PRESETS[args.preset or ("gpu" if torch.cuda.is_available() else "cpu")]
        if args.workers:
            exp = replace(exp, workers=args.workers)
        if args.config:
            exp = replace(exp, config=args.config)
        if args.ablation_config:
            exp = replace(
                exp, ablation_config=None if args.ablation_config == "none" else args.ablation_config
            )
        if args.report_only:
            report_from_saved(exp, data_dir, args.work_dir, args.report_dir)
        else:
            deadline = None if args.deadline_minutes is None else args.deadline_minutes * 60
            run_experiment(exp, data_dir, args.work_dir, args.report_dir, deadline)
        print(f"report: {args.report_dir / 'report.md'}")
        return 0
    if args.command == "finetune":
        from model_build.corpus.roles import LeakageError
        from model_build.userdata import DataError
        from model_build.usertask import finetune_task, print_report

        try:
            out, _ = finetune_task(
                args.task, args.train, args.dev, args.config, data_dir, work_dir, args.artifacts_dir,
                args.max_examples, args.seed, args.label_key,
            )  # fmt: skip
        except (DataError, LeakageError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print_report(out, json.loads((out / "manifest.json").read_text()))
        return 0
    from model_build.pipeline import Stages

    stages = Stages(get_config(args.config), data_dir, work_dir)
    if args.command == "corpus":
        corpus_dir, _ = stages.corpus()
        print((corpus_dir / "stats.json").read_text())
        return 0
    # Under torchrun every rank runs this; only rank 0 writes the data stages, the others wait.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if dist.get_rank() == 0:
            stages.prepare_pretraining_data()
        dist.barrier()
    checkpoint, summary = stages.pretrain(stages.pretraining_text(), args.recipe)
    if distributed and dist.get_rank() != 0:
        return 0
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2, default=str))
    print(f"checkpoint: {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
