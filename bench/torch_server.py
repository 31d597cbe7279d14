"""Variant (c): the service's own app with the PyTorch-eager runtime.

`python -m bench.torch_server --build-dir build/small` serves `ALIGNTAG_ARTIFACTS_DIR` exactly as
`python -m service` does (same settings, same uvicorn options, same HTTP layer, tokenizer,
batcher and decoding) except that each batch runs through the build's PyTorch checkpoint
(`bench.torch_runtime`) instead of ONNX Runtime.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import uvicorn

from bench.torch_runtime import torch_runtime_factory
from service.__main__ import exit_cleanly, load_settings
from service.app import create_app
from service.logs import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("build/small"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, exit_cleanly)
    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings, torch_runtime_factory(args.build_dir)),
        host=settings.host,
        port=settings.port,
        workers=1,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        server_header=False,
    )


if __name__ == "__main__":
    main()
