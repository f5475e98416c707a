"""What a cold start imports and where its CPU goes, by package, floor against service.

    python benchmarks/import_breakdown.py WORKDIR [--domains 0,1000] [--runs 7] [--sample]

WORKDIR is a ``run.py --workdir`` kept from a run (``--keep``). Each run starts one fresh
process per configuration (the floor, then the service at each D; interleaved), as
``startup_steps.py`` runs them (production, no machine-wide CA override) and with its child:
import, create the app, run the lifespan startup, then the shutdown.

By default the children run under ``python -X importtime``; the child writes a marker to
stderr before its first step and another once the lifespan startup is complete, so every
import is placed before the first step (interpreter start, the child's own modules), on the
way to ready, or after it (the warm-up and the shutdown, off the request path). The table
gives, per top-level package (the service's own modules one by one), the median over runs of
the summed *self* time of its modules: each module is counted once, where it was imported, so
the rows add up to the whole (``-X importtime``'s cumulative column would charge ``fastapi``
for ``pydantic`` and ``starlette`` too).

``--sample`` runs each child under ``py-spy record --rate 1000 --format raw --nonblocking``
instead (``pip install -r benchmarks/requirements-profile.txt``), and the child ends itself
the moment it is ready, so that every sample lies between process start and ready. A sample
belongs to the innermost frame of the app or of an installed package (stdlib frames, the
import system's included, are charged to the package that called them). ``--nonblocking``
reads the stacks while the child runs, and some come out cut short (their own row, next to
the count of samples py-spy could not read at all); ``--blocking`` pauses the child for each
sample instead: whole stacks, in a child several times slower.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (as the children are): make ``benchmarks`` importable as a package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from .startup_steps import _child, child_environment

START = "import_breakdown: first step"
READY = "import_breakdown: ready"
COLLECTIONS = "import_breakdown: gc"  # then the µs in full collections and in all of them
OWN_PACKAGES = ("bench_service", "bench_floor")
BEFORE, STARTUP, AFTER = "before the first step", "on the way to ready", "after ready"
HARNESS = Path(__file__).resolve().parent

Configuration = tuple[str, int]


@dataclass(frozen=True)
class Import:
    """One line of ``-X importtime``: a module, the time of its own code, and who imported it."""

    name: str
    self_us: int
    cumulative_us: int
    phase: str
    importer: str | None  # None: imported at top level (by a step, or from a function at run time)


def parse_importtime(stderr: str) -> list[Import]:
    """The imports in ``stderr``, each with its phase (from the child's markers) and importer.

    ``-X importtime`` prints a module when its import ends, after the modules it imported,
    which are indented two spaces deeper: a line's children are the deeper lines just above it.
    """
    rows: list[tuple[str, int, int, int, str]] = []
    for phase, line in _phased(stderr):
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            rows.append((name.strip(), int(self_us), int(cumulative_us), depth, phase))
    importers: dict[int, str] = {}
    pending: dict[int, list[int]] = defaultdict(list)
    for index, (name, _, _, depth, _) in enumerate(rows):
        for child in pending.pop(depth + 1, []):
            importers[child] = name
        pending[depth].append(index)
    return [
        Import(name, self_us, cumulative_us, phase, importers.get(index))
        for index, (name, self_us, cumulative_us, _, phase) in enumerate(rows)
    ]


def parse_collections(stderr: str) -> dict[str, tuple[float, float]]:
    """ms in full collections and in all collections, per phase, from the child's lines."""
    found: dict[str, tuple[float, float]] = {}
    for phase, line in _phased(stderr):
        if line.startswith(COLLECTIONS + " "):
            full_us, all_us = line.removeprefix(COLLECTIONS + " ").split()
            found[phase] = (float(full_us) / 1000, float(all_us) / 1000)
    return found


def _phased(stderr: str) -> Iterator[tuple[str, str]]:
    """Each line of the child's stderr but its markers, with the phase the markers put it in."""
    phase = BEFORE
    for line in stderr.splitlines():
        if line == START:
            phase = STARTUP
        elif line == READY:
            phase = AFTER
        else:
            yield phase, line


def group_of(module: str) -> str:
    """A row of the tables: the top-level package, or the module itself for the app's own."""
    top = module.split(".", 1)[0]
    return module if top in OWN_PACKAGES else top


@dataclass
class Group:
    ms: float = 0.0
    modules: int = 0
    importers: frozenset[str] = frozenset()


def by_group(imports: Iterable[Import], phase: str) -> dict[str, Group]:
    """Self time (ms) and module count per row, and the other rows that imported it."""
    groups: dict[str, Group] = defaultdict(Group)
    for entry in imports:
        if entry.phase != phase:
            continue
        group = groups[group_of(entry.name)]
        group.ms += entry.self_us / 1000
        group.modules += 1
        if entry.importer is not None and group_of(entry.importer) != group_of(entry.name):
            group.importers |= {group_of(entry.importer)}
    return dict(groups)


_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def sample_owner(stack: str, app_roots: Iterable[Path]) -> str:
    """Who a py-spy raw stack (``outer;...;inner``) is charged to: the innermost frame of the
    app (its module) or of an installed package (its top-level name)."""
    roots = [str(root) for root in app_roots]
    harness = steps = False
    for depth, frame in enumerate(reversed(stack.split(";"))):
        match = _FRAME.match(frame)
        function, file = (match["function"], match["file"]) if match else ("", frame)
        if "/site-packages/" in file:
            top = file.split("/site-packages/", 1)[1].split("/", 1)[0]
            return top.removesuffix(".py")
        for root in roots:
            if file.startswith(root + "/"):
                return ".".join(Path(file[len(root) + 1 :]).with_suffix("").parts).removesuffix(".__init__")
        if file.startswith(str(HARNESS) + "/"):
            if depth == 0 and function.startswith("_child"):
                # A step's own frame innermost: its bookkeeping, but mostly a stack that
                # ``--nonblocking`` read only in part (the step's call had begun).
                return "the child's steps, innermost (mostly stacks read in part)"
            harness = True
            steps = steps or function.startswith("_child")
    if steps:
        return "the child's steps (its asyncio loop, collections it triggered)"
    return "before the first step (the child's own imports)" if harness else "interpreter start"


def samples_by_owner(raw: str, app_roots: Iterable[Path], rate: int) -> dict[str, float]:
    """ms of samples per owner in a py-spy ``--format raw`` file (one stack and its count a line)."""
    owners: Counter[str] = Counter()
    roots = list(app_roots)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            owners[sample_owner(stack, roots)] += int(count)
    return {owner: count * 1000 / rate for owner, count in owners.items()}


def _child_command(workdir: Path, kind: str, domains: int, *extra: str) -> tuple[list[str], Path]:
    service = workdir / f"service-none-d{domains}"
    python = service / ".venv" / "bin" / "python"
    return [str(python), *extra, __file__, "--child", kind], service


def _importtime_run(workdir: Path, kind: str, domains: int) -> tuple[list[Import], dict[str, tuple[float, float]]]:
    command, cwd = _child_command(workdir, kind, domains, "-X", "importtime")
    completed = subprocess.run(
        command, cwd=cwd, env=child_environment(workdir), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0 or READY not in completed.stderr:
        raise SystemExit(f"{kind} D={domains} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return parse_importtime(completed.stderr), parse_collections(completed.stderr)


def _sample_run(
    workdir: Path, kind: str, domains: int, py_spy: str, rate: int, blocking: bool
) -> tuple[dict[str, float], int]:
    child, cwd = _child_command(workdir, kind, domains)
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        output = Path(scratch) / "samples.txt"
        command = [py_spy, "record", "--rate", str(rate), "--format", "raw", "--full-filenames"]
        command += [] if blocking else ["--nonblocking"]
        completed = subprocess.run(
            [*command, "-o", str(output), "--", *child, "--exit-at-ready"],
            cwd=cwd,
            env=child_environment(workdir),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0 or not output.is_file():
            raise SystemExit(f"py-spy failed for {kind} D={domains} ({completed.returncode}):\n{completed.stderr}")
        roots = [cwd / "src", workdir / "floor"]
        # py-spy's own count of the samples it could not read (the child is not paused).
        errors = re.search(r"Errors: (\d+)", completed.stdout + completed.stderr)
        return samples_by_owner(output.read_text(), roots, rate), int(errors[1]) if errors else 0


def _label(configuration: Configuration) -> str:
    kind, domains = configuration
    return "floor" if kind == "floor" else f"service D={domains}"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _table(
    per_run: dict[Configuration, list[dict[str, float]]],
    counts: dict[Configuration, dict[str, int]] | None,
    importers: dict[str, frozenset[str]] | None,
    min_ms: float,
    keep_own: bool = True,
) -> list[str]:
    """Markdown rows: median ms per configuration and the difference to the floor; rows
    under ``min_ms`` everywhere are folded into one (the app's own modules too unless ``keep_own``)."""
    configurations = list(per_run)
    floor = configurations[0]
    medians = {
        configuration: {
            name: statistics.median(run.get(name, 0.0) for run in runs)
            for name in {name for run in runs for name in run}
        }
        for configuration, runs in per_run.items()
    }
    names = sorted(
        {name for values in medians.values() for name in values},
        key=lambda name: -max(values.get(name, 0.0) for values in medians.values()),
    )
    header = ["package or module"]
    for configuration in configurations:
        header.append(f"{_label(configuration)}, ms")
        if configuration != floor:
            header.append("difference")
    if counts is not None:
        header.append("modules (" + " / ".join(_label(c) for c in configurations) + ")")
    if importers is not None:
        header.append("imported by")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    folded: dict[Configuration, float] = defaultdict(float)
    folded_count = 0
    for name in names:
        values = [medians[configuration].get(name) for configuration in configurations]
        own = keep_own and name.split(".", 1)[0] in OWN_PACKAGES
        if not own and max(value or 0.0 for value in values) < min_ms:
            folded_count += 1
            for configuration, value in zip(configurations, values, strict=True):
                folded[configuration] += value or 0.0
            continue
        cells = [name if " " in name else f"`{name}`"]  # a module, or one of the profile's buckets
        for configuration, value in zip(configurations, values, strict=True):
            cells.append(_ms(value))
            if configuration != floor:
                cells.append(f"{(value or 0.0) - (values[0] or 0.0):+.1f}" if value is not None else "")
        if counts is not None:
            cells.append(" / ".join(str(counts[c].get(name, "")) or "-" for c in configurations))
        if importers is not None:
            cells.append(", ".join(f"`{importer}`" for importer in sorted(importers.get(name, ()))))
        lines.append("| " + " | ".join(cells) + " |")
    totals = {c: statistics.median(sum(run.values()) for run in runs) for c, runs in per_run.items()}
    others = f"{folded_count} {'other' if folded_count == 1 else 'others'} under {min_ms} ms each"
    for label, values in ((others, folded), ("**total**", totals)):
        if label.startswith("0 others"):
            continue
        cells = [label]
        for configuration in configurations:
            cells.append(_ms(values[configuration]))
            if configuration != floor:
                cells.append(f"{values[configuration] - values[floor]:+.1f}")
        cells += [""] * (len(header) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _importtime_report(workdir: Path, configurations: list[Configuration], runs: int, min_ms: float) -> list[str]:
    imports: dict[Configuration, list[list[Import]]] = {configuration: [] for configuration in configurations}
    collections: dict[Configuration, list[dict[str, tuple[float, float]]]] = {c: [] for c in configurations}
    for _ in range(runs):
        for kind, domains in configurations:
            run_imports, run_collections = _importtime_run(workdir, kind, domains)
            imports[(kind, domains)].append(run_imports)
            collections[(kind, domains)].append(run_collections)
    lines = [f"`-X importtime`, self time summed per package, median of {runs} interleaved runs (ms)", ""]
    for phase in (STARTUP, AFTER):
        groups = {c: [by_group(run, phase) for run in runs] for c, runs in imports.items()}
        per_run = {c: [{name: group.ms for name, group in run.items()} for run in runs] for c, runs in groups.items()}
        counts = {c: {name: group.modules for name, group in runs[0].items()} for c, runs in groups.items()}
        importers: dict[str, frozenset[str]] = defaultdict(frozenset)
        for runs_of in groups.values():
            for name, group in runs_of[0].items():
                importers[name] |= group.importers
        lines += [
            f"**{phase}**" + (" (the warm-up and the shutdown, off the request path)" if phase == AFTER else ""),
            "",
        ]
        lines += [*_table(per_run, counts, importers, min_ms), ""]
        spent = {
            c: [statistics.median(run.get(phase, (0.0, 0.0))[index] for run in runs) for index in (0, 1)]
            for c, runs in collections.items()
        }
        lines += [
            "Garbage collection in this phase (ms, full / all; during an import, inside that module's self time): "
            + ", ".join(f"{_label(c)} {full:.1f} / {every:.1f}" for c, (full, every) in spent.items()),
            "",
        ]
    before = {
        c: statistics.median(sum(i.self_us for i in run if i.phase == BEFORE) / 1000 for run in runs)
        for c, runs in imports.items()
    }
    lines.append(
        f"{BEFORE} (interpreter start and the benchmark child's own modules, the same in every configuration): "
        + ", ".join(f"{_label(c)} {value:.1f} ms" for c, value in before.items())
    )
    return lines


def _sample_report(
    workdir: Path, configurations: list[Configuration], runs: int, min_ms: float, py_spy: str, rate: int, blocking: bool
) -> list[str]:
    samples: dict[Configuration, list[dict[str, float]]] = {configuration: [] for configuration in configurations}
    errors: dict[Configuration, list[int]] = {configuration: [] for configuration in configurations}
    for _ in range(runs):
        for kind, domains in configurations:
            owners, failed = _sample_run(workdir, kind, domains, py_spy, rate, blocking)
            samples[(kind, domains)].append(owners)
            errors[(kind, domains)].append(failed)
    return [
        f"py-spy samples ({'blocking' if blocking else 'nonblocking'}) from process start to ready at {rate} Hz,"
        f" by owner, median of {runs} interleaved runs (ms)",
        "",
        *_table(samples, None, None, min_ms, keep_own=False),
        "",
        "Samples py-spy could not read (median per run): "
        + ", ".join(f"{_label(c)} {statistics.median(counts):.0f}" for c, counts in errors.items()),
    ]


class _Collections:
    """Time in the garbage collector, full collections apart: a collection runs inside
    whatever import is under way, so ``-X importtime`` charges it to that module."""

    def __init__(self) -> None:
        self.full_us = self.all_us = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, event: str, info: dict[str, int]) -> None:
        if event == "start":
            self._start = time.perf_counter()
            return
        elapsed = (time.perf_counter() - self._start) * 1e6
        self.all_us += elapsed
        if info["generation"] == 2:
            self.full_us += elapsed

    def report(self) -> None:
        """Write (and restart) the totals since the last report, as a line the parent reads."""
        print(f"{COLLECTIONS} {self.full_us:.0f} {self.all_us:.0f}", file=sys.stderr, flush=True)
        self.full_us = self.all_us = 0.0


def _ready_marker(collections: _Collections, exit_at_ready: bool) -> None:
    collections.report()
    print(READY, file=sys.stderr, flush=True)
    if exit_at_ready:
        # The sampling profile ends at ready: nothing after it (warm-up, shutdown) is sampled.
        sys.stdout.flush()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workdir", type=Path, nargs="?")
    parser.add_argument("--domains", default="0,1000", help="services to compare with the floor (default 0,1000)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--min-ms", type=float, default=1.0, help="fold rows below this in every configuration")
    parser.add_argument("--sample", action="store_true", help="a py-spy sampling profile instead of -X importtime")
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="the py-spy executable (default: on PATH)")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second (default 1000)")
    parser.add_argument(
        "--blocking",
        action="store_true",
        help="let py-spy pause the child for each sample: whole stacks, but a child several times slower",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--exit-at-ready", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        collections = _Collections()
        print(START, file=sys.stderr, flush=True)
        _child(args.child, on_ready=lambda: _ready_marker(collections, args.exit_at_ready))
        collections.report()
        return 0
    if args.workdir is None:
        parser.error("WORKDIR is required")
    workdir = args.workdir.resolve()
    configurations = [("floor", 0)] + [("service", int(count)) for count in args.domains.split(",")]
    if args.sample:
        if not args.py_spy:
            parser.error("py-spy not found: pip install -r benchmarks/requirements-profile.txt, or pass --py-spy")
        lines = _sample_report(workdir, configurations, args.runs, args.min_ms, args.py_spy, args.rate, args.blocking)
    else:
        lines = _importtime_report(workdir, configurations, args.runs, args.min_ms)
    print("\n".join(lines))
    print(f"\nload average at the end: {' / '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
