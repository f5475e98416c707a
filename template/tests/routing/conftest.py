from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_numbers = itertools.count()

MakeDomains = Callable[[dict[str, str]], str]


@pytest.fixture
def make_domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDomains]:
    """Writes a throwaway ``<package>.domains`` with one ``router.py`` per entry and returns
    the domains package's name."""
    created: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(routers: dict[str, str]) -> str:
        package = f"fixture_service_{next(_numbers)}"
        domains = tmp_path / package / "domains"
        domains.mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
        (domains / "__init__.py").write_text("")
        for name, source in routers.items():
            (domains / name).mkdir()
            (domains / name / "__init__.py").write_text("")
            (domains / name / "router.py").write_text(textwrap.dedent(source))
        created.append(package)
        return f"{package}.domains"

    yield make
    for name in list(sys.modules):
        if name.split(".")[0] in created:
            del sys.modules[name]


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
