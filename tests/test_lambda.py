"""The AWS Lambda deploy target.

Rendered with ``deploy_targets=["lambda"]`` (hence PostgreSQL), the service's own suite runs
its handler under the real Lambda runtime client (``awslambdaric``) for every event source
against a real PostgreSQL server, the SAM template lints clean with ``cfn-lint``, and the
artifact ``deploy/lambda/package.sh`` builds migrates a database and serves events from it
once unpacked as Lambda unpacks it. Rendered without the target, nothing of it is there: no
handler, no ``deploy/``, no tests, no dependency.
"""

from __future__ import annotations

import calendar
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from benchmarks.lambda_cold_start import runtime_api

from support import ENV_PREFIX, PACKAGE, leftover_markup, render, run, sync, uv, uv_environment
from support.postgres import PostgresServer

SAM_TEMPLATE = Path("deploy") / "lambda" / "template.yaml"


@pytest.fixture(scope="module")
def lambda_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = sync(render(tmp_path_factory.mktemp("lambda") / "acme-orders", deploy_targets=["lambda"]))
    assert "database: postgresql" in (project / ".copier-answers.yml").read_text()
    return project


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (``!Ref``, ``!If``...) kept as ``{tag: value}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def cfn_lint(template: Path) -> None:
    executable = shutil.which("cfn-lint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert executable, "cfn-lint is missing: pip install -r tests/requirements.txt"
    # Informational checks included: nothing at all may be reported.
    run([executable, "--include-checks", "I", "--", str(template)], cwd=template.parent)


@pytest.mark.slow
def test_the_projects_own_suite_runs_the_handler_under_the_runtime_client(
    lambda_project: Path, postgres: PostgresServer
) -> None:
    assert leftover_markup(lambda_project) == []
    uv(lambda_project, "run", "ruff", "check", ".")
    uv(lambda_project, "run", "ruff", "format", "--check", ".")
    report = lambda_project / "junit.xml"
    # Against PostgreSQL, as deployed: each test gets a database made on this server.
    env = {**uv_environment(), "TEST_DATABASE_URL": postgres.admin_url}
    run(
        [sys.executable, "-m", "uv", "run", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=lambda_project,
        env=env,
    )
    cases = ElementTree.parse(report).getroot().iter("testcase")
    lambda_cases = [case for case in cases if "aws_lambda" in (case.get("classname") or "")]
    names = {case.get("name", "").split("[")[0] for case in lambda_cases}
    assert {
        "test_events_match_the_sources_models",
        "test_each_source_is_served",
        "test_problem_details_for_unknown_paths",
        "test_an_unhandled_error_is_an_opaque_500",
        "test_an_event_from_no_http_source_is_an_invocation_error",
        "test_domains_are_imported_on_their_first_request_only",
        "test_the_lifespan_runs_once_across_100_invocations",
        "test_a_stage_prefix_is_stripped_and_kept_as_root_path",
        "test_a_bad_setting_fails_the_init_with_its_name",
        "test_production_init_fails_without_a_build",
        "test_snapstart_reopens_the_resources_after_restore",
        "test_every_domain_is_imported_before_the_snapshot_and_the_resources_closed",
        "test_restored_environments_serve_every_domain_without_importing",
        "test_restored_environments_hold_fresh_resources",
        "test_restored_environments_draw_different_random_numbers",
        "test_sigterm_runs_the_lifespan_shutdown",
        "test_requests_reach_the_database",
        "test_an_unreachable_database_fails_the_init_with_its_setting",
    } <= names
    assert not [case for case in lambda_cases if list(case)], "a Lambda test failed or was skipped"


@pytest.mark.parametrize(
    ("python_version", "database"), [("3.11", "postgresql"), ("3.12", "postgresql"), ("3.12", "none")]
)
def test_the_sam_template_lints_clean(tmp_path: Path, python_version: str, database: str) -> None:
    project = render(tmp_path / "service", deploy_targets=["lambda"], python_version=python_version, database=database)
    template = project / SAM_TEMPLATE
    cfn_lint(template)

    document = yaml.load(template.read_text(), Loader=_CloudFormationLoader)
    function = document["Resources"]["Function"]["Properties"]
    assert function["Handler"] == f"{PACKAGE}.lambda_handler.handler"
    assert function["Runtime"] == f"python{python_version}"
    assert function["CodeUri"] == "../../build/lambda.zip"
    assert function["Environment"]["Variables"]["ACME_ORDERS_ENVIRONMENT"] == "production"
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert {"MemorySize", "Timeout", "Architecture"} <= set(document["Parameters"])
    # SnapStart exists for python3.12 and later only.
    assert ("SnapStart" in function) is (python_version != "3.11")
    assert ("SnapStart" in document["Parameters"]) is (python_version != "3.11")

    variables = function["Environment"]["Variables"]
    database_parameters = {"DatabaseSecretName", "SubnetIds", "SecurityGroupIds"}
    if database == "none":
        assert not [name for name in variables if "DATABASE" in name]
        assert not database_parameters & set(document["Parameters"])
        assert "VpcConfig" not in function
        return
    # The URL is resolved from Secrets Manager at deploy time, never written in the template.
    assert variables[f"{ENV_PREFIX}DATABASE_URL"] == {
        "!Sub": "{{resolve:secretsmanager:${DatabaseSecretName}:SecretString:url}}"
    }
    assert "Default" not in document["Parameters"]["DatabaseSecretName"]
    # One request at a time per environment: one connection each, no overflow.
    assert (variables[f"{ENV_PREFIX}DATABASE_POOL_SIZE"], variables[f"{ENV_PREFIX}DATABASE_MAX_OVERFLOW"]) == ("1", "0")
    # In a VPC only when subnets are given.
    assert document["Parameters"]["SubnetIds"]["Type"] == "CommaDelimitedList"
    assert document["Parameters"]["SubnetIds"]["Default"] == ""
    condition, in_vpc, outside = function["VpcConfig"]["!If"]
    assert condition == "InVpc"
    assert in_vpc == {"SubnetIds": {"!Ref": "SubnetIds"}, "SecurityGroupIds": {"!Ref": "SecurityGroupIds"}}
    assert outside == {"!Ref": "AWS::NoValue"}
    assert "InVpc" in document["Conditions"]
    # Migrations are a deploy step, documented next to the template.
    assert f"python -m {PACKAGE} db upgrade" in (project / "deploy" / "lambda" / "README.md").read_text()


@pytest.mark.slow
def test_the_packaged_artifact_serves_events_once_unpacked(
    lambda_project: Path, tmp_path: Path, postgres: PostgresServer
) -> None:
    env = uv_environment()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = run(["bash", "deploy/lambda/package.sh"], cwd=lambda_project, env=env, timeout=900)
    assert "Status:  up to date" in result.stdout

    # Unpacked as unzip (and Lambda) does it: file times from the archive, in UTC.
    task = tmp_path / "task"
    with zipfile.ZipFile(lambda_project / "build" / "lambda.zip") as archive:
        for entry in archive.infolist():
            path = Path(archive.extract(entry, task))
            stamp = calendar.timegm((*entry.date_time, 0, 0, -1))
            os.utime(path, (stamp, stamp))
            assert entry.external_attr >> 16 & 0o444 == 0o444, f"{entry.filename} is not world-readable"

    # Every module has bytecode that is never checked against its source.
    sources = [path for path in task.rglob("*.py") if "__pycache__" not in path.parts]
    tag = "cpython-311"  # the project's Python, the runtime's
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), f"no bytecode for {source.relative_to(task)}"
        assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01, f"{compiled} is not unchecked-hash"
    assert not (task / "bin").exists()
    assert not list(task.glob("awslambdaric*")), "the runtime client is Lambda's, not the artifact's"

    python = lambda_project / ".venv" / "bin" / "python"
    # The artifact alone (no site-packages) has the handler and a build matching its files.
    isolated = {**env, "PYTHONPATH": str(task)}
    status = run([str(python), "-S", "-m", PACKAGE, "status"], cwd=tmp_path, env=isolated)
    assert "Status:  up to date" in status.stdout
    where = run(
        [str(python), "-S", "-c", f"import {PACKAGE}.lambda_handler as m; print(m.__file__)"], tmp_path, env=isolated
    )
    assert where.stdout.strip() == str(task / PACKAGE / "lambda_handler.py")

    # The artifact migrates its database itself (Alembic and the revisions ship in it), as the
    # deploy step the README describes runs it.
    database_url = postgres.create_database("lambda_artifact")
    production = {f"{ENV_PREFIX}ENVIRONMENT": "production", f"{ENV_PREFIX}DATABASE_URL": database_url}
    run([str(python), "-S", "-m", PACKAGE, "db", "upgrade"], cwd=tmp_path, env={**isolated, **production})
    assert postgres.psql("SELECT count(*) FROM alembic_version", database="lambda_artifact") == "1"

    api = runtime_api(lambda_project)
    runtime = api.LambdaRuntime(
        f"{PACKAGE}.lambda_handler.handler",
        log_path=tmp_path / "runtime.log",
        env={"PYTHONPATH": str(task), f"{ENV_PREFIX}ALLOWED_HOSTS": '["api.example.com"]', **production},
        python=str(python),
        cwd=task,
    )
    with runtime.start():
        ready = runtime.invoke(api.http_event("http-api", "GET", "/health/ready"))
        assert api.http_reply(ready.payload).status == 200
        created = runtime.invoke(
            api.http_event(
                "rest-api",
                "POST",
                "/items",
                headers={"Content-Type": "application/json"},
                body='{"name": "Mug", "price": "12.50"}',
            )
        )
        assert api.http_reply(created.payload).status == 201, created.body
        item = api.http_reply(created.payload).json()
        fetched = runtime.invoke(api.http_event("http-api", "GET", f"/items/{item['id']}"))
        assert api.http_reply(fetched.payload).json() == item
    assert "Traceback" not in runtime.logs()
    assert postgres.psql("SELECT name FROM items", database="lambda_artifact") == "Mug"


def test_without_the_target_nothing_of_it_is_rendered(default_project: Path) -> None:
    assert not list(default_project.rglob("lambda_handler.py"))
    assert not (default_project / "deploy").exists()
    assert not (default_project / "tests" / "aws_lambda").exists()
    for name in ("mangum", "awslambdaric", "aws-lambda-powertools"):
        assert name not in (default_project / "pyproject.toml").read_text()
        assert f'name = "{name}"' not in (default_project / "uv.lock").read_text()
