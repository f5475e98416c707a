"""Bad input that only a real server and a real process can show.

- Requests uvicorn (h11) refuses before the app sees them: it answers a plain-text 400 and
  closes the connection, and the service keeps serving. Requests it passes on get the
  app's problem+json. The rendered project's own tests cover the rest of the catalogue.
- Bad settings and an unusable ``.env``: a message naming the setting or the file, exit
  status 2, no traceback.
- A lifespan resource that cannot be opened: fail fast, a log line naming it, exit status 3.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX, PACKAGE, free_port, project_python, uv_environment
from support.servers import Instance, run_service

HEAD = b"Host: 127.0.0.1\r\nConnection: close\r\n"
INTERNALS = (b"Traceback", b'File "', b".py", PACKAGE.encode(), b"site-packages")


@pytest.fixture(scope="module")
def server(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    # The shared default project is not built (building would change it): development mode.
    directory = tmp_path_factory.mktemp("bad-input")
    with Instance(default_project, directory, env={f"{ENV_PREFIX}ENVIRONMENT": "development"}) as instance:
        yield instance


def exchange(port: int, request: bytes, *, pieces: int = 1, pause: float = 0.0) -> bytes:
    """Send raw bytes (in ``pieces`` writes), read until the server closes the connection.

    A server that refuses a request while bytes are still coming may reset the connection:
    what was received before the reset is returned.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        size = -(-len(request) // pieces)
        try:
            for start in range(0, len(request), size):
                connection.sendall(request[start : start + size])
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_refused_by_uvicorn(response: bytes) -> None:
    status, headers, body = parse(response)
    assert status == 400
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["connection"] == "close"
    assert body == b"Invalid HTTP request received."


def assert_problem(response: bytes, status: int) -> dict:
    got, headers, body = parse(response)
    assert got == status, response[:500]
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    for internal in INTERNALS:
        assert internal not in body, body
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["request_id"] == headers["x-request-id"]
    return problem


REFUSED_BY_UVICORN = {
    "byte above ascii in target": b"GET /items/\xff HTTP/1.1\r\n" + HEAD + b"\r\n",
    "nul in target": b"GET /items\x00 HTTP/1.1\r\n" + HEAD + b"\r\n",
    "control character in method": b"G\x01T /items HTTP/1.1\r\n" + HEAD + b"\r\n",
    "nul in header value": b"GET /items HTTP/1.1\r\n" + HEAD + b"X-Note: a\x00b\r\n\r\n",
    "no host header": b"GET /items HTTP/1.1\r\nConnection: close\r\n\r\n",
    "content-length not a number": b"POST /items HTTP/1.1\r\n" + HEAD + b"Content-Length: abc\r\n\r\n",
    "two content-lengths": b"POST /items HTTP/1.1\r\n" + HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "unsupported transfer-encoding": b"POST /items HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes", REFUSED_BY_UVICORN.values(), ids=REFUSED_BY_UVICORN.keys())
def test_malformed_http_is_refused_before_the_app(server: Instance, request_bytes: bytes) -> None:
    assert_refused_by_uvicorn(exchange(server.port, request_bytes))
    assert httpx.get(f"{server.base_url}/health/live").status_code == 200


@pytest.mark.slow
def test_request_head_over_16k_arriving_in_pieces_is_refused(server: Instance) -> None:
    # h11 refuses an incomplete request head once it holds more than 16 KiB.
    request = b"GET /items HTTP/1.1\r\n" + HEAD + b"X-Filler: " + b"a" * 40_000 + b"\r\n\r\n"
    assert_refused_by_uvicorn(exchange(server.port, request, pieces=40, pause=0.002))


@pytest.mark.slow
@pytest.mark.parametrize("part", ["query", "header"])
def test_request_head_of_a_megabyte_is_refused(server: Instance, part: str) -> None:
    # Even in one write: uvicorn reads at most 256 KiB at a time, so the head is incomplete.
    filler = b"a" * 1_000_000
    if part == "query":
        request = b"GET /items?tag=" + filler + b" HTTP/1.1\r\n" + HEAD + b"\r\n"
    else:
        request = b"GET /items HTTP/1.1\r\n" + HEAD + b"X-Filler: " + filler + b"\r\n\r\n"
    response = exchange(server.port, request)
    if response:  # or the connection was reset while the rest was still being sent
        assert_refused_by_uvicorn(response)
    assert httpx.get(f"{server.base_url}/health/live").status_code == 200


@pytest.mark.slow
def test_long_query_under_the_head_limit_reaches_the_app(server: Instance) -> None:
    request = b"GET /items?tag=" + b"a" * 15_000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n"
    problem = assert_problem(exchange(server.port, request), 422)
    assert [error["pointer"] for error in problem["errors"]] == ["#/query/tag"]


@pytest.mark.slow
def test_many_headers_under_the_head_limit_are_served(server: Instance) -> None:
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (index, b"b" * 100) for index in range(100))
    status, _, _ = parse(exchange(server.port, b"GET /items HTTP/1.1\r\n" + HEAD + headers + b"\r\n"))
    assert status == 200


PASSED_TO_THE_APP = {
    "dot segments": (b"GET /items/../health/live HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "encoded dot segments": (b"GET /items/%2e%2e/health/live HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "double slash": (b"GET //items HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "encoded slash": (b"GET /items/1%2F2 HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "encoded nul": (b"GET /items%00 HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "invalid utf-8, encoded": (b"GET /items/%FF HTTP/1.1\r\n" + HEAD + b"\r\n", 422),
    "absolute form": (b"GET http://evil.example/health/live HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "asterisk form": (b"OPTIONS * HTTP/1.1\r\n" + HEAD + b"\r\n", 404),
    "lower-case method": (b"get /items HTTP/1.1\r\n" + HEAD + b"\r\n", 405),
    "unknown method": (b"BREW /items HTTP/1.1\r\n" + HEAD + b"\r\n", 405),
}


@pytest.mark.slow
@pytest.mark.parametrize(("request_bytes", "status"), PASSED_TO_THE_APP.values(), ids=PASSED_TO_THE_APP.keys())
def test_odd_requests_get_a_problem(server: Instance, request_bytes: bytes, status: int) -> None:
    assert_problem(exchange(server.port, request_bytes), status)


@pytest.mark.slow
def test_declared_gigabyte_body_is_refused_at_once(server: Instance) -> None:
    request = (
        b"POST /items HTTP/1.1\r\n" + HEAD + b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{}"
    )
    started = time.monotonic()
    problem = assert_problem(exchange(server.port, request), 413)
    assert time.monotonic() - started < 2  # answered without waiting for the gigabyte
    assert problem["detail"] == "The request body is larger than 1048576 bytes."


def keep_alive_exchange(port: int, request: bytes, wait: float = 3.0) -> tuple[bytes, bool]:
    """Send ``request`` on a keep-alive connection; what came back, and whether the server
    closed the connection within ``wait`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(request)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            pass
        return received, True


def test_a_request_smuggled_in_a_chunked_body_is_never_served(server: Instance) -> None:
    """CL.TE: a front end that frames by Content-Length forwards the whole thing as one
    request; framed by Transfer-Encoding, the tail would be a second request of its own."""
    smuggled = b"GET /items/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    received, closed = keep_alive_exchange(server.port, request)
    assert closed
    assert received.count(b"HTTP/1.1 ") == 1, received
    status, headers, _ = parse(received)
    assert status == 400
    assert headers["connection"] == "close"


def test_an_oversized_body_closes_the_connection_instead_of_being_drained(server: Instance) -> None:
    request = (
        b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 40000000000\r\n\r\n" + b"x" * 65536
    )
    received, closed = keep_alive_exchange(server.port, request)
    assert closed, "the server kept the connection open to read the rest of the body"
    assert parse(received)[0] == 413


def test_a_redirect_never_carries_the_requests_host(server: Instance) -> None:
    status, headers, _ = parse(exchange(server.port, b"GET /items/ HTTP/1.1\r\n" + HEAD + b"\r\n"))
    assert status == 307
    assert headers["location"] == "/items"


@pytest.mark.parametrize("host", [b"evil.example", b"127.0.0.1.evil.example", b"evil.example:80"])
def test_a_foreign_host_is_refused_before_the_routes(server: Instance, host: bytes) -> None:
    request = b"GET /items/ HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    problem = assert_problem(exchange(server.port, request), 400)
    assert problem["detail"] == "The request's Host header names a host this service does not serve."
    assert host not in exchange(server.port, request)


def test_docs_load_everything_from_the_service(server: Instance) -> None:
    """What a browser in a cluster without internet access gets: the page and every file it
    names, from the service itself, under a policy that allows no other origin."""
    page = httpx.get(f"{server.base_url}/docs")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "http" not in policy and "*" not in policy
    assert "http" not in page.text
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert len(urls) == 4
    for url in urls:
        assert url.startswith("/docs/assets/")
        assert httpx.get(f"{server.base_url}{url}").status_code == 200, url


def test_a_malformed_chunk_after_an_early_response_is_one_warning(server: Instance) -> None:
    """The service answers before reading the body (a 404); the chunk that follows is
    malformed. uvicorn cannot send its 400 any more and asyncio logged an ERROR traceback
    for it, once per connection, for any client to trigger."""
    before = len(server.log_entries())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(
                b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
                parse(answer)[1]["content-length"]
            ):
                answer += connection.recv(65536)
            assert parse(answer)[0] == 404
            connection.sendall(b"zz\r\nnot a chunk\r\n\r\n")
            assert connection.recv(65536) == b""  # closed, with no second answer
    time.sleep(0.5)
    entries = server.log_entries()[before:]
    late = [entry for entry in entries if entry["message"].startswith("Fatal error: protocol.data_received()")]
    assert [entry["level"] for entry in late] == ["WARNING"], late  # once, for five connections
    assert "exception" not in late[0]
    assert not [entry for entry in entries if entry["level"] in ("ERROR", "CRITICAL", "RAW")]


def test_head_is_get_without_a_body(server: Instance) -> None:
    response = httpx.head(f"{server.base_url}/items")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(httpx.get(f"{server.base_url}/items").content)


def test_a_megabyte_of_unknown_members_is_answered_small_while_liveness_stays_fast(
    server: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    members = {f"k{index}": 0 for index in range(80_000)}
    body = json.dumps({"name": "x", "price": "1", **members}).encode()
    assert 1_000_000 < len(body) <= 1_048_576

    def flood() -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/items", content=body, headers={"content-type": "application/json"}, timeout=30
        )

    started = time.monotonic()
    alone = flood()
    alone_seconds = time.monotonic() - started
    with ThreadPoolExecutor(5) as pool:
        floods = [pool.submit(flood) for _ in range(4)]
        live = []
        while not all(future.done() for future in floods):
            began = time.monotonic()
            assert httpx.get(f"{server.base_url}/health/live", timeout=10).status_code == 200
            live.append(time.monotonic() - began)
        answers = [future.result() for future in floods]
    with capsys.disabled():
        print(
            f"\n1 MiB of unknown members: answered in {alone_seconds:.3f} s with {len(alone.content)} bytes;"
            f" slowest /health/live during four at once: {max(live, default=0):.3f} s"
        )
    for response in [alone, *answers]:
        assert response.status_code == 422
        assert len(response.content) < 64 * 1024
        assert len(response.json()["errors"]) == 1


@pytest.mark.slow
def test_the_server_logged_no_error(server: Instance) -> None:
    # Runs after the tests above (same module, same server): uvicorn's refusals are
    # warnings; nothing may have raised in the app.
    levels = {entry["level"] for entry in server.problems_in_log()}
    assert levels <= {"WARNING"}, server.log()[-3000:]


@pytest.mark.slow
def test_running_out_of_descriptors_logs_a_line_not_a_flood(default_project: Path, tmp_path: Path) -> None:
    """Idle connections use up a low descriptor limit: asyncio fails every accept() it
    retries, with a traceback each (37 MB in 3 s before the service rate-limited them)."""
    port = free_port()
    env = {
        **{key: value for key, value in uv_environment().items() if not key.startswith(ENV_PREFIX)},
        f"{ENV_PREFIX}ENVIRONMENT": "development",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
        f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]',
    }
    log_path = tmp_path / "service.log"

    def low_descriptor_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(project_python(default_project)), "-m", PACKAGE, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=low_descriptor_limit,
        )
    connections: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        connections = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
        time.sleep(3)
        for connection in connections:
            connection.close()
        # Descriptors free again: the service accepts and answers (asyncio retries each second).
        deadline = time.monotonic() + 10
        answered = False
        while not answered and time.monotonic() < deadline:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert answered
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log_path.read_text()
    errors = [line for line in text.splitlines() if '"level": "ERROR"' in line]
    assert 1 <= len(errors) <= 5, f"{len(errors)} error lines, {len(text)} bytes"
    assert len(text) < 64 * 1024


# --- Settings, read by the real process --------------------------------------------------


def assert_settings_refused(result: subprocess.CompletedProcess[str], *problems: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "Invalid settings:"
    assert [line.strip() for line in lines[1:]] == list(problems)


@pytest.mark.slow
def test_missing_required_setting(default_project: Path, tmp_path: Path) -> None:
    result = run_service(default_project, "serve", cwd=tmp_path, env={})
    assert_settings_refused(result, f"{ENV_PREFIX}ENVIRONMENT: Field required")


@pytest.mark.slow
def test_every_malformed_setting_is_named_at_once(default_project: Path, tmp_path: Path) -> None:
    malformed = {
        "ENVIRONMENT": ("staging", "Input should be 'development' or 'production'"),
        "LOG_LEVEL": ("LOUD", "Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        "LOG_FORMAT": ("xml", "Input should be 'json' or 'console'"),
        "ROUTING": ("sometimes", "Input should be 'lazy' or 'eager'"),
        "ROOT_PATH": ("stage", "must be empty or start with '/'"),
        "PORT": ("eighty", "Input should be a valid integer, unable to parse string as an integer"),
        "GRACEFUL_SHUTDOWN_TIMEOUT": ("-1", "Input should be greater than or equal to 0"),
        "MAX_BODY_BYTES": ("1MB", "Input should be a valid integer, unable to parse string as an integer"),
        "HTTP_TIMEOUT": ("0", "Input should be greater than 0"),
        "CORS_ALLOW_CREDENTIALS": ("maybe", "Input should be a valid boolean, unable to interpret input"),
        "HSTS_MAX_AGE": ("-5", "Input should be greater than or equal to 0"),
    }
    env = {f"{ENV_PREFIX}{name}": value for name, (value, _) in malformed.items()}
    result = run_service(default_project, "serve", cwd=tmp_path, env=env)
    assert_settings_refused(result, *(f"{ENV_PREFIX}{name}: {message}" for name, (_, message) in malformed.items()))


@pytest.mark.slow
def test_setting_that_is_not_json(default_project: Path, tmp_path: Path) -> None:
    env = {f"{ENV_PREFIX}ENVIRONMENT": "production", f"{ENV_PREFIX}CORS_ALLOW_ORIGINS": "https://app.example.com"}
    result = run_service(default_project, "serve", cwd=tmp_path, env=env)
    assert_settings_refused(
        result, f"{ENV_PREFIX}CORS_ALLOW_ORIGINS: is not valid JSON (list and object settings are written in JSON)"
    )


@pytest.mark.slow
def test_contradictory_settings(default_project: Path, tmp_path: Path) -> None:
    env = {
        f"{ENV_PREFIX}ENVIRONMENT": "production",
        f"{ENV_PREFIX}CORS_ALLOW_ORIGINS": '["*"]',
        f"{ENV_PREFIX}CORS_ALLOW_CREDENTIALS": "true",
    }
    result = run_service(default_project, "serve", cwd=tmp_path, env=env)
    assert_settings_refused(
        result, f"{ENV_PREFIX}CORS_ALLOW_ORIGINS must list origins when {ENV_PREFIX}CORS_ALLOW_CREDENTIALS is true"
    )


@pytest.mark.slow
def test_env_file_that_is_a_directory(default_project: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    result = run_service(default_project, "serve", cwd=tmp_path, env={})
    assert_settings_refused(
        result, f"{ENV_PREFIX}ENVIRONMENT: Field required", f"{tmp_path / '.env'} is not a file, so it was not read"
    )


@pytest.mark.slow
def test_env_file_that_is_not_utf8(default_project: Path, tmp_path: Path) -> None:
    content = f"{ENV_PREFIX}ENVIRONMENT=production\n{ENV_PREFIX}GREETING=caf\xe9\n".encode("latin-1")
    (tmp_path / ".env").write_bytes(content)
    result = run_service(default_project, "serve", cwd=tmp_path, env={})
    position = content.index(b"\xe9")
    assert_settings_refused(
        result, f"{tmp_path / '.env'} cannot be read: not UTF-8 text (invalid continuation byte at byte {position})"
    )


@pytest.mark.slow
def test_env_file_without_read_permission(default_project: Path, tmp_path: Path) -> None:
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # Root reads any file: drop the capabilities that let it, as an unprivileged user.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop the file-reading capabilities")
        wrapper = (setpriv, "--bounding-set", "-dac_override,-dac_read_search")
    env_file = tmp_path / ".env"
    env_file.write_text(f"{ENV_PREFIX}ENVIRONMENT=production\n")
    env_file.chmod(0)
    result = run_service(default_project, "serve", cwd=tmp_path, env={}, wrapper=wrapper)
    assert_settings_refused(result, f"{env_file} cannot be read: Permission denied")


@pytest.mark.slow
@pytest.mark.parametrize("port", ["99999", "0", "-1", "http", "8000.5"])
def test_a_port_out_of_range_is_a_usage_error(default_project: Path, tmp_path: Path, port: str) -> None:
    result = run_service(
        default_project, "serve", "--port", port, cwd=tmp_path, env={f"{ENV_PREFIX}ENVIRONMENT": "development"}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"argument --port: {port!r} is not a port (1 to 65535)" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["GRACEFUL_SHUTDOWN_TIMEOUT", "HTTP_TIMEOUT"])
@pytest.mark.parametrize("value", ["inf", "Infinity", "nan"])
def test_a_timeout_that_never_ends_is_refused(default_project: Path, tmp_path: Path, name: str, value: str) -> None:
    env = {f"{ENV_PREFIX}ENVIRONMENT": "development", f"{ENV_PREFIX}{name}": value}
    result = run_service(default_project, "serve", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[1].strip().startswith(f"{ENV_PREFIX}{name}: ")


@pytest.mark.slow
def test_a_host_that_does_not_resolve_names_the_setting(default_project: Path, tmp_path: Path) -> None:
    env = {f"{ENV_PREFIX}ENVIRONMENT": "development", f"{ENV_PREFIX}HOST": "no-such-host.invalid"}
    result = run_service(default_project, "serve", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: {ENV_PREFIX}HOST (or serve --host): 'no-such-host.invalid' cannot be resolved" in result.stderr
    assert "startup" not in result.stderr  # refused before the server and its lifespan started


@pytest.mark.slow
def test_production_without_allowed_hosts_is_refused_at_boot(default_project: Path, tmp_path: Path) -> None:
    result = run_service(default_project, "serve", cwd=tmp_path, env={f"{ENV_PREFIX}ENVIRONMENT": "production"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: {ENV_PREFIX}ALLOWED_HOSTS must be set in production" in result.stderr


# --- A lifespan resource that cannot be opened --------------------------------------------

# The http client's connection is refused when it opens: a stand-in for a database pool
# whose server is down. Only this subprocess is patched; the service code is the real one.
FAILING_RESOURCE = f"""
import sys
from {PACKAGE} import lifespan

class RefusingClient(lifespan.LazyClient):
    async def __aenter__(self):
        raise ConnectionRefusedError(111, "Connection refused")

lifespan.LazyClient = RefusingClient
from {PACKAGE}.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_resource_failing_at_startup_stops_the_process(default_project: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{key: value for key, value in uv_environment().items() if not key.startswith(ENV_PREFIX)},
        f"{ENV_PREFIX}ENVIRONMENT": "development",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [str(project_python(default_project)), "-c", FAILING_RESOURCE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [critical] = [entry for entry in entries if entry["level"] == "CRITICAL"]
    assert critical["message"] == (
        "startup failed: resource 'http_client' could not be opened "
        "(ConnectionRefusedError: [Errno 111] Connection refused); stopping"
    )
    messages = [entry["message"] for entry in entries]
    assert "Application startup failed. Exiting." in messages
    assert "service ready" not in messages
    assert not any(message.startswith("Uvicorn running on") for message in messages)  # never listened
