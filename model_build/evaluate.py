"""Span prediction over whole texts (windowed) and exact character-span scoring.

`predict_spans` is runtime-agnostic: it takes a function from padded id/mask arrays to logits,
so the same code scores the PyTorch model, the fp32 ONNX graph and the int8 graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from model_build.data import windows
from model_build.model import Tagger
from model_build.spanmetrics import span_prf
from textfeatures.decode import Decoded, decode_spans
from textfeatures.features import TextInputs, encode_texts, pad_batch, window

LogitsFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(ids, mask, features) int64 -> logits float32 (batch x sequence x labels)."""


def torch_logits_fn(tagger: Tagger) -> LogitsFn:
    """Logits of the tagger on whatever device its parameters are (CPU here; a GPU in experiments)."""
    tagger.eval()
    device = next(tagger.parameters()).device

    def run(ids: np.ndarray, mask: np.ndarray, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = (torch.from_numpy(a).to(device) for a in (ids, mask, features))
            return tagger(*inputs).float().cpu().numpy()

    return run


def predict_spans(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    logits_fn: LogitsFn,
    label_names: Sequence[str],
    max_len: int,
    batch_size: int = 32,
    pad_id: int = 0,
    noun_final: bool = False,
) -> tuple[list[list[Decoded]], list[np.ndarray]]:
    """Spans per text (`textfeatures.decode.decode_spans`, as the service decodes), and the
    per-token argmax label ids (for agreement checks). `noun_final`: the task's spans end on a
    noun (`textfeatures.decode`; the concept task)."""
    encoded, logits = text_logits(texts, tokenizer, logits_fn, len(label_names), max_len, batch_size, pad_id)
    return decode_texts(encoded, logits, label_names, noun_final)


def text_logits(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    logits_fn: LogitsFn,
    n_labels: int,
    max_len: int,
    batch_size: int = 32,
    pad_id: int = 0,
) -> tuple[list[TextInputs], list[np.ndarray]]:
    """Each text's model inputs and its logits (tokens x labels). Texts longer than `max_len`
    tokens are cut into windows overlapping by a quarter; each token takes its logits from the
    window in which it sits farthest from an edge."""
    stride = max(1, (max_len * 3) // 4)
    encoded = encode_texts(tokenizer, texts) if texts else []
    jobs: list[tuple[int, int, int]] = []  # text index, window start, window end
    for ti, enc in enumerate(encoded):
        for start, end in windows(len(enc.ids), max_len, stride):
            jobs.append((ti, start, end))
    order = sorted(range(len(jobs)), key=lambda j: jobs[j][2] - jobs[j][1])  # less padding
    logits = [np.zeros((len(e.ids), n_labels), dtype=np.float32) for e in encoded]
    best_margin = [np.full(len(e.ids), -1, dtype=np.int64) for e in encoded]
    for b in range(0, len(order), batch_size):
        chunk = [jobs[j] for j in order[b : b + batch_size]]
        pieces = [window(encoded[ti], s, e) for ti, s, e in chunk]
        out = logits_fn(*pad_batch(pieces, pad_id))
        for r, (ti, start, end) in enumerate(chunk):
            n = end - start
            pos = np.arange(n)
            margin = np.minimum(pos, n - 1 - pos)
            if start == 0:
                margin = margin + (n - pos)  # the text's own start is not a window edge
            if end == len(encoded[ti].ids):
                margin = margin + pos + 1
            take = margin > best_margin[ti][start:end]
            logits[ti][start:end][take] = out[r, :n][take]
            best_margin[ti][start:end][take] = margin[take]
    return encoded, logits


def decode_texts(
    encoded: Sequence[TextInputs],
    logits: Sequence[np.ndarray],
    label_names: Sequence[str],
    noun_final: bool = False,
    offsets: np.ndarray | None = None,
) -> tuple[list[list[Decoded]], list[np.ndarray]]:
    """`predict_spans` from `text_logits`' output, with per-label logit `offsets` added first
    (head calibration tries many on one model run)."""
    probs = [_softmax(lg if offsets is None else lg + offsets) for lg in logits]
    results = [
        decode_spans(pr, enc.word_of_token, enc.words, label_names, enc.text, noun_final=noun_final)
        for enc, pr in zip(encoded, probs, strict=True)
    ]
    return results, [pr.argmax(-1) for pr in probs]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def score(
    records: Sequence[dict], predictions: Sequence[Sequence[tuple]], label_names: Sequence[str]
) -> dict:
    """Exact character-span P/R/F1 per label, micro, and the SDU macro (percent). Every span
    type of the task is scored, even one absent from both gold and predictions."""
    gold, pred = span_sets(records, predictions)
    return span_prf(gold, pred, labels=span_kinds(label_names))


def span_kinds(label_names: Sequence[str]) -> list[str]:
    """The span labels of a task's BIO label names ("B-short", "I-long", ... -> long, short)."""
    return sorted({name.split("-", 1)[1] for name in label_names if name != "O"})


def span_sets(
    records: Sequence[dict], predictions: Sequence[Sequence[tuple]]
) -> tuple[list[set[tuple[int, int, str]]], list[set[tuple[int, int, str]]]]:
    """Gold and predicted `(start, end, label)` sets per document (a prediction's score dropped)."""
    gold = [{(s, e, lab) for s, e, lab in rec["spans"]} for rec in records]
    pred = [{(s, e, lab) for s, e, lab, *_ in spans} for spans in predictions]
    return gold, pred


def headline(task: str, metrics: dict) -> float:
    """The figure a task is judged by, and so what model selection and calibration maximise (per
    training file, `model_build.finetune.selection_score`): SDU macro F1 for acronyms, micro F1
    for concepts and user tasks. Selecting a user task on the mean
    of its labels' F1 instead was measured and did not help (reports/user-task: ScienceIE types,
    N=200 and 350, seed 0: the rare Task label went from 0 to 5-6 F1, Process fell further)."""
    return float(metrics["sdu_macro"]["f1"] if task == "acronyms" else metrics["micro"]["f1"])
