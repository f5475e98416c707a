"""A real OTLP/HTTP receiver: what a collector sees, decoded with the OpenTelemetry protos.

In a test: ``with OtlpReceiver() as receiver`` listens on a free port of 127.0.0.1, and
``receiver.spans()`` / ``receiver.metric_points()`` are what has arrived. As a script
(``python otlp_receiver.py PORT FILE``) it appends each decoded span and metric point to
FILE as a JSON line, for tests that run in another interpreter.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T = TypeVar("T")


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode_traces(body: bytes) -> list[dict[str, Any]]:
    spans = []
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "signal": "span",
                        "name": span.name,
                        "kind": span.kind,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "attributes": _attributes(span.attributes),
                        "status": span.status.code,
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                    }
                )
    return spans


def decode_metrics(body: bytes) -> list[dict[str, Any]]:
    points = []
    for resource_metrics in ExportMetricsServiceRequest.FromString(body).resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                for point in getattr(metric, kind).data_points:
                    value = point.count if kind == "histogram" else getattr(point, point.WhichOneof("value"))
                    points.append(
                        {
                            "signal": "metric",
                            "name": metric.name,
                            "kind": kind,
                            "attributes": _attributes(point.attributes),
                            "value": value,
                            "resource": resource,
                        }
                    )
    return points


class OtlpReceiver:
    """``/v1/traces`` and ``/v1/metrics`` over HTTP/protobuf, as the OTLP specification has them."""

    def __init__(self, port: int = 0, on_item: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.items: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._on_item = on_item
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    items, response = decode_traces(body), ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    items, response = decode_metrics(body), ExportMetricsServiceResponse()
                else:
                    self.send_error(404)
                    return
                receiver._received(self.path, items)
                payload = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _received(self, path: str, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self.requests.append(path)
            self.items.extend(items)
            if self._on_item is not None:
                for item in items:
                    self._on_item(item)

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return [item for item in self.items if item["signal"] == "span"]

    def metric_points(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [item for item in self.items if item["signal"] == "metric" and name in (None, item["name"])]

    def wait_for(self, found: Callable[[], T], timeout: float = 10) -> T:
        """The first truthy answer of ``found``, asked until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while not (answer := found()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not received within {timeout} s; received: {self.requests}")
            time.sleep(0.05)
        return answer

    def __enter__(self) -> OtlpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    port, output = int(sys.argv[1]), Path(sys.argv[2])
    with output.open("a") as file:

        def write(item: dict[str, Any]) -> None:
            file.write(json.dumps(item) + "\n")
            file.flush()

        with OtlpReceiver(port, on_item=write):
            threading.Event().wait()


if __name__ == "__main__":
    main()
