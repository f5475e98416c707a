"""The build: a versioned route manifest and the prebuilt OpenAPI document.

``python -m <package> build`` writes both into ``<package>/_build/``. The manifest records a
fingerprint of every Python file of the package; the build is *stale* as soon as one of
them is added, removed or changed. Production refuses a missing, corrupt or stale build;
development falls back to scanning the code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalog import Catalog, DomainSpec, RouteSpec

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
OPENAPI_FILE = "openapi.json"
BUILD_DIRECTORY = "_build"

# path relative to the package -> (size, mtime in ns, sha256 of the content)
Fingerprint = dict[str, tuple[int, int, str]]


class BuildError(Exception):
    """Base of the reasons a build cannot be used."""


class BuildMissing(BuildError):
    pass


class BuildCorrupt(BuildError):
    pass


class BuildStale(BuildError):
    pass


@dataclass(frozen=True)
class BuildInfo:
    format: int
    built_at: str
    package_version: str
    fastapi_version: str
    python_version: str
    domain_count: int
    route_count: int
    openapi_sha256: str
    openapi_bytes: int


@dataclass(frozen=True)
class Build:
    directory: Path
    info: BuildInfo
    catalog: Catalog

    def read_openapi(self) -> bytes:
        document = (self.directory / OPENAPI_FILE).read_bytes()
        if hashlib.sha256(document).hexdigest() != self.info.openapi_sha256:
            raise BuildCorrupt(f"{self.directory / OPENAPI_FILE} does not match its manifest; rebuild")
        return document


def build_directory(package_root: Path) -> Path:
    return package_root / BUILD_DIRECTORY


def fingerprint(package_root: Path) -> Fingerprint:
    return {path: (*_stat(package_root / path), _sha256(package_root / path)) for path in _sources(package_root)}


def write_build(
    package_root: Path,
    catalog: Catalog,
    openapi_document: bytes,
    *,
    package_version: str,
    fastapi_version: str,
    python_version: str,
) -> Build:
    directory = build_directory(package_root)
    directory.mkdir(parents=True, exist_ok=True)
    info = BuildInfo(
        format=FORMAT_VERSION,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        package_version=package_version,
        fastapi_version=fastapi_version,
        python_version=python_version,
        domain_count=len(catalog.domains),
        route_count=catalog.route_count,
        openapi_sha256=hashlib.sha256(openapi_document).hexdigest(),
        openapi_bytes=len(openapi_document),
    )
    manifest = {
        **asdict(info),
        "fingerprint": fingerprint(package_root),
        "domains": [asdict(domain) for domain in catalog.domains],
    }
    # Written to temporary names and renamed, so a reader never sees half a build.
    _write_atomically(directory / OPENAPI_FILE, openapi_document)
    _write_atomically(directory / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
    (directory / ".gitignore").write_text("*\n")
    return Build(directory, info, catalog)


def load_build(package_root: Path) -> Build:
    """Load the build, checking that it is complete and matches the code."""
    directory = build_directory(package_root)
    path = directory / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BuildMissing(f"no build found at {path}") from None
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != FORMAT_VERSION:
            raise BuildCorrupt(f"{path} has format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
        info = BuildInfo(**{key: manifest[key] for key in BuildInfo.__dataclass_fields__})
        recorded = {key: tuple(value) for key, value in manifest["fingerprint"].items()}
        catalog = Catalog(tuple(_domain(entry) for entry in manifest["domains"]))
    except BuildError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None

    openapi = directory / OPENAPI_FILE
    if not openapi.is_file() or openapi.stat().st_size != info.openapi_bytes:
        raise BuildCorrupt(f"{openapi} is missing or truncated")
    changed = _changes(package_root, recorded)
    if changed:
        listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise BuildStale(f"the code changed since the build ({listed})")
    return Build(directory, info, catalog)


def _changes(package_root: Path, recorded: dict[str, Any]) -> list[str]:
    """Files added, removed or modified since ``recorded`` was taken.

    Size and modification time are compared first; only a file whose time moved but whose
    size did not is hashed, so a fresh checkout of unchanged code is not reported stale.
    """
    current = _sources(package_root)
    changed = sorted(set(recorded).symmetric_difference(current))
    for path in current:
        if path not in recorded:
            continue
        size, mtime_ns, digest = recorded[path]
        now_size, now_mtime_ns = _stat(package_root / path)
        if now_size != size or (now_mtime_ns != mtime_ns and _sha256(package_root / path) != digest):
            changed.append(path)
    return changed


def _sources(package_root: Path) -> list[str]:
    found = []
    for directory, subdirectories, files in os.walk(package_root):
        subdirectories[:] = [name for name in subdirectories if name not in (BUILD_DIRECTORY, "__pycache__")]
        relative = os.path.relpath(directory, package_root)
        for name in files:
            if name.endswith(".py"):
                found.append(name if relative == "." else f"{relative}/{name}".replace(os.sep, "/"))
    return found


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _domain(entry: dict[str, Any]) -> DomainSpec:
    routes = tuple(
        RouteSpec(path=route["path"], methods=tuple(route["methods"]), name=route["name"], websocket=route["websocket"])
        for route in entry["routes"]
    )
    return DomainSpec(
        name=entry["name"], module=entry["module"], attribute=entry["attribute"], prefix=entry["prefix"], routes=routes
    )


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(content)
    temporary.replace(path)


def remove_build(package_root: Path) -> bool:
    directory = build_directory(package_root)
    if not directory.exists():
        return False
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    return True
