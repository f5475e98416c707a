"""Tasks Copier runs once, right after ``copier copy`` generated a project.

Referenced from ``_tasks`` in ``copier.yml`` and run by the Python that runs Copier
(``{{ _copier_python }}``), with the new project as the working directory. Standard
library only: that interpreter is wherever Copier was installed.

    post_copy.py lock                       first ``uv lock`` (pins every dependency)
    post_copy.py git-init [--version REF]   ``git init`` and an initial commit

Each step is optional for the user's machine: when ``uv`` or ``git`` is missing, or the
step fails (offline, no git identity, a commit hook refused), it says what it skipped and
how to finish by hand, and exits 0. A failing task would make Copier delete the project
it just generated, which is worse than a missing lock file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

PREFIX = "[post-copy]"


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def _environment() -> dict[str, str]:
    # The project gets its own .venv; an activated environment (Copier's own, say) must
    # not leak into uv's choice of interpreter or environment.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, env=_environment())


def _tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])


def lock(project: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        say("uv was not found on PATH: skipped `uv lock`.")
        say(f"Install uv (https://docs.astral.sh/uv/), then run `uv lock` in {project}.")
        return
    if (project / "uv.lock").exists():
        say("uv.lock already exists: kept as it is (it belongs to the project).")
        return
    say("uv lock ...")
    result = _run([uv, "lock"])
    if result.returncode != 0:
        say(f"`uv lock` failed (exit {result.returncode}); the project was generated without uv.lock:")
        print(_tail(result), flush=True)
        say(f"Run `uv lock` in {project} once the problem above is fixed.")
        return
    say("uv.lock written.")


def git_init(project: Path, version: str) -> None:
    git = shutil.which("git")
    if git is None:
        say("git was not found on PATH: skipped `git init`.")
        say("`copier update` needs the project in git: run `git init`, `git add -A` and `git commit`.")
        return
    inside = _run([git, "rev-parse", "--is-inside-work-tree"])
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        top = _run([git, "rev-parse", "--show-toplevel"]).stdout.strip()
        say(f"already inside the git repository {top}: not initialising another one; commit the new files there.")
        return
    command = [git, "init", "--quiet"]
    if _run([git, "config", "--get", "init.defaultBranch"]).returncode != 0:
        command += ["--initial-branch", "main"]
    result = _run(command)
    if result.returncode != 0:
        say(f"`git init` failed (exit {result.returncode}):")
        print(_tail(result), flush=True)
        return
    _run([git, "add", "--all"])
    message = f"Generate the project from the FastAPI service template ({version or 'unversioned'})"
    result = _run([git, "commit", "--quiet", "--message", message])
    if result.returncode != 0:
        say(f"initialised the repository and staged the files, but `git commit` failed (exit {result.returncode}):")
        print(_tail(result), flush=True)
        say("Commit them yourself (`git commit`): `copier update` needs a clean repository.")
        return
    say(f"initialised a git repository with one commit: {message}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="post_copy.py", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("lock", help="run `uv lock` in the new project")
    git = steps.add_parser("git-init", help="`git init` the new project and commit every file")
    git.add_argument("--version", default="", help="template version, for the commit message")
    args = parser.parse_args(argv)
    project = Path.cwd()
    if args.step == "lock":
        lock(project)
    else:
        git_init(project, args.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
