"""Structured JSON logs with a request id, and nothing that could identify a reporter."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime

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


def configure_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn's access log writes the client address and port: it stays off.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
    # pgserver narrates every step at INFO; its warnings and errors are what matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
