"""Replaced-token detection (ELECTRA; Clark et al., 2020): the encoder learns from every token of
a window, not only from the 15% that are masked.

A small generator (the encoder's architecture at a fraction of its width) learns masked-LM on the
masked batch; its samples take the place of the masked tokens; the encoder reads the result and
tells, for every token, whether it is the original. The aligned objectives (concept and acronym
tags) train on the same pass of the encoder. The generator and the detection head are dropped
after pretraining: finetuning and export see the encoder alone, as after masked-LM.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from model_build.model import IGNORE, Encoder, ModelConfig


def generator_config(encoder: ModelConfig, width_fraction: float) -> ModelConfig:
    """The encoder's depth and inputs at `width_fraction` of its width (head size 64, as the
    paper's small generator; at least one head)."""
    hidden = max(16, int(encoder.hidden * width_fraction))
    return dataclasses.replace(
        encoder, hidden=hidden, heads=max(1, hidden // 64), intermediate=4 * hidden, dropout=0.0
    )


class ReplacedTokenDetection(nn.Module):
    def __init__(self, encoder_cfg: ModelConfig, width_fraction: float) -> None:
        super().__init__()
        self.generator = Encoder(generator_config(encoder_cfg, width_fraction))
        self.generator.heads.requires_grad_(False)  # the generator only does masked-LM
        self.head = nn.Linear(encoder_cfg.hidden, 1)

    def forward(
        self,
        encoder: Encoder,
        batch: dict[str, torch.Tensor],
        labels: dict[str, torch.Tensor],
        loss_weights: dict[str, float],
        label_smoothing: float,
    ) -> dict[str, torch.Tensor]:
        """The losses of one batch: `loss_generator` (its masked-LM), `loss_rtd` (binary cross
        entropy over every real token) and the encoder's tagging losses; `loss` is their sum
        weighted by `loss_weights` (keys `generator`, `rtd`, and the tasks)."""
        ids, mask, features, mlm_labels, segments = (
            batch["input_ids"], batch["attention_mask"], batch["features"], batch["mlm_labels"],
            batch.get("segments"),
        )  # fmt: skip
        masked = mlm_labels != IGNORE
        gen_logits = self.generator.mlm_logits(self.generator.encode(ids, mask, features, segments)[masked])
        summed = F.cross_entropy(gen_logits, mlm_labels[masked], reduction="sum")
        gen_loss = summed / masked.sum().clamp(min=1)
        with torch.no_grad():  # the encoder's loss does not train the generator (no gradient
            # through sampling), as in the paper
            sampled = torch.multinomial(F.softmax(gen_logits.float(), dim=-1), 1).squeeze(-1)
        original = torch.where(masked, mlm_labels, ids)
        corrupted = original.clone()
        corrupted[masked] = sampled
        out = encoder(
            corrupted, mask, features, None, labels,
            loss_weights=loss_weights, label_smoothing=label_smoothing, return_hidden=True,
            segments=segments,
        )  # fmt: skip
        real = mask.bool()
        replaced = (corrupted != original)[real].float()
        rtd_logits = self.head(out.pop("hidden")).squeeze(-1)[real]
        rtd_loss = F.binary_cross_entropy_with_logits(rtd_logits, replaced)
        total = loss_weights.get("generator", 1.0) * gen_loss + loss_weights.get("rtd", 1.0) * rtd_loss
        out["loss"] = out["loss"] + total if "loss" in out else total
        out["loss_generator"] = gen_loss.detach()
        out["loss_rtd"] = rtd_loss.detach()
        return out
