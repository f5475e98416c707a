"""Logging, configured in one place: JSON lines in production, readable lines locally."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import warnings
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace

# pydantic warns about FastAPI's body-parameter alias the first time a ``defer_build`` model
# is validated as a request body; the alias is FastAPI's and works, so the warning is noise.
DEFERRED_BODY_ALIAS_WARNING = r"The 'alias' attribute with value '\w+' was provided to the `Field\(\)` function"

# C0 and C1 control characters, DEL and Unicode's line separators: text a client chose (a
# path with an encoded newline, an ANSI escape) must not start a forged line of its own or
# recolour the terminal.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set once the service has logged a request's unhandled exception with its request id.
exception_logged_var: ContextVar[bool] = ContextVar("exception_logged", default=False)

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is kept.
# uvicorn's ``color_message`` is its message with ANSI colours: noise in JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "trace_id",
    "span_id",
    "color_message",
}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class TraceContextFilter(logging.Filter):
    """Stamps each record made inside a traced request with its trace and span ids, in the
    W3C hex form that tracing backends search by."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class LoggedExceptionFilter(logging.Filter):
    """Drops uvicorn's second traceback of an exception the service already logged.

    Starlette re-raises an unhandled exception after the 500 is sent, so that servers and
    test clients see it; uvicorn then logs it again, without the request id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Exception in ASGI application") and exception_logged_var.get())


class RepeatedErrorFilter(logging.Filter):
    """Lets one of a kind of error through per ``interval`` seconds, and counts the rest.

    Out of file descriptors, asyncio logs a traceback for every accept it retries: thousands
    a second, tens of megabytes a minute, enough to fill a pod's ephemeral storage and get it
    evicted. The first is logged in full; later ones, at most once per interval, say how many
    were dropped since.
    """

    def __init__(self, prefixes: tuple[str, ...], interval: float = 60.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        prefix = next((prefix for prefix in self.prefixes if message.startswith(prefix)), None)
        if prefix is None:
            return True
        now = time.monotonic()
        last = self._last.get(prefix)
        if last is not None and now - last < self.interval:
            self._dropped[prefix] = self._dropped.get(prefix, 0) + 1
            return False
        self._last[prefix] = now
        dropped = self._dropped.pop(prefix, 0)
        if dropped and last is not None:
            record.msg = f"{message}\n({dropped} more like it in the last {now - last:.0f} s were not logged)"
        return True


class LateProtocolErrorFilter(logging.Filter):
    """Turns asyncio's traceback for a request h11 cannot parse after a response into one
    warning line.

    A client that sends a malformed chunk once the service has answered (an early 404, a
    413) makes uvicorn try a 400 that h11 can no longer send; asyncio logs the failure as an
    ERROR with a traceback and closes the connection. Any client can trigger it, once per
    connection: it is the client's error, worth a warning, and rate-limited with the others.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and str(record.msg).startswith(LATE_PROTOCOL_ERROR) and record.exc_info:
            error = record.exc_info[1]
            if type(error).__name__ == "LocalProtocolError" and type(error).__module__.startswith("h11"):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg, record.args = f"{LATE_PROTOCOL_ERROR}: {CLIENT_SENT_INVALID_DATA}", None
                record.exc_info = record.exc_text = None
        return True


# asyncio's words for an exception raised while a protocol handled received bytes.
LATE_PROTOCOL_ERROR = "Fatal error: protocol.data_received() call failed"
CLIENT_SENT_INVALID_DATA = "a client sent invalid HTTP after the response on its connection, which was closed"

# asyncio's words when accept() fails for want of descriptors (EMFILE, ENFILE, ENOBUFS); it
# goes on trying up to the backlog's length in one go and schedules a retry for each failure,
# and those retries fail again, once per pending retry, after the listening socket is closed.
ACCEPT_ERRORS = ("socket.accept() out of system resource", "Exception in callback BaseSelectorEventLoop._start_serving")
# Each kind logged at most once a minute.
REPEATED_ERRORS = (*ACCEPT_ERRORS, LATE_PROTOCOL_ERROR)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        entry.update((key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(request_tag)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The message only: a traceback appended after it keeps its own lines.
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)


def escape_control_characters(text: str) -> str:
    """``text`` with each control character written as its Python escape (``\\n``, ``\\x1b``)."""
    return _CONTROL_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def ignore_known_warnings() -> None:
    warnings.filterwarnings("ignore", message=DEFERRED_BODY_ALIAS_WARNING)


def configure_logging(level: str, log_format: Literal["json", "console"]) -> None:
    """Route every logger, uvicorn's included, through one handler on stderr."""
    ignore_known_warnings()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(TraceContextFilter())
    handler.addFilter(LoggedExceptionFilter())
    handler.addFilter(LateProtocolErrorFilter())
    handler.addFilter(RepeatedErrorFilter(REPEATED_ERRORS))
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The timing middleware logs each request once, with its id; uvicorn's access log would
    # be a second line per request (``serve --reload`` configures logging after uvicorn).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
