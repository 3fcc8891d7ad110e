"""The exchange heartbeat (live mode only; SPEC S3.3).

Polymarket's ``POST /v1/heartbeats`` takes ``{"heartbeat_id": ...}`` and answers the id to send
next; once heartbeats have started, missing one for about 10 s cancels all of the account's orders
(reference/polymarket-api.md "Account"). The scheduler owns it so that if the system dies the
exchange cancels every order within ~10 s. It runs in its own thread so a slow step (a Gamma
timeout) never delays it.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

from libs.common.clock import Clock
from libs.common.journal import Journal

log = logging.getLogger(__name__)


class HeartbeatPoster(Protocol):
    """What posts heartbeats: ``libs.common.venue.VenueClient`` (or a stand-in in tests)."""

    def post_heartbeat(self, heartbeat_id: str = "") -> str: ...


class ExchangeHeartbeat:
    """Posts a heartbeat every ``interval_ms`` (wall), chaining the ids the exchange answers.

    Every failure is journaled EXCHANGE_HEARTBEAT_FAILED (error) with the error; the first success
    after failures is journaled EXCHANGE_HEARTBEAT_RESTORED.
    """

    def __init__(self, poster: HeartbeatPoster, journal: Journal, interval_ms: int = 5000) -> None:
        self.poster, self.journal, self.interval_ms = poster, journal, interval_ms
        self.heartbeat_id = ""
        self.failures = 0
        self.sent = 0
        self._next_wall = 0

    def tick(self, wall_ms: int) -> bool:
        """Post if due; True when a heartbeat was accepted now."""
        if wall_ms < self._next_wall:
            return False
        self._next_wall = wall_ms + self.interval_ms
        try:
            self.heartbeat_id = self.poster.post_heartbeat(self.heartbeat_id) or self.heartbeat_id
        except Exception as exc:  # noqa: BLE001 - any failure is journaled; the next tick retries
            self.failures += 1
            self.journal.record("EXCHANGE_HEARTBEAT_FAILED", level="error", error=type(exc).__name__,
                                detail=str(exc)[:300], failures=self.failures)
            return False
        self.sent += 1
        if self.failures:
            self.journal.record("EXCHANGE_HEARTBEAT_RESTORED", failures=self.failures)
            self.failures = 0
        return True

    def run(self, stop: threading.Event, clock: Clock, poll_s: float = 0.25) -> None:
        """Loop until ``stop``: tick every ``poll_s`` wall seconds (meant for a daemon thread)."""
        log.info("exchange heartbeat started interval_ms=%d", self.interval_ms)
        while not stop.is_set():
            self.tick(clock.wall_ms())
            stop.wait(poll_s)
