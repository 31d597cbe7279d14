"""Held-out pretraining loss against training minutes: the default's sizing beside the former one
and beside 3.3x the default's pretraining (`small-long`).

    python -m bench.pretraining_curves [--configs small small-no-budget-sizing small-long] [--out reports/quality]

Reads the pretraining of each config's build (`python -m model_build build --config <config>
--artifacts-dir build/artifacts-<config>` first, so that an ablation never lands among the served
artifacts; its `valid_every` curve, `model_build.pretrain`) and writes `<out>/pretraining.md` and
`<out>/pretraining.png`. The configs have different vocabularies, so a loss per token does not
compare across them: the masked-LM loss is divided by the mean characters per token of the held-out
stream (positions are masked uniformly, so that is the mean length of a masked token) to give nats
per character, beside each tokenizer's unigram entropy per character on the training stream (what
a model that ignores context scores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model_build.config import default_data_dir, default_work_dir, get_config
from model_build.pipeline import Stages
from model_build.tokenizer import load_tokenizer


def chars_per_token(ids: np.ndarray, lengths: np.ndarray) -> float:
    return float(lengths[ids].mean())


def unigram_nats_per_char(ids: np.ndarray, lengths: np.ndarray) -> float:
    counts = np.bincount(ids, minlength=len(lengths)).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum()) / chars_per_token(ids, lengths)


def measure(config_name: str) -> dict:
    """The curve and summary of a config's pretraining, in nats per character."""
    cfg = get_config(config_name)
    stages = Stages(cfg, default_data_dir(), default_work_dir(config_name))
    text = stages.pretraining_text()  # reused as built: fingerprinted like every stage
    summary_path = stages.work_dir / f"pretrain-{cfg.pretrain.recipe}-{text.tokenizer_fp}" / "pretrain.json"
    if not summary_path.exists():
        raise SystemExit(f"{summary_path}: no pretraining; build config {config_name} first")
    summary = json.loads(summary_path.read_text())
    if not summary.get("valid_curve"):
        raise SystemExit(f"{summary_path}: no held-out curve (config {config_name} sets no valid_every)")
    tokenizer = load_tokenizer(text.tokenizer_path)
    vocab = tokenizer.get_vocab()
    lengths = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for token, i in vocab.items():
        lengths[i] = len(token.removeprefix("##"))
    streams = {split: np.load(stages.stream_path(text, split))["ids"] for split in ("train", "valid")}
    valid_cpt = chars_per_token(streams["valid"], lengths)
    return {
        "config": config_name,
        "parameters": summary["parameters"],
        "vocab_size": tokenizer.get_vocab_size(),
        "steps": summary["steps"],
        "tokens_seen": summary["tokens_seen"],
        "train_minutes": summary["train_seconds"] / 60,
        "chars_per_token": valid_cpt,
        "unigram_nats_per_char": unigram_nats_per_char(streams["train"], lengths),
        "curve": [(c["train_seconds"] / 60, c["loss_mlm"] / valid_cpt) for c in summary["valid_curve"]],
        "final": summary["valid_losses"],
        "final_nats_per_char": summary["valid_losses"]["loss_mlm"] / valid_cpt,
    }


def write(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r, color in zip(results, ("C0", "C1", "C2", "C3"), strict=False):
        minutes, loss = zip(*r["curve"], strict=True)
        ax.plot(minutes, loss, "-o", color=color, markersize=3, label=f"{r['config']} (held-out MLM)")
        ax.axhline(r["unigram_nats_per_char"], color=color, ls=":", lw=1, label=f"{r['config']} unigram")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("masked-LM loss, nats per character")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pretraining.png", dpi=100)
    plt.close(fig)
    lines = [
        "# Pretraining: held-out loss against minutes",
        "",
        "Regenerate: `python -m bench.pretraining_curves` (after `make build-model` and, for each of",
        "`small-no-budget-sizing` and `small-long`, `python -m model_build build --config <config>",
        "--artifacts-dir build/artifacts-<config>`). Held-out = the corpus's valid split (documents",
        "never trained on), 8 batches of 32 x 128 tokens every `valid_every` steps; minutes count the",
        "training steps only. Loss per character = masked-LM nats per masked token / mean characters",
        "per token of the held-out stream, so tokenizers of different vocabularies compare; `unigram`",
        "is the entropy per character of the tokenizer's own token frequencies (no context).",
        "",
        "| config | parameters | vocabulary | steps | tokens seen | training minutes | chars/token "
        "| held-out MLM nats/token | nats/char | unigram nats/char | concepts loss | acronyms loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        final = r["final"]
        lines.append(
            f"| {r['config']} | {r['parameters'] / 1e6:.1f}M | {r['vocab_size']} | {r['steps']} | "
            f"{r['tokens_seen'] / 1e6:.2f}M | {r['train_minutes']:.1f} | {r['chars_per_token']:.2f} | "
            f"{final['loss_mlm']:.3f} | {r['final_nats_per_char']:.3f} | {r['unigram_nats_per_char']:.3f} | "
            f"{final.get('loss_concepts', float('nan')):.3f} | {final.get('loss_acronyms', float('nan')):.3f} |"
        )
    first, *others = results
    for r in others:
        difference = first["final_nats_per_char"] - r["final_nats_per_char"]
        lines += [
            "",
            f"Held-out MLM after {first['train_minutes']:.1f} and {r['train_minutes']:.1f} training minutes: "
            f"`{first['config']}` {first['final_nats_per_char']:.3f} nats per character, `{r['config']}` "
            f"{r['final_nats_per_char']:.3f} (difference {difference:+.3f}); "
            f"the held-out losses of the concept and acronym "
            f"objectives are {first['final']['loss_concepts']:.3f} and {first['final']['loss_acronyms']:.3f} "
            f"against {r['final']['loss_concepts']:.3f} and {r['final']['loss_acronyms']:.3f}.",
        ]
    lines += ["", "![held-out loss against minutes](pretraining.png)", ""]
    (out / "pretraining.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small", "small-no-budget-sizing", "small-long"])
    parser.add_argument("--out", type=Path, default=Path("reports/quality"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = [measure(name) for name in args.configs]
    write(results, args.out)
    print((args.out / "pretraining.md").read_text())


if __name__ == "__main__":
    main()
