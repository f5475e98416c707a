"""Record where the template is as an absolute path, after ``copier copy`` and every update.

Copier writes the template's source into the answers file (``_src_path``) exactly as it
was given. ``copier copy . ../acme-orders``, run in a template checkout, stores ``.``; a
later ``copier update`` in the project resolves ``.`` to the project itself and fails
(``Unknown revision``), and so does ``copier check-update``. This step replaces a relative
local path with the absolute path of the checkout it named, so that every later update
works from inside the project. Sources that are not relative paths (URLs, ``gh:owner/repo``,
absolute paths, ``~/...``) are left exactly as given.

    record_source.py --template {{ _copier_conf.src_path }} [--answers-file FILE]

Copier renders a git template from a clone of it (``--template`` is that clone), and git
records a local clone's origin as an absolute path: that path is the checkout the user
named. A template that is not a git repository is rendered in place, so ``--template`` is
already its absolute path. Run by the Python that runs Copier, in the project directory;
PyYAML is Copier's own dependency.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PREFIX = "[source]"
KEY = "_src_path"


def is_relative_path(source: str) -> bool:
    """A local path relative to wherever Copier was run (``.``, ``../template``)."""
    if source.startswith(("/", "~")) or "://" in source:
        return False
    # gh:owner/repo, gl:owner/repo, git@host:owner/repo: a colon before any slash.
    return ":" not in source.split("/", 1)[0]


def checkout_of(template: Path) -> Path:
    """The checkout Copier cloned ``template`` from, or ``template`` itself."""
    origin = subprocess.run(
        ["git", "-C", str(template), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    )
    url = origin.stdout.strip() if origin.returncode == 0 else ""
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if url.startswith("/") and Path(url).is_dir():
        return Path(url)
    return template.resolve()


def record(answers_file: Path, template: Path) -> str | None:
    """Rewrite a relative ``_src_path`` in ``answers_file``; return the new value, if any."""
    import yaml  # Copier's own dependency

    text = answers_file.read_text(encoding="utf-8")
    source = (yaml.safe_load(text) or {}).get(KEY)
    if not isinstance(source, str) or not is_relative_path(source):
        return None
    absolute = str(checkout_of(template))
    # The line as Copier's own `to_nice_yaml` writes it, so the next update sees no change.
    line = yaml.safe_dump({KEY: absolute}, default_flow_style=False, allow_unicode=True, width=10_000).rstrip("\n")
    pattern = re.compile(rf"^{KEY}:.*$", re.MULTILINE)
    if len(pattern.findall(text)) != 1:
        return None
    answers_file.write_text(pattern.sub(lambda _: line, text), encoding="utf-8")
    return absolute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="record_source.py", description=__doc__.splitlines()[0])
    parser.add_argument("--template", required=True, type=Path, help="{{ _copier_conf.src_path }}")
    parser.add_argument("--answers-file", default=".copier-answers.yml", type=Path)
    args = parser.parse_args(argv)
    if not args.answers_file.is_file():
        return 0
    recorded = record(args.answers_file, args.template)
    if recorded is not None:
        print(
            f"{PREFIX} the template was given as a relative path; {args.answers_file} records it as {recorded}, "
            "so `copier update` works from inside the project.",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
