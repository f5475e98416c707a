"""Where a lazy production start spends its time, piece by piece (run with the service's python).

    <service>/.venv/bin/python benchmarks/profile_startup.py <service> [--package bench_service] [--repeat 7]

Prints medians of: the import of the app module, ``load_build`` and its parts (manifest read
and JSON parse, the source listing walk, the catalog), the ``LazyDomains``/``PathIndex``
construction, the whole ``create_app`` and the first ASGI call (lifespan startup), then the
top of a cProfile of ``create_app`` and the heaviest imports (``-X importtime``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _median_ms(function, repeat: int) -> tuple[float, object]:
    samples = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("--package", default="bench_service")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    package = args.package
    prefix = package.upper() + "_"
    os.environ.setdefault(prefix + "ENVIRONMENT", "production")
    os.environ.setdefault(prefix + "ALLOWED_HOSTS", '["127.0.0.1"]')
    os.environ.setdefault(prefix + "ROUTING", "lazy")
    migrated = args.project.resolve() / f"{package}.sqlite3"
    if migrated.is_file():
        # A database=sqlite service the harness migrated: its file, not the user's default one.
        os.environ.setdefault(prefix + "DATABASE_URL", f"sqlite:///{migrated}")
    os.chdir(args.project)

    start = time.perf_counter()
    app_module = importlib.import_module(f"{package}.app")
    import_ms = (time.perf_counter() - start) * 1000
    manifest = importlib.import_module(f"{package}.routing.manifest")
    root = app_module.PACKAGE_ROOT
    directory = manifest.build_directory(root)
    repeat = args.repeat

    rows: list[tuple[str, float, str]] = [("import of the app module (first, cold)", import_ms, "")]
    ms, (path, raw) = _median_ms(lambda: manifest.read_manifest(directory), repeat)
    rows.append((f"read (and decompress) {path.name}", ms, f"{len(raw) / 1024:,.0f} KiB of JSON"))
    ms, parsed = _median_ms(lambda: json.loads(raw), repeat)
    rows.append(("json.loads(manifest)", ms, ""))
    ms, _ = _median_ms(lambda: tuple(manifest._domain(entry) for entry in parsed["domains"]), repeat)
    rows.append(("catalog from the manifest", ms, f"{len(parsed['domains']):,} domains"))
    ms, build = _median_ms(lambda: manifest.load_build(root, defer_domains=True), repeat)
    rows.append(("load_build(defer_domains=True): a lazy production start", ms, ""))
    ms, _ = _median_ms(lambda: manifest.load_build(root), repeat)
    rows.append(("load_build(): every file checked (eager, development)", ms, ""))
    ms, _ = _median_ms(lambda: [build.verify_domain(name) for name in build.deferred], repeat)
    rows.append(("verify_domain() of every domain (after startup)", ms, ""))
    domains = build.catalog.domains
    ms, _ = _median_ms(build.catalog.path_index, repeat)
    entries = sum(len(templates) for templates in (build.catalog.index or {}).values())
    rows.append(("path index from the stored index", ms, f"{entries:,} entries for {build.info.route_count:,} routes"))

    def build_app():
        return app_module.create_app()

    ms, _ = _median_ms(build_app, repeat)
    rows.append(("create_app() total", ms, ""))

    async def first_call(app):
        queue_in: asyncio.Queue = asyncio.Queue()
        queue_out: asyncio.Queue = asyncio.Queue()
        task = asyncio.ensure_future(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue_in.get, queue_out.put)
        )
        start = time.perf_counter()
        await queue_in.put({"type": "lifespan.startup"})
        await queue_out.get()
        elapsed = (time.perf_counter() - start) * 1000
        await queue_in.put({"type": "lifespan.shutdown"})
        await queue_out.get()
        await task
        return elapsed

    samples = [asyncio.run(first_call(app_module.create_app())) for _ in range(repeat)]
    rows.append(("lifespan startup (first ASGI call, incl. middleware stack)", statistics.median(samples), ""))

    width = max(len(label) for label, _, _ in rows)
    print(f"{package} at {args.project} ({len(domains)} domains), medians of {repeat}:")
    for label, ms, note in rows:
        print(f"  {label:<{width}}  {ms:8.2f} ms  {note}")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        app_module.create_app()
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(18)
    print(f"\ncProfile of create_app() x{repeat} (cumulative):")
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:6000])

    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {package}.app"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    entries = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        entries.append((int(cumulative_us), int(self_us), name[1:]))  # nesting: two spaces a level
    top_level = [entry for entry in entries if not entry[2].startswith(" ")]
    total = sum(cumulative for cumulative, _, _ in top_level)
    print(f"\n-X importtime of `import {package}.app`: {total / 1000:.1f} ms in top-level imports; heaviest:")
    for cumulative, self_us, name in sorted(entries, reverse=True)[:15]:
        print(f"  {cumulative / 1000:8.1f} ms cumulative  {self_us / 1000:6.1f} ms self  {name.rstrip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
