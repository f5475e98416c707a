from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import throwaway_domains

MakeDomains = Callable[[dict[str, str]], str]


@pytest.fixture
def make_domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDomains]:
    """Writes a throwaway package with one domain per entry (its ``router.py`` source) and
    returns the name of its ``domains`` package; as many as a test asks for."""
    with ExitStack() as stack:
        yield lambda routers: stack.enter_context(throwaway_domains(tmp_path, monkeypatch, routers))


@pytest.fixture
def router_source() -> Callable[..., str]:
    return _router_source


def _router_source(prefix: str, *routes: str, extra: str = "") -> str:
    """A router module: each route is ``"METHOD /path"`` and answers its own name."""
    lines = ["from fastapi import APIRouter", extra, f"router = APIRouter(prefix={prefix!r})", ""]
    for number, route in enumerate(routes):
        method, path = route.split(" ", 1)
        lines += [
            f"@router.api_route({path!r}, methods=[{method!r}])",
            f"async def route_{number}() -> dict[str, str]:",
            f"    return {{'route': {route!r}}}",
            "",
        ]
    return "\n".join(lines)
