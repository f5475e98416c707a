"""uvicorn's two HTTP/1.1 parsers side by side on a rendered project: h11 and httptools.

    python benchmarks/http_parsers.py <project>

``<project>`` is a synced render (the default one will do). The script installs httptools
into a scratch directory (the project's environment is left as it is), then runs the
service's app under uvicorn alternately with each parser (development settings, three
starts each), and reports medians: the time from process start to the first answer, and
the latency of 2,000 ``GET /health/live`` and 1,000 ``GET /items`` over one keep-alive
connection, with the ratio httptools / h11.
Nothing is asserted: the figures are for docs/reliability.md.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(python: Path, package: str, parser: str, scratch: Path) -> tuple[float, float, float]:
    port = free_port()
    prefix = package.upper() + "_"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(prefix)},
        f"{prefix}ENVIRONMENT": "development",
        f"{prefix}LOG_LEVEL": "WARNING",
        f"{prefix}ALLOWED_HOSTS": '["127.0.0.1"]',
        f"{prefix}DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "XDG_DATA_HOME": str(scratch),
    }
    # Both runs get the same import path (one more entry costs each import a lookup); only
    # http="httptools" imports from it.
    env["PYTHONPATH"] = str(scratch / "httptools")
    code = (
        f"import uvicorn; from {package}.app import create_app; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, http={parser!r}, log_level='warning')"
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(python), "-c", code],
        env=env,
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                probe.request("GET", "/health/live")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.01)
        ready = time.perf_counter() - started
        connection = http.client.HTTPConnection("127.0.0.1", port)
        latencies = []
        for path in ["/health/live"] * 2000 + ["/items"] * 1000:
            sent = time.perf_counter()
            connection.request("GET", path)
            connection.getresponse().read()
            latencies.append(time.perf_counter() - sent)
    finally:
        process.terminate()
        process.wait()
    return ready, statistics.median(latencies[:2000]), statistics.median(latencies[2000:])


def main() -> None:
    project = Path(sys.argv[1]).resolve()
    package = next(path.name for path in (project / "src").iterdir() if (path / "__init__.py").is_file())
    with tempfile.TemporaryDirectory(prefix="http-parsers-") as directory:
        scratch = Path(directory)
        python = project / ".venv" / "bin" / "python"
        target = str(scratch / "httptools")
        install = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--target", target]
        subprocess.run([*install, "httptools"], check=True)
        results: dict[str, list[tuple[float, float, float]]] = {"h11": [], "httptools": []}
        for _ in range(3):
            for parser, runs in results.items():
                runs.append(run(python, package, parser, scratch))
    medians = {name: [statistics.median(each) for each in zip(*runs, strict=True)] for name, runs in results.items()}
    for name, (ready, live, items) in medians.items():
        figures = f"ready {ready * 1000:.0f} ms   /health/live {live * 1e6:.0f} us   /items {items * 1e6:.0f} us"
        print(f"{name:10s} {figures}")
    h11, httptools = medians["h11"], medians["httptools"]
    print(
        f"httptools / h11: ready {httptools[0] / h11[0]:.2f}, /health/live {httptools[1] / h11[1]:.2f},"
        f" /items {httptools[2] / h11[2]:.2f}"
    )


if __name__ == "__main__":
    main()
