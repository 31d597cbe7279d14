"""The OpenAPI schema lists every status the model routes answer, and each listed status is really
answered (in-process app on the tiny artifacts). No 404 on the fixed paths /tag and /acronyms;
/tasks/{task} answers it for a task the service does not know."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import ASGIApp, Message
from svc_helpers import ControlledRuntimes, MakeClient

from service.app import ERROR_STATUSES, TASK_NOT_FOUND, create_app
from service.settings import Settings

# Schema path -> the statuses it lists besides 200 (status -> description).
SCHEMA_STATUSES = {
    "/tag": ERROR_STATUSES,
    "/acronyms": ERROR_STATUSES,
    "/tasks/{task}": {**ERROR_STATUSES, 404: TASK_NOT_FOUND},
}
# Requested route -> the task whose model answers it.
ROUTES = {"/tag": "concepts", "/acronyms": "acronyms", "/tasks/acronyms": "acronyms"}


def test_schema_lists_every_status_of_the_model_routes(tiny_artifacts_dir: Path) -> None:
    schema = create_app(Settings(artifacts_dir=tiny_artifacts_dir)).openapi()
    assert set(ERROR_STATUSES) == {400, 401, 405, 408, 413, 415, 422, 431, 500, 503}
    for route, statuses in SCHEMA_STATUSES.items():
        responses = schema["paths"][route]["post"]["responses"]
        assert set(responses) == {"200", *(str(code) for code in statuses)}, route
        for code, description in statuses.items():
            answer = responses[str(code)]
            assert answer["description"] == description
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }


def body_never_sent(app: ASGIApp, route: str, headers: dict[str, str]) -> Any:
    """The app called directly with a request whose body never comes (TestClient would send the
    whole body before calling the app): what it answers, shaped like a TestClient response."""
    messages: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": route, "raw_path": route.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return SimpleNamespace(status_code=status, json=lambda: json.loads(body), text=body.decode())


@pytest.mark.parametrize("route", ROUTES)
def test_every_listed_status_is_answered(make_client: MakeClient, tmp_path: Path, route: str) -> None:
    runtimes = ControlledRuntimes()
    client = make_client(
        runtime_factory=runtimes,
        api_key="k",
        max_body_bytes=1024,
        max_header_bytes=1024,
        body_timeout_seconds=0.2,
    )
    key = {"Authorization": "Bearer k"}
    seen: dict[int, str] = {}

    statuses = SCHEMA_STATUSES["/tasks/{task}" if route.startswith("/tasks/") else route]

    def check(status: int, error_type: str, response: object) -> None:
        assert response.status_code == status, response.text  # type: ignore[attr-defined]
        assert response.json()["error"]["type"] == error_type  # type: ignore[attr-defined]
        assert error_type in statuses[status]
        seen[status] = error_type

    check(400, "invalid_json", client.post(route, content=b"not json", headers=key))
    check(401, "unauthorized", client.post(route, json={"text": "a"}))
    check(405, "method_not_allowed", client.get(route, headers=key))
    check(
        408,
        "request_timeout",
        body_never_sent(client.app, route, {**key, "Content-Type": "application/json"}),
    )
    check(413, "payload_too_large", client.post(route, json={"text": "a" * 2000}, headers=key))
    check(
        415,
        "unsupported_media_type",
        client.post(route, content=b"a", headers={**key, "Content-Type": "text/plain"}),
    )
    check(422, "validation_error", client.post(route, json={"text": 1}, headers=key))
    check(
        431, "headers_too_large", client.post(route, json={"text": "a"}, headers={**key, "X-Big": "x" * 2000})
    )
    if route.startswith("/tasks/"):
        check(404, "not_found", client.post("/tasks/nope", json={"text": "a"}, headers=key))
    task = ROUTES[route]
    runtimes[task].fail = True
    check(500, "inference_failed", client.post(route, json={"text": "a"}, headers=key))
    runtimes[task].fail = False
    assert client.post(route, json={"text": "a"}, headers=key).status_code == 200
    unloaded = make_client(artifacts_dir=tmp_path / "none")
    check(503, "model_unavailable", unloaded.post(route, json={"text": "a"}))
    assert set(seen) == set(statuses)
