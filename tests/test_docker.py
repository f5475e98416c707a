"""The container image, for real: rendered Dockerfile, linted, built with podman, run, stopped.

Two images are built once per session, on a locally bootstrapped stand-in of the real base
image (support/containers.py explains why and how): the SQLite one (the docker target alone),
which keeps its database on a volume, and the PostgreSQL one (docker and kubernetes, the
image the manifests run), which migrates and serves against the session's real PostgreSQL
server. The dependency install inside the build reaches PyPI, as any image build does;
nothing else is fetched.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX, PACKAGE, free_port, leftover_markup, python_executable, render, run, uv
from support.containers import PODMAN, ULIMITS, build_image, ensure_base_image, podman, require
from support.postgres import PostgresServer

# The image's contract, also relied on by deploy/kubernetes (runAsUser, containerPort).
UID = GID = 10001
PORT = 8000
GRACEFUL_SHUTDOWN_TIMEOUT = 20  # the setting's default; the image does not change it
STOP_TIMEOUT = 30  # what the docs tell `docker run --stop-timeout` / `podman stop -t` to use
# The SQLite image's database file, on its declared volume.
DATA = "/data"
SQLITE_URL = f"sqlite:///{DATA}/{PACKAGE}.sqlite3"
# The restrictions of the Kubernetes manifests: read-only root, /tmp writable, no
# capabilities, no privilege escalation. Every container of these tests runs with them.
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# slirp4netns with the host's loopback reachable as this address: the containers reach the
# session's PostgreSQL server (127.0.0.1 only) and nothing else of the host, and ports still publish.
HOST_LOOPBACK_NETWORK = ["--network", "slirp4netns:allow_host_loopback=true"]
HOST_LOOPBACK = "10.0.2.2"


# --- Which files each choice of targets produces -------------------------------------------


@pytest.mark.parametrize(
    ("targets", "image_files", "kubernetes"),
    [
        ([], False, False),
        (["lambda"], False, False),
        (["docker"], True, False),
        (["kubernetes"], True, True),  # Kubernetes runs the image: it brings the Dockerfile
        (["docker", "lambda", "kubernetes"], True, True),
    ],
)
def test_deploy_files_follow_the_targets(
    tmp_path: Path, targets: list[str], image_files: bool, kubernetes: bool
) -> None:
    project = render(tmp_path / "acme-orders", deploy_targets=targets)
    assert (project / "Dockerfile").is_file() is image_files
    assert (project / ".dockerignore").is_file() is image_files
    assert (project / "deploy" / "kubernetes").exists() is kubernetes
    if not targets:
        assert not (project / "deploy").exists(), "an unused deploy/ folder was left behind"
    assert not leftover_markup(project)


@pytest.mark.parametrize("python_version", ["3.12", "3.13"])
def test_dockerfile_follows_the_python_version(tmp_path: Path, python_version: str) -> None:
    """Only 3.11 images are built here (see support/containers.py); the others are checked as text."""
    project = render(tmp_path / "acme-orders", deploy_targets=["docker"], python_version=python_version)
    dockerfile = (project / "Dockerfile").read_text()
    # Builder and runtime on the same image: the venv points at the base's interpreter.
    assert re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, re.MULTILINE) == [
        (f"docker.io/library/python:{python_version}-slim-bookworm", "builder"),
        (f"docker.io/library/python:{python_version}-slim-bookworm", "runtime"),
    ]
    assert f"UV_PYTHON=python{python_version}" in dockerfile
    assert_hadolint_clean(project / "Dockerfile")


# --- The image ---------------------------------------------------------------------------


def locked_project(destination: Path, **answers: object) -> Path:
    project = render(destination, **answers)
    # The image installs from the lock (uv sync --locked); a generated project locks at copy time.
    uv(project, "lock", "--python", python_executable("3.11"))
    return project


@pytest.fixture(scope="module")
def image_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docker target alone: the SQLite image."""
    project = locked_project(tmp_path_factory.mktemp("image") / "acme-orders", deploy_targets=["docker"])
    assert "database: sqlite" in (project / ".copier-answers.yml").read_text()
    return project


@pytest.fixture(scope="module")
def postgres_image_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Docker and Kubernetes: the PostgreSQL image, as the manifests run it."""
    project = locked_project(
        tmp_path_factory.mktemp("postgres-image") / "acme-orders", deploy_targets=["docker", "kubernetes"]
    )
    assert "database: postgresql" in (project / ".copier-answers.yml").read_text()
    return project


def built_image(project: Path) -> Iterator[str]:
    require("podman")
    base = ensure_base_image("3.11")
    tag = f"localhost/acme-orders-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    build_image(project, tag)
    print(f"image built in {time.monotonic() - started:.1f} s")
    # buildah 1.28 with --layers=false deletes a base image that a FROM-only stage aliases
    # (`FROM python AS base` + `FROM base`): the Dockerfile names the image in each stage.
    assert podman("image", "exists", base, check=False).returncode == 0, "the build removed its base image"
    yield tag
    podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def image(image_project: Path) -> Iterator[str]:
    yield from built_image(image_project)


@pytest.fixture(scope="module")
def postgres_image(postgres_image_project: Path) -> Iterator[str]:
    yield from built_image(postgres_image_project)


def assert_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run(["hadolint", str(dockerfile)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_image_project(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("image_project" if request.param == "sqlite" else "postgres_image_project")


def test_dockerfile_is_lint_clean(any_image_project: Path) -> None:
    assert_hadolint_clean(any_image_project / "Dockerfile")


def test_dockerfile_passes_checkov(any_image_project: Path) -> None:
    result = run(
        ["checkov", "--skip-download", "--framework", "dockerfile", "-f", "Dockerfile", "-o", "json"],
        cwd=any_image_project,
    )
    summary = json.loads(result.stdout)["summary"]
    assert summary["failed"] == 0, result.stdout
    assert summary["passed"] > 0
    assert summary["skipped"] == 0


@pytest.mark.slow
def test_image_metadata(image: str) -> None:
    [inspected] = json.loads(podman("image", "inspect", image).stdout)
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{GID}"
    # Exec form: python is PID 1 and gets the stop signal itself.
    assert config["Cmd"] == ["python", "-m", PACKAGE, "serve", "--host", "0.0.0.0"]
    assert not config.get("Entrypoint")
    assert f"{ENV_PREFIX}ENVIRONMENT=production" in config["Env"]
    assert config["StopSignal"] == "SIGTERM"
    assert f"{PORT}/tcp" in config["ExposedPorts"]
    assert inspected["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    # The SQLite file is on a volume, outside the read-only code.
    assert f"{ENV_PREFIX}DATABASE_URL={SQLITE_URL}" in config["Env"]
    assert config["Volumes"] == {DATA: {}}
    size_mb = inspected["Size"] / 1_000_000
    print(f"image size: {size_mb:.0f} MB")
    # The base is ~150 MB; the service and its dependencies add ~20 MB. No build tools.
    assert size_mb < 250


@pytest.mark.slow
def test_postgresql_image_metadata(postgres_image: str) -> None:
    [inspected] = json.loads(podman("image", "inspect", postgres_image).stdout)
    config = inspected["Config"]
    assert config["User"] == f"{UID}:{GID}"
    assert config["Cmd"] == ["python", "-m", PACKAGE, "serve", "--host", "0.0.0.0"]
    # The URL is a secret given at run time: none in the image, and no volume to keep.
    assert not [variable for variable in config["Env"] if "DATABASE" in variable]
    assert not config.get("Volumes")


@pytest.mark.slow
def test_image_holds_only_the_runtime(image: str) -> None:
    script = (
        "set -e; "
        "if command -v uv; then exit 1; fi; "  # uv stayed in the builder stage
        "test ! -e /src; "  # no source tree, hence no .env, tests or git history
        f'test -z "$(find / -xdev -name .env -print -quit)"; '
        f"python -m {PACKAGE} status; "  # the route build is in the image and up to date
        f"test -n \"$(find /app/.venv -path '*/{PACKAGE}/__pycache__/*.pyc' -print -quit)\"; "  # bytecode shipped
        f'test "$(stat -c %u /app/.venv/lib)" = 0; '  # the code belongs to root, not to the service
        "touch /app/.venv/x 2>/dev/null && exit 1 || true; "
        f'test "$(stat -c %u:%g {DATA})" = {UID}:{GID}; '  # the database's volume belongs to the service
        f"test -f /app/.venv/lib/python3.11/site-packages/{PACKAGE}/migrations/script.py.mako"  # migrations ship
    )
    result = podman("run", "--rm", "--network", "none", *ULIMITS, image, "sh", "-c", script)
    assert "up to date" in result.stdout


def environment(variables: dict[str, str]) -> list[str]:
    return [option for name, value in variables.items() for option in ("--env", f"{name}={value}")]


def podman_run(image: str, *command: str, options: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """A one-off container of the image (as `docker run --rm`), hardened like the service's."""
    return podman("run", "--rm", *ULIMITS, *HARDENING, *options, image, *command, timeout=120, check=check)


UPGRADE = ("python", "-m", PACKAGE, "db", "upgrade")


def migrate(image: str, options: list[str]) -> subprocess.CompletedProcess[str]:
    """`db upgrade`, its own command in the same image, as a deploy runs it before the new version."""
    return podman_run(image, *UPGRADE, options=options)


class Container:
    """The image's own command, detached, with HARDENING and its port published on 127.0.0.1."""

    def __init__(self, image: str, options: list[str] | None = None) -> None:
        self.name = f"acme-orders-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        podman(
            "run", "--detach", "--name", self.name,
            *ULIMITS,
            "--publish", f"127.0.0.1:{self.port}:{PORT}",
            *HARDENING,
            "--env", f'{ENV_PREFIX}ALLOWED_HOSTS=["127.0.0.1"]',
            *(options or []),
            image,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60, path: str = "/health/ready") -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if self.state()["Running"] is False:
                pytest.fail(f"the container exited with {self.state()['ExitCode']}:\n{self.logs()}")
            time.sleep(0.2)
        pytest.fail(f"not ready after {timeout} s:\n{self.logs()}")

    def state(self) -> dict[str, object]:
        [inspected] = json.loads(podman("container", "inspect", self.name).stdout)
        return inspected["State"]

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


@pytest.fixture
def volume() -> Iterator[str]:
    """A named volume for the SQLite image's database, removed after the test."""
    name = f"acme-orders-test-data-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "--force", name, check=False)


@pytest.fixture
def container(image: str, volume: str) -> Iterator[Container]:
    """The SQLite image serving a migrated database on its volume."""
    migrate(image, ["--network", "none", "--volume", f"{volume}:{DATA}"])
    started = Container(image, ["--volume", f"{volume}:{DATA}"])
    try:
        yield started
    finally:
        started.remove()


@pytest.mark.slow
def test_container_serves_as_an_unprivileged_user(container: Container) -> None:
    print(f"ready {container.wait_ready():.2f} s after podman run returned")
    # PID 1 is the server itself (exec form), running as the image's high UID.
    status = podman("exec", container.name, "cat", "/proc/1/status").stdout
    assert re.search(rf"^Uid:\s+{UID}\s+{UID}\s+{UID}\s+{UID}$", status, re.MULTILINE), status
    assert re.search(rf"^Gid:\s+{GID}\s", status, re.MULTILINE), status
    assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE), status
    cmdline = podman("exec", container.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert cmdline[:4] == ["python", "-m", PACKAGE, "serve"]
    print("resident memory after start:", re.search(r"^VmRSS:\s+(.*)$", status, re.MULTILINE).group(1))

    with httpx.Client(base_url=container.url, timeout=10) as client:
        assert client.get("/health/live").json() == {"status": "alive"}
        created = client.post("/items", json={"name": "Blue mug", "price": "12.50"})
        assert created.status_code == 201, created.text
        listed = client.get("/items")
        assert listed.status_code == 200
        assert [item["name"] for item in listed.json()["items"]] == ["Blue mug"]
        # The OpenAPI document comes from the build made in the image.
        assert "/items" in client.get("/openapi.json").json()["paths"]

    # The image's HEALTHCHECK, run by the engine as Docker would.
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


@pytest.mark.slow
def test_container_drains_in_flight_requests_on_stop(container: Container) -> None:
    """SIGTERM via `podman stop`: a request already in flight completes, the lifespan shuts
    down, the process exits 0, well within the grace period."""
    container.wait_ready()
    body = json.dumps({"name": "Slow mug", "price": "3.00"}).encode()
    with socket.create_connection(("127.0.0.1", container.port), timeout=30) as connection:
        # Half a request: the server is now waiting on this connection.
        connection.sendall(
            b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.5)  # let it reach the app before the signal
        started = time.monotonic()
        stop = subprocess.Popen(
            [*PODMAN, "stop", "--time", str(STOP_TIMEOUT), container.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # SIGTERM has arrived; the server is draining, not gone
        assert stop.poll() is None, "the container stopped with a request in flight"
        connection.sendall(body[10:])
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    stop.communicate(timeout=STOP_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    print(f"stopped {elapsed:.2f} s after SIGTERM, with a request in flight for 2 s of it")

    assert response.startswith(b"HTTP/1.1 201 "), response[:300]
    state = container.state()
    assert state["ExitCode"] == 0, container.logs()
    assert elapsed < GRACEFUL_SHUTDOWN_TIMEOUT, "the drain waited for the timeout instead of the request"
    logs = container.logs()
    messages = [json.loads(line)["message"] for line in logs.splitlines() if line.startswith("{")]
    for expected in (
        "Shutting down",
        "service shutting down",
        "Application shutdown complete.",
        "Finished server process [1]",
    ):
        assert expected in messages, logs
    assert (
        messages.index("Shutting down")
        < messages.index("POST /items 201")
        < messages.index("Finished server process [1]")
    )
    assert "Traceback" not in logs


# --- The database ------------------------------------------------------------------------


@pytest.mark.slow
def test_sqlite_data_outlives_the_container_on_its_volume(image: str, volume: str) -> None:
    on_volume = ["--volume", f"{volume}:{DATA}"]
    migrated = migrate(image, ["--network", "none", *on_volume])
    assert "Running upgrade" in migrated.stdout + migrated.stderr
    first = Container(image, on_volume)
    try:
        first.wait_ready()
        with httpx.Client(base_url=first.url, timeout=10) as client:
            created = client.post("/items", json={"name": "Kept mug", "price": "4.00"})
            assert created.status_code == 201, created.text
    finally:
        first.remove()

    # A new container (a new version, say) on the same volume finds the data.
    second = Container(image, on_volume)
    try:
        second.wait_ready()
        listed = httpx.get(f"{second.url}/items", timeout=10)
        assert [item["name"] for item in listed.json()["items"]] == ["Kept mug"]
        files = podman("exec", second.name, "stat", "-c", "%n %u", f"{DATA}/{PACKAGE}.sqlite3").stdout.split()
        assert files == [f"{DATA}/{PACKAGE}.sqlite3", str(UID)]
    finally:
        second.remove()
    # Migrating an up-to-date database again is a no-op.
    again = migrate(image, ["--network", "none", *on_volume])
    assert "Running upgrade" not in again.stdout + again.stderr


@pytest.mark.slow
def test_postgresql_image_migrates_and_serves_a_real_server(postgres_image: str, postgres: PostgresServer) -> None:
    # Fail fast: no database, no service (exit 3, so the orchestrator restarts it).
    unreachable = environment(
        {
            f"{ENV_PREFIX}DATABASE_URL": f"postgresql://postgres@{HOST_LOOPBACK}:1/none",
            f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]',
        }
    )
    refused = podman_run(postgres_image, options=["--network", "none", *unreachable], check=False)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert f"{ENV_PREFIX}DATABASE_URL" in refused.stdout + refused.stderr

    postgres.create_database("image")
    url = f"postgresql://postgres@{HOST_LOOPBACK}:{postgres.port}/image"
    options = [*HOST_LOOPBACK_NETWORK, *environment({f"{ENV_PREFIX}DATABASE_URL": url})]
    container = Container(postgres_image, options)
    try:
        # Production never migrates by itself: alive, but not ready until `db upgrade` ran.
        container.wait_ready(path="/health/live")
        assert httpx.get(f"{container.url}/health/ready", timeout=5).status_code == 503
        assert postgres.psql("SELECT to_regclass('items') IS NULL", database="image") == "t"

        # Several pods' init containers at once: they queue on the advisory lock, one migrates.
        upgrade_command = [*PODMAN, "run", "--rm", *ULIMITS, *HARDENING, *options, postgres_image, *UPGRADE]
        upgrades = [
            subprocess.Popen(upgrade_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)
        ]
        outputs = [upgrade.communicate(timeout=120)[0] for upgrade in upgrades]
        assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
        assert sum("Running upgrade" in output for output in outputs) == 1, outputs
        assert postgres.psql("SELECT count(*) FROM alembic_version", database="image") == "1"

        container.wait_ready(timeout=15)
        with httpx.Client(base_url=container.url, timeout=10) as client:
            created = client.post("/items", json={"name": "Server mug", "price": "7.00"})
            assert created.status_code == 201, created.text
            assert client.get(f"/items/{created.json()['id']}").json() == created.json()
        assert postgres.psql("SELECT name FROM items", database="image") == "Server mug"
        assert "Traceback" not in container.logs()
    finally:
        container.remove()
        postgres.drop_database("image")
