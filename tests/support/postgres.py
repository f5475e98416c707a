"""A real, throwaway PostgreSQL server for the tests: its own cluster on a free port, gone after.

The test machines have Debian's server binaries (tests/run.sh installs them) but no running
server the tests may rely on, and the test venv has no PostgreSQL driver: the cluster is made
with ``initdb``, run with ``pg_ctl`` and queried with the ``psql`` client, all from the standard
library. It listens on 127.0.0.1 only (no Unix socket), trusts every local TCP connection and is
tuned for speed over durability (no fsync): nothing in it outlives the session.

The server refuses to run as root, and CI runs as root: there, every server command runs as the
``postgres`` user (made by Debian's package) and the cluster's directory is owned by it.
``stop()`` and ``start()`` restart the same cluster on the same port, for outage tests.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from .run import free_port

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# The OS user the server runs as when the tests run as root.
SERVER_OS_USER = "postgres"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
TOOLS = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")
# Durability is worthless in a cluster deleted after the session; burst tests open many
# connections at once. No Unix socket: the tests reach the server over TCP only, like a service.
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "logging_collector": "off",
}


class PostgresError(RuntimeError):
    """A server command or a psql query failed; the message carries its output."""


def server_bindir() -> Path:
    """The directory of the real server binaries, newest major version first.

    Debian's /usr/bin/psql and friends are version-picking wrappers, and initdb/pg_ctl are not
    on PATH at all (or only as local wrappers): the versioned directories hold the real ones.
    """
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: tuple(int(part) for part in re.findall(r"\d+", path.parent.name)),
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in TOOLS):
            return bindir
    raise PostgresError(
        f"no PostgreSQL server binaries ({', '.join(TOOLS)}) in /usr/lib/postgresql/*/bin or pg_config --bindir: "
        "tests/run.sh installs the Debian postgresql package (as root)"
    )


def alive(pid: int) -> bool:
    # A dead postmaster was reparented to init, which may reap it late: a zombie is dead too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clean_environment() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST, PGPASSWORD... from the caller's shell would silently retarget the tools.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


class PostgresServer:
    """One throwaway cluster: ``with PostgresServer() as server:`` makes and starts it, and
    always stops it and deletes its files on the way out, whatever the tests did."""

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
        self.data_dir = self.base / "data"
        self.log_file = self.base / "server.log"
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SERVER_OS_USER)
            except KeyError:
                shutil.rmtree(self.base)
                raise PostgresError(
                    f"running as root but there is no {SERVER_OS_USER!r} OS user to run the server as: "
                    "tests/run.sh installs the Debian postgresql package, which makes it"
                ) from None
            # mkdtemp makes a 0700 directory owned by root; the server must own its cluster.
            # Its parent (the temp dir, 1777) is traversable by every user, unlike pytest's basetemp.
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self.run_as = ["runuser", "-u", SERVER_OS_USER, "--"]
        self.initialized = False

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{quote(database, safe='')}"

    @property
    def is_running(self) -> bool:
        if not self.data_dir.is_dir():
            return False
        # 0: running; 3: not running; 4: no cluster. Anything else is a real failure.
        return self.pg_ctl("status", check=False).returncode == 0

    def start(self) -> None:
        """Start the cluster (made on first start), on the same port every time; waits until it
        accepts connections."""
        if not self.initialized:
            self.initialize()
        elif self.is_running:
            return
        started = time.monotonic()
        self.pg_ctl(
            "start", f"--log={self.log_file}", "--wait", f"--timeout={START_TIMEOUT:.0f}", timeout=START_TIMEOUT
        )
        # pg_ctl -w trusts postmaster.pid; a real client connection over TCP is what tests need.
        while not self.accepts_connections():
            if time.monotonic() - started > START_TIMEOUT:
                raise PostgresError(
                    f"PostgreSQL did not accept connections on {HOST}:{self.port} within {START_TIMEOUT:.0f}s\n"
                    f"--- server log ---\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (open sessions are cut, as in a real outage); the cluster stays on disk.
        Bounded: a server that will not stop is stopped immediately, then killed."""
        if not self.is_running:
            return
        for mode in ("fast", "immediate"):
            result = self.pg_ctl(
                "stop", f"--mode={mode}", "--wait", f"--timeout={STOP_TIMEOUT:.0f}", check=False, timeout=STOP_TIMEOUT
            )
            if result.returncode == 0 and not self.is_running:
                return
        self.kill()

    def close(self) -> None:
        """Stop the server and delete the cluster; safe to call more than once."""
        try:
            if self.initialized:
                self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        self.psql(f"CREATE DATABASE {quote_identifier(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        # FORCE: a service under test may still hold connections to it.
        self.psql(f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)")

    def psql(self, sql: str, database: str = "postgres", timeout: float = 60) -> str:
        """Run SQL with the psql client (unaligned, tuples only: one row a line, columns split by
        ``|``); returns its output. Raises PostgresError on any SQL or connection error."""
        # SQL on stdin, not -c: psql then sends each statement on its own, so statements that
        # refuse to run inside a transaction block (CREATE DATABASE) can follow others.
        command = [
            str(self.bindir / "psql"),
            "-XAtq",
            "--set=ON_ERROR_STOP=1",
            *self.client_options,
            f"--dbname={database}",
        ]
        env = {**clean_environment(), "PGCONNECT_TIMEOUT": "5"}
        result = subprocess.run(
            command, input=sql, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise PostgresError(f"psql exited with {result.returncode} on {database}:\n{result.stderr.strip()}")
        return result.stdout.rstrip("\n")

    def accepts_connections(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "--quiet", "--timeout=2", *self.client_options],
            env=clean_environment(),
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    def log_tail(self, characters: int = 6000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-characters:]
        except FileNotFoundError:
            return "(no server log)"

    def initialize(self) -> None:
        # --no-sync: the cluster is thrown away, so waiting for the disk buys nothing.
        options = ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        self.server_command("initdb", f"--pgdata={self.data_dir}", f"--username={SUPERUSER}", *options, timeout=120)
        # Last setting wins: appended values override initdb's defaults.
        with (self.data_dir / "postgresql.conf").open("a") as config:
            config.write("\n# Throwaway test cluster (tests/postgres.py)\n")
            config.write(f"port = {self.port}\n")
            config.writelines(f"{key} = {value}\n" for key, value in SETTINGS.items())
        # Only TCP from this machine's loopback address, and no password: nothing else may connect.
        (self.data_dir / "pg_hba.conf").write_text(f"host all all {HOST}/32 trust\n")
        self.initialized = True

    def kill(self) -> None:
        """Last resort when pg_ctl could not stop the server: SIGKILL the postmaster; its
        backends notice their parent died and exit on their own."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def client_options(self) -> list[str]:
        return [f"--host={HOST}", f"--port={self.port}", f"--username={SUPERUSER}"]

    def pg_ctl(
        self, action: str, *arguments: str, check: bool = True, timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        # The subprocess timeout is a backstop behind pg_ctl's own --timeout, never the bound itself.
        return self.server_command(
            "pg_ctl", action, f"--pgdata={self.data_dir}", *arguments, check=check, timeout=timeout + 10
        )

    def server_command(
        self, tool: str, *arguments: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a server tool as the server's OS user, from a directory that user can enter."""
        result = subprocess.run(
            [*self.run_as, str(self.bindir / tool), *arguments],
            cwd=self.base,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresError(
                f"{tool} {' '.join(arguments)} exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}\n"
                f"--- server log ---\n{self.log_tail()}"
            )
        return result
