"""`python -m bench` (`make bench`): our service against the alternatives, side by side.

    python -m bench [--artifacts-dir artifacts] [--build-dir build/small] [--quick]
                    [--variants onnx-int8,onnx-fp32,torch-eager,naive] [--out reports/bench]

Prints the table and writes `<out>/results.json` (one row per scenario and variant),
`<out>/report.md` (tables, ratios, targets, build-stage figures) and `<out>/run.json` (server
facts). Default run ~6-8 minutes on 2 cores, `--quick` ~2 minutes. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.inputs import REPO_ROOT
from bench.runner import VARIANTS, Plan, load_avg, run_all


def model_description(artifacts_dir: Path) -> str:
    try:
        manifests = sorted(artifacts_dir.glob("concepts/*/manifest.json"))
        manifest = json.loads(manifests[-1].read_text())
        m = manifest["model"]
        return (
            f"{m.get('config_name')} ({m.get('hidden')}x{m.get('layers')}, max {m.get('max_positions')} "
            f"positions), concepts {manifest['version']}, manifest serves {manifest['serve']['onnx_file']}"
        )
    except (IndexError, KeyError, OSError, ValueError):
        return f"artifacts in {artifacts_dir}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--build-dir", type=Path, default=Path("build/small"),
                        help="work dir of the build (PyTorch checkpoints, build-report.json)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="short runs (~2 minutes)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "bench")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite report.md from the results.json and run.json already in --out")  # fmt: skip
    args = parser.parse_args()
    if args.render_only:
        rows = json.loads((args.out / "results.json").read_text())
        saved = json.loads((args.out / "run.json").read_text())
        report.write(args.out, rows, saved["servers"], saved["build"], saved["meta"])
        print(f"rewrote {args.out / 'report.md'}")
        return

    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    artifacts_dir, build_dir = args.artifacts_dir.resolve(), args.build_dir.resolve()
    missing = [f"{artifacts_dir}/{t}/*/manifest.json" for t in ("concepts", "acronyms")
               if not list(artifacts_dir.glob(f"{t}/*/manifest.json"))]  # fmt: skip
    if missing:
        sys.exit(
            f"no artifacts: {', '.join(missing)} not found; run `make build-model` or pass --artifacts-dir"
        )

    plan = Plan.quick() if args.quick else Plan()
    meta = {
        "mode": "quick" if args.quick else "default",
        "started": report.now(),
        "load_avg_start": load_avg(),
        "machine": report.machine(),
        "model": model_description(artifacts_dir),
        "artifacts_dir": str(artifacts_dir),
        "build_dir": str(build_dir),
        "plan": plan.__dict__,
    }
    with tempfile.TemporaryDirectory(prefix="aligntag-bench-") as logs:
        rows, facts = run_all(
            artifacts_dir, build_dir, plan, Path(logs), variants, lambda s: print(s, flush=True)
        )
    meta["finished"], meta["load_avg_end"] = report.now(), load_avg()
    figures = report.build_figures(build_dir, args.out)
    results, md = report.write(args.out, rows, facts, figures, meta)

    print()
    print(report.table(rows))
    print()
    print(f"ratios ({report.OURS} / each; throughput > 1 and latency < 1 favour ours):")
    print(report.table([dict(zip(report.RATIO_HEADER, r, strict=True)) for r in report.ratios(rows, facts)],
                       tuple(report.RATIO_HEADER)))  # fmt: skip
    print()
    print("targets:")
    header = ("figure", "target", "measured", "verdict")
    print(report.table([dict(zip(header, t, strict=True)) for t in report.targets(rows, facts)], header))
    print(f"\nload average: start {meta['load_avg_start']}, end {meta['load_avg_end']}")
    print(f"wrote {results} and {md}")


if __name__ == "__main__":
    main()
