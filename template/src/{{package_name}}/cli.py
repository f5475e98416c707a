"""Command line: ``serve``, ``build``, ``status``, ``clean`` and ``new-domain``.

Exit codes: 0 success, 1 the routes or the build are invalid, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = f"python -m {__package__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported here so ``--help`` and usage errors stay instant.
    from .app import StartupError
    from .logs import ignore_known_warnings
    from .routing.catalog import RouteValidationError
    from .routing.manifest import BuildError
    from .scaffold import ScaffoldError
    from .settings import SettingsError

    ignore_known_warnings()
    try:
        return args.command(args)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RouteValidationError as exc:
        count = len(exc.problems)
        print(f"error: the routes are invalid ({count} problem{'s' if count > 1 else ''}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (BuildError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .logs import configure_logging
    from .server import serve, serve_with_reload
    from .settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    if args.reload:
        serve_with_reload(settings, host=host, port=port)
    else:
        serve(create_app(settings), settings, host=host, port=port)
    return 0


def _build(args: argparse.Namespace) -> int:
    from .build import build
    from .settings import load_settings

    # The build does not depend on where it will run: it is made as production will load it.
    built, made = build(load_settings(environment="production"), force=args.force)
    info = built.info
    verb = "Built" if made else "Up to date:"
    print(f"{verb} {info.domain_count} domains, {info.route_count} routes -> {built.directory}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .app import PACKAGE_ROOT
    from .routing.manifest import BuildError, build_directory, load_build

    try:
        built = load_build(PACKAGE_ROOT)
        built.read_openapi()  # checks the document against its digest
    except BuildError as exc:
        print(f"Status:  not usable ({exc})")
        print(f"Path:    {build_directory(PACKAGE_ROOT)}")
        return 1
    info = built.info
    size = sum(path.stat().st_size for path in built.directory.iterdir())
    print(f"Status:  up to date (format {info.format})")
    print(f"Built:   {info.built_at} by version {info.package_version}")
    print(f"         (FastAPI {info.fastapi_version}, Python {info.python_version})")
    print(f"Domains: {info.domain_count}")
    print(f"Routes:  {info.route_count}")
    print(f"Size:    {size / 1024:.1f} KiB (OpenAPI document {info.openapi_bytes / 1024:.1f} KiB)")
    print(f"Path:    {built.directory}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from .app import PACKAGE_ROOT
    from .routing.manifest import build_directory, remove_build

    removed = remove_build(PACKAGE_ROOT)
    print(f"{'Removed' if removed else 'Nothing to remove at'} {build_directory(PACKAGE_ROOT)}")
    return 0


def _new_domain(args: argparse.Namespace) -> int:
    from .scaffold import new_domain

    for name in args.names:
        created = new_domain(name)
        print(f"Created domain {created.name!r}: {created.package} (tests in {created.tests})")
    print(f"Run `{PROG} build` before deploying.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service with uvicorn (one worker)")
    serve.add_argument("--host", help="interface to bind (default: the HOST setting)")
    serve.add_argument("--port", type=int, help="port to bind (default: the PORT setting)")
    serve.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    serve.set_defaults(command=_serve)

    build = commands.add_parser("build", help="validate the routes and prebuild the manifest and OpenAPI document")
    build.add_argument("--force", action="store_true", help="rebuild even if the build is up to date")
    build.set_defaults(command=_build)

    commands.add_parser("status", help="describe the current build").set_defaults(command=_status)
    commands.add_parser("clean", help="remove the build").set_defaults(command=_clean)

    new_domain = commands.add_parser("new-domain", help="scaffold one or more domains with their tests")
    new_domain.add_argument("names", nargs="+", metavar="NAME", help="domain name, e.g. orders")
    new_domain.set_defaults(command=_new_domain)
    return parser
