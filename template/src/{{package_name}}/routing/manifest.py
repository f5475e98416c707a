"""The build: a versioned route manifest and the prebuilt OpenAPI document.

The ``build`` command writes both into the package's ``_build/`` directory, with a fingerprint of
every Python file of the package; the build is *stale* as soon as one of them is added,
removed or changed. Production refuses a missing, corrupt or stale build; development falls
back to scanning the code.

Checking freshness must stay cheap at any number of domains: the manifest holds every
file's size and modification time and every directory's modification time. When none of
them moved, one ``stat`` per file and per directory proves the code is the one built (a
directory's time moves whenever an entry is added to it, removed or renamed), with no
directory listed. Otherwise, one walk of the package lists what is there now, and only the
files whose time moved are hashed and compared with the content digests kept in a separate
file (a fresh checkout, a touched file, a new ``__pycache__`` are not stale).

A production service routing lazily checks less at startup, so that a thousand domains
cost what none do: the files outside the domains, and one ``stat`` per domain directory
(any file added, removed or renamed in a domain moves it). Each domain's own files are
checked right before the domain is imported, and for every domain a second after startup
(``Build.verify_domain``, called by lazy routing), so no changed code is ever served. The
manifest keeps each domain's routes and files as JSON text, decoded only when needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, overload

from .catalog import Catalog, DomainSpec, RouteSpec

FORMAT_VERSION = 4
MANIFEST_FILE = "manifest.json"
FINGERPRINT_FILE = "fingerprint.json"
OPENAPI_FILE = "openapi.json"
BUILD_DIRECTORY = "_build"
# zlib level of the stored manifest and document (``build --compression``), chosen by
# measurement at 1000 domains (docs/routing.md); 0 stores them uncompressed.
DEFAULT_COMPRESSION = 6
GZIP_SUFFIX = ".gz"

_GZIP_WBITS = 31  # zlib's gzip container: what ``Content-Encoding: gzip`` means

# path relative to the package -> [size, mtime in ns], as JSON gives it back
Listing = dict[str, list[int]]
# path relative to the package -> (size, mtime in ns, sha256 of the content)
Fingerprint = dict[str, tuple[int, int, str]]
# directory relative to the package ("" for the package itself) -> mtime in ns
Directories = dict[str, int]

# Times this close to the walk that recorded them are not trusted by the stat-only check:
# file systems stamp times from a coarse clock, so a change made just after the walk can
# leave them as they were (git's "racily clean" entries). Such builds take the full walk.
_RACY_NS = 2_000_000_000


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
    compression: int
    stored_openapi_bytes: int

    @property
    def openapi_file(self) -> str:
        return OPENAPI_FILE + (GZIP_SUFFIX if self.compression else "")


@dataclass(frozen=True)
class DomainFiles:
    """A domain's files as the build recorded them, checked apart from the package's."""

    directory: str  # relative to the package
    directories: Directories  # ``directory`` and every directory under it
    encoded: str  # the Listing of its files, as JSON text: decoded when first checked

    @property
    def mtime_ns(self) -> int:
        return self.directories[self.directory]

    @cached_property
    def sources(self) -> Listing:
        sources: Listing = json.loads(self.encoded)
        return sources


@dataclass(frozen=True)
class Build:
    directory: Path
    info: BuildInfo
    catalog: Catalog
    # The domains whose files ``load_build(defer_domains=True)`` left to ``verify_domain``.
    deferred: Mapping[str, DomainFiles] = field(default_factory=dict)
    walked_at_ns: int = 0

    def verify_domain(self, name: str) -> None:
        """Raise ``BuildStale`` unless domain ``name``'s files are the ones built (a no-op
        for a domain verified with the package)."""
        files = self.deferred.get(name)
        if files is None:
            return
        package_root = self.directory.parent
        try:
            sources = files.sources
        except (ValueError, TypeError) as exc:
            raise BuildCorrupt(f"the build's files of domain {name!r} are unreadable ({exc})") from None
        if _unchanged(package_root, sources, files.directories, self.walked_at_ns):
            return
        listing = _listing(package_root, files.directory)
        if listing == sources:
            return
        # Only now the hashes: of the whole package, a file that is read only on this path.
        under = f"{files.directory}/"
        recorded = {path: entry for path, entry in _read_fingerprint(self.directory).items() if path.startswith(under)}
        changed = _changes(package_root, listing, recorded)
        if changed:
            raise BuildStale(f"domain {name!r} changed since the build ({_listed(changed)})")

    def read_openapi(self) -> bytes:
        return self._read_openapi()[0]

    def read_openapi_gzip(self) -> bytes | None:
        """The document as stored, gzip-compressed, ready to be served with
        ``Content-Encoding: gzip``; ``None`` if the build stores it uncompressed."""
        return self._read_openapi()[1]

    def _read_openapi(self) -> tuple[bytes, bytes | None]:
        path = self.directory / self.info.openapi_file
        stored = path.read_bytes()
        try:
            document = zlib.decompress(stored, wbits=_GZIP_WBITS) if self.info.compression else stored
        except zlib.error:
            document = b""
        if hashlib.sha256(document).hexdigest() != self.info.openapi_sha256:
            raise BuildCorrupt(f"{path} does not match its manifest; rebuild")
        return document, stored if self.info.compression else None


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
    compression: int = DEFAULT_COMPRESSION,
    extra: Callable[[Path], None] | None = None,
) -> Build:
    """Write the build aside and put it in place of the previous one in one step, so a
    reader sees the old build or the new one, never a mixture, and a build that fails
    (here or in ``extra``, which adds files to the new build) leaves the old one alone."""
    if not 0 <= compression <= 9:
        raise ValueError(f"the compression level is a zlib level, 0 (none) to 9, not {compression}")
    directory = build_directory(package_root)
    stored_openapi = gzip_bytes(openapi_document, compression) if compression else openapi_document
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
        compression=compression,
        stored_openapi_bytes=len(stored_openapi),
    )
    walked_at_ns = time.time_ns()
    sources = fingerprint(package_root)
    listing = _as_listing(sources)
    directories = _directories(package_root)
    index = catalog.reduced_index()
    domains = []
    for domain in catalog.domains:
        entry: dict[str, object] = {
            "name": domain.name,
            "module": domain.module,
            "attribute": domain.attribute,
            "prefix": domain.prefix,
            "at_startup": domain.at_startup,
            "index": index[domain.name],
            "routes": json.dumps(
                [[route.path, route.methods, route.name, route.websocket] for route in domain.routes],
                separators=(",", ":"),
            ),
        }
        under = _domain_directory(domain)
        if under in directories:
            # As text: a production start reads its directory's time, not its files.
            files = json.dumps(_taken(listing, under), separators=(",", ":"))
            entry.update(directory=under, directories=_taken(directories, under), files=files)
        domains.append(entry)
    manifest = {
        **asdict(info),
        # The files and directories outside the domains' directories.
        "sources": listing,
        "directories": directories,
        "walked_at_ns": walked_at_ns,
        "domains": domains,
    }
    staging = Path(tempfile.mkdtemp(prefix=f"{BUILD_DIRECTORY}.", suffix=".new", dir=package_root))
    try:
        (staging / info.openapi_file).write_bytes(stored_openapi)
        (staging / FINGERPRINT_FILE).write_bytes(json.dumps(sources).encode())
        encoded = json.dumps(manifest, separators=(",", ":")).encode()
        if compression:
            (staging / (MANIFEST_FILE + GZIP_SUFFIX)).write_bytes(gzip_bytes(encoded, compression))
        else:
            (staging / MANIFEST_FILE).write_bytes(encoded)
        (staging / ".gitignore").write_text("*\n")
        if extra is not None:
            extra(staging)
        staging.chmod(0o755)  # mkdtemp's 0o700 would hide the build from the service's user
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Build(directory, info, catalog)


def _replace_directory(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``: an atomic exchange where the kernel offers one (Linux
    ``renameat2``), otherwise two renames with the old build kept until the second."""
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        return  # ``new`` now holds the previous build, removed by the caller
    previous = target.with_name(f"{target.name}.old")
    shutil.rmtree(previous, ignore_errors=True)
    target.rename(previous)
    new.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


def _libc() -> object | None:
    import ctypes  # only the build writes: loading at startup must not import it

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def gzip_bytes(content: bytes, level: int) -> bytes:
    """``content`` in the gzip format, with no timestamp: the same bytes for the same input."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return compressor.compress(content) + compressor.flush()


def read_manifest(directory: Path) -> tuple[Path, bytes]:
    """The manifest's path and its JSON, stored compressed or not."""
    path = directory / MANIFEST_FILE
    try:
        return path, path.read_bytes()
    except FileNotFoundError:
        pass
    try:
        compressed = path.with_name(MANIFEST_FILE + GZIP_SUFFIX)
        stored = compressed.read_bytes()
    except FileNotFoundError:
        raise BuildMissing(f"no build found at {path}") from None
    try:
        return compressed, zlib.decompress(stored, wbits=_GZIP_WBITS)
    except zlib.error as exc:
        raise BuildCorrupt(f"{compressed} is unreadable (zlib: {exc})") from None


def load_build(package_root: Path, *, defer_domains: bool = False) -> Build:
    """Load the build, checking that it is complete and matches the code; with
    ``defer_domains``, each domain's own files are left to ``Build.verify_domain`` unless
    its directory changed (then it is verified now)."""
    directory = build_directory(package_root)
    path, raw = read_manifest(directory)
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != FORMAT_VERSION:
            raise BuildCorrupt(f"{path} has format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
        info = BuildInfo(**{key: manifest[key] for key in BuildInfo.__dataclass_fields__})
        sources: Listing = manifest["sources"]
        directories: Directories = manifest["directories"]
        walked_at_ns: int = manifest["walked_at_ns"]
        entries = manifest["domains"]
        catalog = Catalog(
            tuple(_domain(entry) for entry in entries), index={entry["name"]: entry["index"] for entry in entries}
        )
        files = {entry["name"]: _domain_files(entry) for entry in entries if "directory" in entry}
    except BuildError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None

    openapi = directory / info.openapi_file
    if not openapi.is_file() or openapi.stat().st_size != info.stored_openapi_bytes:
        raise BuildCorrupt(f"{openapi} is missing or truncated")
    if defer_domains:
        deferred = Build(directory, info, catalog, files, walked_at_ns)
        apart = [domain.directory for domain in files.values()]
        if _unchanged(package_root, sources, directories, walked_at_ns, apart):
            for name in _moved(package_root, files, walked_at_ns):
                deferred.verify_domain(name)
            return deferred
    # Every file and directory, the domains' too; the hashes only if a time moved.
    recorded, every_directory = dict(sources), dict(directories)
    try:
        for domain in files.values():
            recorded.update(domain.sources)
            every_directory.update(domain.directories)
    except (ValueError, TypeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None
    if not defer_domains and _unchanged(package_root, recorded, every_directory, walked_at_ns):
        return Build(directory, info, catalog)
    listing = _listing(package_root)
    if listing == recorded:
        return Build(directory, info, catalog)
    changed = _changes(package_root, listing, _read_fingerprint(directory))
    if changed:
        raise BuildStale(f"the code changed since the build ({_listed(changed)})")
    return Build(directory, info, catalog)


def _listed(paths: Sequence[str]) -> str:
    return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _moved(package_root: Path, domains: Mapping[str, DomainFiles], walked_at_ns: int) -> Iterator[str]:
    """The domains whose directory's time moved (or is too recent to be trusted)."""
    settled_ns = walked_at_ns - _RACY_NS
    root = str(package_root)
    stat = os.stat
    for name, domain in domains.items():
        try:
            moved = domain.mtime_ns >= settled_ns or stat(f"{root}/{domain.directory}").st_mtime_ns != domain.mtime_ns
        except OSError:
            moved = True
        if moved:
            yield name


def _unchanged(
    package_root: Path,
    sources: Mapping[str, Sequence[Any]],
    directories: Directories,
    walked_at_ns: int,
    elsewhere: Iterable[str] = (),
) -> bool:
    """True if no recorded file moved and every directory holds what it held: one ``stat``
    per file and per directory, and a listing only of a directory whose time moved (a new
    ``__pycache__``, say) or is too recent to be trusted. ``elsewhere`` names directories
    checked apart, which only count as entries of their parents here."""
    settled_ns = walked_at_ns - _RACY_NS
    root = str(package_root)
    stat = os.stat
    try:
        moved = [
            path
            for path, mtime_ns in directories.items()
            if mtime_ns >= settled_ns or stat(f"{root}/{path}").st_mtime_ns != mtime_ns
        ]
        for path, (size, mtime_ns, *_) in sources.items():
            if mtime_ns >= settled_ns:
                return False
            status = stat(f"{root}/{path}")
            if status.st_size != size or status.st_mtime_ns != mtime_ns:
                return False
        if moved:
            expected: dict[str, set[str]] = {path: set() for path in directories}
            for path in (*sources, *directories, *elsewhere):
                parent, _, name = path.rpartition("/")
                if path and parent in expected:
                    expected[parent].add(name)
            return all(_entries(f"{root}/{path}") == expected[path] for path in moved)
    except (OSError, TypeError, ValueError, KeyError):
        return False
    return True


def _entries(directory: str) -> set[str]:
    """The names the listing walk would visit in ``directory``: Python files and directories."""
    with os.scandir(directory) as entries:
        return {
            entry.name
            for entry in entries
            if (entry.is_dir(follow_symlinks=False) and entry.name not in (BUILD_DIRECTORY, "__pycache__"))
            or (entry.name.endswith(".py") and not entry.is_dir(follow_symlinks=False))
        }


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


def _as_listing(recorded: Fingerprint) -> Listing:
    return {path: [size, mtime_ns] for path, (size, mtime_ns, _) in recorded.items()}


def _read_fingerprint(directory: Path) -> Fingerprint:
    path = directory / FINGERPRINT_FILE
    try:
        return {
            name: (size, mtime_ns, digest) for name, (size, mtime_ns, digest) in json.loads(path.read_bytes()).items()
        }
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise BuildCorrupt(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None


def _listing(package_root: Path, under: str = "") -> Listing:
    """Size and modification time of every Python file of the package (or of its directory
    ``under``), but the build's."""
    found: Listing = {}
    # Plain strings rather than Paths: this walk runs at every production start.
    pending = [(f"{package_root}/{under}" if under else str(package_root), f"{under}/" if under else "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            scanned = os.scandir(directory)
        except FileNotFoundError:
            continue  # a directory removed since the build: its files are missing
        with scanned as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in (BUILD_DIRECTORY, "__pycache__"):
                        pending.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.name.endswith(".py"):
                    status = entry.stat()
                    found[prefix + entry.name] = [status.st_size, status.st_mtime_ns]
    return found


def _directories(package_root: Path) -> Directories:
    """Modification time of every directory the listing walks."""
    found: Directories = {"": package_root.stat().st_mtime_ns}
    pending = [(str(package_root), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name not in (BUILD_DIRECTORY, "__pycache__"):
                    path = f"{prefix}{entry.name}"
                    found[path] = entry.stat(follow_symlinks=False).st_mtime_ns
                    pending.append((entry.path, f"{path}/"))
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _domain_directory(domain: DomainSpec) -> str:
    """``svc.domains.items.router`` -> ``domains/items``: the package the router module is in."""
    return "/".join(domain.module.split(".")[1:-1])


def _taken(recorded: dict[str, Any], directory: str) -> dict[str, Any]:
    """The entries of ``recorded`` at or under ``directory``, removed from it."""
    taken = {path: value for path, value in recorded.items() if path == directory or path.startswith(f"{directory}/")}
    for path in taken:
        del recorded[path]
    return taken


def _domain_files(entry: dict[str, Any]) -> DomainFiles:
    files = DomainFiles(entry["directory"], entry["directories"], entry["files"])
    if not isinstance(files.mtime_ns, int) or not isinstance(files.encoded, str):
        raise TypeError(f"no time or files recorded for {files.directory}")
    return files


def _domain(entry: dict[str, Any]) -> DomainSpec:
    if not isinstance(entry["routes"], str):
        raise TypeError("a domain's routes are stored as JSON text")
    return DomainSpec(
        name=entry["name"],
        module=entry["module"],
        attribute=entry["attribute"],
        prefix=entry["prefix"],
        routes=StoredRoutes(entry["routes"]),
        at_startup=entry["at_startup"],
    )


class StoredRoutes(Sequence[RouteSpec]):
    """A domain's routes as the build stores them, decoded on first use: a production start
    reads a thousand domains without building an object for any of their routes."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded

    @cached_property
    def _routes(self) -> tuple[RouteSpec, ...]:
        return tuple(
            RouteSpec(path, tuple(methods), name, websocket)
            for path, methods, name, websocket in json.loads(self._encoded)
        )

    @overload
    def __getitem__(self, index: int) -> RouteSpec: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[RouteSpec]: ...
    def __getitem__(self, index: int | slice) -> RouteSpec | Sequence[RouteSpec]:
        return self._routes[index]

    def __len__(self) -> int:
        return len(self._routes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self._routes == tuple(other)

    def __hash__(self) -> int:
        return hash(self._routes)

    def __repr__(self) -> str:
        return repr(self._routes)


def remove_build(package_root: Path) -> bool:
    directory = build_directory(package_root)
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True
