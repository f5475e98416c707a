"""Smoke test of the startup benchmark harness (benchmarks/ at the repository root): tiny D, one round.

It asserts structure and completeness only: every configuration produced every number,
every request answered as expected, the OpenAPI documents are complete where they should
be, the database variant (the default render, database=sqlite) ran against its own floor.
No test here asserts a time: timings on a shared CI machine prove nothing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

# The harness is a top-level package of the repository, beside tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import compare_renders
from benchmarks.harness import DB_FLOOR, DB_LAZY, EAGER, FLOOR, LAZY, LAZYROUTER
from benchmarks.import_breakdown import (
    AFTER,
    BEFORE,
    STARTUP,
    by_group,
    parse_collections,
    parse_importtime,
    samples_by_owner,
)
from benchmarks.run import run

DOMAINS = 3
OPERATIONS = DOMAINS * 5
SERVICE_KINDS = (LAZY, EAGER, LAZYROUTER, DB_LAZY)

EVERY_CONFIG = (
    "uvicorn_ready_ms",
    "process_ready_ms",
    "inprocess_ms",
    "import_ms",
    "create_ms",
    "lifespan_ms",
    "rss_ready_mib",
    "rss_uvicorn_peak_mib",
    "openapi_first_ms",
)
WITH_DOMAINS = (
    "http_cold_first_ms",
    "http_cold_second_ms",
    "inproc_cold_first_ms",
    "inproc_cold_second_ms",
    "warm_first_few_us",
    "warm_last_few_us",
    "warm_first_all_us",
    "warm_last_all_us",
    "load_all_ms",
)


@pytest.mark.slow
def test_harness_measures_every_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "benchmarks.md"
    samples = tmp_path / "samples.json"
    chart = tmp_path / "cold-start.svg"
    results, registry, workspace, report = run(
        [
            "--domains",
            f"0,{DOMAINS}",
            "--rounds",
            "1",
            "--heavy-rounds",
            "1",
            "--warm-requests",
            "20",
            "--workdir",
            str(tmp_path / "work"),
            "--logs",
            str(tmp_path / "logs"),
            "--output",
            str(output),
            "--json",
            str(samples),
            "--chart",
            str(chart),
        ]
    )
    assert not results.errors, results.errors
    expected = {FLOOR, DB_FLOOR} | {f"{kind}@{count}" for kind in SERVICE_KINDS for count in (0, DOMAINS)}
    assert expected <= set(results.configs)
    assert results.configs[f"{DB_LAZY}@{DOMAINS}"].floor == DB_FLOOR

    for config_id in expected:
        for metric in EVERY_CONFIG:
            assert results.median(config_id, metric) is not None, (config_id, metric)
        # Every request the harness made was answered as it should be (201 on create, 200 on get).
        oks = {key: values for key, values in results.samples[config_id].items() if key.endswith("_ok")}
        assert all(value == 1 for values in oks.values() for _, value in values), (config_id, oks)

    for kind in SERVICE_KINDS:
        config_id = f"{kind}@{DOMAINS}"
        for metric in WITH_DOMAINS:
            assert results.median(config_id, metric) is not None, (config_id, metric)
        assert results.median(config_id, "domains_loaded") == DOMAINS

    # Our document is complete in both modes; fastapi-lazyrouter's lists only mounted domains.
    assert results.median(FLOOR, "openapi_operations") == 0
    for kind in (LAZY, EAGER, DB_LAZY):
        assert results.median(f"{kind}@{DOMAINS}", "openapi_operations") == OPERATIONS
        assert results.median(f"{kind}@0", "openapi_operations") == 0
    assert results.median(f"{LAZYROUTER}@{DOMAINS}", "openapi_operations") < OPERATIONS
    assert results.median(f"{EAGER}@{DOMAINS}", "openapi_runtime_operations") == OPERATIONS

    # The database variant's numbers and its ratios to its own floor are real numbers.
    for config_id in (DB_FLOOR, f"{DB_LAZY}@0", f"{DB_LAZY}@{DOMAINS}"):
        for metric in ("uvicorn_ready_ms", "process_ready_ms", "rss_ready_mib"):
            for value in (results.median(config_id, metric), results.ratio(config_id, metric)):
                assert value is not None and math.isfinite(value) and value > 0, (config_id, metric, value)

    # The report has every table, with a ratio to the floor, and the run's context.
    text = output.read_text()
    assert text == report
    for heading in (
        "## Headline: lazy cold start",
        "## Headline: the default render (database=sqlite) against its floor",
        "## Cold start",
        "## First requests to cold domains",
        "## Warm request latency",
        "## Memory",
        "## /openapi.json",
        "## Checks",
    ):
        assert heading in text
    assert "(1.00x)" in text  # the floor against itself
    assert "PROBLEMS" not in text
    for label in ("empty FastAPI + SQLAlchemy engine (database floor)", "service, lazy + build, database=sqlite"):
        assert label in text
    claim = text.split("## Headline: the default render", 1)[1].split("\n## ", 1)[0]
    for count in (0, DOMAINS):
        assert f"\n| {count} | " in claim  # a row per D in each of its tables
    assert "n/a" not in claim.split("| D | lazy, sqlite", 1)[1]
    assert workspace.versions["lazyrouter"]["fastapi"] == "0.119.1"
    assert set(json.loads(samples.read_text())["samples"]) == set(results.configs)
    for plugin in registry.plugins:
        assert f"`{plugin}.py`" in text

    # The chart: one line per configuration, a point per D, embedded by its relative path.
    svg = ElementTree.parse(chart).getroot()
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 4
    assert all(len(line.get("points", "").split()) == 2 for line in lines)
    assert f"]({chart.name})" in text

    # Two builds side by side against the floor (here one build twice): every figure, both ratios.
    service = tmp_path / "work" / f"service-sqlite-d{DOMAINS}"
    capsys.readouterr()
    assert compare_renders.main([str(service), str(service), "--rounds", "1"]) == 0
    table = capsys.readouterr().out
    assert f"database=sqlite, D={DOMAINS}, 1 rounds" in table
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and line.endswith("x |")]
    assert [row[0].lstrip("| ") for row in rows] == list(compare_renders.METRICS.values())
    for row in rows:
        ratios = [float(cell.rstrip(" |x")) for cell in row[-2:]]
        assert all(math.isfinite(ratio) and ratio > 0 for ratio in ratios), row


# Real `-X importtime` output of the service's cold start (benchmarks/import_breakdown.py's
# child; lines cut from a longer run, nesting kept), with the child's markers.
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       131 |       1024 |   json
import time:      1379 |      19389 | benchmarks.startup_steps
import_breakdown: first step
import time:       112 |        112 |                 idna.idnadata
import time:        58 |         58 |                 idna.intranges
import time:       685 |       1054 |               idna.core
import time:        60 |         60 |               idna.package_data
import time:       168 |       1282 |             idna
import time:       862 |        862 |             httpx2._urlparse
import time:       667 |       2810 |           httpx2._urls
import time:       554 |      22885 |         httpx2._models
import time:       104 |        104 | bench_service
import time:       424 |        424 |   difflib
import time:      1884 |       2307 | bench_service.settings
import_breakdown: gc 15150 40329
import_breakdown: ready
import time:       435 |        435 |         pydantic.v1.typing
import time:      1098 |       1532 |       pydantic.v1.errors
import_breakdown: gc 0 1130
"""


def test_importtime_is_split_at_ready_and_summed_once_per_module() -> None:
    imports = parse_importtime(IMPORTTIME)
    assert [entry.name for entry in imports if entry.phase == BEFORE] == ["json", "benchmarks.startup_steps"]
    assert [entry.name for entry in imports if entry.phase == AFTER] == ["pydantic.v1.typing", "pydantic.v1.errors"]
    importers = {entry.name: entry.importer for entry in imports}
    assert importers["json"] == "benchmarks.startup_steps"
    assert importers["idna.idnadata"] == importers["idna.intranges"] == "idna.core"
    assert importers["idna.core"] == importers["idna.package_data"] == "idna"
    assert importers["idna"] == "httpx2._urls"
    assert importers["difflib"] == "bench_service.settings"
    assert importers["bench_service.settings"] is None  # a step's own import

    groups = by_group(imports, STARTUP)
    # Third-party and stdlib modules by top-level package, the service's own one by one.
    assert set(groups) == {"idna", "httpx2", "bench_service", "bench_service.settings", "difflib"}
    assert groups["idna"].modules == 5
    assert groups["idna"].ms == pytest.approx((112 + 58 + 685 + 60 + 168) / 1000)
    assert groups["idna"].importers == {"httpx2"}  # not idna itself
    assert groups["httpx2"].modules == 3
    assert groups["httpx2"].ms == pytest.approx((862 + 667 + 554) / 1000)
    assert groups["difflib"].importers == {"bench_service.settings"}
    assert groups["bench_service.settings"].ms == pytest.approx(1.884)
    # Self times: every module counted once, so the rows add up to the phase's whole.
    startup_us = sum(entry.self_us for entry in imports if entry.phase == STARTUP)
    assert sum(group.ms for group in groups.values()) == pytest.approx(startup_us / 1000)
    assert by_group(imports, AFTER)["pydantic"].modules == 2

    assert parse_collections(IMPORTTIME) == {STARTUP: (15.15, 40.329), AFTER: (0.0, 1.13)}


def test_samples_belong_to_the_innermost_package_frame() -> None:
    service = Path("/srv/work/service-none-d0")
    site = f"{service}/.venv/lib/python3.11/site-packages"
    harness = Path(__file__).resolve().parent.parent / "benchmarks"
    child = f"<module> ({harness}/import_breakdown.py:1);_child ({harness}/startup_steps.py:48)"
    stdlib = "/usr/lib/python3.11"
    raw = "\n".join(
        [
            # pydantic building the service's settings class (regex work in the stdlib: still pydantic's)
            f"{child};<module> ({service}/src/bench_service/settings.py:40);"
            f"__new__ ({site}/pydantic/_internal/_model_construction.py:90);compile ({stdlib}/re/__init__.py:227) 7",
            # the import system loading a module of the service: the service's module
            f"{child};<module> ({service}/src/bench_service/routing/__init__.py:3);"
            "_find_and_load (<frozen importlib._bootstrap>:1176);"
            "get_data (<frozen importlib._bootstrap_external>:1131) 3",
            f"{child};<module> ({site}/typing_extensions.py:10) 2",
            f"{child};run ({stdlib}/asyncio/runners.py:118) 4",
            # the step's frame innermost: mostly a stack read in part while the child ran
            f"{child} 3",
            f"<module> ({harness}/import_breakdown.py:40);<module> ({stdlib}/argparse.py:89) 5",
            "<module> (<frozen site>:616);main (<frozen site>:603) 1",
        ]
    )
    owners = samples_by_owner(raw, [service / "src"], rate=500)
    assert owners == {
        "pydantic": 14.0,
        "bench_service.routing": 6.0,
        "typing_extensions": 4.0,
        "the child's steps (its asyncio loop, collections it triggered)": 8.0,
        "the child's steps, innermost (mostly stacks read in part)": 6.0,
        "before the first step (the child's own imports)": 10.0,
        "interpreter start": 2.0,
    }
