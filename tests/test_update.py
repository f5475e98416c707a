"""``copier update`` across real template versions, with real git and real Copier.

A throwaway template repository is made from this working tree (uncommitted edits
included) and released three times, each release a real git tag:

- v0.1.0: the tree as it is;
- v0.2.0: one change of every kind an update must carry: a file the user also edits
  (apart from the user's lines, and on the user's lines), a file the user does not touch,
  a file the user deleted, a file renamed with its ``_migrations`` entry, a new line in
  the ``.env`` template and a ``uv.lock`` the template should never have rendered;
- v0.3.0: a small change, to update past a migration.

Projects are generated from v0.1.0 with the ``copier`` command line, committed, edited the
way a user edits them, and updated with ``copier update --trust``. Expected files are
compared byte for byte with fresh renders of the target version.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import DEFAULT_ANSWERS, PACKAGE, TEMPLATE_ROOT, run, uv_environment

pytestmark = pytest.mark.slow

# Template sources (under template/) and the paths they render to.
T_PKG = "src/{{package_name}}"
T_ITEMS = T_PKG + "/domains/{% if example_domain %}items{% endif %}"
# The example domain's service as the default (SQLite) render has it.
T_ITEMS_SERVICE = T_ITEMS + "/{% if database != 'none' %}service.py{% endif %}"
T_WORKFLOW = ".github/workflows/ci.yml.jinja"
T_WORKFLOW_RENAMED = ".github/workflows/tests.yml.jinja"
P_PKG = f"src/{PACKAGE}"
P_ITEMS = f"{P_PKG}/domains/items"
P_ITEMS_TESTS = "tests/domains/items"
WORKFLOW = ".github/workflows/ci.yml"
WORKFLOW_RENAMED = ".github/workflows/tests.yml"

# What release 0.2.0 changes, as lines added at the top of files (far from the user's
# lines at the bottom, unless the user edits the top too).
TEMPLATE_README = "<!-- template 0.2.0: README -->\n"
TEMPLATE_SERVICE = "# template 0.2.0: items service\n"
TEMPLATE_HEALTH = "# template 0.2.0: health\n"
TEMPLATE_SETTINGS = "# template 0.2.0: settings\n"
TEMPLATE_WORKFLOW = "# template 0.2.0: workflow\n"
TEMPLATE_ENV = "# template 0.2.0: a new setting\n"
TEMPLATE_LOCK = "# template 0.2.0: a lock file no template should render\n"
TEMPLATE_MIDDLEWARE = "# template 0.3.0: middleware\n"
MIGRATION_LOG = "template-migrations.log"
MIGRATION_LOGGED = "0.2.0 migration ran (before, from 0.1.0 to 0.2.0)\n"

# What the user changes in a project generated from 0.1.0.
USER_README = "\n## Runbook (ours)\n\nPage the on-call team.\n"
USER_SERVICE = "\n\n# ours: move the store to the database next quarter\n"
USER_SETTINGS = "# ours: reviewed by the security team\n"
USER_WORKFLOW = "      - name: Deploy (ours)\n        run: echo deploy\n"
USER_ENV = f"{PACKAGE.upper()}_LOG_LEVEL=DEBUG\n"
USER_LOCK = "# ours: the project's own lock file\n"
USER_DOMAIN = "orders"

INLINE_MARKERS = ("<<<<<<< before updating", "=======", ">>>>>>> after updating")


# --- helpers -------------------------------------------------------------------------


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")


def append(path: Path, text: str) -> None:
    content = path.read_text(encoding="utf-8")
    path.write_text(content + ("" if content.endswith("\n") else "\n") + text, encoding="utf-8")


def git(project: Path, env: dict[str, str], *arguments: str) -> str:
    return run(["git", *arguments], cwd=project, env=env).stdout


def commit_all(project: Path, env: dict[str, str], message: str) -> None:
    git(project, env, "add", "--all")
    git(project, env, "commit", "--quiet", "--allow-empty", "--message", message)


def copier(*arguments: str, cwd: Path, env: dict[str, str], expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    """The ``copier`` command line, as a user runs it; fails unless it exits ``expect``."""
    result = subprocess.run(
        [sys.executable, "-m", "copier", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if expect is not None and result.returncode != expect:
        pytest.fail(
            f"copier {' '.join(arguments)} exited {result.returncode}, expected {expect}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def data_arguments(answers: dict[str, Any]) -> list[str]:
    arguments = []
    for name, value in answers.items():
        arguments += ["--data", f"{name}={value if isinstance(value, str) else json.dumps(value)}"]
    return arguments


def render_release(repo: Path, destination: Path, env: dict[str, str], ref: str, **answers: Any) -> Path:
    """``copier copy`` of the template repository at ``ref``, tasks skipped."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    copier(
        "copy",
        "--quiet",
        "--defaults",
        "--skip-tasks",
        "--vcs-ref",
        ref,
        *data_arguments({**DEFAULT_ANSWERS, **answers}),
        str(repo),
        str(destination),
        cwd=destination.parent,
        env=env,
    )
    assert not (destination / "hooks").exists(), "hooks/ must never be rendered into a project"
    assert not (destination / "copier.yml").exists()
    return destination


def copy_with_tasks(repo: Path, destination: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``copier copy --trust`` of v0.1.0 with the default answers: the copy tasks run."""
    return copier(
        "copy",
        "--defaults",
        "--trust",
        "--vcs-ref",
        "v0.1.0",
        *data_arguments(DEFAULT_ANSWERS),
        str(repo),
        str(destination),
        cwd=destination.parent,
        env=env,
    )


def generate(repo: Path, destination: Path, env: dict[str, str], ref: str = "v0.1.0", **answers: Any) -> Path:
    """A project as a user starts it: rendered, then committed to its own repository."""
    render_release(repo, destination, env, ref, **answers)
    git(destination, env, "init", "--quiet")
    commit_all(destination, env, f"Generate from the template {ref}")
    return destination


def update(
    project: Path, env: dict[str, str], ref: str, *arguments: str, conflict: str = "inline", expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    return copier(
        "update",
        "--defaults",
        "--trust",
        "--conflict",
        conflict,
        "--vcs-ref",
        ref,
        *arguments,
        cwd=project,
        env=env,
        expect=expect,
    )


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but git's own, by relative path."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[0] == ".git" or "__pycache__" in relative.parts or not path.is_file():
            continue
        found[relative.as_posix()] = path.read_bytes()
    return found


def with_markers(found: dict[str, bytes]) -> list[str]:
    return sorted(
        path
        for path, content in found.items()
        if any(line.startswith((b"<<<<<<< ", b">>>>>>> ")) for line in content.splitlines())
    )


def empty_directories(root: Path) -> list[str]:
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_dir() and ".git" not in path.relative_to(root).parts and not any(path.iterdir())
    )


# --- the template repository ---------------------------------------------------------


def snapshot_working_tree(destination: Path) -> None:
    """Copy the files git tracks or would track (uncommitted edits and new files included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for raw in filter(None, listed.split(b"\0")):
        relative = os.fsdecode(raw)
        source = TEMPLATE_ROOT / relative
        if not (source.is_file() or source.is_symlink()):
            continue  # deleted in the working tree
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def add_migrations(repo: Path, *migrations: dict[str, Any]) -> None:
    """Add release migrations to copier.yml where copier.yml says: after the answer guards,
    before the other steps every update runs."""
    path = repo / "copier.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    existing = config.get("_migrations", [])
    guards = [entry for entry in existing if "hooks/answers_guard.py" in " ".join(entry["command"])]
    assert existing[: len(guards)] == guards, "the answer guards must come first in _migrations"
    config["_migrations"] = [*guards, *migrations, *existing[len(guards) :]]
    path.write_text(yaml.safe_dump(config, sort_keys=False, width=10_000, allow_unicode=True), encoding="utf-8")


def release_0_2_0(repo: Path) -> None:
    template = repo / "template"
    for relative in ("README.md.jinja", T_ITEMS_SERVICE, f"{T_PKG}/health.py", f"{T_PKG}/settings.py.jinja"):
        assert len((template / relative).read_text(encoding="utf-8").splitlines()) >= 20, (
            f"{relative} is too short for edits at its two ends to stay apart"
        )
    prepend(template / "README.md.jinja", TEMPLATE_README)
    prepend(template / T_ITEMS_SERVICE, TEMPLATE_SERVICE)
    prepend(template / T_PKG / "health.py", TEMPLATE_HEALTH)
    prepend(template / T_PKG / "settings.py.jinja", TEMPLATE_SETTINGS)
    append(template / ".env.jinja", TEMPLATE_ENV)
    append(template / ".env.example.jinja", TEMPLATE_ENV)
    (template / "uv.lock").write_text(TEMPLATE_LOCK, encoding="utf-8")
    # The workflow moves to a new name, changed on the way.
    (template / T_WORKFLOW).rename(template / T_WORKFLOW_RENAMED)
    prepend(template / T_WORKFLOW_RENAMED, TEMPLATE_WORKFLOW)
    hook = "{{ _copier_conf.src_path }}/hooks/migrate.py"
    add_migrations(
        repo,
        {
            "version": "0.2.0",
            "when": "{{ _stage == 'after' }}",
            "command": [
                "{{ _copier_python }}",
                hook,
                "rename",
                WORKFLOW,
                WORKFLOW_RENAMED,
                "--template",
                "{{ _copier_conf.src_path }}",
                "--answers-file",
                "{{ _copier_conf.answers_file }}",
            ],
        },
        {
            # A witness of how often the 0.2.0 migrations run: it appends one line per run.
            "version": "0.2.0",
            "when": "{{ _stage == 'before' }}",
            "command": [
                "{{ _copier_python }}",
                "-c",
                "import os; open('" + MIGRATION_LOG + "', 'a').write("
                "f\"0.2.0 migration ran ({os.environ['STAGE']}, from {os.environ['VERSION_PEP440_FROM']} "
                "to {os.environ['VERSION_PEP440_TO']})\\n\")",
            ],
        },
    )


def release_0_3_0(repo: Path) -> None:
    prepend(repo / "template" / T_PKG / "middleware.py", TEMPLATE_MIDDLEWARE)


@pytest.fixture(scope="session")
def copier_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment without the developer's git and Copier settings in it."""
    home = tmp_path_factory.mktemp("update-env")
    gitconfig = home / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Template Tests\n\temail = template-tests@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[tag]\n\tgpgsign = false\n",
        encoding="utf-8",
    )
    settings = home / "copier-settings.yml"
    settings.write_text("{}\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_", "VIRTUAL_ENV", "COPIER_"))}
    env.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        COPIER_SETTINGS_PATH=str(settings),
        PYTHONDONTWRITEBYTECODE="1",
        # The test environment's tools (uv among them) come first, as `tests/run.sh` does.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory, copier_env: dict[str, str]) -> Path:
    repo = tmp_path_factory.mktemp("template-repo") / "fastapi-service-template"
    snapshot_working_tree(repo)
    git(repo, copier_env, "init", "--quiet")
    for version, changes in (("0.1.0", None), ("0.2.0", release_0_2_0), ("0.3.0", release_0_3_0)):
        if changes:
            changes(repo)
        commit_all(repo, copier_env, f"Release {version}")
        git(repo, copier_env, "tag", f"v{version}")
    return repo


@pytest.fixture(scope="session")
def fresh_0_2_0(template_repo: Path, copier_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Release 0.2.0 rendered from nothing with the default answers."""
    return files(render_release(template_repo, tmp_path_factory.mktemp("fresh") / "acme-orders", copier_env, "v0.2.0"))


# --- a project as a user edits it ----------------------------------------------------


def new_domain(project: Path, name: str, interpreter_project: Path, env: dict[str, str]) -> None:
    """``python -m <pkg> new-domain NAME`` in ``project``, with the interpreter and the
    dependencies of an already synced project of the same package (no second ``uv sync``)."""
    python = interpreter_project / ".venv" / "bin" / "python"
    run([str(python), "-m", PACKAGE, "new-domain", name], cwd=project, env={**env, "PYTHONPATH": str(project / "src")})
    assert (project / P_PKG / "domains" / name / "router.py").is_file()
    assert (project / "tests" / "domains" / name / "test_router.py").is_file()
    assert not (interpreter_project / P_PKG / "domains" / name).exists(), "the scaffold wrote to the wrong project"


def edit_like_a_user(project: Path, env: dict[str, str], interpreter_project: Path) -> dict[str, bytes]:
    """The user's edits, committed (``.env`` is git-ignored, so it stays uncommitted)."""
    append(project / "README.md", USER_README)
    append(project / P_ITEMS / "service.py", USER_SERVICE)
    prepend(project / P_PKG / "settings.py", USER_SETTINGS)
    append(project / WORKFLOW, USER_WORKFLOW)
    append(project / ".env", USER_ENV)
    (project / "uv.lock").write_text(USER_LOCK, encoding="utf-8")
    new_domain(project, USER_DOMAIN, interpreter_project, env)
    commit_all(project, env, "Our edits")
    assert ".env" not in git(project, env, "ls-files").splitlines(), ".env must stay out of git"
    return files(project)


@pytest.fixture
def user_project(
    template_repo: Path, copier_env: dict[str, str], default_project: Path, tmp_path: Path
) -> tuple[Path, dict[str, bytes]]:
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    return project, edit_like_a_user(project, copier_env, default_project)


def user_domain_files(found: dict[str, bytes]) -> dict[str, bytes]:
    prefixes = (f"{P_PKG}/domains/{USER_DOMAIN}/", f"tests/domains/{USER_DOMAIN}/")
    return {path: content for path, content in found.items() if path.startswith(prefixes)}


def check_updated_to_0_2_0(
    project: Path, before: dict[str, bytes], fresh: dict[str, bytes], result: subprocess.CompletedProcess[str]
) -> dict[str, bytes]:
    """What an update of the edited project to 0.2.0 must give, whatever the conflict mode;
    every file but ``settings.py`` (the overlapping edit) is checked here."""
    after = files(project)
    text = {path: content.decode() for path, content in after.items()}

    # Template changes where the user edited elsewhere: both arrive, no conflict.
    assert text["README.md"] == fresh["README.md"].decode() + USER_README
    assert text[f"{P_ITEMS}/service.py"] == fresh[f"{P_ITEMS}/service.py"].decode() + USER_SERVICE
    assert text[f"{P_ITEMS}/service.py"].startswith(TEMPLATE_SERVICE)
    # The renamed file: the user's edit followed it, the template's change arrived, the
    # old name is gone, and its migration said so exactly once.
    assert WORKFLOW not in after and f"{WORKFLOW}.rej" not in after
    assert text[WORKFLOW_RENAMED] == fresh[WORKFLOW_RENAMED].decode() + USER_WORKFLOW
    assert output(result).count(f"{WORKFLOW} is now {WORKFLOW_RENAMED}, with the project's edits merged in") == 1
    assert text[MIGRATION_LOG] == MIGRATION_LOGGED
    # Files the user owns: never overwritten, not even by a template that renders them.
    assert text[".env"] == before[".env"].decode()
    assert text[".env.example"].endswith(TEMPLATE_ENV)
    assert text["uv.lock"] == USER_LOCK
    # The user's domain, untouched.
    assert user_domain_files(after) == user_domain_files(before) != {}
    # Every other file is exactly the new release's.
    user_owned = {"README.md", f"{P_ITEMS}/service.py", f"{P_PKG}/settings.py", WORKFLOW_RENAMED, ".env", "uv.lock"}
    for path in fresh.keys() - user_owned:
        assert after.get(path) == fresh[path], f"{path} is not the 0.2.0 template's"
    assert text[f"{P_PKG}/health.py"].startswith(TEMPLATE_HEALTH)
    # Nothing else appeared, and the copy-only tasks did not run.
    extras = after.keys() - fresh.keys() - user_domain_files(after).keys() - {MIGRATION_LOG}
    assert extras <= {f"{P_PKG}/settings.py.rej"}, sorted(extras)
    assert "[post-copy]" not in output(result)
    return after


# --- updates -------------------------------------------------------------------------


def test_update_keeps_user_edits_and_reports_the_overlapping_one_inline(
    user_project: tuple[Path, dict[str, bytes]],
    fresh_0_2_0: dict[str, bytes],
    copier_env: dict[str, str],
) -> None:
    project, before = user_project
    # `copier check-update` sees the newer releases; an untrusted update is refused
    # before it changes anything (the template has tasks and migrations).
    assert copier("check-update", "--quiet", cwd=project, env=copier_env, expect=2).stdout == ""
    refused = copier("update", "--defaults", "--skip-tasks", cwd=project, env=copier_env, expect=4)
    assert "unsafe features: migrations, tasks" in output(refused)
    assert git(project, copier_env, "status", "--porcelain") == ""

    result = update(project, copier_env, "v0.2.0", expect=1)
    after = check_updated_to_0_2_0(project, before, fresh_0_2_0, result)

    # The overlapping edit: inline markers, both sides kept, the file unmerged in git, and
    # the update's output and exit status say so.
    settings = after[f"{P_PKG}/settings.py"].decode()
    for marker in INLINE_MARKERS:
        assert marker in settings.splitlines()
    assert USER_SETTINGS in settings and TEMPLATE_SETTINGS in settings
    assert with_markers(after) == [f"{P_PKG}/settings.py"]
    assert not [path for path in after if path.endswith(".rej")]
    assert git(project, copier_env, "diff", "--name-only", "--diff-filter=U").split() == [f"{P_PKG}/settings.py"]
    assert f"conflict (inline markers, unmerged in git): {P_PKG}/settings.py" in output(result)
    assert "Updating to template version 0.2.0" in output(result)

    # The user resolves it (both lines) and commits.
    resolved = USER_SETTINGS + fresh_0_2_0[f"{P_PKG}/settings.py"].decode()
    (project / P_PKG / "settings.py").write_text(resolved, encoding="utf-8")
    commit_all(project, copier_env, "Update to 0.2.0")

    # Updating again to the same version changes nothing and runs no migration again.
    again = update(project, copier_env, "v0.2.0")
    assert "Keeping template version 0.2.0" in output(again)
    assert "[migration" not in output(again)
    assert git(project, copier_env, "status", "--porcelain") == ""
    assert (project / MIGRATION_LOG).read_text() == MIGRATION_LOGGED

    # Nor does an update to a later version; its change arrives, the user's edits stay.
    later = update(project, copier_env, "v0.3.0")
    assert "Updating to template version 0.3.0" in output(later)
    assert "[migration" not in output(later)
    assert "[update] merged cleanly" in output(later)
    assert (project / MIGRATION_LOG).read_text() == MIGRATION_LOGGED
    assert sorted(git(project, copier_env, "diff", "--name-only").split()) == [
        ".copier-answers.yml",
        f"{P_PKG}/middleware.py",
    ]
    assert (project / P_PKG / "middleware.py").read_text().startswith(TEMPLATE_MIDDLEWARE)
    assert (project / P_PKG / "settings.py").read_text() == resolved
    assert (project / "README.md").read_text().endswith(USER_README)
    assert (project / WORKFLOW_RENAMED).read_text().endswith(USER_WORKFLOW)
    assert (project / ".env").read_bytes() == before[".env"]
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v0.3.0"
    commit_all(project, copier_env, "Update to 0.3.0")
    copier("check-update", "--quiet", cwd=project, env=copier_env, expect=0)


def test_update_with_rej_files_leaves_one_for_the_overlapping_edit_only(
    user_project: tuple[Path, dict[str, bytes]],
    fresh_0_2_0: dict[str, bytes],
    copier_env: dict[str, str],
) -> None:
    project, before = user_project
    result = update(project, copier_env, "v0.2.0", conflict="rej", expect=1)
    after = check_updated_to_0_2_0(project, before, fresh_0_2_0, result)

    # The template's side is applied; the user's overlapping hunk waits in the .rej file.
    assert [path for path in after if path.endswith(".rej")] == [f"{P_PKG}/settings.py.rej"]
    assert after[f"{P_PKG}/settings.py"] == fresh_0_2_0[f"{P_PKG}/settings.py"]
    assert USER_SETTINGS.strip() in after[f"{P_PKG}/settings.py.rej"].decode()
    assert with_markers(after) == []
    assert f"rejected hunks: {P_PKG}/settings.py.rej" in output(result)


def test_deleted_files_stay_deleted(template_repo: Path, copier_env: dict[str, str], tmp_path: Path) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    git(project, copier_env, "rm", "-r", "--quiet", P_ITEMS, P_ITEMS_TESTS, WORKFLOW)
    commit_all(project, copier_env, "We need neither the example domain nor CI")
    (project / ".env").unlink()  # git-ignored, and a `_skip_if_exists` file: rendered again

    # 0.2.0 changes the example domain's service and renames the workflow.
    result = update(project, copier_env, "v0.2.0")
    for path in (P_ITEMS, P_ITEMS_TESTS, WORKFLOW, WORKFLOW_RENAMED):
        assert not (project / path).exists(), f"{path} came back"
    assert f"{WORKFLOW} had been deleted from the project: its successor {WORKFLOW_RENAMED} is not added" in output(
        result
    )
    assert (project / P_PKG / "health.py").read_text().startswith(TEMPLATE_HEALTH)
    assert (project / ".env").read_text().endswith(TEMPLATE_ENV)
    assert empty_directories(project) == []
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["example_domain"] is True
    commit_all(project, copier_env, "Update to 0.2.0")

    # Saying so in the answers is the supported way to keep it gone for good (a recopy
    # renders the answers afresh); the update then only takes the domain's migration away too,
    # the telemetry tests' requests to it and its modules from the thread-pool test.
    update(project, copier_env, "v0.2.0", "--data", "example_domain=false")
    assert set(git(project, copier_env, "status", "--porcelain").splitlines()) == {
        " M .copier-answers.yml",
        " M tests/telemetry/test_telemetry.py",
        " M tests/test_app.py",
        f" D {P_PKG}/migrations/versions/20261201_5e0c2d1a7b44_create_items.py",
    }
    assert not (project / P_ITEMS).exists()


def test_changing_example_domain_answer_adds_and_removes_its_files(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    with_domain = files(project)
    domain_files = {path for path in with_domain if path.startswith((f"{P_ITEMS}/", f"{P_ITEMS_TESTS}/"))}
    assert domain_files
    # The user changed one of its files and added one of their own inside it.
    append(project / P_ITEMS / "router.py", "# ours\n")
    (project / P_ITEMS / "ours.py").write_text("OURS = True\n", encoding="utf-8")
    commit_all(project, copier_env, "Our edits")

    update(project, copier_env, "v0.1.0", "--data", "example_domain=false")
    after = files(project)
    # Copier removes every file the template no longer renders, edited or not; the user's
    # own file stays, and so does the directory holding it.
    assert not domain_files & after.keys()
    assert f"{P_ITEMS}/ours.py" in after
    assert not (project / P_ITEMS_TESTS).exists()
    assert empty_directories(project) == []
    commit_all(project, copier_env, "No example domain")

    update(project, copier_env, "v0.1.0", "--data", "example_domain=true")
    after = files(project)
    assert {path: after.get(path) for path in domain_files} == {path: with_domain[path] for path in domain_files}
    assert f"{P_ITEMS}/ours.py" in after


def test_changing_deploy_targets_adds_and_removes_their_files(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    config = yaml.safe_load((template_repo / "copier.yml").read_text(encoding="utf-8"))
    targets = list(config["deploy_targets"]["choices"].values())
    none = files(render_release(template_repo, tmp_path / "none" / "acme-orders", copier_env, "v0.1.0"))
    every = files(
        render_release(template_repo, tmp_path / "every" / "acme-orders", copier_env, "v0.1.0", deploy_targets=targets)
    )
    target_files = every.keys() - none.keys()
    if not target_files:
        pytest.skip("no deploy target renders a file of its own yet")

    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    update(project, copier_env, "v0.1.0", "--data", f"deploy_targets={json.dumps(targets)}")
    # Exactly what a new project with every target gets: their files, nothing else.
    assert files(project) == every
    commit_all(project, copier_env, "Every deploy target")

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["database"] == "postgresql"  # SQLite cannot serve Kubernetes or Lambda

    # Without the targets, the database stays what it became: the data lives there now.
    update(project, copier_env, "v0.1.0", "--data", "deploy_targets=[]")
    assert files(project) == files(
        render_release(
            template_repo, tmp_path / "none-postgresql" / "acme-orders", copier_env, "v0.1.0", database="postgresql"
        )
    )
    assert empty_directories(project) == []


def test_removing_lambda_takes_its_dependency_out_and_keeps_the_users(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    project = generate(
        template_repo, tmp_path / "acme-orders", copier_env, deploy_targets=["lambda"], database="postgresql"
    )
    env = uv_and_copier_env(copier_env)
    # `uv add` as the user runs it (--frozen: the lock is not what this test is about), with
    # names that sort right next to the target's own: in a sorted list uv would put them
    # beside mangum and awslambdaric, and taking those out would conflict with them.
    run(["uv", "add", "--frozen", "orjson"], cwd=project, env=env)
    run(["uv", "add", "--frozen", "--dev", "hypothesis"], cwd=project, env=env)
    added = (project / "pyproject.toml").read_text()
    assert '"mangum>=' in added and '"orjson",' in added
    commit_all(project, env, "Our dependencies")

    result = update(project, env, "v0.1.0", "--data", "deploy_targets=[]")
    assert "[update] merged cleanly" in output(result)
    pyproject = (project / "pyproject.toml").read_text()
    assert "mangum" not in pyproject and "awslambdaric" not in pyproject
    assert '"orjson",' in pyproject and '"hypothesis",' in pyproject
    # Exactly the template's file without the target, plus the user's two lines.
    fresh = render_release(
        template_repo, tmp_path / "fresh" / "acme-orders", copier_env, "v0.1.0", database="postgresql"
    )
    ours = [line for line in pyproject.splitlines() if line not in (fresh / "pyproject.toml").read_text().splitlines()]
    assert ours == ['    "orjson",', '    "hypothesis",']


# --- answers an update cannot change -----------------------------------------------


def test_package_name_change_is_refused_before_anything_is_written(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    env_file = (project / ".env").read_bytes()
    head = git(project, copier_env, "rev-parse", "HEAD")
    # To a release with migrations of its own: the guard runs before them, too.
    result = update(project, copier_env, "v0.2.0", "--data", "package_name=acme_shop", expect=1)
    said = output(result)
    assert 'package_name cannot change on update (from "acme_orders" to "acme_shop")' in said
    assert "Nothing was changed." in said and '"Renaming the package"' in said
    assert "[migration" not in said and "Updating to template version 0.2.0" in said
    # Not a file written, not even ignored ones; the answers are the old ones.
    assert git(project, copier_env, "status", "--porcelain", "--ignored", "--untracked-files=all") == "!! .env\n"
    assert (project / ".env").read_bytes() == env_file
    assert git(project, copier_env, "rev-parse", "HEAD") == head
    assert not (project / "src" / "acme_shop").exists() and not (project / MIGRATION_LOG).exists()
    # The same answer is no change: the update goes ahead.
    update(project, copier_env, "v0.2.0", "--data", f"package_name={PACKAGE}")
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v0.2.0"


def test_package_name_typed_at_the_prompt_is_refused_and_the_files_put_back(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    """An answer typed at the prompts is only known once Copier has rendered it: the guard's
    ``after`` step, run here on the project as such an update leaves it, puts it back."""
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    env_file = (project / ".env").read_bytes()
    answers_path = project / ".copier-answers.yml"
    answers_path.write_text(answers_path.read_text().replace(f"package_name: {PACKAGE}", "package_name: acme_shop"))
    (project / "src" / "acme_shop").mkdir()
    (project / "src" / "acme_shop" / "app.py").write_text("# rendered by the update\n")
    (project / P_PKG / "app.py").unlink()
    guard = [sys.executable, str(TEMPLATE_ROOT / "hooks" / "answers_guard.py"), "after"]
    result = subprocess.run(guard, cwd=project, env=copier_env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert 'package_name cannot change on update (from "acme_orders" to "acme_shop")' in result.stderr
    assert git(project, copier_env, "status", "--porcelain", "--ignored", "--untracked-files=all") == "!! .env\n"
    assert (project / ".env").read_bytes() == env_file
    assert yaml.safe_load(answers_path.read_text())["package_name"] == PACKAGE
    # Without a change, the step is silent and leaves everything alone.
    result = subprocess.run(guard, cwd=project, env=copier_env, capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_package_renamed_by_hand_as_documented_then_updates_cleanly(
    template_repo: Path, copier_env: dict[str, str], tmp_path: Path
) -> None:
    project = generate(template_repo, tmp_path / "acme-orders", copier_env)
    # The recipe of docs/upgrading.md, "Renaming the package", word for word.
    docs = (TEMPLATE_ROOT / "docs" / "upgrading.md").read_text(encoding="utf-8")
    section = docs[docs.index("### Renaming the package") :]
    recipe = section.split("To rename the package, do it yourself", 1)[1].split("```console\n", 1)[1].split("\n```")[0]
    run(["bash", "-e", "-c", recipe], cwd=project, env=copier_env)
    assert not (project / P_PKG).exists() and (project / "src" / "acme_shop" / "app.py").is_file()
    assert "ACME_SHOP_ENVIRONMENT=" in (project / ".env").read_text()

    result = update(project, copier_env, "v0.2.0")
    assert "[update] merged cleanly" in output(result)
    assert not (project / P_PKG).exists()
    assert (project / "src" / "acme_shop" / "health.py").read_text().startswith(TEMPLATE_HEALTH)
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"] == "acme_shop"
    # Exactly what a service generated as acme_shop gets from 0.2.0.
    fresh = files(
        render_release(
            template_repo, tmp_path / "fresh" / "acme-orders", copier_env, "v0.2.0", package_name="acme_shop"
        )
    )
    after = files(project)
    differing = sorted(path for path in fresh if after.get(path) != fresh[path])
    # `.env` is the user's (`_skip_if_exists`): renamed by the recipe, never rewritten.
    assert differing == [".env"], differing


# --- tasks ---------------------------------------------------------------------------


def path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH like this one with ``tools`` missing, as on a machine without them."""
    shadow = tmp_path / f"bin-without-{'-'.join(tools)}"
    shadow.mkdir()
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), str(Path(sys.executable).parent)]:
        if not directory or not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            link = shadow / entry.name
            if entry.name in tools or link.exists() or link.is_symlink():
                continue
            if entry.is_file() and os.access(entry, os.X_OK):
                link.symlink_to(entry)
    return str(shadow)


def test_copy_refuses_tasks_unless_trusted(template_repo: Path, copier_env: dict[str, str], tmp_path: Path) -> None:
    data = data_arguments(DEFAULT_ANSWERS)
    refused = copier("copy", "--defaults", *data, str(template_repo), "refused", cwd=tmp_path, env=copier_env, expect=4)
    assert "unsafe feature: tasks" in output(refused) and "--trust" in output(refused)
    assert not (tmp_path / "refused").exists()

    render_release(template_repo, tmp_path / "skipped", copier_env, "v0.1.0")
    assert (tmp_path / "skipped" / "pyproject.toml").is_file()
    assert not (tmp_path / "skipped" / ".git").exists() and not (tmp_path / "skipped" / "uv.lock").exists()


def test_copy_tasks_lock_and_commit(template_repo: Path, copier_env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "acme-orders"
    result = copy_with_tasks(template_repo, project, copier_env)
    assert "[post-copy] uv.lock written." in output(result)
    assert git(project, copier_env, "log", "--format=%s").splitlines() == [
        "Generate the project from the FastAPI service template (v0.1.0)"
    ]
    assert git(project, copier_env, "status", "--porcelain", "--untracked-files=all") == ""
    tracked = git(project, copier_env, "ls-files").splitlines()
    assert "uv.lock" in tracked and ".copier-answers.yml" in tracked and ".env" not in tracked
    lock = (project / "uv.lock").read_bytes()
    assert b'name = "acme-orders"' in lock

    # The project is ready for `copier update`; the copy-only tasks do not run on update,
    # and the template's own uv.lock (0.2.0 renders one) does not replace the project's.
    # Here the user's edit of the workflow overlaps the template's, across its rename: the
    # migration leaves inline markers in the new file, and the update reports them.
    prepend(project / WORKFLOW, "# ours: workflow\n")
    commit_all(project, copier_env, "Our workflow")
    result = update(project, copier_env, "v0.2.0", expect=1)
    assert "[post-copy]" not in output(result)
    assert (project / "uv.lock").read_bytes() == lock
    assert f"{WORKFLOW} is now {WORKFLOW_RENAMED}: 1 conflict(s)" in output(result)
    assert f"conflict markers: {WORKFLOW_RENAMED}" in output(result)
    workflow = (project / WORKFLOW_RENAMED).read_text().splitlines()
    assert workflow[:5] == [
        INLINE_MARKERS[0],
        "# ours: workflow",
        "=======",
        TEMPLATE_WORKFLOW.strip(),
        INLINE_MARKERS[2],
    ]
    assert not (project / WORKFLOW).exists()


def test_copy_tasks_skip_cleanly_without_uv(template_repo: Path, copier_env: dict[str, str], tmp_path: Path) -> None:
    env = {**copier_env, "PATH": path_without(tmp_path, "uv", "uvx")}
    project = tmp_path / "acme-orders"
    result = copy_with_tasks(template_repo, project, env)
    assert "[post-copy] uv was not found on PATH: skipped `uv lock`." in output(result)
    assert not (project / "uv.lock").exists()
    assert len(git(project, env, "log", "--format=%H").splitlines()) == 1
    assert git(project, env, "status", "--porcelain") == ""


def test_copy_tasks_skip_cleanly_without_git(template_repo: Path, copier_env: dict[str, str], tmp_path: Path) -> None:
    # Without git, Copier can only copy a template directory as it is (no versions): v0.1.0's.
    plain = tmp_path / "template-0.1.0"
    plain.mkdir()
    archive = subprocess.run(["git", "archive", "v0.1.0"], cwd=template_repo, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(plain, filter="data")
    env = {**copier_env, "PATH": path_without(tmp_path, "uv", "uvx", "git")}
    project = tmp_path / "acme-orders"
    result = copier(
        "copy",
        "--defaults",
        "--trust",
        *data_arguments(DEFAULT_ANSWERS),
        str(plain),
        str(project),
        cwd=tmp_path,
        env=env,
    )
    assert "[post-copy] uv was not found on PATH: skipped `uv lock`." in output(result)
    assert "[post-copy] git was not found on PATH: skipped `git init`." in output(result)
    assert (project / "pyproject.toml").is_file()
    assert not (project / ".git").exists() and not (project / "uv.lock").exists()


# --- the real history, the way the README and docs/upgrading.md tell a user ------------

# The first release: the last commit of the template's first round. The tag travels with a
# normal clone; where it is missing (a clone without tags), this commit stands for it.
RELEASE_0_1_0 = "bde5939372db803422ca43cf972e1b59647c04cc"
# What the user adds to a service generated from 0.1.0 (the four things every team does
# first), none of them a name or a line the template chose.
USER_DEPENDENCY = "tenacity"
USER_README_SECTION = "\n## On call (ours)\n\nPage #acme-orders-oncall; the runbook is in docs/runbook.md.\n"
SETTING_DEFAULT = ("http_timeout: float = Field(default=10.0, gt=0)", "http_timeout: float = Field(default=30.0, gt=0)")


def readme_first_command() -> str:
    """The README's first console command, as written."""
    readme = (TEMPLATE_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("```console\n")[1:]
    assert blocks, "the README has no console block"
    return blocks[0].split("\n```", 1)[0].strip()


def readme_render_command() -> str:
    """The part of the README's first command that renders and syncs the service: from
    ``copier copy`` to ``uv sync`` (Copier itself is installed already, and ``serve`` would
    not return)."""
    steps = readme_first_command().split(" && ")
    start = next(index for index, step in enumerate(steps) if step.startswith("copier copy "))
    end = steps.index("uv sync")
    return " && ".join(steps[start : end + 1])


def release_0_1_0_commit() -> str:
    tagged = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "refs/tags/v0.1.0^{commit}"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if tagged.returncode == 0:
        return tagged.stdout.strip()
    recorded = subprocess.run(
        ["git", "cat-file", "-e", f"{RELEASE_0_1_0}^{{commit}}"], cwd=TEMPLATE_ROOT, capture_output=True, check=False
    )
    if recorded.returncode != 0:
        pytest.fail(
            f"neither the tag v0.1.0 nor the commit it names ({RELEASE_0_1_0}) is in {TEMPLATE_ROOT}: "
            "the update across the real history needs a clone with history (not a shallow one or an archive); "
            "run `git fetch --tags` or clone the template repository again"
        )
    return RELEASE_0_1_0


@pytest.fixture(scope="session")
def history_checkout(tmp_path_factory: pytest.TempPathFactory, copier_env: dict[str, str]) -> Path:
    """A clone of this repository as a user has it: the real history with v0.1.0 tagged, and
    this working tree (uncommitted edits included) committed on top and tagged as the next
    release, v0.2.0."""
    checkout = tmp_path_factory.mktemp("history") / "fastapi-service-template"
    release = release_0_1_0_commit()
    # No tags from the working repository: the clone's tags are exactly the releases here.
    git(TEMPLATE_ROOT, copier_env, "clone", "--quiet", "--no-tags", str(TEMPLATE_ROOT), str(checkout))
    git(checkout, copier_env, "tag", "--annotate", "v0.1.0", release, "--message", "Release 0.1.0")
    git(checkout, copier_env, "rm", "-r", "--quiet", ".")
    snapshot_working_tree(checkout)
    commit_all(checkout, copier_env, "Release 0.2.0 (this working tree)")
    git(checkout, copier_env, "tag", "--annotate", "v0.2.0", "--message", "Release 0.2.0")
    return checkout


def uv_and_copier_env(copier_env: dict[str, str]) -> dict[str, str]:
    return {**uv_environment(), **copier_env}


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-c", command], cwd=cwd, env=env, timeout=900)


def first_week_edits(project: Path, env: dict[str, str]) -> dict[str, bytes]:
    """The user's first edits, each the way a team makes it, committed."""
    run(["uv", "add", USER_DEPENDENCY], cwd=project, env=env)
    append(project / "README.md", USER_README_SECTION)
    run(["uv", "run", "python", "-m", PACKAGE, "new-domain", USER_DOMAIN], cwd=project, env=env)
    settings_path = project / P_PKG / "settings.py"
    old_default, new_default = SETTING_DEFAULT
    assert settings_path.read_text().count(old_default) == 1
    settings_path.write_text(settings_path.read_text().replace(old_default, new_default))
    commit_all(project, env, "Our first week")
    return files(project)


def test_readme_render_from_0_1_0_updates_to_this_release_with_the_users_first_edits(
    history_checkout: Path, copier_env: dict[str, str]
) -> None:
    env = uv_and_copier_env(copier_env)
    # 0.1.0 is the latest release here: the README's command, run as written in the
    # template checkout (relative source and destination), renders it.
    git(history_checkout, env, "tag", "--delete", "v0.2.0")
    shell(readme_render_command(), history_checkout, env)
    project = history_checkout.parent / "acme-orders"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v0.1.0"
    assert answers["_src_path"] == "."  # what 0.1.0 recorded: an update must cope with it
    git(history_checkout, env, "tag", "--annotate", "v0.2.0", "HEAD", "--message", "Release 0.2.0")

    ours = first_week_edits(project, env)

    # The update as docs/upgrading.md says for a service that recorded a relative source:
    # once from the template checkout, naming the service by its absolute path.
    result = shell(f'copier update --trust --defaults "{project}"', history_checkout, env)
    assert "Updating to template version 0.2.0" in output(result)
    assert "[update] merged cleanly: no conflict markers, no .rej files." in output(result)
    after = files(project)
    assert with_markers(after) == [] and not [path for path in after if path.endswith(".rej")]
    assert git(project, env, "diff", "--name-only", "--diff-filter=U") == ""

    # Every edit is there, next to the template's changes.
    answers = yaml.safe_load(after[".copier-answers.yml"])
    assert answers["_commit"] == "v0.2.0"
    assert answers["_src_path"] == str(history_checkout)  # from now on, update in the service
    pyproject = after["pyproject.toml"].decode()
    assert f'"{USER_DEPENDENCY}>=' in pyproject
    assert after["pyproject.toml"] != ours["pyproject.toml"]
    assert after["README.md"].decode().endswith(USER_README_SECTION)
    assert SETTING_DEFAULT[1] in after[f"{P_PKG}/settings.py"].decode()
    assert after["uv.lock"] == ours["uv.lock"]
    assert user_domain_files(after) == user_domain_files(ours) != {}
    commit_all(project, env, "Update the template to v0.2.0")

    # The service passes its own tests, the user's domain included; `uv sync` locks the
    # template's new dependencies into the user's own uv.lock, committed with the update.
    run(["uv", "sync"], cwd=project, env=env)
    pytest = ["uv", "run", "pytest", "-p", "no:cacheprovider"]
    collected = run([*pytest, "--collect-only", "-q"], cwd=project, env=env).stdout
    assert f"tests/domains/{USER_DOMAIN}/" in collected
    tests = run([*pytest, "-q"], cwd=project, env=env, timeout=900)
    assert " passed" in tests.stdout and " failed" not in tests.stdout
    assert git(project, env, "status", "--porcelain") == " M uv.lock\n"
    commit_all(project, env, "Lock the template's new dependencies")

    # The next release is found and taken from inside the service, as the docs say.
    (history_checkout / "template" / "UPGRADE-WITNESS.md").write_text("0.2.1\n", encoding="utf-8")
    commit_all(history_checkout, env, "Release 0.2.1")
    git(history_checkout, env, "tag", "--annotate", "v0.2.1", "--message", "Release 0.2.1")
    copier("check-update", "--quiet", cwd=project, env=env, expect=2)
    result = copier("update", "--trust", "--defaults", cwd=project, env=env)
    assert "[update] merged cleanly" in output(result)
    assert (project / "UPGRADE-WITNESS.md").read_text() == "0.2.1\n"


def test_rej_mode_leaves_rejects_where_the_recommended_inline_mode_merges(
    history_checkout: Path, copier_env: dict[str, str]
) -> None:
    """The same first week, updated from 0.1.0 with ``--conflict rej``: the edits the inline
    test above merges without a conflict come back as .rej files, the file holding the
    template's version without them (why docs/upgrading.md recommends inline)."""
    env = uv_and_copier_env(copier_env)
    project = history_checkout.parent / "acme-orders-rej"
    copy = f'copier copy --trust --defaults --vcs-ref v0.1.0 -d project_name="Acme Orders" . ../{project.name}'
    shell(copy, history_checkout, env)
    first_week_edits(project, env)
    update = f'copier update --trust --defaults --conflict rej --vcs-ref v0.2.0 "{project}"'
    result = subprocess.run(["bash", "-c", update], cwd=history_checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 1, output(result)
    rejected = sorted(path for path in files(project) if path.endswith(".rej"))
    assert rejected == ["pyproject.toml.rej", f"{P_PKG}/settings.py.rej"], output(result)
    assert "rejected hunks: pyproject.toml.rej" in output(result)
    # The hunk with the user's dependency waits in the .rej file, not in pyproject.toml.
    assert USER_DEPENDENCY in (project / "pyproject.toml.rej").read_text()
    assert USER_DEPENDENCY not in (project / "pyproject.toml").read_text()
    assert SETTING_DEFAULT[1] not in (project / P_PKG / "settings.py").read_text()
