"""The outbound client's TLS verification, without reading the whole CA bundle at startup.

``httpx2.AsyncClient(verify=True)`` gets httpcore2's default context, which loads OpenSSL's
CA file, every certificate of the system bundle (about 150), when the client is created:
15-20 ms before readiness, for a client most requests never use. Where the system also keeps
its trusted certificates in a hashed directory (``c_rehash`` names such as ``002c0b4f.0``,
as Debian, Ubuntu and Alpine and the images built on them do in ``/etc/ssl/certs``), OpenSSL
can instead look a certificate up there when a handshake needs it, and keeps it in the
context's store afterwards. Same trust, same verification, paid on the first handshake that
needs a given authority instead of at startup.

Where the operator sets ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``, the context is the one
httpcore2 builds from them, built here at startup: the client itself is made on its first
use (``outbound.py``), and a bundle that is missing or not PEM must stop the startup with a
message naming it rather than fail that request. Everywhere else (no hashed directory, as on
Amazon Linux) the client keeps httpcore2's own default. The upstream fix would be for
``httpcore2.default_ssl_context`` to prefer a hashed ``openssl_capath`` over
``openssl_cafile``; this module can go once it does.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Literal

_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.\d+")


class TrustStoreError(Exception):
    """``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` names nothing the client can verify against."""


def outbound_verify(capath: str | None = None) -> ssl.SSLContext | Literal[True]:
    """What to pass as ``verify=`` to the outbound client; ``capath`` defaults to OpenSSL's."""
    if (operators := _operator_context()) is not None:
        return operators
    directory = capath if capath is not None else ssl.get_default_verify_paths().openssl_capath
    try:
        hashed = any(_HASHED_NAME.fullmatch(entry.name) for entry in Path(directory).iterdir())
    except OSError:
        hashed = False
    if not hashed:
        return True
    # As httpcore2 builds its default (not ``ssl.create_default_context``, whose flags differ
    # between Python versions), with the directory instead of the bundle.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(capath=directory)
    return context


def _operator_context() -> ssl.SSLContext | None:
    """The context httpcore2 builds from ``SSL_CERT_FILE`` (which wins) or ``SSL_CERT_DIR``."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        try:
            return ssl.create_default_context(cafile=cafile)
        except OSError as exc:  # ssl.SSLError included: not PEM, no certificate in it
            raise TrustStoreError(f"SSL_CERT_FILE={cafile!r} cannot be loaded ({exc.strerror or exc})") from exc
    if cadir := os.environ.get("SSL_CERT_DIR"):
        # OpenSSL reads the directory on each handshake, and accepts one that does not exist.
        if not Path(cadir).is_dir():
            raise TrustStoreError(f"SSL_CERT_DIR={cadir!r} is not a directory")
        return ssl.create_default_context(capath=cadir)
    return None
