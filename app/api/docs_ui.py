"""The docs pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with their JavaScript and CSS
served by the service itself from ``app/static`` instead of a CDN, so they work offline."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: The vendored npm packages (see ``app/static/README.md``).
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    # Behind a proxy that strips a path prefix (uvicorn --root-path), links must keep it.
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    prefix = _prefix(request)
    static = f"{prefix}{STATIC_PATH}/swagger-ui"
    return get_swagger_ui_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{static}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
        swagger_css_url=f"{static}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
        swagger_favicon_url=f"{static}/favicon-32x32.png",
        # The default validator badge would send the spec to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    prefix = _prefix(request)
    return get_redoc_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{prefix}{STATIC_PATH}/redoc/redoc.standalone.js?v={REDOC_VERSION}",
        redoc_favicon_url=f"{prefix}{STATIC_PATH}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and the static assets they load (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN-based pages are not registered)."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
