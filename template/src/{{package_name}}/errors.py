"""Domain errors and the single error envelope: RFC 9457 problem details.

Every failure leaves the service as ``application/problem+json``: HTTP errors (404 and 405
included), request validation errors, the domain errors services raise, and unhandled
exceptions, which are logged in full and answered with an opaque 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from .logs import exception_logged_var, request_id_var
from .models import ApiModel

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
# A body can hold as many problems as it has keys: the answer lists the first ones, so its
# size and cost stay bounded whatever was sent.
MAX_REPORTED_ERRORS = 20
# Statuses whose response has no body (RFC 9110 sections 15.3.5 and 15.4.5): a problem
# body would break the framing, and the server would log the failure.
_BODILESS = (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED)
_CLASS_TITLES = {4: "Client Error", 5: "Server Error"}
# The methods a 405's ``Allow`` is worked out from (plus those the route itself named).
_STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ServiceError(Exception):
    """Base of the errors a service raises on purpose; each maps to one HTTP status."""

    status_code: int = HTTPStatus.BAD_REQUEST
    title: str = "Bad Request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    title = "Not Found"


class ConflictError(ServiceError):
    status_code = HTTPStatus.CONFLICT
    title = "Conflict"


class UnavailableError(ServiceError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    title = "Service Unavailable"


class FieldProblem(ApiModel):
    """One invalid input: what is wrong and where (a JSON pointer into the request)."""

    detail: str
    pointer: str


class Problem(ApiModel):
    """Problem details (RFC 9457), with the request id and, for 422, the invalid fields."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldProblem] | None = None
    errors_omitted: int | None = None


# Declared on every operation so clients and fuzzers know what a failure looks like.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "Problem details (RFC 9457)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
}


def problem_response(
    request: Request,
    status_code: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    errors: list[FieldProblem] | None = None,
    errors_omitted: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = request_id_var.get()
    problem = Problem(
        title=title or reason_phrase(status_code),
        status=status_code,
        detail=detail,
        instance=request.url.path,
        request_id=request_id,
        errors=errors,
        errors_omitted=errors_omitted,
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status_code,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def reason_phrase(status_code: int) -> str:
    """The status's phrase, or its class's for a code HTTP does not name (499, say)."""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return _CLASS_TITLES.get(status_code // 100, "Error")


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in _BODILESS:
        return Response(status_code=exc.status_code, headers=headers)
    if not 200 <= exc.status_code <= 599:
        # A 1xx is never a final answer (nor is a code outside 100-599): the server would fail
        # to send it and log a traceback. A 500 instead, and one line in the log.
        logger.warning("HTTPException with status %d on %s answered 500", exc.status_code, request.url.path)
        return problem_response(request, HTTPStatus.INTERNAL_SERVER_ERROR, detail="An unexpected error occurred.")
    phrase = reason_phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        named = [headers.pop(name) for name in list(headers) if name.lower() == "allow"]
        headers["Allow"] = ", ".join(_allowed_methods(request, ",".join(named)))
    return problem_response(request, exc.status_code, detail=detail, headers=headers or None)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes) and any(error.get("loc", ())[:1] == ("body",) for error in exc.errors()):
        # FastAPI parses a body as JSON only when the request's Content-Type says JSON (it is
        # strict about it); otherwise it hands the raw bytes to validation, which calls a form
        # post or a text/plain body "not a valid dictionary". The route takes JSON: say so
        # with 415, as OWASP advises, rather than a 422 about the fields.
        return problem_response(
            request,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            detail="The request body must be JSON, sent with Content-Type: application/json.",
        )
    errors = exc.errors()
    reported = [_field_problem(error) for error in errors[:MAX_REPORTED_ERRORS]]
    omitted = len(errors) - len(reported)
    detail = "The request is not valid."
    if omitted:
        detail += f" {omitted} more problem{'s' if omitted > 1 else ''} not listed."
    return problem_response(request, 422, detail=detail, errors=reported, errors_omitted=omitted or None)


async def handle_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem_response(request, exc.status_code, title=exc.title, detail=exc.detail)


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled exception on %s %s", request.method, request.url.path, exc_info=exc)
    exception_logged_var.set(True)
    return problem_response(request, HTTPStatus.INTERNAL_SERVER_ERROR, detail="An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(Exception, handle_unexpected_error)


def _allowed_methods(request: Request, named: str) -> list[str]:
    """Every method the requested path answers to.

    RFC 9110 requires a 405 to list them all; Starlette names only the methods of the first
    route whose path matched (``GET`` for ``PUT /items/1``, though ``PATCH`` and ``DELETE``
    work too). Each method is tried against the app's routes, the lazily mounted domains'
    included, as the router would match it.
    """
    allowed = {method.strip() for method in named.split(",") if method.strip()}
    routes: list[BaseRoute] = []
    for route in request.app.router.routes:
        routes_for = getattr(route, "routes_for", None)  # the lazy domains: the routes of this path's domain
        routes.extend(routes_for(request.scope) if routes_for else [route])
    for method in _STANDARD_METHODS:
        probe = {key: request.scope[key] for key in ("type", "path", "root_path", "headers") if key in request.scope}
        probe["method"] = method
        if any(route.matches(dict(probe))[0] is Match.FULL for route in routes):
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")  # answered by the service's HEAD middleware
    return sorted(allowed)


def _field_problem(error: dict[str, Any]) -> FieldProblem:
    # Only the location and message are kept: pydantic's "input" and "ctx" can carry the
    # submitted values, secrets included.
    return FieldProblem(detail=str(error.get("msg", "Invalid value")), pointer=_pointer(error.get("loc", ())))


def _pointer(location: Sequence[str | int]) -> str:
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in location]
    return "#/" + "/".join(parts)
