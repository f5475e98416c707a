"""Render the template's working tree with real Copier, and check what it rendered."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import copier

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ANSWERS: dict[str, Any] = {"project_name": "Acme Orders"}
PACKAGE = "acme_orders"
ENV_PREFIX = "ACME_ORDERS_"
# Left in a rendered file, these mean a template expression or tag was not rendered.
# CloudFormation's dynamic references (``{{resolve:...}}``) look alike and are meant.
JINJA_MARKUP = re.compile(r"(?<!\$)\{\{(?!resolve:)\s*[\w_]+.*?\}\}|\{%-?\s*\w+.*?-?%\}|\{#.*?#\}")


def render(destination: Path, **answers: Any) -> Path:
    """Render the template's working tree (uncommitted edits included) with Copier."""
    copier.run_copy(
        str(TEMPLATE_ROOT),
        destination,
        # Not the latest release tag, which Copier takes by default once one exists.
        vcs_ref="HEAD",
        data={**DEFAULT_ANSWERS, **answers},
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )
    return destination


def leftover_markup(project: Path) -> list[str]:
    """Files of a rendered project that still contain Jinja markup."""
    found = []
    for path in project.rglob("*"):
        if not path.is_file() or ".venv" in path.parts or path.suffix == ".tmpl":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if JINJA_MARKUP.search(text):
            found.append(str(path.relative_to(project)))
    return found
