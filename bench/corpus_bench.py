"""Corpus-stage benchmark: `python bench/corpus_bench.py [--data-dir D] [--repeat N]`.

1. FOLDOC + Jargon -> labelled pretraining examples: wall time of `build_corpus` with only the
   dictd sources (target < 60 s on a 2-core machine).
2. MediaWiki parsing throughput: the sample pages in `<data>/wikitext/` repeated into an XML
   dump, read with `read_mediawiki_dump` (iterparse in the main process, wikitext -> text + links
   in the workers) with 1
   and 2 worker processes; MB of wikitext per second, and per core.
3. Peak RSS of reading a 1x and a 10x dump, each in a fresh subprocess (`ru_maxrss`).

Prints a table and writes `reports/bench/corpus.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from model_build.corpus.build import CorpusConfig, build_corpus  # noqa: E402
from model_build.corpus.wikitext import read_mediawiki_dump  # noqa: E402

_RSS_CHILD = """
import resource, sys
from model_build.corpus.wikitext import read_mediawiki_dump
n = 0
for doc in read_mediawiki_dump(sys.argv[1]):
    n += len(doc.text)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, n)
"""


def write_dump(pages: list[tuple[str, str]], copies: int, path: Path) -> int:
    """Write `copies` x `pages` as a MediaWiki dump; returns the bytes of wikitext written."""
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n')
        for c in range(copies):
            for title, text in pages:
                total += len(text.encode("utf-8"))
                f.write(
                    f"<page><title>{escape(title)} {c}</title><ns>0</ns><revision>"
                    f'<text xml:space="preserve">{escape(text)}</text></revision></page>\n'
                )
        f.write("</mediawiki>\n")
    return total


def bench_dictd(tmp: Path) -> dict:
    cfg = CorpusConfig(wikitext_dir=None, span_files=())
    t0 = time.perf_counter()
    stats = build_corpus(cfg, tmp, tmp / "dictd-corpus")
    wall = time.perf_counter() - t0
    return {
        "wall_s": round(wall, 2),
        "documents": stats["documents"],
        "words": stats["words"],
        "links": stats["links"],
        "acronym_pairs": stats["acronym_pairs"],
        "link_spans_per_100_words": stats["link_spans_per_100_words"],
        "labelled_document_share": stats["labelled_document_share"],
    }


def bench_throughput(dump: Path, mb: float, workers: int) -> dict:
    t0 = time.perf_counter()
    n = 0
    for _ in read_mediawiki_dump(dump, workers=workers):
        n += 1
    wall = time.perf_counter() - t0
    return {
        "workers": workers,
        "pages": n,
        "wall_s": round(wall, 2),
        "mb_per_s": round(mb / wall, 2),
        "mb_per_s_per_core": round(mb / wall / workers, 2),
    }


def peak_rss(dump: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(dump)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    return int(out.stdout.split()[0])  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--repeat", type=int, default=5, help="copies of the sample pages in the throughput dump")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "bench" / "corpus.json")
    args = ap.parse_args()
    pages = [
        (p.stem, p.read_text(encoding="utf-8")) for p in sorted((args.data_dir / "wikitext").glob("*.txt"))
    ]
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result["dictd_build"] = bench_dictd(tmp)
        dump = tmp / "bench-pages.xml"
        mb = write_dump(pages, args.repeat, dump) / 1e6
        result["mediawiki_throughput"] = {
            "wikitext_mb": round(mb, 2),
            "runs": [bench_throughput(dump, mb, w) for w in (1, 2)],
        }
        d1, d10 = tmp / "x1.xml", tmp / "x10.xml"
        mb1 = write_dump(pages, 1, d1) / 1e6
        mb10 = write_dump(pages, 10, d10) / 1e6
        result["peak_rss"] = {
            "x1": {"wikitext_mb": round(mb1, 2), "peak_rss_mb": round(peak_rss(d1) / 1024, 1)},
            "x10": {"wikitext_mb": round(mb10, 2), "peak_rss_mb": round(peak_rss(d10) / 1024, 1)},
        }
    b = result["dictd_build"]
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'FOLDOC+Jargon -> labelled examples (s)':<44} {b['wall_s']:>12}")
    print(f"{'  documents / words':<44} {b['documents']:>6}/{b['words']}")
    for r in result["mediawiki_throughput"]["runs"]:
        print(
            f"{'MediaWiki MB/s, ' + str(r['workers']) + ' worker(s) (per core)':<44} {r['mb_per_s']:>6} ({r['mb_per_s_per_core']})"
        )
    for k, v in result["peak_rss"].items():
        print(
            f"{'peak RSS ' + k + ' (' + str(v['wikitext_mb']) + ' MB wikitext), MB':<44} {v['peak_rss_mb']:>12}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
