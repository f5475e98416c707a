"""``build --compression`` at D=1000: level vs stored size vs compression time vs load time.

Run with a rendered service's own Python, from its directory, after a build (the table in
docs/routing.md was made on the benchmark's 1000-domain service, see there):

    cd <service> && .venv/bin/python <template>/benchmarks/build_compression.py

ROUNDS (default 11) sets the number of rounds; the service's build is left at the default
level. Each level's build is written once from the current build's catalog and document
(the scan and the OpenAPI generation do not depend on the level); then, in interleaved
rounds, each level's build is put in place and fresh processes time what production pays:
``load_build`` at startup, and the first ``/openapi.json`` read (read, decompress, check
the digest; the bytes a gzip client gets)."""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zlib

from acme_orders.app import PACKAGE_ROOT
from acme_orders.routing.manifest import build_directory, gzip_bytes, load_build, read_manifest, write_build

ROUNDS = int(os.environ.get("ROUNDS", "11"))
LEVELS = range(10)
PROBE = """
import time
from acme_orders.app import PACKAGE_ROOT
from acme_orders.routing.manifest import load_build
start = time.perf_counter(); build = load_build(PACKAGE_ROOT); loaded = time.perf_counter()
build.read_openapi_gzip() or build.read_openapi(); read = time.perf_counter()
print((loaded - start) * 1000, (read - loaded) * 1000)
"""

current = load_build(PACKAGE_ROOT)
document = current.read_openapi()
_, manifest = read_manifest(current.directory)
info = current.info
live = build_directory(PACKAGE_ROOT)
stash = PACKAGE_ROOT.parent / "_builds-by-level"
shutil.rmtree(stash, ignore_errors=True)
stash.mkdir()
compress_ms: dict[int, list[float]] = {level: [] for level in LEVELS}
sizes: dict[int, tuple[int, int]] = {}
for level in LEVELS:
    for _ in range(ROUNDS):
        start = time.perf_counter()
        if level:
            gzip_bytes(document, level)
            gzip_bytes(manifest, level)
        compress_ms[level].append((time.perf_counter() - start) * 1000)
    write_build(
        PACKAGE_ROOT,
        current.catalog,
        document,
        package_version=info.package_version,
        fastapi_version=info.fastapi_version,
        python_version=info.python_version,
        compression=level,
    )
    sizes[level] = (
        sum(path.stat().st_size for path in live.glob("manifest.json*")),
        sum(path.stat().st_size for path in live.glob("openapi.json*")),
    )
    shutil.copytree(live, stash / str(level))

load_ms: dict[int, list[float]] = {level: [] for level in LEVELS}
read_ms: dict[int, list[float]] = {level: [] for level in LEVELS}
decode_ms: dict[int, list[float]] = {level: [] for level in LEVELS}
for level in LEVELS:
    # In process, without the rest of a start: what the level itself adds to reading the
    # manifest (decompress and parse) and the document (decompress).
    stored_manifest = gzip_bytes(manifest, level) if level else manifest
    stored_document = gzip_bytes(document, level) if level else document
    for _ in range(ROUNDS):
        start = time.perf_counter()
        json.loads(zlib.decompress(stored_manifest, wbits=31) if level else stored_manifest)
        if level:
            zlib.decompress(stored_document, wbits=31)
        decode_ms[level].append((time.perf_counter() - start) * 1000)

for _ in range(ROUNDS):
    # A new order each round, so that a burst of load elsewhere on the machine does not
    # always fall on the same levels.
    for level in random.sample(list(LEVELS), len(LEVELS)):
        shutil.rmtree(live)
        shutil.copytree(stash / str(level), live)
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
        load_ms[level].append(float(out[0]))
        read_ms[level].append(float(out[1]))

print(
    f"D={info.domain_count}, {info.route_count} routes; document {len(document) / 1024:,.0f} KiB, "
    f"manifest {len(manifest) / 1024:,.0f} KiB uncompressed; medians of {ROUNDS} interleaved rounds"
)
print(
    "| level | manifest | document | compressing both (build) | decompress + parse, in process "
    "| `load_build` (fresh process) | first `/openapi.json` read |"
)
print("|---|---|---|---|---|---|---|")
for level in LEVELS:
    median = statistics.median
    print(
        f"| {level if level else '0 (none)'} | {sizes[level][0] / 1024:,.0f} KiB | {sizes[level][1] / 1024:,.0f} KiB "
        f"| {median(compress_ms[level]):,.0f} ms | {median(decode_ms[level]):.1f} ms "
        f"| {median(load_ms[level]):.1f} ms | {median(read_ms[level]):.1f} ms |"
    )
shutil.rmtree(live)
shutil.copytree(stash / "6", live)
shutil.rmtree(stash)
