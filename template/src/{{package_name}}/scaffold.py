"""``new-domain``: create a domain package and its tests from the templates in ``_scaffold``."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from .app import PACKAGE_ROOT

TEMPLATES = PACKAGE_ROOT / "_scaffold"
# models.py only where the service has a database.
DOMAIN_FILES = ("__init__.py", "router.py", "schemas.py", "service.py", "dependencies.py", "models.py")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_MODEL = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_RESERVED = frozenset({"health", "docs", "openapi", "test", "tests"})
# Plurals the rules in ``singular`` get wrong; a domain named otherwise takes --model.
_IRREGULAR = {"children": "child", "data": "data", "men": "man", "people": "person", "women": "woman"}
_UNCHANGED = ("ss", "us", "is", "series", "species", "news")


class ScaffoldError(Exception):
    """The domain cannot be created as asked; nothing was written."""


@dataclass(frozen=True)
class NewDomain:
    name: str
    package: Path
    tests: Path


def singular(name: str) -> str:
    """``orders`` -> ``order``, ``shipping_rates`` -> ``shipping_rate``, ``categories`` ->
    ``category``, ``addresses`` -> ``address``: the last word of a domain name, singular."""
    head, _, word = name.rpartition("_")
    if word in _IRREGULAR:
        word = _IRREGULAR[word]
    elif word.endswith(_UNCHANGED) or not word.endswith("s") or len(word) < 3:
        pass
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        word = word[:-2]
    else:
        word = word[:-1]
    return f"{head}_{word}" if head else word


def _snake(model: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", model).lower()


def new_domain(name: str, project_root: Path | None = None, model: str | None = None) -> NewDomain:
    """Create domain ``name`` (plural, as its path: ``orders``); its model is the singular
    (``Order``, ``OrderCreate``, ``get_order(order_id)``) unless ``model`` names it."""
    _check_name(name)
    if model is not None and not _MODEL.fullmatch(model):
        raise ScaffoldError(f"{model!r} is not a model name: use CamelCase letters and digits (e.g. 'ShippingRate')")
    item = _snake(model) if model else singular(name)
    package = PACKAGE_ROOT / "domains" / name
    if package.exists():
        raise ScaffoldError(f"domain {name!r} already exists at {package}")
    root = project_root or _project_root()
    tests = root / "tests" / "domains" / name
    if tests.exists():
        raise ScaffoldError(f"tests for domain {name!r} already exist at {tests}")

    values = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "item": item,
        "item_title": item.replace("_", " ").capitalize(),
        "model": model or "".join(part.capitalize() for part in item.split("_")),
        "prefix": name.replace("_", "-"),
    }
    files = [file for file in DOMAIN_FILES if (TEMPLATES / f"{file}.tmpl").exists()]
    rendered = {package / file: _render(file, values) for file in files}
    rendered[tests / "test_router.py"] = _render("test_router.py", values)
    for path, content in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return NewDomain(name=name, package=package, tests=tests)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"{name!r} is not a valid domain name: use lowercase letters, digits and single "
            "underscores, starting with a letter (e.g. 'orders' or 'shipping_rates')"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _RESERVED:
        raise ScaffoldError(f"{name!r} is reserved; choose another domain name")


def _render(file: str, values: dict[str, str]) -> str:
    return Template((TEMPLATES / f"{file}.tmpl").read_text(encoding="utf-8")).substitute(values)


def _project_root() -> Path:
    for directory in PACKAGE_ROOT.parents:
        if (directory / "pyproject.toml").is_file():
            return directory
    raise ScaffoldError("new-domain runs from the project checkout; no pyproject.toml was found above the package")
