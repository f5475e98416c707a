"""Last step of every ``copier update``: say which files need a hand, and fail if any do.

Copier 9 leaves a conflict where the template and the project changed the same lines, as
inline markers (``--conflict inline``, the default; the file is also marked unmerged in
git's index) or as ``<file>.rej`` (``--conflict rej``), but it exits 0 and prints nothing
about it: a scripted update could commit the markers. This step, run as an ``after``
migration without a version (so on every update, after the merge), lists

- files git records as unmerged (Copier's inline conflicts),
- files changed by the update that still hold one of Copier's conflict markers,
- ``*.rej`` files in the working tree,

and exits 1 when there is any, so that ``copier update`` exits non-zero and says so.
Standard library only; run by the Python that runs Copier, in the project directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PREFIX = "[update]"
# The labels Copier gives its inline conflicts (and migrate.py gives its merges).
MARKERS = (b"<<<<<<< before updating", b">>>>>>> after updating")


def _git(top: Path, *arguments: str) -> list[str]:
    result = subprocess.run(
        ["git", "-c", "core.quotePath=false", "-C", str(top), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in result.stdout.splitlines() if line] if result.returncode == 0 else []


def _has_markers(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return any(line.rstrip() in MARKERS for line in stream)
    except OSError:
        return False


def find_problems(top: Path, scope: str) -> tuple[list[str], list[str], list[str]]:
    """Paths relative to the repository root ``top``, limited to the project's ``scope``."""
    unmerged = sorted(set(_git(top, "diff", "--name-only", "--diff-filter=U", "--", scope)))
    changed = set(_git(top, "diff", "HEAD", "--name-only", "--", scope))
    changed |= set(_git(top, "ls-files", "--others", "--exclude-standard", "--", scope))
    marked = sorted(path for path in changed - set(unmerged) if _has_markers(top / path))
    rejects = sorted(
        line[3:]
        for line in _git(top, "status", "--porcelain", "--ignored", "--untracked-files=all", "--", scope)
        if line.startswith(("?? ", "!! ")) and line.endswith(".rej")
    )
    return unmerged, marked, rejects


def main() -> int:
    if shutil.which("git") is None:
        print(f"{PREFIX} git was not found on PATH: cannot check the update for conflicts.", flush=True)
        return 0
    top = _git(Path.cwd(), "rev-parse", "--show-toplevel")
    if not top:
        print(f"{PREFIX} not in a git repository: cannot check the update for conflicts.", flush=True)
        return 0
    scope = (_git(Path.cwd(), "rev-parse", "--show-prefix") or ["."])[0]
    unmerged, marked, rejects = find_problems(Path(top[0]), scope)
    if not (unmerged or marked or rejects):
        print(f"{PREFIX} merged cleanly: no conflict markers, no .rej files.", flush=True)
        return 0
    print(f"{PREFIX} the update is applied, but the template and your edits overlap here:", flush=True)
    for path in unmerged:
        print(f"  conflict (inline markers, unmerged in git): {path}", flush=True)
    for path in marked:
        print(f"  conflict markers: {path}", flush=True)
    for path in rejects:
        print(f"  rejected hunks: {path}", flush=True)
    print(
        f"{PREFIX} resolve each one (keep the right lines, delete the markers or apply the .rej by "
        "hand and delete it), then `git add` and commit. See docs/upgrading.md of the template.",
        flush=True,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
