"""Every setting of the model build, in one typed place.

A named configuration (`tiny`, `small`, `small-long`, `paper-512x3`, `paper-768x3`) is a `BuildConfig`; each
stage receives its own section and saves the resolved section next to its output, so every
artifact says exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_build.codeversion import REPO_ROOT
from model_build.corpus import CorpusConfig
from model_build.model import ModelConfig

TASKS = ("concepts", "acronyms")


def default_data_dir() -> Path:
    """Labelled data lives outside the repo (its licences forbid redistribution)."""
    return Path(os.environ.get("ALIGNTAG_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 16000
    min_frequency: int = 2
    max_train_docs: int | None = None  # None = every training document of the corpus


@dataclass(frozen=True)
class PretrainConfig:
    recipe: str = "aligned"  # "aligned" = MLM + both tagging objectives; "mlm" = MLM only
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 5e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mask_prob: float = 0.15
    # Pack each row with the documents that follow one another in the stream, every document
    # attending only to itself (`Encoder.encode`'s segments), instead of one window a row that
    # stops at its document's end: the median document is 44 tokens, so 26% of the default's
    # 32 x 128 slots were padding, computed and learnt nothing from.
    pack_documents: bool = True
    # What the encoder learns from the masked tokens: "mlm" predicts them; "rtd" (replaced-token
    # detection, ELECTRA; model_build/rtd.py) reads a small generator's samples in their place
    # and tells, for every token, whether it is the original.
    token_objective: str = "mlm"
    rtd_weight: float = 50.0  # the paper's weight of the detection loss against the generator's MLM
    generator_width: float = 0.25  # a share of the encoder's width (the paper's small generator)
    # No label smoothing and no dropout: a CPU run sees its data less than a few times over, so
    # there is nothing to regularise against yet (they only slowed the loss down).
    label_smoothing: float = 0.0
    dropout: float = 0.0
    # Share of rows whose acronym-rule feature is hidden, so the acronym objective still has
    # something to learn from the text itself (the rule made its weak labels).
    rule_feature_dropout: float = 0.5
    concept_weight: float = 1.0
    acronym_weight: float = 1.0
    checkpoint_every: int = 100
    # Held-out losses every this many steps (0: at the end only), with the training seconds spent
    # so far: the loss-against-minutes curve of reports/quality/pretraining.md.
    valid_every: int = 0
    seed: int = 0


@dataclass(frozen=True)
class FinetuneConfig:
    max_examples: int | None = None  # None = every example of the training file
    epochs: int = 4
    max_steps: int | None = None  # cap on optimizer steps (tests)
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    min_steps: int = 0  # small N: more epochs until at least this many optimizer steps (max 50 epochs)
    selection_fraction: float = 0.1  # share of the N examples held out for model selection
    patience: int = 2  # stop after this many epochs without a better selection score (past min_steps)
    dropout: float = 0.1
    eval_max_examples: int | None = None  # None = the whole dev file
    seed: int = 0


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 17
    parity_tolerance: float = 1e-3  # max |logit difference| ONNX fp32 vs PyTorch
    max_int8_f1_drop: float = 1.0  # points; above it the manifest serves fp32


@dataclass(frozen=True)
class BuildConfig:
    name: str
    # The caps rule (every other token with two or more capitals is a short form), chosen on the
    # training files: it lifts the matcher from 78.4 to 90.0 SDU macro F1 on sdu21-train and from
    # 75.8 to 84.2 on sdu22-sci-train (dev, measured afterwards: 78.9 -> 91.8; docs/corpus.md).
    # Concept labels `term-runs` (labels.py), chosen on the training files: as a tagger they score
    # 30.9 micro F1 on inspec-train and 26.7 on scienceie-train, against 25.2 and 26.0 for the
    # content-word runs alone (the link spans' kind of concept is 65% single words and names).
    corpus: CorpusConfig = field(
        default_factory=lambda: CorpusConfig(acronym_caps_rule=True, concept_labels="term-runs")
    )
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    # Labelled data, relative to the data directory: task -> (train file, dev file).
    datasets: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "concepts": ("concepts/inspec-train.jsonl", "concepts/inspec-dev.jsonl"),
            "acronyms": ("acronyms/sdu21-train.jsonl", "acronyms/sdu21-dev.jsonl"),
        }
    )
    # More training files of a task, finetuned on together with its train file (never a dev file).
    extra_train: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Tasks whose spans are decoded to end on a noun (`textfeatures.decode`, `noun_final`; the
    # manifest's `decoding`), chosen on the held-out slice of the concept training files.
    noun_final_tasks: tuple[str, ...] = ("concepts",)
    # How text is cut into words, the unit of the token features, the weak concept labels and the
    # spans (`textfeatures.words`): "as-written"; "pretokens" only for the ablation of words as
    # users write them (config `small-no-user-words`). The manifest's `decoding.words` names it.
    words: str = "as-written"


def _tiny() -> BuildConfig:
    return BuildConfig(
        name="tiny",
        corpus=CorpusConfig(max_docs_per_source=150, acronym_caps_rule=True, concept_labels="term-runs"),
        tokenizer=TokenizerConfig(vocab_size=1500, min_frequency=2),
        model=ModelConfig(hidden=64, layers=2, heads=2, intermediate=128, max_positions=64, dropout=0.0),
        pretrain=PretrainConfig(steps=30, batch_size=8, seq_len=64, checkpoint_every=10, lr=2e-3),
        # Enough finetuning for the test model to tag: it learns to read the rules' features, so
        # the tests' sentences get concept spans and paired acronyms (seconds on 2 cores). With
        # feature version 2, 160 examples and ~150 steps left it missing digit-bearing short forms
        # (T2DM, BRCA1) in some builds; 400 examples and at least 300 steps did not. At most 500
        # steps: 8 epochs of 400 Inspec abstracts in 64-token windows were ~1,600 steps (70 of the
        # 94 s a tiny build took, twice per test session).
        finetune=FinetuneConfig(
            max_examples=400,
            epochs=8,
            min_steps=300,
            max_steps=500,
            patience=8,
            batch_size=8,
            seq_len=64,
            lr=2e-3,
            eval_max_examples=40,
        ),
    )


def _small() -> BuildConfig:
    """The CPU default, sized by measurement for a ~25-minute build on 2 cores: one training step
    of 32 x 128 tokens takes 0.9 s at 256 x 4 with an 8k vocabulary, against 2.3 s at the former
    512 x 3 with 16k (bf16 autocast is 30x slower on this CPU, so fp32); 600 steps then see 2.5M
    tokens, 4x the former budget's tokens per parameter. `torch.compile` (inductor, torch 2.13) is
    not used: compiling the whole pretrainer breaks the graph at the masked-position MLM head,
    whose size changes every step, and recompiles until its limit (median step 1.08 s against
    eager 0.98 s); compiling `Encoder.encode` alone took 17 s and then 1.05 s a step (30 steps
    each, packed 32 x 128 batches, 2 cores, 2026-12-01)."""
    return BuildConfig(
        name="small",
        tokenizer=TokenizerConfig(vocab_size=8000),
        model=ModelConfig(hidden=256, layers=4, heads=4, intermediate=1024, max_positions=128),
        pretrain=PretrainConfig(
            steps=600, batch_size=32, seq_len=128, lr=1e-3, checkpoint_every=50, valid_every=50
        ),
        # Early stopping on the held-out slice decides how many of the epochs run. max_steps caps
        # the acronym task (sdu21 + sdu22-sci train: ~510 steps an epoch), whose held-out score
        # peaked after the first epoch of a 6-epoch schedule (89.9, then 89.8, 89.8); inspec
        # (68 steps an epoch) peaked at its fourth.
        finetune=FinetuneConfig(epochs=6, min_steps=300, max_steps=600, batch_size=32, seq_len=128, lr=5e-4),
        # Every training file of a task: sdu22-sci-train is raw text, as users write it (sdu21-train
        # is pre-tokenized); scienceie-train adds 350 paragraphs of another annotation of concepts.
        extra_train={
            "acronyms": ("acronyms/sdu22-sci-train.jsonl",),
            "concepts": ("concepts/scienceie-train.jsonl",),
        },
    )


def _small_long() -> BuildConfig:
    """`small` with 3.3x the pretraining (2,000 steps; 30 training minutes on 2 cores, a 44-minute
    build): does longer CPU pretraining close the gap to the targets? (reports/quality,
    `small-long`)"""
    small = _small()
    return dataclasses.replace(
        small,
        name="small-long",
        pretrain=dataclasses.replace(small.pretrain, steps=2000, checkpoint_every=100),
    )


def _small_rtd() -> BuildConfig:
    """`small` pretrained by replaced-token detection instead of masked-LM (ELECTRA; issue 13
    part 4: does it learn more per CPU-minute?), for the same pretraining minutes: a step takes
    1.075 s against masked-LM's 0.829 s (the generator's pass; measured alternately, 2 x 25 steps
    each, on 2 cores), so 460 steps against 600, on the same batches as the first 460."""
    small = _small()
    return dataclasses.replace(
        small,
        name="small-rtd",
        pretrain=dataclasses.replace(small.pretrain, token_objective="rtd", steps=460),
    )


def _small_no_packing() -> BuildConfig:
    """`small` with one window a row that stops at its document's end (padded), as before packed
    rows: the same steps and batch shape, 26% of the slots padding (`PretrainConfig.pack_documents`;
    the unpacked arm of reports/quality's comparison of packing)."""
    small = _small()
    return dataclasses.replace(
        small, name="small-no-packing", pretrain=dataclasses.replace(small.pretrain, pack_documents=False)
    )


def _small_no_user_words() -> BuildConfig:
    """`small` on the tokenizer's pre-tokens as words (`T2DM` -> `T`, `2`, `DM`), as before part 5
    of issue 13: the ablation of words as users write them in the quality report (`--variant
    no-user-words`, served with `ALIGNTAG_WORDS=pretokens`); its own corpus labels, features and
    pretraining at equal steps."""
    return dataclasses.replace(_small(), name="small-no-user-words", words="pretokens")


def _small_no_features() -> BuildConfig:
    """`small` without the token features (word shape, word start, the rules' tags): the ablation
    of the features in the quality report (`--variant no-features`)."""
    small = _small()
    return dataclasses.replace(
        small, name="small-no-features", model=dataclasses.replace(small.model, features=False)
    )


def _small_no_rule_features() -> BuildConfig:
    """`small` whose encoder reads the word-shape features (shape, word start, repeats, ending)
    but not the rules' tags (`acronym_rule`, `phrase_rule`): the ablation of part 2 of issue 13
    alone in the quality report (`--variant no-rule-features`); `small-no-features` drops both
    parts. Its own pretraining at equal steps."""
    small = _small()
    return dataclasses.replace(
        small,
        name="small-no-rule-features",
        model=dataclasses.replace(small.model, ignored_features=("acronym_rule", "phrase_rule")),
    )


def _small_no_term_runs() -> BuildConfig:
    """`small` with the former concept labels, the link spans of the hyperlinked documents: the
    ablation of the term-run labels in the quality report (`--variant no-term-runs`)."""
    small = _small()
    return dataclasses.replace(
        small, name="small-no-term-runs", corpus=dataclasses.replace(small.corpus, concept_labels="links")
    )


def _small_no_budget_sizing() -> BuildConfig:
    """`small` pretrained as the former default (before 88d1ad9) spent its budget: 512 x 3
    (intermediate 1024) with a 16k vocabulary, lr 5e-4, dropout 0.1 and MLM label smoothing 0.1,
    for the same pretraining minutes (240 steps at ~2.3 s against 600 at ~0.9 s): the ablation
    of part 4 of issue 13 in the quality report (`--variant no-budget-sizing`) and the `former`
    curve of reports/quality/pretraining.md. Finetuning as `small`; as the former default, one
    window a row (no packing), but its windows never cross documents and it reads the same token
    features, which the former default did not have."""
    small = _small()
    return dataclasses.replace(
        small,
        name="small-no-budget-sizing",
        tokenizer=dataclasses.replace(small.tokenizer, vocab_size=16000),
        model=dataclasses.replace(small.model, hidden=512, layers=3, heads=8, intermediate=1024),
        pretrain=dataclasses.replace(
            small.pretrain,
            steps=240,
            lr=5e-4,
            label_smoothing=0.1,
            dropout=0.1,
            checkpoint_every=20,
            valid_every=20,
            pack_documents=False,
        ),
    )


def _paper(hidden: int, heads: int) -> BuildConfig:
    return BuildConfig(
        name=f"paper-{hidden}x3",
        tokenizer=TokenizerConfig(vocab_size=30000),
        model=ModelConfig(hidden=hidden, layers=3, heads=heads, intermediate=4 * hidden, max_positions=512),
        pretrain=PretrainConfig(steps=20000, batch_size=128, seq_len=256, checkpoint_every=1000, lr=3e-4),
        finetune=FinetuneConfig(epochs=5, batch_size=16, seq_len=256, lr=1e-4),
    )


CONFIGS = {
    "tiny": _tiny,
    "small": _small,
    "small-long": _small_long,
    "small-rtd": _small_rtd,
    "small-no-features": _small_no_features,
    "small-no-rule-features": _small_no_rule_features,
    "small-no-packing": _small_no_packing,
    "small-no-user-words": _small_no_user_words,
    "small-no-term-runs": _small_no_term_runs,
    "small-no-budget-sizing": _small_no_budget_sizing,
    "paper-512x3": lambda: _paper(512, 8),
    "paper-768x3": lambda: _paper(768, 12),
}


def default_work_dir(config_name: str, pretrain_seed: int | None = None) -> Path:
    """Where a build keeps its intermediate outputs: `build/<config>`, or
    `build/<config>-pretrain-seed<N>` for a build with another pretraining seed, so that a second
    sample never overwrites the default build's stages."""
    suffix = "" if pretrain_seed is None else f"-pretrain-seed{pretrain_seed}"
    return Path("build") / f"{config_name}{suffix}"


def get_config(name: str) -> BuildConfig:
    if name not in CONFIGS:
        raise SystemExit(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()


def as_dict(obj: Any) -> Any:
    """Resolved config as plain JSON data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    return obj


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-able parts: a stage reruns only when its fingerprint changes."""
    blob = json.dumps([as_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
