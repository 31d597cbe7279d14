"""How the batcher's length groups pay off, in process: the same batches run padded as one call and
cut by `service.batcher.length_groups`, side by side.

    python -m bench.grouping [--artifacts-dir artifacts] [--rounds 3]

Batches are drawn from the bench's sentence pool (and 32 full 256-token windows for the long-
document case) and run through the served int8 concepts model with the service's own runtime
settings. Prints milliseconds per text (per window for the long case) for both ways and their
ratio; the model alone, no HTTP. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.inputs import sentence_pool
from service.batcher import run_sequences, softmax
from textfeatures.features import FEATURE_NAMES, Window, encode_texts, pad_batch, window

Run = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def one_call(run: Run, sequences: Sequence[Window], pad_id: int = 0) -> list[np.ndarray]:
    """The whole batch padded to its longest sequence, one call (the batcher before groups)."""
    probs = softmax(np.asarray(run(*pad_batch(sequences, pad_id)), dtype=np.float32))
    return [probs[row, : len(s)] for row, s in enumerate(sequences)]


def length_grouped_calls(run: Run, sequences: Sequence[Window]) -> list[np.ndarray]:
    """What the batcher does: `length_groups`, one call per group (`service.batcher.run_sequences`)."""
    return run_sequences(run, sequences, pad_id=0)


def per_item_ms(way: Callable[..., object], run: Run, batches: list[list[Window]], rounds: int) -> float:
    """Best of `rounds` passes over the batches, in milliseconds per sequence."""
    items = sum(len(b) for b in batches)
    for b in batches:  # warm-up: thread pools, allocator
        way(run, b)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for b in batches:
            way(run, b)
        best = min(best, time.perf_counter() - t0)
    return best / items * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts-dir", type=Path, default=Path("artifacts"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from service.artifacts import load_artifact
    from service.models import onnx_runtime_factory
    from service.settings import Settings

    settings = Settings(artifacts_dir=args.artifacts_dir)
    artifact = load_artifact(args.artifacts_dir, "concepts")  # the version the service would serve
    run = onnx_runtime_factory(artifact, settings)
    pool = [
        window(inputs, 0, len(inputs.ids)) for inputs in encode_texts(artifact.tokenizer, sentence_pool(512))
    ]
    long_window = Window([3] * 256, np.ones((256, len(FEATURE_NAMES)), dtype=np.int64))

    print(f"model {artifact.onnx_path}, intra-op threads {settings.intra_op_threads or 'ORT default'}")
    print(f"{'batch':<28} {'one call ms':>12} {'length groups ms':>17} {'ratio':>6}")
    cases = [(f"{size} sentences", [pool[i : i + size] for i in range(0, 256, size)]) for size in (16, 64)]
    cases.append(("32 windows of 256 tokens", [[long_window] * 32]))
    for name, batches in cases:
        padded = per_item_ms(one_call, run, batches, args.rounds)
        grouped = per_item_ms(length_grouped_calls, run, batches, args.rounds)
        print(f"{name:<28} {padded:>12.3f} {grouped:>17.3f} {padded / grouped:>5.2f}x")


if __name__ == "__main__":
    main()
