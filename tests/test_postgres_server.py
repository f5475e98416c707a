"""The throwaway PostgreSQL server the database tests stand on (tests/postgres.py).

Later tests trust it for outages (stop, then start the same cluster on the same port) and for
isolation (reachable from 127.0.0.1 only): these prove both against the real server.
"""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from support.postgres import PostgresError, PostgresServer, alive


def connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=5):
        pass


def postmaster_pid(server: PostgresServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def test_database_round_trip(postgres: PostgresServer) -> None:
    url = postgres.create_database("round_trip")
    assert url == f"postgresql://postgres@127.0.0.1:{postgres.port}/round_trip"
    postgres.psql(
        "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO items VALUES (1, 'mug'), (2, 'crème brûlée');",
        database="round_trip",
    )
    assert postgres.psql("SELECT id, name FROM items ORDER BY id", database="round_trip") == "1|mug\n2|crème brûlée"
    assert postgres.psql("SHOW server_encoding", database="round_trip") == "UTF8"
    # Databases are separate: the table is not in the admin database.
    assert postgres.psql("SELECT to_regclass('items') IS NULL") == "t"

    postgres.drop_database("round_trip")
    assert postgres.psql("SELECT count(*) FROM pg_database WHERE datname = 'round_trip'") == "0"


def test_sql_errors_raise_with_the_server_message(postgres: PostgresServer) -> None:
    with pytest.raises(PostgresError, match='relation "no_such_table" does not exist'):
        postgres.psql("SELECT 1; SELECT * FROM no_such_table; SELECT 2")


def test_stop_then_start_keeps_data_and_port(postgres: PostgresServer) -> None:
    postgres.create_database("outage")
    postgres.psql("CREATE TABLE survivors (name text); INSERT INTO survivors VALUES ('kept')", database="outage")
    port, admin_url = postgres.port, postgres.admin_url
    try:
        postgres.stop()
        assert not postgres.is_running
        with pytest.raises(ConnectionRefusedError):
            connect("127.0.0.1", port)
        with pytest.raises(PostgresError):
            postgres.psql("SELECT 1")
    finally:
        postgres.start()  # the server is shared: never leave it down for the next test
    assert postgres.is_running
    assert (postgres.port, postgres.admin_url) == (port, admin_url)
    assert postgres.psql("SHOW port") == str(port)
    assert postgres.psql("SELECT name FROM survivors", database="outage") == "kept"
    postgres.drop_database("outage")


def test_listens_on_loopback_only_with_throwaway_settings(postgres: PostgresServer) -> None:
    assert postgres.psql("SELECT host(inet_server_addr())") == "127.0.0.1"
    assert postgres.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres.psql("SHOW unix_socket_directories") == ""
    connect("127.0.0.1", postgres.port)
    # All of 127.0.0.0/8 reaches this machine: a server bound to every address would answer here.
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.2", postgres.port)
    rows = postgres.psql(
        "SELECT name, setting FROM pg_settings"
        " WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit', 'max_connections')"
    )
    settings = dict(row.split("|") for row in rows.splitlines())
    assert settings == {
        "fsync": "off",
        "full_page_writes": "off",
        "synchronous_commit": "off",
        "max_connections": "300",
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs the server run as another user")
def test_runs_as_the_postgres_user_when_root(postgres: PostgresServer) -> None:
    postgres_uid = pwd.getpwnam("postgres").pw_uid
    assert Path(f"/proc/{postmaster_pid(postgres)}").stat().st_uid == postgres_uid
    assert postgres.data_dir.stat().st_uid == postgres_uid


def test_exit_stops_the_server_and_deletes_the_cluster_even_on_failure() -> None:
    with pytest.raises(RuntimeError, match="a failing test"), PostgresServer() as server:
        pid, port = postmaster_pid(server), server.port
        assert alive(pid)
        raise RuntimeError("a failing test")
    assert not alive(pid)
    assert not server.base.exists()
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.1", port)
