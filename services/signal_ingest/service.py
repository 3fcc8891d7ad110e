"""signal_ingest service shell (SPEC S2.1): poll every enabled leader, publish new fills.

``step()`` heartbeats and, when a poll is due (every ``poll_interval_s`` wall seconds, not during a
429 backoff), polls each enabled leader once: load its cursor, read its fills newest first until
they reach the cursor (v2: ``/v2/trades`` cursor pages; v1: ``/trades`` with a widening ``limit``;
every request under the shared token bucket, at most ``max_pages``), plan the
fresh occurrences with the pure multiset cursor, classify them, and commit signals + dead letters +
the new cursor in one Lua call. A failed fetch journals its reason and leaves the cursor where it
was, so the next poll retries.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from functools import partial
from typing import Callable, TypeVar

from redis import Redis

from libs.common import metrics
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.runtime import heartbeat
from services.signal_ingest.batch import Batch, classify
from services.signal_ingest.config import IngestSettings, LeaderTarget
from services.signal_ingest.cursor import (Cursor, Plan, Row, first_run_ts, make_rows, needs_next_cursor_page,
                                           needs_next_page, plan, plan_first_run, widening_limits)
from services.signal_ingest.data_api import DataApi, FetchError
from services.signal_ingest.ratelimit import TokenBucket, backoff_ms
from services.signal_ingest.store import CursorStore
from services.signal_ingest.wire import V1, V2

log = logging.getLogger(__name__)

SERVICE = "signal_ingest"
T = TypeVar("T")


@dataclass(frozen=True)
class Fetched:
    """Rows of one poll (newest first), requests made, and whether the widest read (``page_size *
    max_pages`` rows) still did not reach the cursor. When it did not, the rows older than the read
    and newer than the cursor are not published (journaled ``PAGE_LIMIT_HIT``)."""

    rows: list[Row]
    requests: int
    limit_hit: bool


class RoundStopped(Exception):
    """HTTP 429: stop polling every leader until the backoff has passed."""


class SignalIngest:
    """One signal_ingest instance.

    Args:
        r: decoded Redis client.
        settings: ``IngestSettings``.
        clock: ``now_ms`` market time (first-run cursor, journal), ``wall_ms``/``sleep`` for polling,
            rate limit and backoff.
        journal: the service's journal.
        api: the data-api client.
        instance: instance id for heartbeats.
        rng: jitter source (seed it in tests).
    """

    def __init__(self, r: Redis, settings: IngestSettings, clock: Clock, journal: Journal, api: DataApi,
                 instance: str, rng: random.Random | None = None) -> None:
        self.r, self.s, self.clock, self.journal, self.api = r, settings, clock, journal, api
        self.instance = instance
        self.rng = rng or random.Random()
        self.store = CursorStore(r)
        self.bucket = TokenBucket(settings.rate_limit_per_10s, clock.wall_ms())
        self.next_poll_ms = 0
        self.backoff_until_ms = 0
        self.failures_429 = 0
        self.stats = {"polls": 0, "published": 0, "dead": 0, "fetch_errors": 0, "requests": 0}

    def step(self) -> None:
        """Heartbeat; poll every enabled leader once if a poll is due."""
        now = self.clock.wall_ms()
        heartbeat(self.r, self.instance, SERVICE, self.clock,
                  {**self.stats, "next_poll_ms": self.next_poll_ms, "backoff_until_ms": self.backoff_until_ms})
        if now < self.next_poll_ms or now < self.backoff_until_ms:
            return
        self.next_poll_ms = now + int(self.s.poll_interval_s * 1000)
        self.poll_round()

    def poll_round(self) -> None:
        """Poll each enabled leader once; a 429 ends the round (the limit is per client, not per leader)."""
        for target in self.s.enabled_leaders():
            try:
                self.poll_account(target)
            except RoundStopped:
                return

    def poll_account(self, target: LeaderTarget) -> None:
        """Fetch, plan and commit one leader's new fills.

        Raises:
            RoundStopped: the data-api answered 429 (backoff is set and journaled).
        """
        self.stats["polls"] += 1
        try:
            stored = self.store.load(target.account)
        except ValueError as exc:
            self.journal.record("CURSOR_CORRUPT", level="error", account=target.account, detail=str(exc))
            return
        start_ts = stored.ts if stored else first_run_ts(self.clock.now_ms(), self.s.lookback_s)
        fetched = self._fetch(target.account, start_ts)
        if fetched is None:
            return
        if fetched.limit_hit:
            self.journal.record("PAGE_LIMIT_HIT", level="warn", account=target.account, rows=len(fetched.rows),
                                requests=fetched.requests, cursor_ts=start_ts,
                                oldest_ts=min((r.ts for r in fetched.rows if r.ts), default=""))
        p = plan(stored, fetched.rows) if stored else plan_first_run(start_ts, fetched.rows)
        self._commit(target, stored, p, start_ts)

    # ---- fetching ----

    def _get(self, account: str, call: Callable[[], T]) -> T:
        """One request ``call()`` under the shared token bucket.

        Raises:
            FetchError: any failure other than 429.
            RoundStopped: on 429.
        """
        while not self.bucket.take(self.clock.wall_ms()):
            self.clock.sleep(self.bucket.wait_ms(self.clock.wall_ms()) / 1000)
        self.stats["requests"] += 1
        try:
            out = call()
        except FetchError as exc:
            if exc.reason == "HTTP_429":
                self._back_off(account, exc)
                raise RoundStopped() from None
            raise
        self.failures_429 = 0
        return out

    def _back_off(self, account: str, exc: FetchError) -> None:
        self.failures_429 += 1
        wait = backoff_ms(self.failures_429, exc.retry_after_s, int(self.s.backoff_max_s * 1000), self.rng.random())
        self.backoff_until_ms = self.clock.wall_ms() + wait
        self.stats["fetch_errors"] += 1
        self.journal.record("HTTP_429", level="warn", account=account, backoff_ms=wait,
                            retry_after_s=exc.retry_after_s, consecutive=self.failures_429)

    def _fetch(self, account: str, cursor_ts: int) -> Fetched | None:
        """Read ``account``'s rows newest first down to ``cursor_ts`` with the configured data-api
        version; None (journaled, cursor untouched) when a request failed."""
        try:
            if self.s.data_api_version == V1:
                return self._fetch_v1(account, cursor_ts)
            return self._fetch_v2(account, cursor_ts)
        except FetchError as exc:
            self.stats["fetch_errors"] += 1
            self.journal.record(exc.reason, level="error", account=account, status=exc.status, detail=exc.detail)
            return None

    def _fetch_v2(self, account: str, cursor_ts: int) -> Fetched:
        """Follow ``/v2/trades`` cursor pages until a page reaches ``cursor_ts`` or the server has no
        more (``cursor.needs_next_cursor_page``), at most ``max_pages`` requests."""
        rows: list[Row] = []
        page_cursor: str | None = None
        for n in range(1, self.s.max_pages + 1):
            page = self._get(account, partial(self.api.trades_v2, account, self.s.page_size, page_cursor))
            got = make_rows(page.rows, V2)
            rows += got
            if not needs_next_cursor_page(got, cursor_ts, page.next_cursor):
                return Fetched(rows, n, False)
            page_cursor = page.next_cursor
        return Fetched(rows, self.s.max_pages, True)

    def _fetch_v1(self, account: str, cursor_ts: int) -> Fetched:
        """Read ``/trades`` widening ``limit`` until the response reaches ``cursor_ts`` (see
        ``cursor.widening_limits``)."""
        rows: list[Row] = []
        limits = widening_limits(self.s.page_size, self.s.page_size * self.s.max_pages)
        for n, limit in enumerate(limits, start=1):
            rows = make_rows(self._get(account, partial(self.api.trades, account, limit, 0)))
            if not needs_next_page(rows, cursor_ts, limit):
                return Fetched(rows, n, False)
        return Fetched(rows, len(limits), True)

    # ---- publishing ----

    def _commit(self, target: LeaderTarget, stored: Cursor | None, p: Plan, start_ts: int) -> None:
        """Commit the plan atomically, then journal it; nothing is written when nothing changed.
        ``start_ts`` is the cursor timestamp the poll read down to (the first-run one if new)."""
        if stored is not None and not p.fresh and p.cursor.same_progress(stored):
            return
        now = self.clock.now_ms()
        batch = classify(p.fresh, target.account, target.min_size)
        signals = [s.fields() for s in batch.signals]
        dead = [d.fields(target.account, now) for d in batch.dead]
        res = self.store.commit(target.account, stored.gen if stored else 0, p.cursor, signals, dead)
        if res.error:
            self.journal.record("PUBLISH_REFUSED", level="error", account=target.account, detail=res.error)
            return
        if not res.ok:
            self.journal.record("CURSOR_CONFLICT", level="warn", account=target.account,
                                expected_gen=stored.gen if stored else 0, found_gen=res.gen)
            return
        self._journal_batch(target, batch)
        if stored is None:
            self.journal.record("FIRST_RUN_CURSOR", account=target.account, cursor_ts=start_ts,
                                lookback_s=self.s.lookback_s, skipped=p.skipped, published=len(batch.signals),
                                new_cursor_ts=p.cursor.ts)

    def _journal_batch(self, target: LeaderTarget, batch: Batch) -> None:
        now = self.clock.now_ms()
        for s in batch.signals:
            self.journal.record("SIGNAL_PUBLISHED", token_id=s.token_id, signal_id=s.signal_id, side=s.side,
                                size=s.fields()["size"], price=s.fields()["price"], leader_ts_ms=s.ts_ms)
            metrics.INGEST_SIGNALS.labels(s.side).inc()
            metrics.INGEST_LAG.observe(max(0, now - s.ts_ms) / 1000)  # market time, seconds
        for d in batch.dead:
            metrics.INGEST_DEAD.labels(d.reject.reason).inc()
            self.journal.record(d.reject.reason, level="error", account=target.account, field=d.reject.field,
                                value=d.reject.value, fingerprint=d.fresh.row.fp, dead_letter="1")
        if batch.below_min:
            self.journal.record("BELOW_MIN_SIZE", account=target.account, count=len(batch.below_min),
                                min_size=str(target.min_size))
        self.stats["published"] += len(batch.signals)
        self.stats["dead"] += len(batch.dead)
