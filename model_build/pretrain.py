"""Pretraining: masked-LM alone (`mlm`) or MLM plus the aligned tagging objectives (`aligned`).

Both recipes see the same token stream, steps, batch and sequence length (equal compute); the
only difference is whether the weak concept/acronym labels contribute to the loss. The masked
tokens train the encoder by masked-LM, or (`token_objective` "rtd") by replaced-token detection
(model_build/rtd.py). Batches are drawn from a seeded generator keyed by step, and the
checkpoint holds model, optimizer and step, so a resumed run continues exactly where an
uninterrupted one would be. Runs under `torchrun` (DistributedDataParallel; gloo on CPU, NCCL
on GPU) with bf16 autocast on GPU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from model_build.atomic import write_text_atomically
from model_build.checkpoint import save_checkpoint
from model_build.codeversion import code_version
from model_build.config import PretrainConfig, as_dict, fingerprint
from model_build.model import IGNORE, Encoder, ModelConfig, set_dropout
from model_build.rtd import ReplacedTokenDetection
from model_build.schedule import lr_at
from model_build.tokenizer import MASK, SPECIAL_TOKENS
from textfeatures.features import ACRONYM_RULE_COLUMN, ACRONYM_RULE_HIDDEN


def make_batch(
    stream: dict[str, np.ndarray], cfg: PretrainConfig, step: int, rank: int, vocab_size: int
) -> dict[str, torch.Tensor]:
    """Batch `step` for process `rank`: random windows, 15% of tokens masked (80% [MASK], 10%
    random, 10% kept), and, in a `rule_feature_dropout` share of the rows, the acronym rule's
    feature hidden, so the encoder also learns to find acronyms without it. A pure function of
    (seed, step, rank).

    Packed (`cfg.pack_documents`): a row is `seq_len` consecutive tokens of the stream, and
    `segments` says which document each token is in (the encoder keeps documents apart). Else a
    window stops at its document's end (a window at a short document's end is shorter, padded)."""
    rng = np.random.default_rng([cfg.seed, step, rank])
    doc_starts = stream["doc_starts"]
    n = len(stream["ids"])
    seq = min(cfg.seq_len, n)
    picked = rng.integers(0, n, size=cfg.batch_size)
    if cfg.pack_documents:
        starts = np.minimum(picked, n - seq)
        lengths = np.full(cfg.batch_size, seq)
    else:
        doc = np.searchsorted(doc_starts, picked, side="right") - 1
        doc_start, doc_end = doc_starts[doc], doc_starts[doc + 1]
        starts = np.maximum(doc_start, np.minimum(picked, doc_end - seq))
        lengths = np.minimum(seq, doc_end - starts)
    valid = np.arange(seq)[None, :] < lengths[:, None]
    idx = np.where(valid, starts[:, None] + np.arange(seq)[None, :], 0)
    ids = np.where(valid, stream["ids"][idx], 0).astype(np.int64)
    masked = (rng.random(ids.shape) < cfg.mask_prob) & valid
    mlm_labels = np.where(masked, ids, IGNORE)
    action = rng.random(ids.shape)
    inputs = ids.copy()
    mask_id = SPECIAL_TOKENS.index(MASK)
    inputs[masked & (action < 0.8)] = mask_id
    random_tokens = rng.integers(len(SPECIAL_TOKENS), vocab_size, size=ids.shape)
    swap = masked & (action >= 0.8) & (action < 0.9)
    inputs[swap] = random_tokens[swap]
    features = np.where(valid[..., None], stream["features"][idx], 0).astype(np.int64)
    hide = (rng.random(cfg.batch_size) < cfg.rule_feature_dropout)[:, None] & valid
    features[..., ACRONYM_RULE_COLUMN][hide] = ACRONYM_RULE_HIDDEN
    batch = {
        "input_ids": torch.from_numpy(inputs),
        "attention_mask": torch.from_numpy(valid.astype(np.int64)),
        "features": torch.from_numpy(features),
        "mlm_labels": torch.from_numpy(mlm_labels),
        "concepts": torch.from_numpy(np.where(valid, stream["concepts"][idx], IGNORE).astype(np.int64)),
        "acronyms": torch.from_numpy(np.where(valid, stream["acronyms"][idx], IGNORE).astype(np.int64)),
    }
    if cfg.pack_documents:  # the document of each token (doc_starts[d] <= index)
        batch["segments"] = torch.from_numpy(np.searchsorted(doc_starts, idx, side="right").astype(np.int64))
    return batch


def task_labels(batch: dict[str, torch.Tensor], recipe: str) -> dict[str, torch.Tensor]:
    if recipe == "mlm":
        return {}
    if recipe == "aligned":
        return {"concepts": batch["concepts"], "acronyms": batch["acronyms"]}
    raise ValueError(f"unknown pretraining recipe {recipe!r}; use 'aligned' or 'mlm'")


class Pretrainer(nn.Module):
    """What pretraining trains: the encoder and, for replaced-token detection, its generator and
    detection head (one module, so that DistributedDataParallel synchronises all of them)."""

    def __init__(self, encoder: Encoder, cfg: PretrainConfig) -> None:
        super().__init__()
        if cfg.token_objective not in ("mlm", "rtd"):
            raise ValueError(f"unknown token objective {cfg.token_objective!r}; use 'mlm' or 'rtd'")
        self.encoder = encoder
        self.rtd = (
            ReplacedTokenDetection(encoder.cfg, cfg.generator_width) if cfg.token_objective == "rtd" else None
        )
        self.weights = {
            "mlm": 1.0,
            "concepts": cfg.concept_weight,
            "acronyms": cfg.acronym_weight,
            "rtd": cfg.rtd_weight,
        }
        self.label_smoothing = cfg.label_smoothing

    def forward(
        self, batch: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        if self.rtd is not None:
            return self.rtd(self.encoder, batch, labels, self.weights, self.label_smoothing)
        return self.encoder(
            batch["input_ids"],
            batch["attention_mask"],
            batch["features"],
            batch["mlm_labels"],
            labels,
            loss_weights=self.weights,
            label_smoothing=self.label_smoothing,
            segments=batch.get("segments"),
        )


def pretrain_run_id(model_cfg: ModelConfig, cfg: PretrainConfig, data_fp: str, stream_tokens: int) -> str:
    """What a pretraining run is: its settings, its data and the code that trains it."""
    return fingerprint(
        model_cfg,
        cfg,
        data_fp,
        stream_tokens,
        code_version("model_build.pretrain", "model_build.model", "model_build.rtd", "model_build.schedule"),
    )


def pretrain(
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    train_stream: dict[str, np.ndarray],
    valid_stream: dict[str, np.ndarray],
    out_dir: Path,
    data_fp: str,
    stop_after: int | None = None,
) -> dict:
    """Train, checkpointing to `out_dir/checkpoint.pt` every `cfg.checkpoint_every` steps and
    resuming from it; writes `out_dir/final.pt` and `out_dir/pretrain.json` at the end.
    `stop_after` ends the run early after that many steps (tests of resume)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "pretrain.json"
    run_id = pretrain_run_id(model_cfg, cfg, data_fp, int(len(train_stream["ids"])))
    if summary_path.exists() and json.loads(summary_path.read_text()).get("run_id") == run_id:
        return json.loads(summary_path.read_text())

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    torch.manual_seed(cfg.seed)
    model = Encoder(model_cfg)
    trainer = Pretrainer(model, cfg).to(device)
    set_dropout(model, cfg.dropout)
    decay = [p for n, p in trainer.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in trainer.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    start_step, history, curve, train_seconds = 0, [], [], 0.0
    ckpt_path = out_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("run_id") == run_id:
            model.load_state_dict(ckpt["state_dict"])
            if trainer.rtd is not None:
                trainer.rtd.load_state_dict(ckpt["rtd_state_dict"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_step, history = ckpt["step"], ckpt["history"]
            curve, train_seconds = ckpt.get("valid_curve", []), ckpt.get("train_seconds", 0.0)
    if cfg.recipe == "mlm":  # MLM never trains the tagging heads; frozen, DDP skips them too
        model.heads.requires_grad_(False)
    train_model: torch.nn.Module = trainer
    if distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            trainer, device_ids=[device.index] if device.type == "cuda" else None
        )
    end_step = cfg.steps if stop_after is None else min(cfg.steps, start_step + stop_after)
    bar = tqdm(
        range(start_step, end_step),
        desc=f"pretrain {cfg.recipe}",
        unit="step",
        disable=rank != 0,
        initial=start_step,
        total=cfg.steps,
    )
    t0, tokens = time.perf_counter(), 0
    trainer.train()
    for step in bar:
        step_t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup_fraction, cfg.lr)
        batch = {
            k: v.to(device)
            for k, v in make_batch(train_stream, cfg, step, rank, model_cfg.vocab_size).items()
        }
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout identical on resume
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = train_model(batch, task_labels(batch, cfg.recipe))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trainer.parameters(), cfg.grad_clip)
        optimizer.step()
        train_seconds += time.perf_counter() - step_t0
        tokens += batch["input_ids"].numel()
        record = {
            "step": step + 1,
            # Real (unpadded) and masked tokens of the batch: equal compute is checked from these.
            "tokens": int(batch["attention_mask"].sum()),
            "masked": int((batch["mlm_labels"] != IGNORE).sum()),
            **{k: round(float(v.detach()), 4) for k, v in out.items() if k.startswith("loss")},
        }
        history.append(record)
        bar.set_postfix(loss=record["loss"], tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
        if rank == 0 and cfg.valid_every and (step + 1) % cfg.valid_every == 0:
            # Outside the timed step, and on its own random streams: the curve costs no training
            # time and leaves the trained model exactly as without it.
            losses = validation_losses(trainer, cfg, valid_stream, device)
            curve.append({"step": step + 1, "train_seconds": round(train_seconds, 3), **losses})
        if rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == end_step):
            save_checkpoint(
                ckpt_path,
                model,
                optimizer=optimizer.state_dict(),
                step=step + 1,
                history=history,
                valid_curve=curve,
                train_seconds=train_seconds,
                run_id=run_id,
                **({} if trainer.rtd is None else {"rtd_state_dict": trainer.rtd.state_dict()}),
            )
    seconds = time.perf_counter() - t0
    if end_step < cfg.steps:  # stopped early on request: the checkpoint is the output
        return {"step": end_step, "history": history}
    summary = {
        "run_id": run_id,
        "recipe": cfg.recipe,
        "objectives": [cfg.token_objective] + ([] if cfg.recipe == "mlm" else ["concepts", "acronyms"]),
        "steps": cfg.steps,
        "seed": cfg.seed,
        "config": as_dict(cfg),
        "model_config": asdict(model_cfg),
        "parameters": model.num_parameters(),
        "device": str(device),
        "world_size": dist.get_world_size() if distributed else 1,
        "seconds_this_run": round(seconds, 1),
        "tokens_per_second": round(
            tokens * (dist.get_world_size() if distributed else 1) / max(seconds, 1e-9)
        ),
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "tokens_seen": sum(r["tokens"] for r in history),
        "masked_tokens": sum(r["masked"] for r in history),
        "final_train_losses": history[-1] if history else {},
        "valid_losses": validation_losses(trainer, cfg, valid_stream, device) if rank == 0 else {},
        "train_seconds": round(train_seconds, 3),
        "valid_curve": curve,
    }
    if rank == 0:
        save_checkpoint(out_dir / "final.pt", model)
        write_text_atomically(summary_path, json.dumps(summary, indent=2))
    if distributed:
        dist.barrier()
    return summary


@torch.no_grad()
def validation_losses(
    trainer: Pretrainer,
    cfg: PretrainConfig,
    stream: dict[str, np.ndarray],
    device: torch.device,
    batches: int = 8,
) -> dict[str, float]:
    """Mean held-out losses of every objective (all heads, whatever the recipe trained). The
    generator's samples come from a random stream of their own, so the curve leaves training's
    random numbers as they were. Always on one window a row, packed training or not: the same
    yardstick for every config, and the single-document view that finetuning and serving read."""
    trainer.eval()
    eval_cfg = replace(cfg, seed=cfg.seed + 7919, pack_documents=False)
    vocab_size = trainer.encoder.cfg.vocab_size
    sums: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i in range(batches):
            torch.manual_seed(eval_cfg.seed * 1_000_003 + i)
            batch = {k: v.to(device) for k, v in make_batch(stream, eval_cfg, i, 0, vocab_size).items()}
            for k, v in trainer(batch, task_labels(batch, "aligned")).items():
                if k.startswith("loss_"):
                    sums[k] = sums.get(k, 0.0) + float(v) / batches
    trainer.train()
    return {k: round(v, 4) for k, v in sums.items()}
