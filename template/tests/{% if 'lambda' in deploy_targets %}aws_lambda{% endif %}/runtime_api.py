"""A local AWS Lambda Runtime API, to run the handler under the real runtime client.

Lambda's runtime client, ``awslambdaric`` (the code of Lambda's managed Python runtimes),
asks an HTTP interface, the Runtime API, for each event and posts back the result.
``RuntimeApi`` serves that interface on 127.0.0.1 for one runtime process; ``LambdaRuntime``
starts the process (``python -m awslambdaric <module>.handler``) and invokes it;
``http_event`` builds the events that API Gateway (REST and HTTP APIs), ALB and function
URLs send, from the samples in ``events/``.

Standard library only, so that tools outside the project's environment can load it too.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

PREFIX = "/2018-06-01/runtime"
EVENTS = Path(__file__).resolve().parent / "events"
SOURCES = ("rest-api", "http-api", "alb", "function-url")
FUNCTION_NAME = "service"
FUNCTION_ARN = f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION_NAME}"
_RESULT = re.compile(rf"{PREFIX}/invocation/(?P<id>[^/]+)/(?P<outcome>response|error)")


@dataclass
class Invocation:
    """One event handed to the runtime, and what the runtime answered."""

    request_id: str
    event: bytes
    timeout: float
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str | None = None  # "response" or "error"
    body: bytes = b""
    error_type: str | None = None
    submitted_at: float = 0.0
    received_at: float | None = None  # when the runtime took the event
    finished_at: float | None = None

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def seconds(self) -> float:
        """From handing the event over to receiving the result."""
        assert self.finished_at is not None
        return self.finished_at - self.submitted_at


class RuntimeApi:
    """The Runtime API of one execution environment, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._closed = threading.Event()
        self.ready = threading.Event()  # the runtime asked for its first event: init is over
        self.ready_at: float | None = None
        self.init_error: dict[str, Any] | None = None
        self.restored = threading.Event()  # SnapStart: the runtime asked to be restored
        self.restore_error: dict[str, Any] | None = None
        self.failed = threading.Event()  # an init or restore error was posted
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET socket's
        return f"{host}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def submit(self, event: Mapping[str, Any] | bytes, *, timeout: float = 30.0) -> Invocation:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        invocation = Invocation(request_id=str(uuid.uuid4()), event=body, timeout=timeout)
        self._invocations[invocation.request_id] = invocation
        invocation.submitted_at = time.perf_counter()
        self._pending.put(invocation)
        return invocation

    # Called by the request handler, in the server's threads.

    def _next(self) -> Invocation | None:
        if not self.ready.is_set():
            self.ready_at = time.perf_counter()
            self.ready.set()
        while not self._closed.is_set():
            try:
                invocation = self._pending.get(timeout=0.2)
            except queue.Empty:
                continue
            invocation.received_at = time.perf_counter()
            return invocation
        return None

    def _finish(self, request_id: str, outcome: str, body: bytes, error_type: str | None) -> bool:
        invocation = self._invocations.get(request_id)
        if invocation is None or invocation.done.is_set():
            return False
        invocation.finished_at = time.perf_counter()
        invocation.outcome, invocation.body, invocation.error_type = outcome, body, error_type
        invocation.done.set()
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: RuntimeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request (as tests and Lambda do) leaves broken connections.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # Without TCP_NODELAY every invocation waits for a delayed ACK (~40-90 ms here).
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted connection, too
    server: _Server

    def do_GET(self) -> None:
        api = self.server.api
        if self.path == f"{PREFIX}/invocation/next":
            invocation = api._next()
            if invocation is None:  # closing: the runtime process is gone or going
                self.close_connection = True
                return
            deadline_ms = int((time.time() + invocation.timeout) * 1000)
            self._reply(
                200,
                invocation.event,
                {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
                },
            )
        elif self.path == f"{PREFIX}/restore/next":
            api.restored.set()
            self._reply(200, b"")
        else:
            self._reply(404, b'{"errorMessage": "unknown endpoint"}')

    def do_POST(self) -> None:
        api = self.server.api
        body = self._body()
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        result = _RESULT.fullmatch(self.path)
        if result is not None:
            known = api._finish(result["id"], result["outcome"], body, error_type)
            self._reply(202 if known else 400, b'{"status": "OK"}')
        elif self.path == f"{PREFIX}/init/error":
            api.init_error = {**json.loads(body or b"{}"), "type": error_type}
            api.failed.set()
            self._reply(202, b'{"status": "OK"}')
        elif self.path == f"{PREFIX}/restore/error":
            api.restore_error = {**json.loads(body or b"{}"), "type": error_type}
            api.failed.set()
            self._reply(202, b'{"status": "OK"}')
        else:
            self._reply(404, b'{"errorMessage": "unknown endpoint"}')

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RuntimeFailed(Exception):
    """The runtime process reported an init or restore error, or exited."""


class LambdaRuntime:
    """One execution environment: the real runtime client in its own process, serving
    ``handler`` (``module.attribute``) through a ``RuntimeApi``.

    The process gets a Lambda-like environment (nothing inherited but ``PATH``), plus
    ``env``; its output (the service's logs) goes to ``log_path``.
    """

    def __init__(
        self,
        handler: str,
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        cwd: Path | None = None,
    ) -> None:
        self.handler = handler
        self.log_path = log_path
        self.env = dict(env or {})
        self.python = python
        self.cwd = cwd
        self.api = RuntimeApi()
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None

    def start(self, *, timeout: float = 60.0) -> LambdaRuntime:
        """Start the process and wait until it asks for its first event (init is over)."""
        self.api.start()
        task_root = str(self.cwd or Path.cwd())
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                [self.python, "-m", "awslambdaric", self.handler],
                cwd=task_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(self.api.ready, timeout, "init")
        return self

    @property
    def init_seconds(self) -> float:
        """From starting the process to its first request for an event."""
        assert self.started_at is not None
        assert self.api.ready_at is not None
        return self.api.ready_at - self.started_at

    def invoke(self, event: Mapping[str, Any] | bytes, *, timeout: float = 30.0) -> Invocation:
        invocation = self.api.submit(event, timeout=timeout)
        self._wait(invocation.done, timeout, f"invocation {invocation.request_id}")
        return invocation

    def stop(self, *, timeout: float = 10.0) -> int | None:
        """Kill the process, as Lambda does with an environment it no longer needs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        return self.close(timeout=timeout)

    def close(self, *, timeout: float = 10.0) -> int | None:
        """Wait for the process to end, then close the Runtime API."""
        code = self.process.wait(timeout=timeout) if self.process is not None else None
        self.api.close()
        return code

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines the service wrote (production logs are JSON lines)."""
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait(self, event: threading.Event, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not event.wait(0.01):
            if self.api.failed.is_set():
                raise RuntimeFailed(f"{what}: {self.api.init_error or self.api.restore_error}")
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeFailed(f"{what}: the runtime exited with {self.process.returncode}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: no answer within {timeout} s\n{self.logs()}")


@dataclass(frozen=True)
class HttpReply:
    """An HTTP response as the event source turns the handler's result into one."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_reply(payload: Mapping[str, Any]) -> HttpReply:
    headers = {name.lower(): str(value) for name, value in (payload.get("headers") or {}).items()}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(values)
    body = payload.get("body") or ""
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    return HttpReply(status=int(payload["statusCode"]), headers=headers, body=raw)


def http_event(
    source: str,
    method: str = "GET",
    path: str = "/",
    *,
    query: Mapping[str, str | list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    stage: str | None = None,
) -> dict[str, Any]:
    """The event ``source`` (one of ``SOURCES``) sends for a request.

    ``path`` is the path as the source reports it: an HTTP API on a named stage puts the
    stage in it (``/prod/items``), a REST API does not (``/items``, with ``stage`` in the
    request context), a custom-domain base path is in it for both.
    """
    event = copy.deepcopy(json.loads((EVENTS / f"{source}.json").read_text(encoding="utf-8")))
    values = {name: value if isinstance(value, list) else [value] for name, value in (query or {}).items()}
    given = {name.lower(): value for name, value in (headers or {}).items()}
    all_headers = {"host": "api.example.com", "user-agent": "tests", **given}
    is_base64 = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    now = time.time()
    request_id = str(uuid.uuid4())

    if source == "rest-api":
        context = event["requestContext"]
        context["stage"] = stage or context["stage"]
        context.update(
            httpMethod=method,
            path=f"/{context['stage']}{path}",
            requestId=request_id,
            requestTimeEpoch=int(now * 1000),
        )
        event.update(
            httpMethod=method,
            path=path,
            pathParameters={"proxy": path.lstrip("/")} if path != "/" else None,
            headers=all_headers,
            multiValueHeaders={name: [value] for name, value in all_headers.items()},
            queryStringParameters={name: vals[-1] for name, vals in values.items()} or None,
            multiValueQueryStringParameters=values or None,
            body=text,
            isBase64Encoded=is_base64,
        )
    elif source in ("http-api", "function-url"):
        context = event["requestContext"]
        if stage is not None:
            context["stage"] = stage
        context["http"].update(method=method, path=path)
        context.update(requestId=request_id, timeEpoch=int(now * 1000))
        event.update(
            rawPath=path,
            rawQueryString=urlencode(values, doseq=True),
            headers=all_headers,
            body=text,
            isBase64Encoded=is_base64,
        )
        if values:
            event["queryStringParameters"] = {name: ",".join(vals) for name, vals in values.items()}
        if text is None:
            del event["body"]
    elif source == "alb":
        # ALB passes query strings as received, percent-encoded.
        event.update(
            httpMethod=method,
            path=path,
            queryStringParameters={quote(name): quote(vals[-1]) for name, vals in values.items()},
            headers=all_headers,
            body=text or "",
            isBase64Encoded=is_base64,
        )
    else:
        raise ValueError(f"unknown event source {source!r}; expected one of {SOURCES}")
    return event
