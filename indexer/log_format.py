"""Log lines on stderr: plain text (the default) or one JSON object per line (`--log-format json`).

A JSON line holds `time` (ISO 8601, UTC, milliseconds), `level` (lowercase), `logger`, `event` (the
formatted message) and every field the log call supplies with `extra=` (`chain`, `block`, ...), plus
`exception` (the formatted traceback) when the record carries one. Values JSON cannot hold are
written as their `str()`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# the attributes every LogRecord has; the others on a record came from `extra=`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_CORE = ("time", "level", "logger", "event")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _CORE and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(fmt: LogFormat, level: int) -> None:
    """The root logger's handler on stderr, in `fmt`, at `level` (a no-op when the root logger already has
    handlers, as `logging.basicConfig` is)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


def error_line(message: str, logger: str = "indexer.cli", **fields: Any) -> str:
    """The JSON line of an error that ends a command (level `error`, `event` the message)."""
    record = logging.makeLogRecord({"name": logger, "levelno": logging.ERROR, "levelname": "ERROR",
                                    "msg": message, **fields})
    return JsonFormatter().format(record)
