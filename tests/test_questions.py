"""The questions are a public contract: names, defaults, choices, validators."""

from __future__ import annotations

import keyword
import os
import re
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml

from support import DEFAULT_ANSWERS, TEMPLATE_ROOT, python_executable, run

CONFIG = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
QUESTIONS = {name: spec for name, spec in CONFIG.items() if not name.startswith("_") and spec.get("when") is not False}


def test_question_names_are_the_contract() -> None:
    assert list(QUESTIONS) == [
        "project_name",
        "package_name",
        "description",
        "author_name",
        "author_email",
        "python_version",
        "deploy_targets",
        "database",
        "opentelemetry",
        "example_domain",
    ]


def test_every_question_has_help() -> None:
    assert all(spec.get("help", "").strip() for spec in QUESTIONS.values())


def test_choices_and_defaults() -> None:
    assert QUESTIONS["python_version"]["choices"] == ["3.11", "3.12", "3.13"]
    assert QUESTIONS["python_version"]["default"] == "3.11"
    assert sorted(QUESTIONS["deploy_targets"]["choices"].values()) == ["docker", "kubernetes", "lambda"]
    assert QUESTIONS["deploy_targets"]["multiselect"] is True
    assert QUESTIONS["deploy_targets"]["default"] == []
    assert QUESTIONS["example_domain"] == {**QUESTIONS["example_domain"], "type": "bool", "default": True}
    assert QUESTIONS["opentelemetry"] == {**QUESTIONS["opentelemetry"], "type": "bool", "default": True}
    assert sorted(QUESTIONS["database"]["choices"].values()) == ["none", "postgresql", "sqlite"]


@pytest.mark.parametrize(
    ("targets", "database"),
    [([], "sqlite"), (["docker"], "sqlite"), (["lambda"], "postgresql"), (["docker", "kubernetes"], "postgresql")],
)
def test_database_default_follows_the_targets(tmp_path: Path, targets: list[str], database: str) -> None:
    data = {**DEFAULT_ANSWERS, "deploy_targets": targets}
    copier.run_copy(str(TEMPLATE_ROOT), tmp_path, vcs_ref="HEAD", data=data, defaults=True, quiet=True, skip_tasks=True)
    assert yaml.safe_load((tmp_path / ".copier-answers.yml").read_text())["database"] == database


@pytest.mark.parametrize("targets", [["kubernetes"], ["lambda"], ["docker", "lambda", "kubernetes"]])
def test_sqlite_is_refused_where_replicas_share_no_disk(tmp_path: Path, targets: list[str]) -> None:
    data = {**DEFAULT_ANSWERS, "deploy_targets": targets, "database": "sqlite"}
    with pytest.raises(ValueError, match="choose postgresql") as refused:
        copier.run_copy(
            str(TEMPLATE_ROOT),
            tmp_path / "service",
            vcs_ref="HEAD",
            data=data,
            defaults=True,
            quiet=True,
            skip_tasks=True,
        )
    assert "read-only filesystems" in str(refused.value)
    assert not (tmp_path / "service").exists() or not any((tmp_path / "service").iterdir())


def test_copier_settings() -> None:
    assert CONFIG["_subdirectory"] == "template"
    assert CONFIG["_answers_file"] == ".copier-answers.yml"
    assert "_min_copier_version" in CONFIG
    assert "{{ package_name }} serve" in CONFIG["_message_after_copy"]


@pytest.mark.parametrize(
    ("project_name", "package_name"),
    [("Acme Orders", "acme_orders"), ("  Billing -- API v2 ", "billing_api_v2"), ("3D Prints", "svc_3d_prints")],
)
def test_package_name_is_derived(tmp_path: Path, project_name: str, package_name: str) -> None:
    copier.run_copy(
        str(TEMPLATE_ROOT),
        tmp_path,
        data={"project_name": project_name},
        vcs_ref="HEAD",
        defaults=True,
        quiet=True,
        skip_tasks=True,
    )
    answers = yaml.safe_load((tmp_path / ".copier-answers.yml").read_text())
    assert answers["package_name"] == package_name
    assert (tmp_path / "src" / package_name / "app.py").is_file()


REFUSED = {
    "package_name": [
        *["class", "match", "json", "asyncio", "fastapi", "pydantic", "sqlalchemy", "alembic"],
        *["Acme", "9lives", "acme-orders", ""],
    ],
    "project_name": ["   "],
    "author_email": ["not-an-email", "a@b"],
    "python_version": ["3.10"],
    "database": ["mysql", ""],
}


@pytest.mark.parametrize(
    ("question", "answer"), [(question, answer) for question, answers in REFUSED.items() for answer in answers]
)
def test_bad_answer_is_refused_and_nothing_is_written(tmp_path: Path, question: str, answer: str) -> None:
    destination = tmp_path / "service"
    with pytest.raises(ValueError) as refused:
        copier.run_copy(
            str(TEMPLATE_ROOT),
            destination,
            data={**DEFAULT_ANSWERS, question: answer},
            vcs_ref="HEAD",
            defaults=True,
            quiet=True,
            skip_tasks=True,
        )
    assert str(refused.value).strip()
    assert not destination.exists() or not any(destination.iterdir())


def test_every_keyword_is_reserved() -> None:
    reserved = set(CONFIG["reserved_package_names"]["default"].split())
    assert set(keyword.kwlist) - {"False", "None", "True"} <= reserved


def copy_command_line(destination: Path, *arguments: str) -> str:
    """``copier copy --skip-tasks`` as a user runs it; what it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--skip-tasks", "--vcs-ref", "HEAD", *arguments],
        cwd=destination.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("source", ["absolute", "relative"])
def test_skip_tasks_says_what_was_skipped_and_how_to_finish(tmp_path: Path, source: str) -> None:
    destination = tmp_path / "acme-orders"
    template = str(TEMPLATE_ROOT) if source == "absolute" else os.path.relpath(TEMPLATE_ROOT, tmp_path)
    said = copy_command_line(destination, "-d", "project_name=Acme Orders", template, destination.name)
    assert "--skip-tasks skipped the template's three steps after the copy: no uv.lock, no git" in said
    assert "\n  uv lock\n" in said and '\n  git init && git add -A && git commit -m "' in said
    assert f'recorded as given ("{template}")' in said
    relative_hint = "Set _src_path in .copier-answers.yml to the template's absolute path first."
    assert (relative_hint in said) == (source == "relative")
    assert not (destination / "uv.lock").exists() and not (destination / ".git").exists()


@pytest.mark.parametrize(
    "targets", [[], ["docker"], ["kubernetes"], ["lambda"], ["docker", "lambda", "kubernetes"]], ids=str
)
def test_generated_readme_covers_every_chosen_target(tmp_path: Path, targets: list[str]) -> None:
    database = "postgresql" if {"kubernetes", "lambda"} & set(targets) else "sqlite"
    data = {**DEFAULT_ANSWERS, "deploy_targets": targets, "database": database}
    copier.run_copy(str(TEMPLATE_ROOT), tmp_path, vcs_ref="HEAD", data=data, defaults=True, quiet=True, skip_tasks=True)
    readme = (tmp_path / "README.md").read_text()
    sections = {line for line in readme.splitlines() if line.startswith("## ")}
    for target, heading in {"kubernetes": "## Deploy on Kubernetes", "lambda": "## Deploy on AWS Lambda"}.items():
        assert (heading in sections) == (target in targets), heading
    # The container image serves Kubernetes too: its section comes with either.
    assert ("## Container image" in sections) == bool({"docker", "kubernetes"} & set(targets))
    assert ("deploy/kubernetes/README.md" in readme) == ("kubernetes" in targets)
    assert ("deploy/lambda/README.md" in readme) == ("lambda" in targets)
    # Every way the service is run says how a new setting gets its value there.
    setting = readme[readme.index("## Add a setting") :]
    assert "`.env`" in setting
    assert ("docker run --env-file" in setting) == ("docker" in targets)
    assert ("kubectl rollout restart" in setting) == ("kubernetes" in targets)
    assert ("Environment.Variables" in setting) == ("lambda" in targets)
    # The README's last section stays last (users append theirs below it; see docs/upgrading.md).
    last = [line for line in readme.splitlines() if line.startswith("## ")][-1]
    assert last == ("## Deploy on AWS Lambda" if "lambda" in targets else "## Routing, the build and production")


def test_prompts_fit_a_terminal_and_project_name_has_no_fake_default() -> None:
    # A prompt line longer than the terminal is cut; the prompt adds its own few characters.
    for name, spec in QUESTIONS.items():
        assert "\n" not in spec["help"].strip() and len(spec["help"]) <= 76, name
    assert "placeholder" not in QUESTIONS["project_name"] and "default" not in QUESTIONS["project_name"]
    assert "e.g. Acme Orders" in QUESTIONS["project_name"]["help"]


def test_project_name_is_required_with_a_message_that_says_what_to_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='Question "project_name" is required'):
        copier.run_copy(str(TEMPLATE_ROOT), tmp_path / "a", vcs_ref="HEAD", defaults=True, quiet=True, skip_tasks=True)
    with pytest.raises(ValueError, match=re.escape("Type a name for the service, e.g. Acme Orders.")):
        copier.run_copy(
            str(TEMPLATE_ROOT),
            tmp_path / "b",
            vcs_ref="HEAD",
            data={"project_name": " "},
            defaults=True,
            quiet=True,
            skip_tasks=True,
        )


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_every_standard_library_module_is_reserved(version: str) -> None:
    """The hand-kept list stays complete: every module a supported Python ships, as named
    by that interpreter, is refused (where it could be a package name at all)."""
    code = "import sys; print(' '.join(sorted(sys.stdlib_module_names)))"
    names = run([python_executable(version), "-c", code], TEMPLATE_ROOT).stdout.split()
    reserved = set(CONFIG["reserved_package_names"]["default"].split())
    assert {name for name in names if re.fullmatch(r"[a-z][a-z0-9_]*", name)} - reserved == set()
