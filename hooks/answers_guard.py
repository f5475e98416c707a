"""Refuse, on ``copier update``, a change of an answer that an update cannot carry out.

``package_name`` names the package directory (``src/<package_name>/``, the user's domains
inside it), every import and the prefix of every environment variable. Copier, given a new
value, renders a second package beside the old one, deletes the template's files from the
old one (the user's edits in them with it), leaves the user's domains behind and keeps
``.env`` with the old prefix: the update reports a clean merge and the service no longer
starts. So a change is refused, with what to do instead:

    answers_guard.py before --data '{{ _copier_conf.data | tojson }}' [--answers-file FILE]
    answers_guard.py after [--answers-file FILE]

``before`` (first of the ``before`` migrations) sees the answers given with ``--data``
and stops the update before it writes anything. Answers typed at the prompts (an update
without ``--defaults``) are only known once the update has rendered; ``after`` (first of
the ``after`` migrations) then puts every file back as it was in the last commit (Copier
refuses to update a repository that is not clean, so that is the whole project) and
stops. Either way ``copier update`` exits non-zero and the project is unchanged.

Standard library plus PyYAML (Copier's own dependency); run by the Python that runs
Copier, in the project directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

PREFIX = "[update]"
WIDTH = 88


def _fixed(name: str, old: object, new: object) -> list[str]:
    """Why ``name`` cannot change from ``old`` to ``new``, and what to do instead."""
    if name != "package_name":
        return []
    return [
        f'package_name cannot change on update (from "{old}" to "{new}"): the package directory '
        f"src/{old}/ with your domains, every import and every {str(old).upper()}_ environment "
        "variable would have to move with it, and Copier would instead write a second package "
        "beside yours and report a clean merge.",
        f'Nothing was changed. Update with the same package_name ("{old}"). To rename the '
        "package, do it yourself in one commit: `git mv src/OLD src/NEW`, replace the imports and "
        f"the {str(old).upper()}_ prefix (.env, .env.example, deploy files), and set package_name "
        "in .copier-answers.yml; later updates follow the new name. See docs/upgrading.md of the "
        'template, "Renaming the package".',
    ]


FIXED_ANSWERS = ("package_name",)


def _say(paragraphs: list[str]) -> None:
    for paragraph in paragraphs:
        lines = textwrap.wrap(paragraph, WIDTH - len(PREFIX) - 1)
        print(f"{PREFIX} {lines[0]}", file=sys.stderr, flush=True)
        for line in lines[1:]:
            print(f"{' ' * len(PREFIX)} {line}", file=sys.stderr, flush=True)


def _committed_answers(answers_file: str) -> dict[str, object]:
    import yaml  # Copier's own dependency

    shown = subprocess.run(["git", "show", f"HEAD:./{answers_file}"], capture_output=True, check=False)
    if shown.returncode != 0:
        return {}
    loaded = yaml.safe_load(shown.stdout) or {}
    return loaded if isinstance(loaded, dict) else {}


def _current_answers(answers_file: str) -> dict[str, object]:
    import yaml

    path = Path(answers_file)
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}


def refusals(previous: dict[str, object], wanted: dict[str, object]) -> list[str]:
    found: list[str] = []
    for name in FIXED_ANSWERS:
        if name in previous and name in wanted and wanted[name] != previous[name]:
            found += _fixed(name, previous[name], wanted[name])
    return found


def _restore() -> None:
    """Put the project back as the last commit has it (the update started from there)."""
    subprocess.run(["git", "reset", "--quiet", "--hard", "HEAD"], check=True)
    # Untracked files are the update's own (the repository was clean); ignored ones stay.
    subprocess.run(["git", "clean", "--quiet", "--force", "-d"], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="answers_guard.py", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("before", "after"))
    parser.add_argument("--data", default="{}", help="the answers given with --data, as JSON")
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    args = parser.parse_args(argv)
    previous = _committed_answers(args.answers_file)
    wanted = json.loads(args.data) if args.stage == "before" else _current_answers(args.answers_file)
    found = refusals(previous, wanted if isinstance(wanted, dict) else {})
    if not found:
        return 0
    if args.stage == "after":
        _restore()
    _say(found)
    return 1


if __name__ == "__main__":
    sys.exit(main())
