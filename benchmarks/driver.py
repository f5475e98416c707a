"""Child side of the benchmark: run with the interpreter of the app under test.

Standard library only (plus the app and, for ``serve``, uvicorn): it must not add imports
to the process it measures. Three modes, given as a JSON document in argv[1]:

``startup``
    import the app module, call its factory, run the ASGI lifespan startup, then print one
    ``ready`` line (the parent times process start to that line). Then, in the same process,
    first requests to cold domains and warm latency through direct ASGI calls (no client
    library in between), optionally with every domain loaded, and optionally FastAPI's
    runtime OpenAPI generation. Prints one ``result`` line.
``serve``
    the same app under real uvicorn on 127.0.0.1:<port>; the parent polls readiness and
    sends its requests over HTTP.
``main``
    ``python -m <module> <argv>``: an app's own command (the service's ``serve``), run here so
    that it gets the same interpreter setup (recursion limit, path) as the other modes.

Every output line is ``BENCH <json>`` on stdout.
"""

from __future__ import annotations

import gc
import time

_T0 = time.perf_counter()
_GC: list[tuple[str, int, float]] = []  # (phase, generation, perf_counter) of every collection
gc.callbacks.append(lambda phase, info: _GC.append((phase, info["generation"], time.perf_counter())))


def gc_between(start: float, end: float) -> tuple[float, int]:
    """Milliseconds spent in collections that started in [start, end], and how many were full."""
    spent, full, began = 0.0, 0, None
    for phase, generation, at in _GC:
        if phase == "start":
            began = at if start <= at <= end else None
            full += int(began is not None and generation == 2)
        elif began is not None:
            spent += at - began
            began = None
    return spent * 1000, full


import asyncio  # noqa: E402 - after the clock and the GC hook, on purpose
import importlib  # noqa: E402 - after the clock and the GC hook, on purpose
import json  # noqa: E402 - after the clock and the GC hook, on purpose
import os  # noqa: E402 - after the clock and the GC hook, on purpose
import resource  # noqa: E402 - after the clock and the GC hook, on purpose
import runpy  # noqa: E402 - after the clock and the GC hook, on purpose
import statistics  # noqa: E402 - after the clock and the GC hook, on purpose
import sys  # noqa: E402 - after the clock and the GC hook, on purpose
from typing import Any  # noqa: E402 - after the clock and the GC hook, on purpose


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write("BENCH " + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def peak_rss_kib() -> int:
    """Peak resident set of this process, in KiB: ``VmHWM``, the high-water mark of the
    current address space. ``ru_maxrss`` is not used: Linux carries the parent's RSS at
    fork into it across ``exec``, so every child would report at least the harness's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def load_factory(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


class Lifespan:
    """Drives the ASGI lifespan protocol, exactly as a server does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        message = await self.from_app.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message.get('message', '')[-300:]}")

    async def shutdown(self) -> None:
        await self.to_app.put({"type": "lifespan.shutdown"})
        await self.from_app.get()
        if self.task is not None:
            await self.task


async def request(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request through the ASGI interface, with no client library in between."""
    path, _, query = path.partition("?")
    # A host the services allow (ALLOWED_HOSTS): any other is answered 400 before the routes.
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # a disconnect never comes
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def timed(app: Any, method: str, path: str, body: bytes = b"") -> tuple[float, int]:
    start = time.perf_counter()
    status, _ = await request(app, method, path, body)
    return (time.perf_counter() - start) * 1000, status


async def warm_latency_us(app: Any, path: str, count: int) -> tuple[float, int]:
    """Median of ``count`` sequential GETs, after a few unmeasured ones."""
    for _ in range(min(20, count)):
        status, _ = await request(app, "GET", path)
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        status, _ = await request(app, "GET", path)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples), status


def count_operations(document: dict[str, Any]) -> int:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return sum(1 for item in document.get("paths", {}).values() for method in item if method in methods)


def _summary(exc: BaseException) -> str:
    """One line: the innermost ``SomethingError: ...`` line of the message, or the message."""
    text = f"{type(exc).__name__}: {exc}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if line.split(":", 1)[0].endswith(("Error", "Exception", "Failure"))]
    return (named[-1] if named else lines[-1] if lines else type(exc).__name__)[:300]


async def startup_mode(spec: dict[str, Any]) -> None:
    stage = "import"
    try:
        t_start = time.perf_counter()
        factory = load_factory(spec["target"])
        t_imported = time.perf_counter()
        stage = "create_app"
        app = factory()
        t_created = time.perf_counter()
        emit("created", import_ms=(t_imported - t_start) * 1000, create_ms=(t_created - t_imported) * 1000)
        stage = "lifespan startup"
        lifespan = Lifespan(app)
        await lifespan.startup()
        t_ready = time.perf_counter()
    except BaseException as exc:
        emit("failed", stage=stage, error=_summary(exc))
        raise
    gc_ms, gc_full = gc_between(_T0, t_ready)
    gc.callbacks.clear()  # the hook must not slow down the requests measured next
    emit(
        "ready",
        gc_ms=gc_ms,
        gc_full=gc_full,
        gc_create_lifespan_ms=gc_between(t_imported, t_ready)[0],
        interpreter_ms=(t_start - _T0) * 1000,
        import_ms=(t_imported - t_start) * 1000,
        create_ms=(t_created - t_imported) * 1000,
        lifespan_ms=(t_ready - t_created) * 1000,
        inprocess_ms=(t_ready - t_start) * 1000,
        # CPU time of the whole process (every thread), interpreter start included: far less
        # sensitive than wall time to the other work on a shared machine.
        cpu_ms=time.process_time() * 1000,
        rss_ready_kib=peak_rss_kib(),
        modules=len(sys.modules),
    )

    result: dict[str, Any] = {}
    cold = spec.get("cold") or []  # [{"key", "method", "path", "body"}]
    for step in cold:
        elapsed, status = await timed(app, step["method"], step["path"], step.get("body", "").encode())
        result[f"{step['key']}_ms"] = elapsed
        result[f"{step['key']}_status"] = status

    warm = spec.get("warm") or []  # [{"key", "path"}]
    count = int(spec.get("warm_requests", 200))
    for step in warm:
        median, status = await warm_latency_us(app, step["path"], count)
        result[f"{step['key']}_few_us"] = median
        result[f"{step['key']}_few_status"] = status

    load_all = spec.get("load_all") or []  # one path per domain
    if load_all:
        start = time.perf_counter()
        statuses = [(await request(app, "GET", path))[0] for path in load_all]
        result["load_all_ms"] = (time.perf_counter() - start) * 1000
        result["domains_loaded"] = sum(1 for status in statuses if status == 200)
        for step in warm:
            median, status = await warm_latency_us(app, step["path"], count)
            result[f"{step['key']}_all_us"] = median
            result[f"{step['key']}_all_status"] = status
        result["rss_all_loaded_kib"] = peak_rss_kib()

    generator = spec.get("generate_openapi")  # "module:function" taking the app, returning bytes
    if generator:
        generate = load_factory(generator)
        start = time.perf_counter()
        document = generate(app)
        result["openapi_runtime_ms"] = (time.perf_counter() - start) * 1000
        result["openapi_runtime_operations"] = count_operations(json.loads(document))
        result["openapi_runtime_bytes"] = len(document)
        result["rss_after_openapi_kib"] = peak_rss_kib()

    await lifespan.shutdown()
    result["rss_end_kib"] = peak_rss_kib()
    emit("result", **result)


def serve_mode(spec: dict[str, Any]) -> None:
    import uvicorn

    app = load_factory(spec["target"])()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(spec["port"]),
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("recursion_limit"):
        sys.setrecursionlimit(int(spec["recursion_limit"]))
    for path in reversed(spec.get("sys_path", [])):
        sys.path.insert(0, path)
    if spec["mode"] == "serve":
        serve_mode(spec)
    elif spec["mode"] == "main":
        sys.argv = [spec["module"], *spec["argv"]]
        runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)
    else:
        asyncio.run(startup_mode(spec))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing after this is measured


if __name__ == "__main__":
    main()
