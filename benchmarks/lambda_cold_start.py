"""Lambda-style cold start: the handler's init plus its first invocation, through the real
runtime client (``awslambdaric``) talking to a local Runtime API, as Lambda runs it.

Two ways in:

- the benchmark harness (``run.py``) loads this module as a plugin (``harness.PLUGINS``):
  services are rendered with the ``lambda`` deploy target and every lazy and eager
  configuration gets the metrics of ``METRICS``;
- standalone, on a rendered project with the ``lambda`` target, synced, with its route build::

      python benchmarks/lambda_cold_start.py PROJECT [--runs 5] [--path /health/ready]

What is timed, per execution environment (one fresh runtime process each):

- ``init``: process start to the runtime's first request for an event, i.e. interpreter
  start, imports, ``create_app`` from the build and the lifespan startup (Lambda reports
  this as "Init Duration");
- ``first invoke``: the first event handed over to its result (a first request to a cold
  domain when the service has domains);
- ``cold start`` = init + first invoke, what the first client of a new environment waits
  for, less Lambda's own overhead (downloading the code, starting the sandbox);
- ``warm``: the median of further invocations in the same environment;
- ``Mangum default``: the same warm invocations with ``Mangum(create_app())`` as the
  handler, whose default ``lifespan="auto"`` runs the lifespan startup and shutdown around
  every invocation: the cost the service's handler avoids;
- ``SnapStart`` (lazy services): the project's ``tests/aws_lambda/snapstart_fork.py``
  initialises the handler as the runtime does, runs the before-snapshot hooks (every domain
  mounted and built) and forks two "restored" environments; restore to first response is
  the after-restore hooks (random reseeded, lifespan startup) plus the first request to a
  domain, the median of the two, next to the cold start above. Lambda's own restore of the
  memory image is not in it (it is not measurable here).

The Runtime API and the event builders are the project's own test helpers
(``tests/aws_lambda/runtime_api.py``, standard library only), loaded by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

RUNTIME_API = Path("tests") / "aws_lambda" / "runtime_api.py"
SNAPSTART_FORK = Path("tests") / "aws_lambda" / "snapstart_fork.py"
NAIVE_HANDLER = """\
from mangum import Mangum

from {package}.app import create_app

# Mangum's defaults: lifespan="auto" runs the startup and shutdown on every invocation.
handler = Mangum(create_app())
"""


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/health/ready"
    body: str | None = None
    expected_status: int = 200


def runtime_api(project: Path) -> ModuleType:
    """The project's Runtime API helpers (rendered only with the ``lambda`` target)."""
    path = project / RUNTIME_API
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: render the project with deploy_targets including 'lambda'")
    name = f"_lambda_runtime_api_{abs(hash(str(path)))}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def package_of(project: Path) -> str:
    for handler in sorted((project / "src").glob("*/lambda_handler.py")):
        return handler.parent.name
    raise FileNotFoundError(f"no src/<package>/lambda_handler.py in {project}: render it with the 'lambda' target")


def _event(api: ModuleType, request: Request) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} if request.body is not None else None
    return api.http_event("http-api", request.method, request.path, headers=headers, body=request.body)


def _status(api: ModuleType, invocation: Any) -> int | None:
    if invocation.outcome != "response":
        return None
    return api.http_reply(invocation.payload).status


def measure_cold_start(
    project: Path,
    *,
    first: Request = Request(),
    warm: Request = Request(path="/health/live"),
    warm_invocations: int = 20,
    env: Mapping[str, str] | None = None,
    python: Path | None = None,
    naive: bool = True,
    log_dir: Path | None = None,
) -> dict[str, float | int | None]:
    """One fresh execution environment of ``project`` (production settings unless ``env``
    says otherwise): init, first invocation, warm invocations; then, if ``naive``, warm
    invocations of ``Mangum(create_app())`` for comparison. Times in ms, warm ones in us."""
    api = runtime_api(project)
    package = package_of(project)
    prefix = package.upper() + "_"
    python = python or project / ".venv" / "bin" / "python"
    settings = production_settings(prefix, env)
    out: dict[str, float | int | None] = {}
    with tempfile.TemporaryDirectory(prefix="lambda-bench-") as scratch:
        logs = Path(log_dir or scratch)
        logs.mkdir(parents=True, exist_ok=True)
        runtime = api.LambdaRuntime(
            f"{package}.lambda_handler.handler",
            log_path=logs / "lambda-handler.log",
            env=settings,
            python=str(python),
            cwd=project,
        )
        # Entered before start(): a failed init raises inside start(), and the runtime must
        # be killed then too, or it keeps a core busy while the next configuration is timed.
        with runtime:
            runtime.start()
            first_invocation = runtime.invoke(_event(api, first))
            out["lambda_init_ms"] = runtime.init_seconds * 1000
            out["lambda_first_invoke_ms"] = first_invocation.seconds * 1000
            out["lambda_cold_start_ms"] = out["lambda_init_ms"] + out["lambda_first_invoke_ms"]
            out["lambda_first_ok"] = int(_status(api, first_invocation) == first.expected_status)
            timings, statuses = _warm(api, runtime, warm, warm_invocations)
            out["lambda_warm_us"] = statistics.median(timings) * 1e6 if timings else None
            out["lambda_warm_ok"] = int(all(status == warm.expected_status for status in statuses))
        if naive:
            module_dir = Path(scratch) / "naive"
            module_dir.mkdir()
            (module_dir / "lambda_naive_handler.py").write_text(NAIVE_HANDLER.format(package=package))
            naive_runtime = api.LambdaRuntime(
                "lambda_naive_handler.handler",
                log_path=logs / "lambda-naive.log",
                env={**settings, "PYTHONPATH": str(module_dir)},
                python=str(python),
                cwd=project,
            )
            with naive_runtime:
                naive_runtime.start()
                _warm(api, naive_runtime, warm, 1)  # its first invocation, not measured
                timings, statuses = _warm(api, naive_runtime, warm, warm_invocations)
            out["lambda_naive_warm_us"] = statistics.median(timings) * 1e6 if timings else None
            out["lambda_naive_warm_ok"] = int(all(status == warm.expected_status for status in statuses))
    return out


def production_settings(prefix: str, env: Mapping[str, str] | None) -> dict[str, str]:
    """The service's production settings, allowing the host of the events the Runtime API
    and snapstart_fork.py send, whatever the caller allows."""
    return {f"{prefix}ENVIRONMENT": "production", **(env or {}), f"{prefix}ALLOWED_HOSTS": '["api.example.com"]'}


def measure_snapstart(
    project: Path, paths: Sequence[str], *, env: Mapping[str, str] | None = None, python: Path | None = None
) -> dict[str, float | int | None]:
    """A snapshot and two emulated restores (``snapstart_fork.py``): times in ms."""
    package = package_of(project)
    python = python or project / ".venv" / "bin" / "python"
    prefix = f"{package.upper()}_"
    settings = production_settings(prefix, env)
    completed = subprocess.run(
        [str(python), str(project / SNAPSTART_FORK), f"{package}.lambda_handler.handler", json.dumps(list(paths))],
        cwd=project,
        # Without a machine-wide CA override, as an image runs (see workspace.bench_environment).
        env={**{k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}, **settings},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"snapstart_fork.py failed: {completed.stderr[-400:]}")
    report = json.loads(completed.stdout.splitlines()[-1])
    children = [child for child in report["children"] if "error" not in child]
    served = all(child["statuses"] == [200] * len(paths) and not child["imported"] for child in children)
    return {
        "snapstart_prepare_ms": report["parent"]["prepare_snapshot_ms"],
        "snapstart_restore_first_ms": statistics.median(c["restore_to_first_response_ms"] for c in children)
        if children
        else None,
        "snapstart_ok": int(len(children) == 2 and served),
    }


def _warm(api: ModuleType, runtime: Any, request: Request, count: int) -> tuple[list[float], list[int | None]]:
    timings, statuses = [], []
    for _ in range(count):
        invocation = runtime.invoke(_event(api, request))
        timings.append(invocation.seconds)
        statuses.append(_status(api, invocation))
    return timings, statuses


# --- the benchmark harness's plugin -----------------------------------------------------------

SECTION = "lambda"
METRICS = (
    ("lambda_cold_start_ms", "Lambda cold start: init + first invocation (awslambdaric)", "ms"),
    ("lambda_init_ms", "Lambda init: process start to first event request", "ms"),
    ("lambda_first_invoke_ms", "first invocation (first request to a cold domain)", "ms"),
    ("lambda_warm_us", "warm invocation, median (GET /health/live)", "us"),
    ("lambda_naive_warm_us", "warm invocation with Mangum's default lifespan=auto, median", "us"),
    ("snapstart_restore_first_ms", "SnapStart (emulated): after-restore hooks + first request to a domain", "ms"),
    ("snapstart_prepare_ms", "SnapStart: before-snapshot hooks (every domain mounted and built)", "ms"),
)


class LambdaColdStart:
    name = "lambda"
    heavy = False

    def applies_to(self, config: Any) -> bool:
        from .harness import EAGER, LAZY

        return config.kind in (LAZY, EAGER) and config.project is not None

    def measure(self, config: Any, context: Any) -> dict[str, float | int | str | None]:
        from . import domains as generator
        from .harness import LAZY
        from .workspace import ENV_PREFIX

        first = Request()
        if config.domain_list:
            domain = config.domain_list[0]
            first = Request("POST", domain.prefix, json.dumps(generator.create_body(domain)), 201)
        log_dir = None
        if context.options.logs is not None:
            log_dir = context.options.logs / f"{config.id.replace('@', '-')}.lambda"
        env = {key: value for key, value in config.env.items() if key.startswith(ENV_PREFIX)}
        out = measure_cold_start(
            config.project,
            first=first,
            env=env,
            python=config.python,
            warm_invocations=min(context.options.warm_requests, 50),
            log_dir=log_dir,
        )
        if config.kind == LAZY and (config.project / SNAPSTART_FORK).is_file():
            paths = [config.domain_list[0].prefix] if config.domain_list else ["/health/ready"]
            out.update(measure_snapstart(config.project, paths, env=env, python=config.python))
        return out


def register(registry: Any) -> None:
    from .harness import Metric

    targets = list(registry.answers.get("deploy_targets", []))
    registry.answers["deploy_targets"] = sorted({*targets, "lambda"})
    registry.add_measurement(LambdaColdStart())
    for key, label, unit in METRICS:
        registry.add_metric(Metric(key, label, unit, False, SECTION))


# --- standalone -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("project", type=Path, help="a rendered project with the lambda target, synced and built")
    parser.add_argument("--runs", type=int, default=5, help="fresh execution environments to start (default 5)")
    parser.add_argument("--method", default="GET", help="the first invocation's method (default GET)")
    parser.add_argument("--path", default="/health/ready", help="the first invocation's path (default /health/ready)")
    parser.add_argument("--body", help="the first invocation's JSON body")
    parser.add_argument("--status", type=int, default=200, help="the first invocation's expected status")
    parser.add_argument("--no-naive", action="store_true", help="skip the Mangum default comparison")
    args = parser.parse_args(argv)
    first = Request(args.method, args.path, args.body, args.status)
    runs = [measure_cold_start(args.project.resolve(), first=first, naive=not args.no_naive) for _ in range(args.runs)]
    for key in sorted({key for run in runs for key in run}):
        values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        if values:
            print(
                f"{key:26} median {statistics.median(values):10.1f}   min {min(values):10.1f}   max {max(values):10.1f}"
            )
    return 0 if all(run.get("lambda_first_ok") and run.get("lambda_warm_ok") for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
