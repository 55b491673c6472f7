"""Structured JSON logs with a request id, and nothing that could identify a reporter."""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import threading
import time
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from app.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
reporter_facing_var: ContextVar[bool] = ContextVar("reporter_facing", default=False)

_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        reporter_facing = reporter_facing_var.get()
        moment = datetime.fromtimestamp(record.created, UTC)
        if reporter_facing:
            # The hour is enough to operate the service and too coarse to match a
            # report to a connection seen on the network.
            moment = moment.replace(minute=0, second=0, microsecond=0)
        entry: dict[str, object] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc_value, exc_tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            # An exception message may quote the data being processed; on reporter paths
            # that data is a report, so only the code location is kept.
            if not reporter_facing:
                entry["exc_message"] = str(exc_value)
            entry["traceback"] = "".join(traceback.format_tb(exc_tb))
        return json.dumps(entry, ensure_ascii=False, default=str)


# SQLAlchemy's echo writes a second record after each statement, "[<statistics>] <params>":
# the statistics are "generated in 0.00012s" or "cached since 1.335s ago", timed from
# the statement's first compilation, so on a reporter path they measure the gap to an
# earlier request (exactly, whatever the line's coarse timestamp says). Parameters are
# hidden (`hide_parameters`), so that record carries nothing else and is dropped whole.
# The pattern catches any other record of SQLAlchemy's that names statistics or a duration.
_SQL_TIMING = re.compile(
    r"generated in|cached since|no key|caching disabled|raw sql|\b\d+(?:\.\d+)?(?:e[-+]?\d+)?s\b"
)


class ReporterPathSqlStatisticsFilter(logging.Filter):
    """Drops SQLAlchemy's per-statement statistics records on reporter-facing requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not reporter_facing_var.get() or not record.name.startswith("sqlalchemy"):
            return True
        template = record.msg if isinstance(record.msg, str) else ""
        if "[%s]" in template:
            return False
        return _SQL_TIMING.search(record.getMessage()) is None


# On the logger, not on a handler, and on import: whichever handler writes the echo and
# whoever turns it on, the filter is there (the middleware imports this module).
logging.getLogger("sqlalchemy.engine.Engine").addFilter(ReporterPathSqlStatisticsFilter())


class PrivacyAwareStreamHandler(logging.StreamHandler):
    """Writes staff-side records at once and holds reporter-facing ones back.

    Coarse timestamps in the text are not enough: Docker and Kubernetes stamp every line
    with the nanosecond it was written. Reporter-facing records are therefore kept in
    memory and written in shuffled batches at fixed clock boundaries (every hour by
    default), so the moment a line appears says nothing about when its request came.
    Lines still held when the process stops are dropped, not written: written at
    shutdown they would place their requests between the last boundary and that moment.
    """

    MAX_HELD = 10_000

    def __init__(self, stream: TextIO | None = None, *, delay_seconds: float = 3600):
        super().__init__(stream)
        self.delay_seconds = delay_seconds
        self._held: list[str] = []
        self._dropped = 0
        self._held_lock = threading.Lock()
        self._closing = threading.Event()
        if delay_seconds > 0:
            threading.Thread(target=self._release_periodically, name="reporter-log", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        if self.delay_seconds <= 0 or not reporter_facing_var.get():
            super().emit(record)
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._held_lock:
            if len(self._held) < self.MAX_HELD:
                self._held.append(line)
            else:
                self._dropped += 1

    def release_held(self) -> None:
        with self._held_lock:
            lines, self._held = self._held, []
            dropped, self._dropped = self._dropped, 0
        random.shuffle(lines)
        if dropped:
            lines.append(json.dumps({"level": "WARNING", "msg": "reporter-facing log entries dropped", "count": dropped}))
        if not lines:
            return
        with self.lock:
            for line in lines:
                self.stream.write(line + self.terminator)
            self.flush()

    def _release_periodically(self) -> None:
        while not self._closing.is_set():
            wait = self.delay_seconds - (time.time() % self.delay_seconds)
            if self._closing.wait(wait):
                break
            try:
                self.release_held()
            except Exception:  # a failed write must not end the releases for good
                self.handleError(logging.LogRecord("cleanwindow", logging.ERROR, __file__, 0, "release failed", (), None))

    def close(self) -> None:
        self._closing.set()
        with self._held_lock:
            self._held.clear()
            self._dropped = 0
        super().close()


def configure_logging(
    level: str = "INFO", *, settings: Settings | None = None, stream: TextIO | None = None
) -> PrivacyAwareStreamHandler:
    delay = settings.reporter_log_delay_seconds if settings is not None else 3600
    handler = PrivacyAwareStreamHandler(stream or sys.stdout, delay_seconds=delay)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for previous in root.handlers:
        previous.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn's access log writes the client address and port: it stays off.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
    # pgserver narrates every step at INFO; its warnings and errors are what matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # Debug's SQL echo, as records through the handler above (held and coarsened on
    # reporter paths like any other line), never through SQLAlchemy's own stdout handler.
    # Parameters stay hidden (`hide_parameters`); INFO, not DEBUG, so no result rows.
    sql_echo = settings is not None and settings.debug
    logging.getLogger("sqlalchemy.engine.Engine").setLevel(logging.INFO if sql_echo else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return handler
