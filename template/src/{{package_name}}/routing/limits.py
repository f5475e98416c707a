"""FastAPI's own body limits (``APIRouter(max_body_size=...)``), answered as the service's."""

from __future__ import annotations

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import problem_response

# What Starlette's body-limit responder sends, exactly: a plain-text 413 with this body.
_STARLETTE_BODY = b"Content Too Large"


class BodyLimitProblemMiddleware:
    """Starlette answers a router's or a route's ``max_body_size`` with a plain-text 413 of
    its own, below the app's exception handlers; this answers it as the service's own limit
    does: a problem with the request id, and ``Connection: close`` (or the server would go
    on reading the rest of the body). Any other response passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        limit: int | None = None

        async def send_problem(message: Message) -> None:
            nonlocal held, limit
            if held is None and message["type"] == "http.response.start" and _is_plain_413(message):
                held, limit = message, scope.get(MAX_BODY_SIZE_SCOPE_KEY)
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                if message.get("body") == _STARLETTE_BODY and not message.get("more_body"):
                    detail = f"The request body is larger than {limit} bytes." if limit is not None else None
                    response = problem_response(Request(scope), 413, detail=detail, headers={"Connection": "close"})
                    await response(scope, receive, send)
                    return
                await send(start)
            await send(message)

        await self.app(scope, receive, send_problem)


def _is_plain_413(message: Message) -> bool:
    if message["status"] != 413:
        return False
    content_type = next((value for name, value in message.get("headers", ()) if name == b"content-type"), b"")
    return content_type.startswith(b"text/plain")
