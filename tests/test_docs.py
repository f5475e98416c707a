"""The documentation site builds strictly, every page of its navigation is built, and the
pages that document the template's contracts (questions, settings) name every item."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from support import ENV_PREFIX, PACKAGE, TEMPLATE_ROOT

MKDOCS_CONFIG = TEMPLATE_ROOT / "mkdocs.yml"
DOCS = TEMPLATE_ROOT / "docs"


def nav_pages(entries: object) -> Iterator[str]:
    """The Markdown files of a MkDocs ``nav``, however deeply nested."""
    if isinstance(entries, str):
        if entries.endswith(".md"):
            yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from nav_pages(value)


def built_page(site: Path, page: str) -> Path:
    """Where MkDocs writes ``page`` with directory URLs (its default)."""
    source = Path(page)
    if source.stem in ("index", "README"):
        return site / source.parent / "index.html"
    return site / source.parent / source.stem / "index.html"


def test_site_builds_strictly_with_every_nav_page(tmp_path: Path) -> None:
    config = yaml.safe_load(MKDOCS_CONFIG.read_text())
    assert config["docs_dir"] == "docs"
    pages = list(nav_pages(config["nav"]))
    assert "index.md" in pages
    assert len(pages) == len(set(pages)), "a page is listed twice in the nav"
    for page in pages:
        assert (DOCS / page).is_file(), f"{page} is in the nav but not in docs/"

    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(MKDOCS_CONFIG),
            "--site-dir",
            str(site),
        ],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    missing = [page for page in pages if not built_page(site, page).is_file()]
    assert missing == [], f"pages in the nav that were not built: {missing}"


def test_every_question_is_documented() -> None:
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    questions = [name for name, spec in config.items() if not name.startswith("_") and spec.get("when") is not False]
    page = (DOCS / "questions.md").read_text()
    undocumented = [name for name in questions if f"## `{name}`" not in page]
    assert undocumented == [], f"questions without a section in docs/questions.md: {undocumented}"


def test_every_setting_is_documented(default_project: Path) -> None:
    # The default render has every setting (its database is SQLite).
    source = (default_project / "src" / PACKAGE / "settings.py").read_text()
    [settings_class] = [
        node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef) and node.name == "Settings"
    ]
    fields = [
        node.target.id
        for node in settings_class.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id != "model_config"
    ]
    assert fields, "no settings found: has settings.py.jinja moved?"
    page = (DOCS / "configuration.md").read_text()
    undocumented = [field for field in fields if f"`{ENV_PREFIX}{field.upper()}`" not in page]
    assert undocumented == [], f"settings without a row in docs/configuration.md: {undocumented}"
