"""`python -m service`: the REST service under uvicorn (docs/contracts.md section 4).

One worker process (the models and their batchers live in it). On SIGTERM uvicorn stops
accepting connections, lets in-flight requests finish (up to ALIGNTAG_GRACEFUL_SHUTDOWN_SECONDS),
runs the app's shutdown and exits 0.
"""

from __future__ import annotations

import functools
import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from service import scheduling
from service.app import create_app
from service.connections import HeaderDeadlineProtocol
from service.logs import configure_logging
from service.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        lines = [f"  ALIGNTAG_{'_'.join(str(p) for p in err['loc']).upper() or '(settings)'}: {err['msg']}"
                 for err in e.errors()]  # fmt: skip
        sys.stderr.write("invalid settings, nothing started:\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    # uvicorn handles SIGTERM itself (stop accepting, drain, shut down) and then re-raises the signal
    # to the handler that was installed before it. With the default handler that would end the
    # process "killed by SIGTERM" (exit status -15); ours makes a drained shutdown exit 0.
    signal.signal(signal.SIGTERM, exit_cleanly)
    settings = load_settings()
    configure_logging(settings.log_level)
    scheduling.set_worker_niceness(settings.worker_niceness)
    app = create_app(settings)
    # uvicorn's httptools protocol with a deadline on request headers (service/connections.py).
    protocol = functools.partial(
        HeaderDeadlineProtocol, header_timeout=settings.header_timeout_seconds, metrics=app.state.metrics
    )
    uvicorn.run(
        app,
        http=protocol,  # type: ignore[arg-type]  # uvicorn calls it like a protocol class
        host=settings.host,
        port=settings.port,
        workers=1,
        access_log=False,  # one JSON line per request comes from the app itself
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
        server_header=False,
    )


if __name__ == "__main__":
    main()
