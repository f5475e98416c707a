from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_live_and_ready_while_serving(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").json() == {"status": "ready"}


def test_not_ready_before_the_lifespan_runs(app: FastAPI) -> None:
    # Without the context manager the lifespan never starts, as before a server is up.
    response = TestClient(app).get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The service is starting."
    assert TestClient(app).get("/health/live").status_code == 200


def test_not_ready_once_shutdown_begins(app: FastAPI, client: TestClient) -> None:
    app.state.lifecycle.begin_draining()
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["detail"] == "The service is draining."


def test_health_is_not_in_the_public_schema(app: FastAPI) -> None:
    assert not [path for path in app.openapi()["paths"] if path.startswith("/health")]
