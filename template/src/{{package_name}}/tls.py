"""The outbound client's TLS verification, without reading the whole CA bundle at startup.

``httpx2.AsyncClient(verify=True)`` gets httpcore2's default context, which loads OpenSSL's
CA file, every certificate of the system bundle (about 150), when the client is created:
15-20 ms before readiness, for a client most requests never use. Where the system also keeps
its trusted certificates in a hashed directory (``c_rehash`` names such as ``002c0b4f.0``,
as Debian, Ubuntu and Alpine and the images built on them do in ``/etc/ssl/certs``), OpenSSL
can instead look a certificate up there when a handshake needs it, and keeps it in the
context's store afterwards. Same trust, same verification, paid on the first handshake that
needs a given authority instead of at startup.

Everywhere else (no hashed directory, as on Amazon Linux, or ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` set by the operator) the client keeps httpcore2's own default. The upstream
fix would be for ``httpcore2.default_ssl_context`` to prefer a hashed ``openssl_capath`` over
``openssl_cafile``; this module can go once it does.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Literal

_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.\d+")


def outbound_verify(capath: str | None = None) -> ssl.SSLContext | Literal[True]:
    """What to pass as ``verify=`` to the outbound client; ``capath`` defaults to OpenSSL's."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return True
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
