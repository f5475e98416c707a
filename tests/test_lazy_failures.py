"""A domain that cannot be imported at runtime, under real uvicorn, over real sockets.

The build imported it; once the service runs, a data file it reads makes its import raise
``SystemExit``, ``KeyboardInterrupt`` or an ordinary exception. Eager routing would not
start at all; lazy routing must answer that domain's requests with the service's 503
problem (request id included), keep serving everything else, not re-import the domain on
every request, log the failure once, and say so in readiness.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import PACKAGE, uv
from support.servers import Instance, prepare_project

DATA_ROUTER = '''\
"""Test-only domain: its import depends on a data file next to it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

HERE = Path(__file__).parent
with (HERE / "attempts").open("a") as attempts:
    attempts.write(".")
MODE = (HERE / "data.txt").read_text().strip()
if MODE == "exit":
    raise SystemExit("the data file says exit")
if MODE == "interrupt":
    raise KeyboardInterrupt
if MODE == "error":
    raise LookupError("no such rate")

router = APIRouter(prefix="/rates", tags=["rates"])


@router.get("")
async def rates() -> dict[str, str]:
    return {"mode": MODE}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("lazy-failures")
    project = prepare_project(directory / "acme-orders", {"rates": 0})
    folder = project / "src" / PACKAGE / "domains" / "rates"
    (folder / "router.py").write_text(DATA_ROUTER)
    (folder / "data.txt").write_text("fine")  # as it was when the build imported it
    uv(project, "run", "--no-sync", "python", "-m", PACKAGE, "build")
    yield project


def raw_get(port: int, path: str, request_id: str) -> bytes:
    """One HTTP/1.1 request on a raw socket: exactly what uvicorn sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        headers = f"Host: 127.0.0.1\r\nX-Request-ID: {request_id}\r\nConnection: close\r\n"
        connection.sendall(f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt"), ("error", "LookupError")],
)
def test_a_domain_failing_to_import_at_runtime(project: Path, tmp_path: Path, mode: str, error: str) -> None:
    folder = project / "src" / PACKAGE / "domains" / "rates"
    (folder / "data.txt").write_text(mode)
    (folder / "attempts").unlink(missing_ok=True)
    with Instance(project, tmp_path) as instance:
        started = time.monotonic()
        raw = raw_get(instance.port, "/rates", "first-rates-request")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), raw
        assert b"content-type: application/problem+json" in head.lower()
        assert b"retry-after: " in head.lower()
        assert b'"request_id":"first-rates-request"' in body
        assert error.encode() not in body  # the error is in the log, not in the answer
        with httpx.Client(base_url=instance.base_url, timeout=10) as client:
            for _ in range(50):
                assert client.get("/rates").status_code == 503
            # The rest of the service keeps serving, and readiness names the domain.
            assert client.get("/items").status_code == 200
            assert client.get("/health/ready").json() == {"status": "ready", "unavailable_domains": ["rates"]}
            # Backing off, not re-importing: one import, plus one per back-off (1 s, then
            # 2 s, 4 s, ...) that may have ended while the 50 requests were answered.
            elapsed = time.monotonic() - started
            ended = sum(1 for waited in (1, 3, 7, 15, 31) if waited <= elapsed)
            assert 1 <= len((folder / "attempts").read_text()) <= 1 + ended
            (folder / "data.txt").write_text("fine")
            deadline = time.monotonic() + 40
            while (fixed := client.get("/rates")).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert fixed.json() == {"mode": "fine"}
            assert client.get("/health/ready").json() == {"status": "ready"}
        assert instance.process.poll() is None
        entries = instance.log_entries()
    failures = [entry for entry in entries if "cannot be mounted" in entry.get("message", "")]
    assert len(failures) == 1, failures
    assert error in str(failures[0])
    assert not [entry for entry in entries if entry.get("level") == "RAW" and "Traceback" in entry["message"]]
