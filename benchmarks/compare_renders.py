"""Two builds of the service side by side against one floor, in the same interleaved rounds.

    python benchmarks/compare_renders.py BEFORE AFTER [--floor WORKDIR] [--rounds 9]

``BEFORE`` and ``AFTER`` are rendered, built services as ``run.py --keep`` leaves them
(``<workdir>/service-<database>-d<D>``), typically from two commits of the template: keep
one workdir per commit, then compare the same variant and D. The floor is written afresh
from this checkout's ``floors.py`` into ``AFTER``'s workdir (or the workdir ``--floor``
names) and runs in ``AFTER``'s venv. Each round measures the floor, then ``BEFORE``, then
``AFTER``, with the harness's own configurations and sessions: under uvicorn (the service
by its ``serve`` command) to the first 200 from ``/health/ready``, and as a bare process to
lifespan complete (each session then makes its usual requests to the generated domains,
which this script does not report). Prints the medians and the medians of the per-round
ratios to the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks`` importable as a package (from the repository root).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from . import harness
from .workspace import ENV_PREFIX, PACKAGE, Service, Workspace, prepare_floor

METRICS = {
    "uvicorn_ready_ms": "uvicorn, process start to first 200 from /health/ready",
    "process_cpu_ms": "bare process, CPU time to lifespan complete",
    "import_ms": "import of the app module",
    "create_ms": "create_app()",
    "rss_ready_mib": "RSS at ready (bare process)",
}


def kept_service(root: Path) -> Service:
    """A service ``run.py --keep`` left: its variant, D (from its stamp) and settings."""
    database = "sqlite" if (root / "src" / PACKAGE / "migrations").is_dir() else "none"
    stamp = json.loads((root / ".bench-stamp.json").read_text())
    service = Service(database, int(stamp["domains"]), root, root / ".venv" / "bin" / "python")
    if database != "none":
        # The file run.py migrated, kept as it is (run.py empties it before migrating).
        service.env[f"{ENV_PREFIX}DATABASE_URL"] = f"sqlite:///{root / f'{PACKAGE}.sqlite3'}"
    return service


def configuration(workspace: Workspace, service: Service, *, floor: bool = False) -> harness.Configuration:
    """The harness's own configuration of ``service`` (or of its floor) in ``workspace``."""
    workspace.services[(service.database, service.domains)] = service
    kind = harness.DB_LAZY if service.database == "sqlite" else harness.LAZY
    wanted = harness.SERVICE_KINDS[kind].floor if floor else kind
    [found] = harness.configurations(workspace, (wanted,))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--floor", type=Path, help="the floor's workdir (default: AFTER's workdir)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--recursion-limit", type=int, default=10000)
    args = parser.parse_args(argv)
    before, after = kept_service(args.before.resolve()), kept_service(args.after.resolve())
    if (before.database, before.domains) != (after.database, after.domains):
        parser.error("BEFORE and AFTER must be the same database variant and D")
    root = after.root.parent
    workspace = Workspace((args.floor or root).resolve(), python_version="")
    prepare_floor(workspace, after.database, after.python)  # the floor of this checkout, in AFTER's venv
    configurations = {
        "floor": configuration(workspace, after, floor=True),
        "before": configuration(Workspace(before.root.parent, python_version=""), before),
        "after": configuration(workspace, after),
    }
    options = harness.Options(recursion_limit=args.recursion_limit, warm_requests=1, logs=root / "logs")
    context = harness.Context(workspace, options)
    sessions = (harness.UvicornSession(), harness.BareProcessStartup())
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in configurations}
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}", file=sys.stderr)
        for name, config in configurations.items():
            for session in sessions:
                for key, value in session.measure(config, context).items():
                    if key in METRICS and isinstance(value, (int, float)):
                        samples[name].setdefault(key, []).append(float(value))
    print(f"database={after.database}, D={after.domains}, {args.rounds} rounds\n")
    print("| figure | floor | before | after | before / floor | after / floor |\n|---|---|---|---|---|---|")
    for key, label in METRICS.items():
        floor = samples["floor"][key]
        cells = [f"{statistics.median(samples[name][key]):.1f}" for name in configurations]
        ratios = [
            f"{statistics.median(value / base for base, value in zip(floor, samples[name][key], strict=True)):.2f}x"
            for name in ("before", "after")
        ]
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
