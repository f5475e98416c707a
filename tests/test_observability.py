"""Observability of the default render served in production: OpenTelemetry to a real receiver.

The receiver is the rendered project's own test receiver (``tests/telemetry/otlp_receiver.py``),
run with the project's interpreter: it decodes the OTLP/HTTP protobuf payloads with the
OpenTelemetry proto package, which the template's own test environment does not install.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from support import ENV_PREFIX, PACKAGE, free_port, project_python, uv_environment
from support.servers import Instance, prepare_project

T = TypeVar("T")
SERVICE_NAME = "acme-orders-prod"
ITEM_ID = "9876543"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A render of its own, built for production (the shared default render stays untouched)."""
    return prepare_project(tmp_path_factory.mktemp("observability") / "acme-orders")


class Receiver:
    """The project's OTLP receiver in its own process, writing what it decodes to a file."""

    def __init__(self, project: Path, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = directory / "received.jsonl"
        self.output.touch()
        script = project / "tests" / "telemetry" / "otlp_receiver.py"
        self.process = subprocess.Popen(
            [str(project_python(project)), str(script), str(self.port), str(self.output)],
            stdin=subprocess.DEVNULL,
            stderr=(directory / "receiver.log").open("w"),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"the OTLP receiver did not start: {(directory / 'receiver.log').read_text()}")
                time.sleep(0.05)

    def items(self, signal: str) -> list[dict]:
        lines = self.output.read_text().splitlines()
        return [item for item in map(json.loads, lines) if item["signal"] == signal]

    def wait_for(self, found: Callable[[], T], timeout: float = 15) -> T:
        deadline = time.monotonic() + timeout
        while not (answer := found()):
            if time.monotonic() > deadline:
                pytest.fail(f"not received within {timeout} s: {self.output.read_text()[-3000:]}")
            time.sleep(0.1)
        return answer

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def receiver(project: Path, tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(project, tmp_path)
    yield running
    running.stop()


def test_production_service_exports_traces_metrics_and_correlated_logs(
    project: Path, receiver: Receiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    with Instance(project, tmp_path, env=env) as instance:
        created = httpx.post(f"{instance.base_url}/items", json={"name": "widget", "price": "2.50"})
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        fetched = httpx.get(f"{instance.base_url}/items/{item_id}")
        missing = httpx.get(f"{instance.base_url}/items/{ITEM_ID}")
        stray = httpx.get(f"{instance.base_url}/not-a-domain/{ITEM_ID}")
        assert (fetched.status_code, missing.status_code, stray.status_code) == (200, 404, 404)

        server_spans = lambda: [span for span in receiver.items("span") if span["kind"] == 2]  # noqa: E731
        spans = receiver.wait_for(lambda: len(found := server_spans()) >= 4 and found)
        by_request = {span["attributes"]["request_id"]: span for span in spans}
        assert by_request[fetched.headers["x-request-id"]]["name"] == "GET /items/{item_id}"
        assert by_request[missing.headers["x-request-id"]]["name"] == "GET /items/{item_id}"
        assert by_request[created.headers["x-request-id"]]["name"] == "POST /items"
        assert by_request[stray.headers["x-request-id"]]["name"] == "GET"
        assert {span["resource"]["service.name"] for span in spans} == {SERVICE_NAME}
        assert all(ITEM_ID not in span["name"] and str(item_id) not in span["name"] for span in spans)

        # Exports are periodic and cumulative: wait for one that counts all four requests.
        def durations() -> list[dict]:
            points = [p for p in receiver.items("metric") if p["name"] == "http.server.request.duration"]
            counts: dict[str, int] = {}
            for point in points:
                series = json.dumps(point["attributes"], sort_keys=True)
                counts[series] = max(counts.get(series, 0), point["value"])
            return points if sum(counts.values()) >= 4 else []

        points = receiver.wait_for(durations)
        labels = json.dumps([point["attributes"] for point in points])
        assert "/items/{item_id}" in labels
        assert ITEM_ID not in labels
        assert "not-a-domain" not in labels
        assert f"/items/{item_id}" not in labels
        instance.terminate()
        instance.process.wait(timeout=30)

    entries = instance.log_entries()
    access = next(entry for entry in entries if entry.get("request_id") == fetched.headers["x-request-id"])
    assert access["trace_id"] == by_request[fetched.headers["x-request-id"]]["trace_id"]
    assert access["span_id"] == by_request[fetched.headers["x-request-id"]]["span_id"]
    assert instance.problems_in_log() == []


OPENTELEMETRY_IMPORTED = f"""
import json, sys
import fastapi
baseline = {{name for name in sys.modules if name.startswith("opentelemetry")}}
from {PACKAGE}.app import create_app
create_app()
print(json.dumps(sorted(name for name in sys.modules if name.startswith("opentelemetry") and name not in baseline)))
"""


def test_without_an_endpoint_create_app_imports_no_more_opentelemetry_than_fastapi(
    project: Path, tmp_path: Path
) -> None:
    env = {f"{ENV_PREFIX}ENVIRONMENT": "production", f"{ENV_PREFIX}ALLOWED_HOSTS": '["127.0.0.1"]'}
    if (project / "src" / PACKAGE / "migrations").is_dir():
        env[f"{ENV_PREFIX}DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    probe = subprocess.run(
        [str(project_python(project)), "-c", OPENTELEMETRY_IMPORTED],
        cwd=tmp_path,
        env={**_environment(), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.splitlines()[-1]) == []


def _environment() -> dict[str, str]:
    return {key: value for key, value in uv_environment().items() if not key.startswith("OTEL_")}
