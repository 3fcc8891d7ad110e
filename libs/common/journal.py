"""The journal: every decision and every failure, with a reason code, in ``pb:events``.

A journaled event is also logged (one line) and counted: ``pb:counts`` counts every reason,
``pb:errors`` counts failures only, and the Prometheus counter ``pb_events_total`` mirrors both.
``status`` and ``report`` read these keys; operators never have to grep logs.
"""
from __future__ import annotations

import logging
from typing import Literal

from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys
from libs.common.clock import Clock
from libs.common.metrics import EVENTS_TOTAL

log = logging.getLogger(__name__)

EVENTS_MAXLEN = 200_000
Level = Literal["info", "warn", "error"]


class Journal:
    """Writes events for one service instance.

    Args:
        r: Redis client (decoded).
        service: service name, e.g. ``md_gateway``.
        clock: gives market time (``ts_ms``) and wall time (``wall_ms``) of each event.
    """

    def __init__(self, r: Redis, service: str, clock: Clock) -> None:
        self.r, self.service, self.clock = r, service, clock
        self.local_failures = 0  # journal writes that Redis refused (also logged)

    def record(self, reason: str, *, token_id: str = "", level: Level = "info", **fields: object) -> None:
        """Journal ``reason`` (UPPER_SNAKE code) with string-able ``fields``; never raises."""
        entry = {"ts_ms": self.clock.now_ms(), "wall_ms": self.clock.wall_ms(), "svc": self.service,
                 "reason": reason, "level": level, "token_id": token_id}
        entry.update({k: "" if v is None else v for k, v in fields.items()})
        text = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("ts_ms", "wall_ms", "svc"))
        getattr(log, {"info": "info", "warn": "warning", "error": "error"}[level])("event %s", text)
        EVENTS_TOTAL.labels(self.service, reason, level).inc()
        try:
            pipe = self.r.pipeline(transaction=False)
            pipe.xadd(keys.EVENTS, {k: str(v) for k, v in entry.items()}, maxlen=EVENTS_MAXLEN, approximate=True)
            pipe.hincrby(keys.COUNTS, reason, 1)
            if level == "error":
                pipe.hincrby(keys.ERRORS, reason, 1)
            pipe.execute()
        except RedisError as exc:
            self.local_failures += 1
            log.error("event JOURNAL_WRITE_FAILED reason=%s err=%s", reason, exc)

    def bump(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to a run-wide counter in ``pb:summary`` (signals, orders_posted, fills, ...)."""
        try:
            self.r.hincrby(keys.SUMMARY, counter, n)
        except RedisError as exc:
            self.local_failures += 1
            log.error("event JOURNAL_WRITE_FAILED counter=%s err=%s", counter, exc)
