"""The OpenAPI document and the docs pages, served from bytes computed once.

Production serves the document the build stored; development generates it from the code
on first use. Either way ``/openapi.json`` answers with stored bytes, never re-serialising
a document that can weigh megabytes.

``/docs`` is Swagger UI from the files of the pinned ``swagger-ui-bundle-v2`` package,
served by the service itself under a Content-Security-Policy that allows only its own
origin: it works where no CDN is reachable, and loads nothing from anyone else.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from .errors import Problem

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
DOCS_ASSETS_URL = DOCS_URL + "/assets"
# Scripts, styles, the document and API calls from the service's own origin only; images
# also as data: URIs, which is how Swagger UI's stylesheet draws its icons.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The files of the Swagger UI distribution the pages use, with their media types.
_DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "oauth2-redirect.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# The distribution's own initializer is an inline-free script too, but it points at the
# petstore: this one reads the page's URLs from data attributes (no inline script, so the
# policy needs no 'unsafe-inline').
_DOCS_INITIALIZER = b"""\
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    oauth2RedirectUrl: new URL(root.dataset.oauth2RedirectUrl, window.location.href).href,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
"""
# The assets change only with the package's version: a day in a browser's cache.
_ASSET_HEADERS = {"Cache-Control": "public, max-age=86400"}


def generate_document(app: FastAPI) -> bytes:
    """The document FastAPI generates for ``app``, plus the problem-details schema every
    operation's default response refers to."""
    # FastAPI's own generator: ``app.openapi`` itself is replaced by ``install_docs``.
    document = dict(FastAPI.openapi(app))
    _, definitions = models_json_schema([(Problem, "serialization")], ref_template="#/components/schemas/{model}")
    components = dict(document.get("components", {}))
    components["schemas"] = {**components.get("schemas", {}), **definitions.get("$defs", {})}
    document["components"] = components
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class OpenApiDocument:
    """The document's bytes, produced by ``source`` on first use and kept, with one
    variant per root path."""

    def __init__(self) -> None:
        self.source: Callable[[], bytes] | None = None
        self._by_root_path: dict[str, bytes] = {}

    def bytes_for(self, root_path: str) -> bytes:
        document = self._by_root_path.get(root_path)
        if document is None:
            if self.source is None:
                raise RuntimeError("the OpenAPI document has no source yet")
            document = self._by_root_path.get("") or self.source()
            self._by_root_path[""] = document
            if root_path:
                # Behind a proxy prefix the document names it as its server, as FastAPI does.
                # The service declares no servers of its own, so the key is simply prepended.
                server = json.dumps([{"url": root_path}]).encode()
                document = b'{"servers":' + server + b"," + document[1:]
            self._by_root_path[root_path] = document
        return document

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.bytes_for(""))


def install_docs(app: FastAPI, document: OpenApiDocument) -> None:
    app.openapi = document.as_dict  # type: ignore[method-assign]

    async def openapi(request: Request) -> Response:
        root_path = request.scope.get("root_path", "").rstrip("/")
        return Response(document.bytes_for(root_path), media_type="application/json")

    # Plain Starlette routes, like the health probes: nothing to validate, no schema.
    app.router.routes.append(Route(OPENAPI_URL, openapi, methods=["GET"], name="openapi"))
    if app.state.settings.effective_docs_enabled:
        app.router.routes.extend(docs_routes(app.title))


def docs_routes(title: str) -> list[Route]:
    """``/docs`` (Swagger UI), its OAuth2 redirect page and its assets, all from the service."""

    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "").rstrip("/")
        assets = html.escape(root_path + DOCS_ASSETS_URL)
        page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(root_path + OPENAPI_URL)}"
  data-oauth2-redirect-url="{html.escape(root_path + DOCS_URL)}/oauth2-redirect"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-initializer.js"></script>
</body>
</html>
"""
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        assets = html.escape(request.scope.get("root_path", "").rstrip("/") + DOCS_ASSETS_URL)
        script = f'<script src="{assets}/oauth2-redirect.js"></script>'
        page = f'<!doctype html>\n<html lang="en">\n<body>\n{script}\n</body>\n</html>\n'
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "swagger-initializer.js":
            return Response(_DOCS_INITIALIZER, media_type="text/javascript; charset=utf-8", headers=_ASSET_HEADERS)
        media_type = _DOCS_ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404)
        # Imported on the first request for an asset: a service whose docs nobody opens never pays for it.
        from swagger_ui_bundle import swagger_ui_path

        return FileResponse(swagger_ui_path / name, media_type=media_type, headers=_ASSET_HEADERS)

    return [
        Route(DOCS_URL, swagger_ui, methods=["GET"], name="swagger_ui_html"),
        Route(DOCS_URL + "/oauth2-redirect", oauth2_redirect, methods=["GET"], name="swagger_ui_redirect"),
        Route(DOCS_ASSETS_URL + "/{name}", asset, methods=["GET"], name="swagger_ui_asset"),
    ]
