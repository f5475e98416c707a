"""Rolling restarts under load lose no request, and a drain finishes what it started.

Real uvicorn instances of the rendered service (production mode, prebuilt manifest) run
behind a small load balancer written here that behaves like a Kubernetes Service:

- it routes only to instances whose ``/health/ready`` passes, probed every
  ``PROBE_INTERVAL`` seconds on a fresh connection, as the kubelet does;
- an instance being deleted leaves the rotation ``PROPAGATION`` seconds after the deletion,
  the delay with which kube-proxy or an ingress learns of an endpoint change;
- it keeps pooled keep-alive connections to the instances, with an idle expiry below
  uvicorn's keep-alive timeout (5 s), as any proxy in front of uvicorn must;
- it retries nothing: a request that fails upstream is a failed request.

The instances share one PostgreSQL database, as replicas do; clients create uniquely named
items throughout, and every item acknowledged with 201 must be in the database exactly once.

Each rollout replaces every instance one by one, as a Deployment with ``maxSurge: 1`` and
``maxUnavailable: 0`` does: start the new instance, wait until the balancer routes to it,
delete the old one (endpoint removal, then a ``preStop`` sleep), SIGTERM it, wait for it to
exit. Slow requests are in flight on the old instance when it is deleted.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX
from support.postgres import PostgresServer
from support.servers import Instance, prepare_project

REPLICAS = 3
ROLLOUTS = 3
CLIENTS = 4  # concurrent clients of the balancer
PROBE_INTERVAL = 0.1
PROPAGATION = 0.3
PRESTOP = 1.0  # must exceed PROPAGATION: the balancer stops routing before SIGTERM
SLOW_SECONDS = 2.5  # requests in flight on the instance being deleted
GRACEFUL_SHUTDOWN_TIMEOUT = 10
MAX_SCENARIO_SECONDS = 300  # the whole load is bounded in time as well as in count
MAX_REQUESTS_PER_CLIENT = 50_000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_project(tmp_path_factory.mktemp("rolling") / "acme-orders", {"slow": 0}, database="postgresql")


@pytest.fixture
def database_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.name.removeprefix("test_")[:40]
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@dataclass
class Backend:
    instance: Instance
    ready: bool = False
    deleted_at: float | None = None


@dataclass
class Stats:
    total: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # names acknowledged with 201


@dataclass
class Drain:
    port: int
    seconds: float
    returncode: int | None
    readiness_after_sigterm: Counter[str]


class Balancer:
    def __init__(self) -> None:
        self.backends: list[Backend] = []
        self.stats = Stats()
        self._turn = itertools.count()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50, keepalive_expiry=2.0),
        )
        # Probes open a new connection each time, like the kubelet's.
        self.prober = httpx.AsyncClient(timeout=1.0, limits=httpx.Limits(max_keepalive_connections=0))

    def rotation(self) -> list[Backend]:
        now = time.monotonic()
        return [
            backend
            for backend in self.backends
            if backend.ready and (backend.deleted_at is None or now < backend.deleted_at + PROPAGATION)
        ]

    async def sync(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            self.backends = [b for b in self.backends if b.deleted_at is None or now < b.deleted_at + PROPAGATION]
            await asyncio.gather(*(self._probe(backend) for backend in self.backends if backend.deleted_at is None))
            await asyncio.sleep(PROBE_INTERVAL)

    async def _probe(self, backend: Backend) -> None:
        try:
            response = await self.prober.get(f"{backend.instance.base_url}/health/ready")
            backend.ready = response.status_code == 200
        except httpx.TransportError:
            backend.ready = False

    async def forward(
        self, method: str, path: str, expected: tuple[int, ...], *, json: object = None, pinned: Backend | None = None
    ) -> httpx.Response | None:
        self.stats.total += 1
        choices = [pinned] if pinned else self.rotation()
        if not choices:
            self.stats.failures.append(f"{method} {path}: no ready instance")
            return None
        backend = choices[next(self._turn) % len(choices)]
        try:
            response = await self.client.request(method, f"{backend.instance.base_url}{path}", json=json)
        except httpx.TransportError as exc:
            self.stats.failures.append(f"{method} {path} -> :{backend.instance.port}: {type(exc).__name__}: {exc}")
            return None
        self.stats.statuses[response.status_code] += 1
        if response.status_code not in expected:
            self.stats.failures.append(
                f"{method} {path} -> :{backend.instance.port}: {response.status_code} {response.text[:200]}"
            )
        return response

    async def close(self) -> None:
        await self.client.aclose()
        await self.prober.aclose()


async def client_loop(balancer: Balancer, number: int, stop: asyncio.Event) -> None:
    """Fast requests of every kind; client 0 sends requests of a few hundred milliseconds."""
    for sequence in range(MAX_REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        if number == 0:
            await balancer.forward("GET", f"/slow/sleep?seconds={0.1 + (sequence % 4) / 10}", (200,))
            continue
        kind = sequence % 4
        if kind == 0:
            await balancer.forward("GET", "/items?limit=5", (200,))
        elif kind == 1:
            item = {"name": f"item-{number}-{sequence}", "price": "1.50"}
            response = await balancer.forward("POST", "/items", (201,), json=item)
            if response is not None and response.status_code == 201:
                balancer.stats.created.append(response.json()["name"])
        elif kind == 2:
            # The first item exists once any client has created one.
            await balancer.forward("GET", "/items/1", (200, 404))
        else:
            await balancer.forward("GET", "/slow/sleep", (200,))


def start(project: Path, logs: Path, instances: list[Instance], database_url: str) -> Instance:
    env = {
        f"{ENV_PREFIX}GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACEFUL_SHUTDOWN_TIMEOUT),
        f"{ENV_PREFIX}DATABASE_URL": database_url,
    }
    instance = Instance(project, logs, env=env)
    instances.append(instance)  # registered first, so that clean-up finds it whatever happens
    instance.wait_ready()
    return instance


async def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def watch_readiness(instance: Instance, stop: asyncio.Event) -> Counter[str]:
    """Probe a terminating instance until it exits: it must never answer ready again."""
    seen: Counter[str] = Counter()
    await asyncio.sleep(0.05)  # the signal handler runs between two bytecodes of the server
    async with httpx.AsyncClient(timeout=1.0, limits=httpx.Limits(max_keepalive_connections=0)) as prober:
        while not stop.is_set():
            try:
                response = await prober.get(f"{instance.base_url}/health/ready")
                seen[str(response.status_code)] += 1
            except httpx.ConnectError:
                seen["refused"] += 1
            except httpx.TransportError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(0.02)
    return seen


def connection_refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def replace(
    balancer: Balancer, old: Backend, project: Path, logs: Path, instances: list[Instance], database_url: str
) -> Drain:
    new = Backend(await asyncio.to_thread(start, project, logs, instances, database_url))
    balancer.backends.append(new)
    await wait_for(lambda: new in balancer.rotation(), 10, "the balancer to route to the new instance")

    # Requests that reached the old instance just before its deletion, still running at SIGTERM.
    in_flight = [
        asyncio.create_task(balancer.forward("GET", f"/slow/sleep?seconds={SLOW_SECONDS}", (200,), pinned=old))
        for _ in range(2)
    ]
    await asyncio.sleep(0.2)
    old.deleted_at = time.monotonic()
    await asyncio.sleep(PRESTOP)

    exited = asyncio.Event()
    started = time.monotonic()
    old.instance.terminate()
    watcher = asyncio.create_task(watch_readiness(old.instance, exited))
    returncode = await asyncio.to_thread(old.instance.process.wait, GRACEFUL_SHUTDOWN_TIMEOUT + 20)
    seconds = time.monotonic() - started
    exited.set()
    readiness = await watcher
    await asyncio.gather(*in_flight)
    assert connection_refused(old.instance.port), "a stopped instance must refuse connections"
    return Drain(old.instance.port, seconds, returncode, readiness)


async def scenario(
    project: Path, logs: Path, instances: list[Instance], database_url: str
) -> tuple[Stats, list[Drain]]:
    balancer = Balancer()
    stop = asyncio.Event()
    started = await asyncio.gather(
        *(asyncio.to_thread(start, project, logs, instances, database_url) for _ in range(REPLICAS))
    )
    balancer.backends = [Backend(instance) for instance in started]
    sync = asyncio.create_task(balancer.sync(stop))
    await wait_for(lambda: len(balancer.rotation()) == REPLICAS, 10, "every instance in rotation")
    clients = [asyncio.create_task(client_loop(balancer, number, stop)) for number in range(CLIENTS)]
    drains: list[Drain] = []
    try:
        await asyncio.sleep(1)  # load on the steady state first
        for _ in range(ROLLOUTS):
            for old in list(balancer.backends):
                drains.append(await replace(balancer, old, project, logs, instances, database_url))
        await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.gather(*clients, sync, return_exceptions=True)
        await balancer.close()
    return balancer.stats, drains


@pytest.mark.slow
def test_rolling_restarts_lose_no_request(
    project: Path, tmp_path: Path, database_url: str, postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    instances: list[Instance] = []
    try:
        stats, drains = asyncio.run(
            asyncio.wait_for(scenario(project, tmp_path, instances, database_url), MAX_SCENARIO_SECONDS)
        )
    finally:
        for instance in instances:
            instance.stop()

    durations = ", ".join(f"{drain.seconds:.2f}" for drain in drains)
    with capsys.disabled():
        print(
            f"\nrolling restart: {len(stats.failures)} failed of {stats.total} requests over {ROLLOUTS} rollouts"
            f" of {REPLICAS} instances; statuses {dict(sorted(stats.statuses.items()))}"
            f"\ndrain seconds (SIGTERM to exit, {SLOW_SECONDS} s requests in flight): {durations}"
            f"\nwrites: {len(stats.created)} items acknowledged with 201"
        )
    assert stats.failures == [], "\n".join(stats.failures[:20])
    stored = Counter(postgres.psql("SELECT name FROM items", database=database_url.rsplit("/", 1)[1]).splitlines())
    assert len(stats.created) >= 300
    assert [name for name, count in stored.items() if count > 1] == []
    assert set(stats.created) <= set(stored), set(stats.created) - set(stored)
    assert stats.total >= 2000
    assert len(drains) == ROLLOUTS * REPLICAS
    for drain in drains:
        assert drain.returncode == -signal.SIGTERM, drain
        assert drain.seconds < GRACEFUL_SHUTDOWN_TIMEOUT, drain
        assert "200" not in drain.readiness_after_sigterm, drain

    for instance in instances:
        assert instance.problems_in_log() == [], instance.log()[-3000:]
    # The drain order, in each stopped instance's own log: in-flight requests answered,
    # then the lifespan resources closed, then the process gone.
    for instance in instances[:-REPLICAS]:
        messages = [entry["message"] for entry in instance.log_entries()]
        slow = [index for index, message in enumerate(messages) if message.startswith("GET /slow/sleep 200")]
        closing = messages.index("service shutting down")
        assert messages.index("Shutting down") < closing
        assert slow and max(slow) < closing
        assert messages.index("Application shutdown complete.") > closing


@pytest.mark.slow
def test_drain_cuts_requests_longer_than_the_timeout(project: Path, tmp_path: Path, database_url: str) -> None:
    """The graceful-shutdown timeout bounds a drain: longer requests are cancelled (and
    answered 503), then the lifespan still closes its resources and the process exits."""
    env = {f"{ENV_PREFIX}GRACEFUL_SHUTDOWN_TIMEOUT": "1", f"{ENV_PREFIX}DATABASE_URL": database_url}
    instance = Instance(project, tmp_path, env=env)
    try:
        instance.wait_ready()

        async def drain() -> tuple[Exception | httpx.Response, float, int | None]:
            async with httpx.AsyncClient(timeout=30) as client:
                request = asyncio.create_task(client.get(f"{instance.base_url}/slow/sleep?seconds=20"))
                await asyncio.sleep(0.5)
                started = time.monotonic()
                instance.terminate()
                returncode = await asyncio.to_thread(instance.process.wait, 30)
                seconds = time.monotonic() - started
                try:
                    outcome: Exception | httpx.Response = await request
                except httpx.TransportError as exc:
                    outcome = exc
                return outcome, seconds, returncode

        outcome, seconds, returncode = asyncio.run(drain())
    finally:
        instance.stop()
    # The cut request is answered with a problem, not uvicorn's bare 500.
    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == 503
    assert outcome.headers["content-type"] == "application/problem+json"
    assert outcome.headers["connection"] == "close"
    assert outcome.headers["x-content-type-options"] == "nosniff"
    assert outcome.json()["request_id"] == outcome.headers["x-request-id"]
    assert outcome.json()["detail"] == "The service shut down before the request completed."
    assert 1 <= seconds < 4
    assert returncode == -signal.SIGTERM
    messages = [entry["message"] for entry in instance.log_entries()]
    assert any(message.startswith("Cancel 1 running task(s)") for message in messages)
    assert messages.index("service shutting down") < messages.index("Application shutdown complete.")
