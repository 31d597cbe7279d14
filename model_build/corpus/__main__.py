"""`python -m model_build.corpus --data-dir D --out O [...]`: run the corpus stage alone."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from model_build.corpus.build import CorpusConfig, build_corpus


def default_data_dir() -> Path:
    env = os.environ.get("ALIGNTAG_DATA_DIR")
    return Path(env) if env else Path("../shared/data")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_build.corpus", description=__doc__)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="public data dir (default: $ALIGNTAG_DATA_DIR or ../shared/data)",
    )
    ap.add_argument("--out", type=Path, required=True, help="output corpus directory")
    ap.add_argument("--later-mentions", choices=("label", "ignore", "none"), default="label")
    ap.add_argument("--max-docs-per-source", type=int, default=None)
    ap.add_argument("--caps-rule", action="store_true", help="acronyms: also label tokens with 2+ capitals")
    ap.add_argument("--dictd", default="foldoc,jargon", help="comma-separated dictd databases ('' for none)")
    ap.add_argument("--dump", action="append", default=[], help="MediaWiki XML dump (repeatable)")
    ap.add_argument("--text", action="append", default=[], help="plain text file (repeatable)")
    ap.add_argument(
        "--no-span-files", action="store_true", help="do not read the labelled training files' text"
    )
    ap.add_argument("--valid-fraction", type=float, default=CorpusConfig.valid_fraction)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kwargs: dict = {}
    if args.no_span_files:
        kwargs["span_files"] = ()
    cfg = CorpusConfig(
        dictd=tuple(x for x in args.dictd.split(",") if x),
        mediawiki_dumps=tuple(args.dump),
        text_files=tuple(args.text),
        later_mentions=args.later_mentions,
        max_docs_per_source=args.max_docs_per_source,
        acronym_caps_rule=args.caps_rule,
        valid_fraction=args.valid_fraction,
        **kwargs,
    )
    stats = build_corpus(cfg, args.data_dir, args.out)
    print(json.dumps({k: v for k, v in stats.items() if k != "per_source"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
