"""One error type hierarchy, one JSON shape: `{"error": {"type": ..., "message": ...}}`.

Every 4xx/5xx the service sends goes through `error_response`, including the ones FastAPI and
Starlette raise themselves (validation, malformed JSON, 404, 405); see `install_handlers`.
Clients never see a stack trace: unexpected exceptions become a 500 naming the request id, and the
traceback goes to the log.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidJSON(ServiceError):
    status_code, error_type = 400, "invalid_json"


class Unauthorized(ServiceError):
    status_code, error_type = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status_code, error_type = 404, "not_found"


class MethodNotAllowed(ServiceError):
    status_code, error_type = 405, "method_not_allowed"


class RequestTimeout(ServiceError):
    status_code, error_type = 408, "request_timeout"


class PayloadTooLarge(ServiceError):
    status_code, error_type = 413, "payload_too_large"


class HeadersTooLarge(ServiceError):
    status_code, error_type = 431, "headers_too_large"


class UnsupportedMediaType(ServiceError):
    status_code, error_type = 415, "unsupported_media_type"


class ValidationFailed(ServiceError):
    status_code, error_type = 422, "validation_error"


class LimitExceeded(ServiceError):
    status_code, error_type = 422, "limit_exceeded"


class InferenceFailed(ServiceError):
    status_code, error_type = 500, "inference_failed"


class Overloaded(ServiceError):
    status_code, error_type = 503, "overloaded"


class ModelUnavailable(ServiceError):
    status_code, error_type = 503, "model_unavailable"


class NotReady(ServiceError):
    status_code, error_type = 503, "not_ready"


class ClientDisconnected(Exception):
    """The client went away before its answer was ready; nothing is sent."""


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message}}


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        error_body(error.error_type, error.message), status_code=error.status_code, headers=error.headers
    )


def _location(loc: tuple[int | str, ...]) -> str:
    """`texts.0` for a field; empty for the body as a whole (model-level checks)."""
    return ".".join(str(p) for p in loc if p != "body")


def validation_message(exc: RequestValidationError) -> str:
    """`texts.0: Input should be a valid string; min_score: ...` — field path, then pydantic's text."""
    messages = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid value"))
        # Our own model validators raise ValueError; pydantic prefixes those with "Value error, ".
        message = message.removeprefix("Value error, ")
        location = _location(tuple(err.get("loc", ())))
        messages.append(f"{location}: {message}" if location else message)
    return "; ".join(messages)


def translate_validation_error(exc: RequestValidationError) -> ServiceError:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        detail = next(err for err in errors if err.get("type") == "json_invalid").get("ctx", {})
        reason = detail.get("error", "could not parse") if isinstance(detail, dict) else "could not parse"
        return InvalidJSON(f"request body is not valid JSON: {reason}")
    if any(err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",) for err in errors):
        return InvalidJSON("request body is empty; send a JSON object")
    return ValidationFailed(validation_message(exc))


def translate_http_exception(request: Request, exc: StarletteHTTPException) -> ServiceError:
    if exc.status_code == 404:
        return NotFound(f"no route {request.method} {request.url.path}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}",
            headers={"Allow": allowed} if allowed else None,
        )
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer when decoding the body fails other than by a JSON syntax error: bytes
        # that are not UTF-8 (or -16/-32), or nesting deeper than the parser's recursion limit.
        return InvalidJSON("request body is not valid JSON: not UTF-8 text, or nested too deeply")
    error = ServiceError(str(exc.detail), headers=dict(exc.headers or {}))
    error.status_code = exc.status_code
    error.error_type = "http_error"
    return error


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(translate_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(translate_http_exception(request, exc))
