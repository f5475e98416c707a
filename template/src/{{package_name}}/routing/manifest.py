"""The build: a versioned route manifest and the prebuilt OpenAPI document.

The ``build`` command writes both into the package's ``_build/`` directory, with a fingerprint of
every Python file of the package; the build is *stale* as soon as one of them is added,
removed or changed. Production refuses a missing, corrupt or stale build; development falls
back to scanning the code.

Checking freshness must stay cheap at any number of domains: the manifest holds every
file's size and modification time, compared with one walk of the package. Only when they
differ (a fresh checkout, a touched file) are the files whose time moved hashed and compared
with the content digests kept in a separate file.
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

FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
FINGERPRINT_FILE = "fingerprint.json"
OPENAPI_FILE = "openapi.json"
BUILD_DIRECTORY = "_build"

# path relative to the package -> [size, mtime in ns], as JSON gives it back
Listing = dict[str, list[int]]
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
    return {
        path: (size, mtime_ns, _sha256(package_root / path))
        for path, (size, mtime_ns) in _listing(package_root).items()
    }


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
    sources = fingerprint(package_root)
    manifest = {
        **asdict(info),
        "sources": {path: [size, mtime_ns] for path, (size, mtime_ns, _) in sources.items()},
        "domains": [asdict(domain) for domain in catalog.domains],
    }
    # Written to temporary names and renamed, the manifest last, so a reader never sees
    # half a build.
    _write_atomically(directory / OPENAPI_FILE, openapi_document)
    _write_atomically(directory / FINGERPRINT_FILE, json.dumps(sources).encode())
    _write_atomically(directory / MANIFEST_FILE, json.dumps(manifest, separators=(",", ":")).encode())
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
        recorded_sources = manifest["sources"]
        catalog = Catalog(tuple(_domain(entry) for entry in manifest["domains"]))
    except BuildError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None

    openapi = directory / OPENAPI_FILE
    if not openapi.is_file() or openapi.stat().st_size != info.openapi_bytes:
        raise BuildCorrupt(f"{openapi} is missing or truncated")
    listing = _listing(package_root)
    if listing == recorded_sources:
        return Build(directory, info, catalog)
    changed = _changes(package_root, listing, _read_fingerprint(directory))
    if changed:
        listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise BuildStale(f"the code changed since the build ({listed})")
    return Build(directory, info, catalog)


def _changes(package_root: Path, listing: Listing, recorded: Fingerprint) -> list[str]:
    """Files added, removed or modified since ``recorded`` was taken; a file whose time
    moved but whose size did not is hashed, so a fresh checkout is not reported stale."""
    changed = sorted(set(recorded).symmetric_difference(listing))
    for path, (size, mtime_ns) in listing.items():
        if path not in recorded:
            continue
        recorded_size, recorded_mtime_ns, digest = recorded[path]
        if size != recorded_size or (mtime_ns != recorded_mtime_ns and _sha256(package_root / path) != digest):
            changed.append(path)
    return changed


def _read_fingerprint(directory: Path) -> Fingerprint:
    path = directory / FINGERPRINT_FILE
    try:
        return {
            name: (size, mtime_ns, digest) for name, (size, mtime_ns, digest) in json.loads(path.read_bytes()).items()
        }
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None


def _listing(package_root: Path) -> Listing:
    """Size and modification time of every Python file of the package, but the build's."""
    found: Listing = {}
    # Plain strings rather than Paths: this walk runs at every production start.
    pending = [(str(package_root), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in (BUILD_DIRECTORY, "__pycache__"):
                        pending.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.name.endswith(".py"):
                    status = entry.stat()
                    found[prefix + entry.name] = [status.st_size, status.st_mtime_ns]
    return found


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
