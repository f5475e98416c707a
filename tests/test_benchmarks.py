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

from benchmarks.harness import DB_FLOOR, DB_LAZY, EAGER, FLOOR, LAZY, LAZYROUTER
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
def test_harness_measures_every_configuration(tmp_path: Path) -> None:
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
