"""A SnapStart snapshot and two restores, emulated with ``os.fork`` (run by test_snapstart.py).

    python snapstart_fork.py <handler> <json list of GET paths, one per domain>

The handler is initialised as the Python runtime initialises it (``awslambdaric``'s own
``_get_handler``), the registered before-snapshot hooks run through ``awslambdaric``'s own
hook runner, and then the process forks twice: a fork copies memory as a snapshot does. A
forked child differs from a restored environment in one way that matters here: Python
reseeds ``random`` in it (``os.register_at_fork``), which a restore does not, so each child
first puts back the parent's random state. Then it runs the after-restore hooks, times
restore to first response, invokes the handler once per path and reports, as one JSON line
on stdout, what a test needs to judge it. The parent prints ``{"parent": ..., "children":
[...]}``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import deque
from typing import Any

from awslambdaric import lambda_runtime_hooks_runner
from awslambdaric.bootstrap import _get_handler

EVENT_TEMPLATE = {
    "version": "2.0",
    "routeKey": "$default",
    "rawQueryString": "",
    "headers": {"host": "api.example.com", "user-agent": "snapstart-test"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "01/Dec/2026:00:00:00 +0000",
        "timeEpoch": 1796083200000,
    },
    "isBase64Encoded": False,
}


class Context:
    """The part of the runtime's context object the handler reads."""

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id


def event_for(path: str) -> dict[str, Any]:
    event = json.loads(json.dumps(EVENT_TEMPLATE))
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    return event


def resources_of(handler: Any) -> dict[str, Any]:
    resources = handler.app.state.resources
    report = {"http_client": resources.http_client, "http_client_closed": resources.http_client.is_closed}
    database = getattr(resources, "database", None)
    if database is not None:
        report["engine"] = database.engine
    return report


async def _forget_worker_threads() -> None:
    """A snapshot keeps every thread; a fork keeps only the one that forked. anyio's idle
    worker threads of the handler's loop (the domains were mounted in them) are gone in the
    child, so its pool is emptied, or the next ``to_thread`` call would wait on a dead one."""
    from anyio._backends import _asyncio as backend

    backend._threadpool_idle_workers.set(deque())
    backend._threadpool_workers.set(set())


def child(handler: Any, events: list[dict[str, Any]], random_state: tuple[Any, ...], snapshot: dict[str, Any]) -> None:
    random.setstate(random_state)  # as restored: the parent's state, not the fork's reseed
    handler.loop.run_until_complete(_forget_worker_threads())
    modules = set(sys.modules)
    started = time.perf_counter()
    lambda_runtime_hooks_runner.run_after_restore()
    statuses = []
    first_response_ms = None
    for number, event in enumerate(events):
        reply = handler(event, Context(f"request-{number}"))
        if first_response_ms is None:
            first_response_ms = (time.perf_counter() - started) * 1000
        statuses.append(reply["statusCode"])
    warm_started = time.perf_counter()
    for number, event in enumerate(events):
        handler(event, Context(f"warm-{number}"))
    warm_ms = (time.perf_counter() - warm_started) * 1000
    now = resources_of(handler)
    report = {
        "pid": os.getpid(),
        "statuses": statuses,
        "imported": sorted(set(sys.modules) - modules),
        "random": [random.random() for _ in range(3)],
        "restore_to_first_response_ms": first_response_ms,
        "first_pass_ms": (warm_started - started) * 1000,
        "warm_pass_ms": warm_ms,
        "fresh_http_client": now["http_client"] is not snapshot["http_client"] and not now["http_client_closed"],
        "phase": handler.app.state.lifecycle.phase.value,
    }
    if "engine" in now:
        report["fresh_engine"] = now["engine"] is not snapshot["engine"]
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def main() -> int:
    handler_name, paths = sys.argv[1], json.loads(sys.argv[2])
    events = [event_for(path) for path in paths]
    started = time.perf_counter()
    handler = _get_handler(handler_name)
    init_ms = (time.perf_counter() - started) * 1000
    at_init = resources_of(handler)
    started = time.perf_counter()
    lambda_runtime_hooks_runner.run_before_snapshot()
    prepare_ms = (time.perf_counter() - started) * 1000
    parent = {
        "init_ms": init_ms,
        "prepare_snapshot_ms": prepare_ms,
        "closed_before_snapshot": at_init["http_client"].is_closed,
        "phase": handler.app.state.lifecycle.phase.value,
        # A copy first: the warm-up thread may be importing while this runs.
        "domains": sorted(name for name in list(sys.modules) if ".domains." in name and name.endswith(".router")),
    }
    state = random.getstate()
    parent["random_without_reseed"] = [random.random() for _ in range(3)]
    random.setstate(state)
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the restored environment
            os.close(read)
            os.dup2(write, 1)
            code = 0
            try:
                child(handler, events, state, at_init)
            except BaseException as exc:
                sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as output:
            children.append(json.loads(output.read() or '{"error": "no report"}'))
        os.waitpid(pid, 0)
    print(json.dumps({"parent": parent, "children": children}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
