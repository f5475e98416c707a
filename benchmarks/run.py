"""Startup benchmark: the generated service (lazy and eager) against an empty FastAPI app and
fastapi-lazyrouter, and its default render (database=sqlite) against the same app plus the
same engine, at several numbers of domains, in interleaved rounds.

    .venv-tests/bin/python benchmarks/run.py --domains 0,10,200,1000 --rounds 7 --output docs/benchmarks.md

Run it with the template's test environment (``tests/run.sh`` creates ``.venv-tests``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks`` importable as a package (from the repository root).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from .chart import cold_start_svg
from .harness import (
    ALL_KINDS,
    LAZYROUTER,
    Context,
    Options,
    Registry,
    Results,
    configurations,
    databases_for,
    default_registry,
    load_plugins,
    run_rounds,
)
from .report import render_report
from .workspace import Workspace, prepare


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--domains", default="0,10,200,1000", help="comma-separated numbers of domains (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds of the cold measurements (default: %(default)s)"
    )
    parser.add_argument(
        "--heavy-rounds",
        type=int,
        default=1,
        help="rounds of the heavy measurements: every domain loaded, eager runtime OpenAPI (default: %(default)s)",
    )
    parser.add_argument(
        "--warm-requests", type=int, default=200, help="requests per warm-latency median (default: %(default)s)"
    )
    parser.add_argument(
        "--eager-openapi-max-domains",
        type=int,
        default=200,
        help="largest D at which eager runtime OpenAPI generation is measured (default: %(default)s)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(ALL_KINDS),
        help="configurations to run (default: %(default)s)",
    )
    parser.add_argument("--python", default="3.11", help="Python version of every venv (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, help="where to render and build (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="reuse services in --workdir if template and D match")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    parser.add_argument("--output", type=Path, help="write the markdown report here (default: print it)")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON here")
    parser.add_argument(
        "--chart",
        type=Path,
        help="also write the cold-start chart (SVG) here; the report embeds it by its path relative to --output",
    )
    parser.add_argument("--logs", type=Path, help="write the children's stderr here")
    parser.add_argument(
        "--recursion-limit",
        type=int,
        help="sys.setrecursionlimit() in every measured child (default: Python's). Large eager apps need it "
        "to start at all; the warm-up always runs with the default and reports who fails",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=600, help="seconds a start may take (default: %(default)s)"
    )
    return parser


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(argv: list[str] | None = None) -> tuple[Results, Registry, Workspace, str]:
    args = _parser().parse_args(argv)
    counts = sorted({int(part) for part in args.domains.split(",") if part.strip()})
    kinds = tuple(part.strip() for part in args.configs.split(",") if part.strip())
    unknown = sorted(set(kinds) - set(ALL_KINDS))
    if unknown:
        _parser().error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(ALL_KINDS)}")
    registry = default_registry()
    load_plugins(registry)

    temporary = args.workdir is None
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        log(f"preparing {root} (D = {', '.join(map(str, counts))})")
        workspace = prepare(
            root,
            counts,
            databases=databases_for(kinds),
            python_version=args.python,
            answers=registry.answers,
            reuse=args.reuse and not temporary,
            lazyrouter=LAZYROUTER in kinds,
            log=log,
        )
        configs = configurations(workspace, kinds)
        for hook in registry.configuration_hooks:
            configs += hook(workspace)
        options = Options(
            rounds=args.rounds,
            heavy_rounds=args.heavy_rounds,
            warm_requests=args.warm_requests,
            eager_openapi_max_domains=args.eager_openapi_max_domains,
            start_timeout=args.start_timeout,
            logs=args.logs,
            recursion_limit=args.recursion_limit,
        )
        log(f"{len(configs)} configurations: {', '.join(config.id for config in configs)}")
        results = run_rounds(configs, registry, Context(workspace=workspace, options=options, log=log))
    finally:
        if temporary and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif temporary:
            log(f"kept {root}")

    command = "python benchmarks/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    options_text = (
        f"D = {', '.join(map(str, counts))}; {args.rounds} rounds; {args.heavy_rounds} heavy round(s);"
        f" {args.warm_requests} requests per warm median;"
        f" eager runtime OpenAPI up to D = {args.eager_openapi_max_domains};"
        f" recursion limit in the measured children: {args.recursion_limit or 'Python default'}"
    )
    chart = None
    if args.chart:
        svg = cold_start_svg(results, counts)
        if svg:
            args.chart.parent.mkdir(parents=True, exist_ok=True)
            args.chart.write_text(svg, encoding="utf-8")
            log(f"wrote {args.chart}")
            base = args.output.parent if args.output else Path.cwd()
            chart = os.path.relpath(args.chart.resolve(), base.resolve())
    report = render_report(results, registry, workspace, command=command, options_text=options_text, chart=chart)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
        log(f"wrote {args.output}")
    else:
        print(report)
    if args.json:
        args.json.write_text(json.dumps(results.to_json(), indent=1, default=str))
    return results, registry, workspace, report


def main(argv: list[str] | None = None) -> int:
    results, _, _, _ = run(argv)
    return 1 if results.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
