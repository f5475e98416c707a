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
import re
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from .errors import Problem
from .routing.manifest import gzip_bytes

# A document generated in development is compressed once, at zlib's default level.
GZIP_LEVEL = 6

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


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operation_id(route: APIRoute) -> str:
    """FastAPI's default operation id, independent of the hash seed.

    FastAPI suffixes the first method of ``route.methods``, a set whose order changes with
    ``PYTHONHASHSEED``; the first in sorted order gives the same id in every process (and
    FastAPI's own id for every single-method route).
    """
    stem = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    return f"{stem}_{min(route.methods or ('GET',)).lower()}"


def generate_document(app: FastAPI) -> bytes:
    """The document FastAPI generates for ``app``, plus the problem-details schema every
    operation's default response refers to."""
    # FastAPI's own generator: ``app.openapi`` itself is replaced by ``install_docs``. It
    # warns once per extra method of a multi-method route, whose operations share one id:
    # ``_one_id_per_operation`` gives each its own, and warns about what remains.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        document = dict(FastAPI.openapi(app))
    _one_id_per_operation(document.get("paths", {}))
    _, definitions = models_json_schema([(Problem, "serialization")], ref_template="#/components/schemas/{model}")
    components = dict(document.get("components", {}))
    components["schemas"] = {**components.get("schemas", {}), **definitions.get("$defs", {})}
    document["components"] = components
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _one_id_per_operation(paths: dict[str, Any]) -> None:
    """Operations of one path item that share an id (one route, several methods) get
    ``<stem>_<method>`` each, so every operation id in the document is unique."""
    for item in paths.values():
        operations = {method: item[method] for method in _METHODS if isinstance(item.get(method), dict)}
        counts = Counter(operation.get("operationId") for operation in operations.values())
        for method, operation in operations.items():
            shared = operation.get("operationId")
            if shared is None or counts[shared] < 2:
                continue
            stem, _, suffix = shared.rpartition("_")
            operation["operationId"] = f"{stem if stem and suffix in operations else shared}_{method}"
    counts = Counter(
        operation["operationId"]
        for item in paths.values()
        for method in _METHODS
        if isinstance(operation := item.get(method), dict) and "operationId" in operation
    )
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        warnings.warn(f"duplicate OpenAPI operation ids: {', '.join(duplicates)}", UserWarning, stacklevel=3)


class OpenApiDocument:
    """The document's bytes, produced by ``source`` on first use and kept, with one
    variant per root path, plain and gzip-compressed (``compressed_source`` gives the build's
    stored compressed bytes, served as they are)."""

    def __init__(self) -> None:
        self.source: Callable[[], bytes] | None = None
        self.compressed_source: Callable[[], bytes | None] | None = None
        self._by_root_path: dict[str, bytes] = {}
        self._gzipped: dict[str, bytes] = {}

    def gzipped_for(self, root_path: str) -> bytes:
        document = self._gzipped.get(root_path)
        if document is None:
            stored = self.compressed_source() if self.compressed_source is not None and not root_path else None
            # Compressed once per root path and kept: never per request.
            document = stored or gzip_bytes(self.bytes_for(root_path), GZIP_LEVEL)
            self._gzipped[root_path] = document
        return document

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


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (RFC 9110 section 12.5.3: ``gzip`` or ``*``
    with a weight above zero; ``gzip;q=0`` refuses it)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, parameters = item.partition(";")
        weight = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def install_docs(app: FastAPI, document: OpenApiDocument) -> None:
    app.openapi = document.as_dict  # type: ignore[method-assign]

    async def openapi(request: Request) -> Response:
        root_path = request.scope.get("root_path", "").rstrip("/")
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(document.gzipped_for(root_path), media_type="application/json", headers=headers)
        plain = document.bytes_for(root_path)
        return Response(plain, media_type="application/json", headers={"Vary": "Accept-Encoding"})

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
