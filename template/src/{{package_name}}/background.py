"""Work on a worker thread that must not hold up the requests on the event loop.

CPython takes the interpreter from a busy thread for one that waits for it only every
``sys.getswitchinterval()``: 5 ms by default. While a worker thread imports modules or
hashes files, each step of a request on the event loop (every wake-up from the selector,
every answer from the database driver's thread) can then wait up to 5 ms: a first
readiness check that asks the database took 10-25% longer while the warm-up ran. While
such work runs, the interval is 0.2 ms; the previous one is put back when the last ends.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL = 0.0002

_lock = threading.Lock()
_running = 0
_previous = SWITCH_INTERVAL


@contextmanager
def yielding_to_requests() -> Iterator[None]:
    global _running, _previous
    with _lock:
        if _running == 0:
            _previous = sys.getswitchinterval()
            sys.setswitchinterval(min(_previous, SWITCH_INTERVAL))
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_previous)
