"""Migrations between template versions, run by ``copier update`` from ``_migrations``.

Copier runs an entry of ``_migrations`` once, on the update that crosses its ``version``
(from an older version to this one or a later one); the command runs with the Python that
runs Copier (``{{ _copier_python }}``), in the project directory, with ``$STAGE``,
``$VERSION_FROM``, ``$VERSION_TO`` and ``$VERSION_CURRENT`` set. Copier, its PyYAML and the
standard library are all this script uses.

    migrate.py rename OLD NEW --template SRC [--answers-file FILE]

``rename`` is the ``after`` step of a file the template moved from OLD to NEW (paths as
rendered in the project). Copier alone cannot follow a rename: it deletes OLD, the
project's edits to it included, and writes NEW fresh from the template. This step puts the
edits back: it three-way merges

- base:   OLD as the previous template version rendered it (rendered again, from ``SRC``
          at ``$VERSION_FROM``, with the answers the project had before the update),
- ours:   OLD as the project had it (``git show HEAD:OLD``),
- theirs: NEW as the new template version rendered it,

into NEW. Edits that do not overlap the template's merge cleanly; overlapping ones get the
same inline markers as Copier's own conflicts (``report_conflicts.py`` then reports them).
A project that had deleted OLD gets NEW deleted too: deleted files stay deleted. OLD and a
leftover ``OLD.rej`` (``--conflict rej``) are removed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LABELS = ("before updating", "last update", "after updating")


def say(message: str) -> None:
    version = os.environ.get("VERSION_CURRENT", "?")
    print(f"[migration {version}] {message}", flush=True)


def _git_show(revision_path: str) -> bytes | None:
    result = subprocess.run(["git", "show", revision_path], capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def _previous_answers(answers_file: str) -> dict[str, object]:
    import yaml  # Copier's own dependency

    text = _git_show(f"HEAD:./{answers_file}")
    if text is None:
        sys.exit(f"migrate.py: {answers_file} is not in the last commit; cannot render the previous version")
    answers = yaml.safe_load(text) or {}
    return {key: value for key, value in answers.items() if not key.startswith("_")}


def _render_previous(template: str, answers_file: str, relative: str) -> bytes | None:
    """``relative`` as the previous template version rendered it for this project."""
    import copier

    version_from = os.environ.get("VERSION_FROM")
    if not version_from:
        sys.exit("migrate.py: $VERSION_FROM is not set; run this from copier's _migrations")
    with tempfile.TemporaryDirectory(prefix="template-previous-") as directory:
        copier.run_copy(
            template,
            directory,
            data=_previous_answers(answers_file),
            vcs_ref=version_from,
            defaults=True,
            overwrite=True,
            quiet=True,
            skip_tasks=True,
        )
        path = Path(directory, relative)
        return path.read_bytes() if path.is_file() else None


def _merge(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, int]:
    with tempfile.TemporaryDirectory(prefix="template-merge-") as directory:
        files = []
        for name, content in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(directory, name)
            path.write_bytes(content)
            files.append(str(path))
        labels = [argument for label in LABELS for argument in ("-L", label)]
        result = subprocess.run(["git", "merge-file", "-p", *labels, *files], capture_output=True, check=False)
    if result.returncode < 0 or result.returncode > 127:
        sys.exit(f"migrate.py: git merge-file failed: {result.stderr.decode(errors='replace')}")
    return result.stdout, result.returncode


def _prune_empty_parents(path: Path) -> None:
    """Remove the directories left empty above ``path`` (a relative path in the project)."""
    for parent in path.parents:
        if parent == Path() or any(parent.iterdir()):
            return
        parent.rmdir()


def rename(old: str, new: str, template: str, answers_file: str) -> None:
    new_path = Path(new)
    base = _render_previous(template, answers_file, old)
    if base is None:
        # The previous version did not render OLD for this project's answers: a file of
        # that name is the project's own, and Copier leaves it alone; so does this step.
        say(f"{old} was not rendered by the previous version for this project: nothing to move.")
        return
    ours = _git_show(f"HEAD:./{old}")
    try:
        if ours is None:
            if _git_show(f"HEAD:./{new}") is not None:
                say(f"{old} was already {new} in the project: kept as it is.")
            else:
                new_path.unlink(missing_ok=True)
                _prune_empty_parents(new_path)
                say(f"{old} had been deleted from the project: its successor {new} is not added.")
        elif ours == base:
            say(f"{old} is now {new} (the project had not changed it).")
        elif not new_path.exists():
            new_path.parent.mkdir(parents=True, exist_ok=True)
            new_path.write_bytes(ours)
            say(f"{old} is now {new}, with the project's content (the template does not render {new}).")
        else:
            merged, conflicts = _merge(ours, base, new_path.read_bytes())
            new_path.write_bytes(merged)
            if conflicts:
                say(f"{old} is now {new}: {conflicts} conflict(s) between the project's edits and the template.")
            else:
                say(f"{old} is now {new}, with the project's edits merged in.")
    finally:
        # Copier deleted OLD already (the new version does not render it); with
        # --conflict rej it also left OLD.rej, the project's edits it could not apply.
        for leftover in (Path(old), Path(f"{old}.rej")):
            if leftover.is_file():
                leftover.unlink()
                _prune_empty_parents(leftover)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrate.py", description=__doc__.splitlines()[0])
    operations = parser.add_subparsers(dest="operation", required=True)
    renamed = operations.add_parser("rename", help="carry the project's edits of OLD over to NEW")
    renamed.add_argument("old", metavar="OLD")
    renamed.add_argument("new", metavar="NEW")
    renamed.add_argument("--template", required=True, help="the template source ({{ _copier_conf.src_path }})")
    renamed.add_argument("--answers-file", default=".copier-answers.yml")
    args = parser.parse_args(argv)
    if Path(args.old) == Path(args.new):
        parser.error("OLD and NEW are the same path")
    rename(args.old, args.new, args.template, args.answers_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
