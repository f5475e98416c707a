"""The shared outbound HTTP client, made when a request first asks for it.

Importing ``httpx2`` and making an ``AsyncClient`` cost about 80 ms of CPU (httpcore2's
sync and async halves, h11, truststore), more than the rest of the service's own start, for
a client that no request needs before readiness and most never use. So the lifespan only
checks what could fail (the TLS trust store, ``tls.py``) and hands out a ``LazyClient``; the
warm-up after readiness imports the modules on a worker thread (``prepare``), and the first
request that uses the client only makes it, on the event loop, in well under a millisecond.
A request that comes before the warm-up is done imports what is left itself.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx2


class LazyClient:
    """An ``httpx2.AsyncClient`` made by ``factory`` on the first call, then the same one.

    Called on the event loop only (the ``HttpClient`` dependency is async), so two requests
    can never both make one. ``aclose`` closes the client if one was made; once closed, a
    call raises instead of making a client that nothing would close.
    """

    def __init__(self, factory: Callable[[], httpx2.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx2.AsyncClient | None = None
        self._closed = False

    def __call__(self) -> httpx2.AsyncClient:
        if self._client is None:
            if self._closed:
                raise RuntimeError("the outbound HTTP client is closed: the service has shut down")
            self._client = self._factory()
        return self._client

    @property
    def made(self) -> httpx2.AsyncClient | None:
        """The client, if a request asked for it already."""
        return self._client

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> LazyClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()


def prepare() -> None:
    """Import what making the first client imports (``httpx2`` imports ``httpcore2`` only
    then), off the event loop: the lifespan's warm-up runs it once the service is ready."""
    import httpcore2  # noqa: F401
    import httpx2  # noqa: F401
