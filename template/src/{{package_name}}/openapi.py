"""The OpenAPI document and the docs pages, served from bytes computed once.

Production serves the document the build stored; development generates it from the code
on first use. Either way ``/openapi.json`` answers with stored bytes, never re-serialising
a document that can weigh megabytes.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.routing import Route

from .errors import Problem
from .routing.manifest import gzip_bytes

# A document generated in development is compressed once, at zlib's default level.
GZIP_LEVEL = 6

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operation_id(route: APIRoute) -> str:
    """FastAPI's default operation id, independent of the hash seed.

    FastAPI suffixes the first method of ``route.methods``, a set whose order changes with
    ``PYTHONHASHSEED``; the first in sorted order gives the same id in every process (and
    FastAPI's own id for every single-method route).
    """
    stem = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    return f"{stem}_{min(route.methods).lower()}"


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

    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root_path + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root_path + DOCS_URL + "/oauth2-redirect",
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # Plain Starlette routes, like the health probes: nothing to validate, no schema.
    app.router.routes.extend(
        [
            Route(OPENAPI_URL, openapi, methods=["GET"], name="openapi"),
            Route(DOCS_URL, swagger_ui, methods=["GET"], name="swagger_ui_html"),
            Route(DOCS_URL + "/oauth2-redirect", swagger_ui_redirect, methods=["GET"], name="swagger_ui_redirect"),
        ]
    )
