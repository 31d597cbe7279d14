"""Encoder checkpoints: the model config, the weights and any extra state (optimizer, step)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model_build.atomic import write_atomically
from model_build.model import Encoder, ModelConfig


def save_checkpoint(path: Path, model: Encoder, **extra: Any) -> None:
    state = {"model_config": asdict(model.cfg), "state_dict": model.state_dict(), **extra}
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def load_encoder(path: Path) -> tuple[Encoder, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Encoder(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt
