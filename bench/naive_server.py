"""Variant (d): the naive deployment many users run, as a baseline.

A minimal FastAPI app: each request runs the PyTorch model itself, text by text and window by
window (batch size 1, fp32, no batching across requests, no quantization, no ONNX), in FastAPI's
thread pool (plain `def` endpoints), the way a Hugging Face `pipeline("token-classification")`
is usually served. The `transformers` pipeline itself cannot load this model: the encoder is our
own `model_build.model.Encoder` (no `transformers` config or architecture class), and
`transformers` is not a dependency of the project; the equivalent per-request PyTorch path is
used instead.

Same API shape as the service for `/tag` and `/acronyms` (`text` or `texts`, `min_score`), same
tokenizer, windowing and span decoding (the service's pure functions, so the answers are
comparable), same weights (`--build-dir`'s checkpoints, checked against the artifact).

`python -m bench.naive_server --build-dir build/small` with `ALIGNTAG_ARTIFACTS_DIR`,
`ALIGNTAG_HOST`, `ALIGNTAG_PORT` as for the service.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from bench.torch_runtime import TorchRuntime, check_same_weights, checkpoint_path
from service.__main__ import exit_cleanly
from service.artifacts import BUILTIN_TASKS, Artifact, load_artifact
from service.pairing import pair_acronyms
from service.tagging import Span, plan_windows, tag_text
from textfeatures.features import encode_texts, pad_batch, window


class Body(BaseModel):
    text: str | None = None
    texts: list[str] | None = None
    min_score: float = 0.0


class NaiveModel:
    def __init__(self, artifact: Artifact, build_dir: Path) -> None:
        self.artifact = artifact
        self.runtime = TorchRuntime(checkpoint_path(build_dir, artifact.task), artifact.task)
        check_same_weights(self.runtime, artifact)
        self.window = artifact.max_positions
        self.overlap = self.window // 4

    def spans(self, text: str, min_score: float) -> list[Span]:
        (encoded,) = encode_texts(self.artifact.tokenizer, [text])
        ranges = plan_windows(len(encoded.ids), self.window, self.overlap)
        probs = []
        for start, end in ranges:  # one forward pass per window, batch of 1
            logits = torch.from_numpy(self.runtime(*pad_batch([window(encoded, start, end)])))
            probs.append(torch.softmax(logits, -1)[0].numpy())
        return tag_text(
            encoded, ranges, probs, self.artifact.labels, min_score, noun_final=self.artifact.noun_final
        )


def create_naive_app(artifacts_dir: Path, build_dir: Path) -> FastAPI:
    models = {task: NaiveModel(load_artifact(artifacts_dir, task), build_dir) for task in BUILTIN_TASKS}
    app = FastAPI(title="aligntag naive baseline")

    def ref(task: str) -> dict[str, str]:
        return {"task": task, "version": models[task].artifact.version}

    @app.post("/tag")
    def tag(body: Body) -> dict:
        texts = [body.text] if body.text is not None else body.texts or []
        results = [
            {"concepts": [s.as_json(t) for s in models["concepts"].spans(t, body.min_score)]} for t in texts
        ]
        content = results[0] if body.text is not None else {"results": results}
        return {**content, "model": ref("concepts")}

    @app.post("/acronyms")
    def acronyms(body: Body) -> dict:
        texts = [body.text] if body.text is not None else body.texts or []
        results = []
        for t in texts:
            pairing = pair_acronyms(t, models["acronyms"].spans(t, body.min_score))
            results.append(
                {
                    "acronyms": [
                        {**a.short.as_json(t), "long_form": a.long.as_json(t) if a.long else None}
                        for a in pairing.acronyms
                    ],
                    "long_forms": [s.as_json(t) for s in pairing.unpaired_long_forms],
                }
            )
        content = results[0] if body.text is not None else {"results": results}
        return {**content, "model": ref("acronyms")}

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready", "models": {task: ref(task)["version"] for task in BUILTIN_TASKS}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("build/small"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, exit_cleanly)  # a drained shutdown exits 0, as the service's
    app = create_naive_app(Path(os.environ.get("ALIGNTAG_ARTIFACTS_DIR", "artifacts")), args.build_dir)
    uvicorn.run(
        app,
        host=os.environ.get("ALIGNTAG_HOST", "127.0.0.1"),
        port=int(os.environ.get("ALIGNTAG_PORT", "8000")),
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
