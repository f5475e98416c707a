"""Lazy mounting under real uvicorn: bursts of first requests, concurrent cold loads, load.

The rendered project's own tests burst first requests in-process; here the burst goes over
real sockets to ``python -m <package> serve`` in production mode, into domains whose import
takes a while (so the requests really arrive while the domain is loading). Each answer names
the route object that served it: a domain mounted twice would show two.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterator

import httpx
import pytest

from support.servers import Instance, prefix, prepare_project

COLD = ["cold_a", "cold_b", "cold_c", "cold_d", "cold_e"]
IMPORT_DELAY = 0.5
BURST = 200
LOAD_REQUESTS = 3000
LOAD_CONCURRENCY = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    directory = tmp_path_factory.mktemp("concurrency")
    project = prepare_project(directory / "acme-orders", dict.fromkeys(COLD, IMPORT_DELAY))
    with Instance(project, directory) as instance:
        yield instance


async def get_all(base_url: str, paths: list[str], concurrency: int) -> list[httpx.Response | Exception]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def get(path: str) -> httpx.Response | Exception:
            async with semaphore:
                try:
                    return await client.get(path)
                except httpx.HTTPError as exc:
                    return exc

        return await asyncio.gather(*(get(path) for path in paths))


def routes_by_domain(responses: list[httpx.Response | Exception]) -> dict[str, set[int]]:
    seen: dict[str, set[int]] = defaultdict(set)
    for response in responses:
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200, response.text
        seen[response.json()["domain"]].add(response.json()["route"])
    return seen


@pytest.mark.slow
def test_burst_of_first_requests_to_a_cold_domain_mounts_it_once(server: Instance) -> None:
    paths = [f"/{prefix('cold_a')}/sleep?seconds=0"] * BURST
    responses = asyncio.run(get_all(server.base_url, paths, BURST))
    seen = routes_by_domain(responses)
    assert list(seen) == ["cold_a"]
    assert len(seen["cold_a"]) == 1, "the domain was mounted more than once"
    assert server.problems_in_log() == []


@pytest.mark.slow
def test_cold_loads_of_different_domains_do_not_mix(server: Instance) -> None:
    cold = COLD[1:]
    paths = [f"/{prefix(name)}/sleep?seconds=0" for _ in range(BURST // len(cold)) for name in cold]
    responses = asyncio.run(get_all(server.base_url, paths, BURST))
    for path, response in zip(paths, responses, strict=True):
        assert isinstance(response, httpx.Response), response
        assert path.startswith(f"/{prefix(response.json()['domain'])}/"), (path, response.json())
    seen = routes_by_domain(responses)
    assert sorted(seen) == sorted(cold)
    assert all(len(routes) == 1 for routes in seen.values()), seen
    assert len(set().union(*seen.values())) == len(cold)
    assert server.problems_in_log() == []


@pytest.mark.slow
def test_load_with_every_domain_loaded_has_no_errors(server: Instance) -> None:
    # Every domain warm, then a mixed load over all of them and the example domain.
    asyncio.run(get_all(server.base_url, [f"/{prefix(name)}/sleep" for name in COLD], len(COLD)))
    mix = [
        *(f"/{prefix(name)}/sleep" for name in COLD),
        "/items?limit=10",
        "/items/1",
        "/health/ready",
        "/openapi.json",
    ]
    paths = [mix[index % len(mix)] for index in range(LOAD_REQUESTS)]
    responses = asyncio.run(get_all(server.base_url, paths, LOAD_CONCURRENCY))
    statuses: Counter[tuple[str, int | str]] = Counter()
    for path, response in zip(paths, responses, strict=True):
        statuses[path, response.status_code if isinstance(response, httpx.Response) else type(response).__name__] += 1
    expected = {(path, 404 if path == "/items/1" else 200) for path in mix}
    assert set(statuses) == expected, statuses
    assert server.problems_in_log() == []
