"""What a person opens in a browser: the page at `/` and the API docs at `/docs` and `/redoc`.

Everything is served by the service itself, so all of it works on a host with no internet access:
- `/` is `static/index.html`, with `static/page.js` and `static/page.css` (no framework). The page
  calls the public `POST /tag` and `POST /acronyms` like any other client, with the API key typed
  into it, if any. Its Content-Security-Policy allows nothing from another origin.
- `/docs` (Swagger UI) and `/redoc` load their JavaScript and CSS from `/static/docs/`, which serves
  the files that the `fastapi-offline` package ships, instead of FastAPI's default CDN URLs.

None of these routes is in the OpenAPI schema.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
DOCS_ASSETS_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))

# Served files by URL name: the only files either route hands out.
PAGE_ASSETS = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
UI_ROUTES = frozenset(
    {
        "/",
        "/docs",
        "/redoc",
        *(f"/static/{n}" for n in PAGE_ASSETS),
        *(f"/static/docs/{n}" for n in DOCS_ASSETS),
    }
)

PAGE_HEADERS = {
    # The page and its files come from this origin, and it talks to this origin only.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}


def install_ui(app: FastAPI) -> None:
    """Adds `/`, `/static/...`, `/docs` and `/redoc` to an app built with `docs_url=None, redoc_url=None`."""
    for name in DOCS_ASSETS:  # a broken install fails at start-up, not on a person's first visit
        if not (DOCS_ASSETS_DIR / name).is_file():
            raise RuntimeError(f"{DOCS_ASSETS_DIR / name} is missing; reinstall fastapi-offline")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS
        )

    @app.get("/static/{name}", include_in_schema=False)
    async def page_asset(name: str) -> FileResponse:
        if name not in PAGE_ASSETS:
            raise NotFound(f"no file /static/{name}")
        return FileResponse(STATIC_DIR / name, media_type=PAGE_ASSETS[name], headers=ASSET_HEADERS)

    @app.get("/static/docs/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:
            raise NotFound(f"no file /static/docs/{name}")
        return FileResponse(DOCS_ASSETS_DIR / name, media_type=DOCS_ASSETS[name], headers=ASSET_HEADERS)

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_swagger_ui_html(
            openapi_url=prefix + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{prefix}/static/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}/static/docs/swagger-ui.css",
            swagger_favicon_url=f"{prefix}/static/docs/favicon.png",
            # Swagger UI otherwise fetches a validity badge from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_redoc_html(
            openapi_url=prefix + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{prefix}/static/docs/redoc.standalone.js",
            redoc_favicon_url=f"{prefix}/static/docs/favicon.png",
            with_google_fonts=False,
        )
