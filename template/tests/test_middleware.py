from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient


def test_request_id_is_generated(client: TestClient) -> None:
    first = client.get("/health/live").headers["x-request-id"]
    second = client.get("/health/live").headers["x-request-id"]
    assert len(first) == 32
    assert first != second


def test_safe_incoming_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "edge-7f3a.42:1"})
    assert response.headers["x-request-id"] == "edge-7f3a.42:1"


@pytest.mark.parametrize("unsafe", ["a b", "x" * 129, "id;drop", "<script>", ""])
def test_unsafe_incoming_request_id_is_replaced(client: TestClient, unsafe: str) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": unsafe})
    assert response.headers["x-request-id"] != unsafe
    assert len(response.headers["x-request-id"]) == 32


def test_response_carries_server_timing(client: TestClient) -> None:
    timing = client.get("/health/live").headers["server-timing"]
    assert timing.startswith("app;dur=")
    assert float(timing.removeprefix("app;dur=")) >= 0


def test_access_log_line_names_the_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="access"):
        response = client.get("/no/such/path", headers={"X-Request-ID": "trace-1"})
    [record] = [record for record in caplog.records if record.name == "access"]
    assert (record.method, record.path, record.status) == ("GET", "/no/such/path", response.status_code)
    assert record.request_id == "trace-1"
    assert record.duration_ms >= 0
