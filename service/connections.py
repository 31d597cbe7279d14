"""uvicorn's httptools protocol plus a deadline on request headers (`ALIGNTAG_HEADER_TIMEOUT_SECONDS`).

uvicorn bounds neither the time a client takes to send its headers nor the life of a connection
that never sends anything (its keep-alive timer starts only after a first answer, and any byte
cancels it): a client sending a header byte a second keeps its connection, and the request's place
in the protocol, forever. Here each connection has `header_timeout` seconds from its opening, and
from the end of each answer, to complete a request's headers; past that it gets a 408 in the JSON
error shape (or, if it sent nothing, just the close) and the connection is closed. The body's own
deadline is the app's (`RequestGuard`, `ALIGNTAG_BODY_TIMEOUT_SECONDS`). `python -m service` passes
this class to uvicorn (`http=`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import error_body
from service.metrics import Metrics


def timeout_response(header_timeout: float) -> bytes:
    body = json.dumps(
        error_body(
            "request_timeout",
            f"the request headers did not arrive within {header_timeout:g} s (ALIGNTAG_HEADER_TIMEOUT_SECONDS)",
        ),
        separators=(",", ":"),
    ).encode()  # compact, as the app's JSON answers
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderDeadlineProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.metrics = metrics
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_begun = False  # a byte of the awaited request has arrived

    def _await_headers(self) -> None:
        self._cancel_header_timer()
        self._request_begun = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_begun:
            self.metrics.client_timeouts.labels("headers").inc()
            self.transport.write(timeout_response(self.header_timeout))
        else:
            self.metrics.client_timeouts.labels("idle").inc()
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # a pipelined request whose headers are already in
        super().on_response_complete()
        if not waiting and not self.transport.is_closing():
            self._await_headers()
