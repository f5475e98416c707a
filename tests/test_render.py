"""Render every variant with real Copier and run each rendered project's own checks.

Each deploy-target combination is rendered once; the three Python versions and the
``example_domain`` answer are spread over those renders, so every answer is exercised
without rendering the full cross product.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from support import TEMPLATE_ROOT, leftover_markup, render, run, sync, uv, uv_environment

VARIANTS = {
    "none-3.13": {"python_version": "3.13", "deploy_targets": [], "database": "none"},
    "docker-no-otel-3.12": {"python_version": "3.12", "deploy_targets": ["docker"], "opentelemetry": False},
    "lambda-3.13": {"python_version": "3.13", "deploy_targets": ["lambda"]},
    "kubernetes-none-no-example-no-otel-3.11": {
        "python_version": "3.11",
        "deploy_targets": ["kubernetes"],
        "database": "none",
        "example_domain": False,
        "opentelemetry": False,
    },
    "docker-lambda-3.12": {"python_version": "3.12", "deploy_targets": ["docker", "lambda"]},
    "docker-kubernetes-3.13": {"python_version": "3.13", "deploy_targets": ["docker", "kubernetes"]},
    "lambda-kubernetes-3.11": {"python_version": "3.11", "deploy_targets": ["lambda", "kubernetes"]},
    "all-targets-no-example-3.12": {
        "python_version": "3.12",
        "deploy_targets": ["docker", "lambda", "kubernetes"],
        "example_domain": False,
    },
}
# The database each variant gets when it names none: derived from the targets.
SERVER_TARGETS = {"lambda", "kubernetes"}


def database_of(answers: dict) -> str:
    return answers.get("database") or ("postgresql" if SERVER_TARGETS & set(answers["deploy_targets"]) else "sqlite")


def check_project(project: Path, env: dict[str, str] | None = None) -> str:
    """The rendered project's own checks; returns pytest's summary line."""
    assert leftover_markup(project) == []
    uv(project, "run", "ruff", "check", ".")
    uv(project, "run", "ruff", "format", "--check", ".")
    # What the generated CI runs: mypy, strict on the package (its dev group pins it).
    uv(project, "run", "mypy")
    result = run(
        [sys.executable, "-m", "uv", "run", "pytest", "-q", "-p", "no:cacheprovider"],
        project,
        env={**uv_environment(), **(env or {})},
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary
    assert "failed" not in summary
    assert "error" not in summary
    return summary


@pytest.mark.slow
def test_default_project_passes_its_own_checks(default_project: Path) -> None:
    check_project(default_project)


@pytest.mark.slow
@pytest.mark.parametrize("answers", VARIANTS.values(), ids=VARIANTS.keys())
def test_variant_passes_its_own_checks(tmp_path: Path, answers: dict, request: pytest.FixtureRequest) -> None:
    project = sync(render(tmp_path / "service", **answers), answers["python_version"])
    database = database_of(answers)
    # PostgreSQL renders run their suite against the real server, the others on SQLite files.
    env = {"TEST_DATABASE_URL": request.getfixturevalue("postgres").admin_url} if database == "postgresql" else {}
    check_project(project, env)
    pyproject = (project / "pyproject.toml").read_text()
    assert ("sqlalchemy" in pyproject) is (database != "none")
    assert ("sqlalchemy" in (project / "uv.lock").read_text()) is (database != "none")
    assert ("psycopg" in pyproject) is (database == "postgresql")
    assert (project / "src" / "acme_orders" / "migrations").exists() is (database != "none")
    if database != "none":
        # What the generated CI runs: the migrations applied to an empty database match the models.
        if database == "postgresql":
            url = request.getfixturevalue("postgres").create_database(
                f"check_{request.node.callspec.id}".replace("-", "_").replace(".", "_")
            )
        else:
            url = f"sqlite:///{tmp_path / 'check.sqlite3'}"
        env = {**uv_environment(), "ACME_ORDERS_ENVIRONMENT": "development", "ACME_ORDERS_DATABASE_URL": url}
        for action in ("upgrade", "check"):
            run([str(project / ".venv" / "bin" / "python"), "-m", "acme_orders", "db", action], project, env=env)
    version = uv(project, "run", "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").stdout.strip()
    assert version == answers["python_version"]
    has_example = (project / "src" / "acme_orders" / "domains" / "items").exists()
    assert has_example is answers.get("example_domain", True)
    assert (project / "tests" / "domains" / "items").exists() is has_example
    observed = answers.get("opentelemetry", True)
    assert (project / "src" / "acme_orders" / "telemetry.py").exists() is observed
    assert (project / "src" / "acme_orders" / "http_tracing.py").exists() is observed
    assert (project / "tests" / "telemetry").exists() is observed
    assert ("opentelemetry-sdk" in pyproject) is observed
    assert ("opentelemetry-sdk" in (project / "uv.lock").read_text()) is observed


def test_defaults_equal_explicit_answers(tmp_path: Path) -> None:
    implicit = render(tmp_path / "implicit")
    explicit = render(
        tmp_path / "explicit",
        package_name="acme_orders",
        description="Acme Orders: a FastAPI service.",
        author_name="Platform Team",
        author_email="platform@example.com",
        python_version="3.11",
        deploy_targets=[],
        database="sqlite",
        opentelemetry=True,
        example_domain=True,
    )
    files = sorted(path.relative_to(implicit) for path in implicit.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(explicit) for path in explicit.rglob("*") if path.is_file())
    for relative in files:
        assert (implicit / relative).read_bytes() == (explicit / relative).read_bytes(), relative


def test_no_target_leaves_no_deployment_files(default_project: Path) -> None:
    assert not (default_project / "deploy").exists()
    assert not (default_project / "Dockerfile").exists()
    assert not (default_project / ".dockerignore").exists()
    assert not list(default_project.rglob("lambda_handler.py"))


# Every top-level module the project's environment installs, from each distribution's files.
TOP_LEVEL_MODULES = """
import importlib.metadata, json
names = set()
for dist in importlib.metadata.distributions():
    for file in dist.files or ():
        top = file.parts[0].removesuffix(".py")
        if len(file.parts) > 1 or file.parts[0].endswith(".py"):
            names.add(top)
print(json.dumps(sorted(names)))
"""


@pytest.mark.slow
def test_every_dependency_module_is_a_reserved_package_name(default_project: Path) -> None:
    """A package named like one of the project's dependencies (runtime or dev) would shadow
    it: the hand-kept list in copier.yml must name every module the environment installs."""
    result = run([str(default_project / ".venv" / "bin" / "python"), "-c", TOP_LEVEL_MODULES], default_project)
    installed = {name for name in json.loads(result.stdout) if re.fullmatch(r"[a-z][a-z0-9_]*", name)}
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    reserved = set(config["reserved_package_names"]["default"].split())
    assert installed - reserved - {"acme_orders"} == set()
