"""Pure ASGI middleware: request ids, security headers, timing and access logs, the request
body limit, strict framing, trusted hosts, CORS, ``HEAD`` and redirects that name no host.

Pure ASGI (rather than ``BaseHTTPMiddleware``) keeps streaming intact and costs one
function call per message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Collection, Sequence

from starlette.datastructures import URL, Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import REQUEST_ID_HEADER, problem_response
from .logs import request_id_var

access_logger = logging.getLogger("access")

# An incoming id is trusted only if it cannot smuggle anything into logs or headers.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()


class RequestIdMiddleware:
    """Accepts a safe ``X-Request-ID`` or makes one, and echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)


class SecurityHeadersMiddleware:
    """OWASP's headers for an API: no sniffing, no framing, no caching unless a route says so."""

    def __init__(self, app: ASGIApp, hsts_max_age: int = 0) -> None:
        self.app = app
        self.headers = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        if hsts_max_age:
            self.headers["Strict-Transport-Security"] = f"max-age={hsts_max_age}; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CancelledRequestMiddleware:
    """Answers a request the server cancels with a 503 problem, then lets the cancellation go on.

    uvicorn cancels the requests still running when the graceful-shutdown timeout ends;
    left alone, those get uvicorn's own plain-text 500, with no request id and no security
    headers. A response already under way cannot be saved: its connection is closed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except asyncio.CancelledError:
            if not started:
                detail = "The service shut down before the request completed."
                response = problem_response(Request(scope), 503, detail=detail, headers={"Connection": "close"})
                await response(scope, receive, send)
            raise


class TimingMiddleware:
    """Adds ``Server-Timing`` to each response and writes one access-log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status_code = 500

        async def send_with_timing(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                elapsed_ms = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            access_logger.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status_code,
                extra={
                    "request_id": request_id_var.get(),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, without reading them whole.

    A declared ``Content-Length`` over the limit is refused before the body is read; a
    body streamed without one is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        detail = f"The request body is larger than {self.max_bytes} bytes."
        # Connection: close, or the server would go on reading (and discarding) the rest of
        # the body, however large, to find the next request on the connection.
        close = {"Connection": "close"}
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = problem_response(Request(scope), 413, detail=detail, headers=close)
            await response(scope, receive, send)
            return

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the endpoint's body read, so the app's handler answers it.
                    raise HTTPException(413, detail, headers=close)
            return message

        await self.app(scope, receive_limited, send)


class FramingMiddleware:
    """Refuses requests whose body length is ambiguous, and closes their connection.

    A request with both ``Content-Length`` and ``Transfer-Encoding``, or with two lengths,
    is framed one way by some proxies and another way here: what one side reads as a body
    the other reads as a second request (request smuggling). RFC 9112 section 6.1: answer
    once, then close the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = [key for key, _ in scope["headers"] if key in (b"content-length", b"transfer-encoding")]
            if len(names) > 1:
                detail = "The request gives its body length more than once (Content-Length, Transfer-Encoding)."
                response = problem_response(Request(scope), 400, detail=detail, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TrustedHostMiddleware:
    """Refuses a request whose ``Host`` the service does not serve, with a 400 problem.

    Anything built from the ``Host`` header (absolute redirects, links, cache keys behind a
    shared cache) is otherwise the client's to choose. ``*.example.com`` allows the
    subdomains of ``example.com``; ``*`` allows any host. Probes (``exempt_paths``) are
    answered whatever their ``Host``: the kubelet sends the pod's IP address.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str], exempt_paths: Collection[str] = ()) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.hosts = frozenset(host.lower() for host in allowed_hosts if not host.startswith("*"))
        self.suffixes = tuple(host[1:].lower() for host in allowed_hosts if host.startswith("*."))
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any_host or scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        host = _host_name(scope)
        if host is not None and (host in self.hosts or host.endswith(self.suffixes)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        detail = "The request's Host header names a host this service does not serve."
        response = problem_response(Request(scope), 400, detail=detail)
        await response(scope, receive, send)


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as a problem like every refusal.

    Starlette answers it with a ``text/plain`` 400 ("Disallowed CORS origin"); the problem
    keeps that reason and the CORS headers Starlette set.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    kept = {
                        name: value
                        for name, value in response.headers.items()
                        if name not in ("content-type", "content-length")
                    }
                    detail = f"{bytes(response.body).decode()} for this preflight request."
                    response = problem_response(Request(scope), 400, detail=detail, headers=kept)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class HeadMiddleware:
    """Answers ``HEAD`` as the same ``GET`` without its body (RFC 9110 section 9.3.2).

    Starlette's own routes do, FastAPI's routes answer 405 instead; here every route that
    answers ``GET`` answers ``HEAD``, lazily mounted or not, with the ``GET``'s headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


class RelativeRedirectMiddleware:
    """Makes a redirect to the request's own host relative (``Location: /items``).

    Starlette's trailing-slash redirect writes the request's ``Host`` header into an absolute
    ``Location``: a client could make the service redirect to any host it names (an open
    redirect, and a poisoned cache entry behind a shared cache).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location:
                    headers["location"] = _relative_location(location, scope)
            await send(message)

        await self.app(scope, receive, send_relative)


def _relative_location(location: str, scope: Scope) -> str:
    url = URL(location)
    host = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"host"), None)
    if url.netloc and url.netloc == host:
        return url.path + (f"?{url.query}" if url.query else "")
    return location


def _host_name(scope: Scope) -> str | None:
    """The host the request names, without its port, lowercased (``[::1]`` for IPv6)."""
    for key, value in scope["headers"]:
        if key == b"host":
            host = value.decode("latin-1").lower()
            if host.startswith("["):
                end = host.find("]")
                return host[: end + 1] if end > 0 else None
            return host.partition(":")[0] or None
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == _REQUEST_ID_KEY:
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.fullmatch(candidate) else None
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
