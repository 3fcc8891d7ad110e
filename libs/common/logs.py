"""One structured line per event: ``ts=... lvl=... svc=... logger=... <message as key=value>``.

Configure once, in ``__main__``; modules only do ``log = logging.getLogger(__name__)`` and log
lazily with ``%`` arguments, e.g. ``log.info("lease granted token=%s fence=%d", t, f)``.
"""
from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    """Formats a record as one line of key=value pairs; exceptions are folded onto the same line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage()
        line = f"ts={ts}.{int(record.msecs):03d}Z lvl={record.levelname} svc={self.service} logger={record.name} {msg}"
        if record.exc_info:
            exc = self.formatException(record.exc_info).replace("\n", " | ")
            line += f" exc={exc!r}"
        return line


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as one key=value line tagged with ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websocket", "werkzeug", "websockets"):
        logging.getLogger(noisy).setLevel("WARNING")
