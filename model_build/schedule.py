"""The learning-rate schedule of pretraining and finetuning."""

from __future__ import annotations

import math


def lr_at(step: int, total: int, warmup_fraction: float, peak: float) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
