"""The database layer of rendered services, against real servers: SQLite files and a real
PostgreSQL server (the session's ``postgres`` fixture), real uvicorn, real sockets.

Figures worth reading (outage recovery, connection counts) are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX, PACKAGE
from support.postgres import PostgresServer
from support.servers import Instance, prepare_project, run_service, sqlite_url

ITEMS_REVISION = "5e0c2d1a7b44"  # the example domain's migration
# Words that would tell a client which database, driver or address sits behind the service.
BACKEND_WORDS = ("psycopg", "postgres", "sqlalchemy", "sqlite", "127.0.0.1", "select ", "insert ")


@pytest.fixture(scope="module")
def pg_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built ``database=postgresql`` render, shared by this module's tests (read-only)."""
    return prepare_project(tmp_path_factory.mktemp("pg") / "acme-orders", database="postgresql")


@pytest.fixture
def pg_database(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of this test's own, as the plain URL platforms hand out."""
    name = request.node.name.removeprefix("test_")[:40]
    url = postgres.create_database(name)
    assert url.startswith("postgresql://")
    yield url
    postgres.drop_database(name)


def db_env(url: str, **settings: str) -> dict[str, str]:
    return {
        f"{ENV_PREFIX}ENVIRONMENT": "production",
        f"{ENV_PREFIX}DATABASE_URL": url,
        **{f"{ENV_PREFIX}{name.upper()}": value for name, value in settings.items()},
    }


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def assert_opaque_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.text.lower()
    assert not [word for word in BACKEND_WORDS if word in body], body


# --- the default render (SQLite) ------------------------------------------------------


@pytest.mark.slow
def test_default_render_persists_items_across_a_restart(default_project: Path, tmp_path: Path) -> None:
    """Development mode, as the README serves it: ``serve`` migrates the SQLite file itself."""
    env = {f"{ENV_PREFIX}ENVIRONMENT": "development", f"{ENV_PREFIX}DATABASE_URL": sqlite_url(tmp_path)}
    with Instance(default_project, tmp_path, env=env, migrate=False) as first:
        created = httpx.post(f"{first.base_url}/items", json={"name": "Blue mug", "price": "12.50", "tags": ["a"]})
        assert created.status_code == 201, created.text

        async def contest() -> Counter[int]:
            async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as client:
                item = {"name": "Contested", "price": "1.00"}
                responses = await asyncio.gather(*(client.post("/items", json=item) for _ in range(50)))
            return Counter(response.status_code for response in responses)

        assert asyncio.run(contest()) == {201: 1, 409: 49}
    with Instance(default_project, tmp_path, env=env, migrate=False) as restarted:
        assert httpx.get(f"{restarted.base_url}/items/{created.json()['id']}").json() == created.json()
        assert httpx.get(f"{restarted.base_url}/items").json()["total"] == 2

    current = run_service(default_project, "db", "current", cwd=tmp_path, env=env)
    assert current.returncode == 0, current.stderr
    assert f"{ITEMS_REVISION} (head)" in current.stdout
    checked = run_service(default_project, "db", "check", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "The migrations match the models." in checked.stdout


def test_db_commands_explain_a_bad_database_url(default_project: Path, tmp_path: Path) -> None:
    secret = "hunter2-secret"
    refused = run_service(
        default_project, "db", "current", cwd=tmp_path, env=db_env(f"mysql://app:{secret}@db.internal/orders")
    )
    assert refused.returncode == 2
    assert f"{ENV_PREFIX}DATABASE_URL: the scheme 'mysql' is not supported" in refused.stderr
    unreachable = run_service(
        default_project, "db", "upgrade", cwd=tmp_path, env=db_env(f"postgresql://app:{secret}@127.0.0.1:1/orders")
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"error: {ENV_PREFIX}DATABASE_URL: ")
    assert "Traceback" not in unreachable.stderr
    assert secret not in refused.stderr + unreachable.stderr


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.mark.slow
def test_postgresql_render_upgrades_and_keeps_items_across_a_restart(
    pg_project: Path, pg_database: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    upgraded = run_service(pg_project, "db", "upgrade", cwd=tmp_path, env=db_env(pg_database))
    assert upgraded.returncode == 0, upgraded.stderr
    env = {f"{ENV_PREFIX}DATABASE_URL": pg_database}
    with Instance(pg_project, tmp_path, env=env, migrate=False) as first:
        created = httpx.post(f"{first.base_url}/items", json={"name": "Kept", "price": "3.20", "tags": ["x", "y"]})
        assert created.status_code == 201, created.text
    with Instance(pg_project, tmp_path, env=env, migrate=False) as restarted:
        assert httpx.get(f"{restarted.base_url}/items/{created.json()['id']}").json() == created.json()
    stored = postgres.psql("SELECT id, name, price_cents FROM items", database=database_name(pg_database))
    assert stored == f"{created.json()['id']}|Kept|320"


@pytest.mark.slow
def test_concurrent_upgrades_apply_the_schema_once(
    pg_project: Path, pg_database: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    """Three deploys migrating at the same moment (init containers of three pods)."""
    start = threading.Barrier(3)

    def upgrade(_: int) -> tuple[int, str]:
        start.wait()
        result = run_service(pg_project, "db", "upgrade", cwd=tmp_path, env=db_env(pg_database))
        return result.returncode, result.stderr

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(upgrade, range(3)))
    assert [code for code, _ in results] == [0, 0, 0], results
    name = database_name(pg_database)
    assert postgres.psql("SELECT version_num FROM alembic_version", database=name) == ITEMS_REVISION
    logs = "".join(stderr for _, stderr in results)
    assert logs.count(f"Running upgrade  -> {ITEMS_REVISION}") == 1, logs


@pytest.mark.slow
def test_readiness_waits_for_the_missing_migration(pg_project: Path, pg_database: str, tmp_path: Path) -> None:
    """Code that expects a migration the database lacks reports not ready (and says which),
    then becomes ready by itself once the migration is applied, without a restart."""
    instance = Instance(pg_project, tmp_path, env={f"{ENV_PREFIX}DATABASE_URL": pg_database}, migrate=False)
    try:
        deadline = time.monotonic() + 60
        while "lacks migration" not in instance.log() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                httpx.get(f"{instance.base_url}/health/ready", timeout=2)
            time.sleep(0.1)
        ready = httpx.get(f"{instance.base_url}/health/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"{instance.base_url}/health/live", timeout=5).status_code == 200
        [warning] = [entry for entry in instance.log_entries() if "lacks migration" in entry["message"]]
        assert warning["level"] == "WARNING"
        assert f"lacks migration {ITEMS_REVISION} (it is at none)" in warning["message"]

        upgraded = run_service(pg_project, "db", "upgrade", cwd=tmp_path, env=db_env(pg_database))
        assert upgraded.returncode == 0, upgraded.stderr
        instance.wait_ready(timeout=10)
        assert httpx.post(f"{instance.base_url}/items", json={"name": "a", "price": "1"}).status_code == 201
    finally:
        instance.stop()


@pytest.mark.slow
def test_an_outage_is_answered_503_and_recovered_from_without_a_restart(
    pg_project: Path, pg_database: str, postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Production mode with a build, reads and writes throughout; PostgreSQL stops for a few
    seconds, then comes back. Nothing but 200/201 and opaque 503s, and no request hangs."""
    connect_timeout = 2
    env = {f"{ENV_PREFIX}DATABASE_URL": pg_database, f"{ENV_PREFIX}DATABASE_CONNECT_TIMEOUT": str(connect_timeout)}
    with Instance(pg_project, tmp_path, env=env) as instance:
        outcome = asyncio.run(outage(instance.base_url, postgres, seconds_down=5))
        log_problems = [entry for entry in instance.problems_in_log() if entry["level"] != "WARNING"]
    with capsys.disabled():
        print(
            f"\noutage: first 503 {outcome.first_503:.2f} s and not ready {outcome.not_ready:.2f} s after the stop;"
            f" serving again {outcome.recovered:.2f} s and ready {outcome.ready_again:.2f} s after the start;"
            f" statuses {dict(sorted(outcome.statuses.items()))}; slowest answer {outcome.slowest:.2f} s"
        )
    assert set(outcome.statuses) <= {200, 201, 503}, outcome.statuses
    assert outcome.statuses[503] > 0
    assert outcome.first_503 < 12
    assert outcome.not_ready < 12
    assert outcome.recovered < 30
    assert outcome.ready_again < 30
    assert outcome.live_failures == 0
    # A request never waits much past the connect timeout, outage or not.
    assert outcome.slowest < connect_timeout + 3
    for response in outcome.unavailable_samples:
        assert_opaque_503(response)
    assert log_problems == []


class Outage:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.unavailable_samples: list[httpx.Response] = []
        self.first_503 = self.not_ready = self.recovered = self.ready_again = float("inf")
        self.live_failures = 0
        self.slowest = 0.0


async def outage(base_url: str, postgres: PostgresServer, *, seconds_down: float) -> Outage:
    seen = Outage()
    stopped_at: float | None = None
    started_at: float | None = None
    stop = asyncio.Event()

    async def clients(number: int, client: httpx.AsyncClient) -> None:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            began = time.monotonic()
            if sequence % 2:
                response = await client.get("/items?limit=5")
            else:
                response = await client.post("/items", json={"name": f"c{number}-{sequence}", "price": "1"})
            now = time.monotonic()
            seen.slowest = max(seen.slowest, now - began)
            seen.statuses[response.status_code] += 1
            if response.status_code == 503:
                if len(seen.unavailable_samples) < 5:
                    seen.unavailable_samples.append(response)
                if stopped_at is not None and started_at is None:
                    seen.first_503 = min(seen.first_503, now - stopped_at)
            elif response.status_code < 300 and started_at is not None:
                seen.recovered = min(seen.recovered, now - started_at)
            await asyncio.sleep(0.02)

    async def probes(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            ready = await client.get("/health/ready")
            live = await client.get("/health/live")
            now = time.monotonic()
            seen.live_failures += live.status_code != 200
            if ready.status_code == 503 and stopped_at is not None and started_at is None:
                seen.not_ready = min(seen.not_ready, now - stopped_at)
            if ready.status_code == 200 and started_at is not None:
                seen.ready_again = min(seen.ready_again, now - started_at)
            await asyncio.sleep(0.1)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        tasks = [asyncio.create_task(clients(number, client)) for number in range(4)]
        tasks.append(asyncio.create_task(probes(client)))
        try:
            await asyncio.sleep(1)
            await asyncio.to_thread(postgres.stop)
            stopped_at = time.monotonic()
            await asyncio.sleep(seconds_down)
        finally:
            await asyncio.to_thread(postgres.start)
        started_at = time.monotonic()
        deadline = started_at + 30
        while (seen.recovered == float("inf") or seen.ready_again == float("inf")) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # Back to normal: a burst finds only live connections in the pool.
        burst = await asyncio.gather(*(client.get("/items?limit=1") for _ in range(20)))
        stop.set()
        await asyncio.gather(*tasks)
    assert [response.status_code for response in burst] == [200] * 20
    return seen


@pytest.mark.slow
def test_the_pool_caps_connections_and_waiting_requests_get_503(
    pg_project: Path, pg_database: str, postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """200 concurrent requests while a lock holds every query: the server never sees more
    connections than the pool allows, and requests that cannot get one in time get 503."""
    pool_size, overflow = 3, 2
    env = {
        f"{ENV_PREFIX}DATABASE_URL": pg_database,
        f"{ENV_PREFIX}DATABASE_POOL_SIZE": str(pool_size),
        f"{ENV_PREFIX}DATABASE_MAX_OVERFLOW": str(overflow),
        f"{ENV_PREFIX}DATABASE_POOL_TIMEOUT": "1",
    }
    name = database_name(pg_database)
    count_sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{PACKAGE}'"
    with Instance(pg_project, tmp_path, env=env) as instance:
        counts: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                counts.append(int(postgres.psql(count_sql, database=name)))
                time.sleep(0.05)

        async def burst() -> Counter[int]:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=instance.base_url, timeout=30, limits=limits) as client:
                responses = await asyncio.gather(*(client.get("/items") for _ in range(200)))
            for response in responses:
                if response.status_code == 503:
                    assert_opaque_503(response)
            return Counter(response.status_code for response in responses)

        lock = "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"
        with ThreadPoolExecutor(2) as pool:
            sampler = pool.submit(sample)
            holder = pool.submit(postgres.psql, lock, name)
            time.sleep(0.3)
            statuses = asyncio.run(burst())
            holder.result()
            done.set()
            sampler.result()
        after = httpx.get(f"{instance.base_url}/items")
    with capsys.disabled():
        print(f"\nconnection budget: statuses {dict(statuses)}, server-side connections at most {max(counts)}")
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0
    assert max(counts) <= pool_size + overflow
    assert after.status_code == 200
