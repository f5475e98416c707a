"""Helpers for the template's tests (``tests/`` is on the path: ``from support import render``).

``render`` renders the template with real Copier and ``run`` runs commands and uv in the
render; ``servers`` runs rendered services under real uvicorn, ``postgres`` real PostgreSQL
servers, ``containers`` podman and kubectl. Fixtures stay in ``conftest.py``.
"""

from .render import DEFAULT_ANSWERS, ENV_PREFIX, JINJA_MARKUP, PACKAGE, TEMPLATE_ROOT, leftover_markup, render
from .run import free_port, project_python, python_executable, run, sync, uv, uv_environment

__all__ = [
    "DEFAULT_ANSWERS",
    "ENV_PREFIX",
    "JINJA_MARKUP",
    "PACKAGE",
    "TEMPLATE_ROOT",
    "free_port",
    "leftover_markup",
    "project_python",
    "python_executable",
    "render",
    "run",
    "sync",
    "uv",
    "uv_environment",
]
