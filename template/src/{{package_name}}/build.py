"""The build step: scan and validate the domains, store the manifest and the OpenAPI document."""

from __future__ import annotations

import platform

import fastapi

from . import __version__
from .app import PACKAGE_ROOT, create_app, scan_domains
from .openapi import generate_document
from .routing.catalog import Catalog
from .routing.manifest import Build, BuildError, load_build, remove_build, write_build
from .settings import Settings


def build(settings: Settings, *, force: bool = False) -> tuple[Build, bool]:
    """Build unless an up-to-date build exists (or ``force``); returns the build and whether
    it was made now. Raises ``RouteValidationError`` listing every problem found."""
    if not force:
        try:
            return load_build(PACKAGE_ROOT), False
        except BuildError:
            pass
    remove_build(PACKAGE_ROOT)
    eager = settings.model_copy(update={"routing": "eager"})
    catalog = scan_domains(create_app(eager, catalog=Catalog(())))
    built = write_build(
        PACKAGE_ROOT,
        catalog,
        generate_document(create_app(eager, catalog=catalog)),
        package_version=__version__,
        fastapi_version=fastapi.__version__,
        python_version=platform.python_version(),
    )
    return built, True
