"""The whole encoder in one file: config, layers, heads, losses.

Token + learned absolute position embeddings, pre-LN transformer layers (pre-LN trains stably
at the high learning rates short CPU runs need, without warm-up tricks), a final LayerNorm, and
three heads: masked-LM (tied to the input embeddings), the concept tagger (B/I/O) and the
acronym tagger (B/I-short, B/I-long, O). `forward` returns the logits of the heads asked for and
the summed loss of those given labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from textfeatures.features import FEATURE_NAMES, FEATURE_SIZES

IGNORE = -100  # label of positions that take no part in a loss
CONCEPT_LABELS = ("O", "B-concept", "I-concept")
ACRONYM_LABELS = ("O", "B-short", "I-short", "B-long", "I-long")
TASK_LABELS = {"concepts": CONCEPT_LABELS, "acronyms": ACRONYM_LABELS}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 16000  # set from the trained tokenizer
    hidden: int = 512
    layers: int = 3
    heads: int = 8
    intermediate: int = 2048
    max_positions: int = 256
    dropout: float = 0.1
    # Embed the per-token features of `textfeatures.features` (word shape, word start, the rules'
    # tags) and add them to the token embeddings; the exported graph then takes a `features` input.
    features: bool = True
    # Feature columns (`FEATURE_NAMES`) the encoder does not embed, though the graph still takes
    # them all: config `small-no-rule-features` drops the rules' tags and keeps the word-shape
    # columns, to tell which of the two carries the features' gain.
    ignored_features: tuple[str, ...] = ()
    num_concept_labels: int = len(CONCEPT_LABELS)
    num_acronym_labels: int = len(ACRONYM_LABELS)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        assert cfg.hidden % cfg.heads == 0, "hidden must be divisible by heads"
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(x).split(h, dim=2)
        q, k, v = (z.view(b, t, self.heads, h // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, h))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.intermediate), nn.GELU(), nn.Linear(cfg.intermediate, cfg.hidden)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), attn_bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.pos_emb = nn.Embedding(cfg.max_positions, cfg.hidden)
        unknown = set(cfg.ignored_features) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"ignored_features names no feature column: {sorted(unknown)}")
        self.feature_columns = [
            k for k, name in enumerate(FEATURE_NAMES) if cfg.features and name not in cfg.ignored_features
        ]
        self.feature_emb = nn.ModuleList(
            nn.Embedding(FEATURE_SIZES[k], cfg.hidden) for k in self.feature_columns
        )
        self.emb_ln = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.mlm_transform = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden)
        )
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.heads = nn.ModuleDict(
            {
                "concepts": nn.Linear(cfg.hidden, cfg.num_concept_labels),
                "acronyms": nn.Linear(cfg.hidden, cfg.num_acronym_labels),
            }
        )
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final hidden states. `segments` (batch, seq; pretraining's packed rows): the document
        each token belongs to, non-decreasing along a row; a token then attends only within its
        document and its position counts from its document's first token in the row, so a row
        of several documents reads as those documents apart."""
        t = input_ids.shape[1]
        index = torch.arange(t, device=input_ids.device).unsqueeze(0)
        pos = index if segments is None else index - _segment_starts(segments)
        x = self.tok_emb(input_ids) + self.pos_emb(pos)
        if self.cfg.features:
            if features is None:
                raise ValueError("this encoder reads token features: pass `features`")
            for column, table in zip(self.feature_columns, self.feature_emb, strict=True):
                x = x + table(features[..., column])
        x = self.drop(self.emb_ln(x))
        # Additive bias (batch, 1, 1 or seq, seq): padded keys, and keys of another document,
        # get a large negative score.
        keep = attention_mask[:, None, None, :].bool()
        if segments is not None:
            keep = keep & (segments[:, None, :, None] == segments[:, None, None, :])
        attn_bias = (~keep).to(x.dtype) * torch.finfo(x.dtype).min
        for block in self.blocks:
            x = block(x, attn_bias)
        return self.ln_f(x)

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mlm_transform(hidden) @ self.tok_emb.weight.T + self.mlm_bias

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        labels: dict[str, torch.Tensor] | None = None,
        loss_weights: dict[str, float] | None = None,
        label_smoothing: float = 0.0,
        return_hidden: bool = False,
        segments: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits of every tagging head, and `loss` summed over the objectives given labels;
        with `return_hidden`, the final hidden states too (`hidden`: replaced-token detection
        puts its own head on them). `segments`: packed rows (`encode`).

        The MLM head runs only on the masked positions: projecting every position onto the
        vocabulary would cost more than the encoder itself.
        """
        hidden = self.encode(input_ids, attention_mask, features, segments)
        out: dict[str, torch.Tensor] = {task: head(hidden) for task, head in self.heads.items()}
        if return_hidden:
            out["hidden"] = hidden
        losses: dict[str, torch.Tensor] = {}
        if mlm_labels is not None:
            masked = mlm_labels != IGNORE
            logits = self.mlm_logits(hidden[masked])
            summed = F.cross_entropy(
                logits, mlm_labels[masked], label_smoothing=label_smoothing, reduction="sum"
            )
            losses["mlm"] = summed / masked.sum().clamp(min=1)
        for task, task_labels in (labels or {}).items():
            # Summed, then divided by the labelled count (at least 1): a batch with no labelled
            # token gives loss 0 instead of NaN, and every head stays in the autograd graph (DDP
            # requires each parameter to receive a gradient on every rank).
            logits = out[task]
            summed = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                task_labels.reshape(-1),
                ignore_index=IGNORE,
                label_smoothing=label_smoothing,
                reduction="sum",
            )
            losses[task] = summed / (task_labels != IGNORE).sum().clamp(min=1)
        weights = loss_weights or {}
        for name, value in losses.items():
            out[f"loss_{name}"] = value.detach()
        if losses:
            out["loss"] = sum(weights.get(name, 1.0) * value for name, value in losses.items())  # type: ignore[assignment]
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _segment_starts(segments: torch.Tensor) -> torch.Tensor:
    """Index of the first token of each token's segment (segments non-decreasing along a row)."""
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    first = torch.ones_like(segments, dtype=torch.bool)
    first[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return torch.where(first, index, torch.zeros_like(index)).cummax(dim=1).values


def set_dropout(model: nn.Module, p: float) -> None:
    """Pretraining runs without dropout (less than a pass over its data); finetuning sets its own."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        elif isinstance(module, SelfAttention):
            module.dropout = p


class Tagger(nn.Module):
    """One task's view of the encoder, the graph that is exported: ids + mask (+ features) ->
    logits."""

    def __init__(self, encoder: Encoder, task: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.task = task

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encoder.heads[self.task](self.encoder.encode(input_ids, attention_mask, features))
