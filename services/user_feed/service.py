"""user_feed's imperative shell: ONE authenticated user-channel WebSocket for the account, its
liveness, reconnects and REST backfills, and the per-token streams workers read (SPEC S3.4 "Orders
are tracked to a final state ... from the exchange (user channel or polling)").

Threads: the link's reader thread (``link.UserLink``) only moves frames onto ``inbound``; everything
else runs in ``step()`` on the main thread:

1. drain ``inbound``: ``open`` -> connected, backfill due; ``frame`` -> ``PONG`` or parse and
   publish (a malformed event is counted in ``parse_errors`` and journaled with its text,
   ``USER_FEED_PARSE_ERROR``; the link lives on); ``closed`` -> down, reconnect after a jittered
   backoff (``USER_FEED_DISCONNECTED``);
2. timers (wall): connect when due (credentials from ``venue.api_credentials()``), text ``PING``
   every ``ping_interval_s``, abort a link whose PING is unanswered past ``pong_timeout_s``
   (``USER_FEED_PONG_TIMEOUT``: a half-open socket never errors), the backfill when due (retried
   after a failure, ``USER_FEED_BACKFILL_FAILED``), ``pb:user:feed`` and the heartbeat.

``pb:user:feed`` (hash, wall ms): ``state`` connected|connecting|down, ``connected`` 1|0,
``backfill_pending`` 1|0 (events of the last outage not published yet), ``last_msg_wall_ms``,
``last_pong_ms``, ``reconnects``, ``backfills``, ``backfill_trades``, ``backfill_orders``,
``parse_errors``, ``msgs``, ``published``, ``updated_ms``; the same counts go to Prometheus
(``libs.common.metrics``: ``pb_user_feed_*``) at each status write. Workers trust the channel only while it
says connected, nothing pending, and ``updated_ms`` is recent; otherwise they poll REST.
"""
from __future__ import annotations

import queue
import random
from typing import Any, Callable

from redis import Redis

from libs.common import keys, metrics
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.runtime import heartbeat
from libs.common.venue_types import VenueError
from services.md_gateway.ws import CONNECTING, DOWN, OPEN, ConnState, backoff_ms, liveness
from services.user_feed.backfill import backfill
from services.user_feed.config import UserFeedSettings
from services.user_feed.link import UserLink, auth_frame
from services.user_feed.parse import parse_frame
from services.user_feed.store import StreamStore, open_orders_by_token

SERVICE = "user_feed"
WAIT_S = 0.1  # longest wait for the first inbound item of a step
BATCH = 500  # inbound items handled per step at most
BACKFILL_RETRY_MS = 2000
JOURNAL_ERRORS_PER_S = 20  # parse errors journaled per second at most (all are counted)


class UserFeed:
    """The user feed of one account (module doc).

    Args:
        settings, r (decoded), clock (wall_ms drives every timer; now_ms stamps backfilled orders),
        journal, instance (heartbeat name), venue (``api_credentials``, ``trades``, ``get_order``),
        rng (reconnect jitter), link_factory (tests may substitute).
    """

    def __init__(self, settings: UserFeedSettings, r: Redis, clock: Clock, journal: Journal, instance: str,
                 venue: Any, rng: random.Random | None = None, link_factory: Callable[..., Any] = UserLink) -> None:
        self.s, self.r, self.clock, self.journal, self.instance = settings, r, clock, journal, instance
        self.venue, self.rng, self.link_factory = venue, rng or random.Random(), link_factory
        self.inbound: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self.store = StreamStore(r, settings.stream_maxlen)
        self.conn = ConnState(conn_id=0)
        self.link: Any = None
        self.creds: tuple[str, str, str] | None = None
        self.backfill_due, self.backfill_at_ms = False, 0
        self.counts = {"reconnects": 0, "backfills": 0, "backfill_trades": 0, "backfill_orders": 0,
                       "parse_errors": 0, "msgs": 0, "published": 0}
        self.last_msg_ms = 0
        self._next_status_ms = 0
        self._gate = (0, 0)  # (wall second, parse errors journaled in it)
        self.mirror = metrics.Mirror()  # counts -> Prometheus counters, at each status write

    # ---- the loop ----
    def step(self) -> None:
        """One slice: inbound items, then timers (module doc). Redis errors propagate to run_loop."""
        try:
            items = [self.inbound.get(timeout=WAIT_S)]
        except queue.Empty:
            items = []
        while items and len(items) < BATCH:
            try:
                items.append(self.inbound.get_nowait())
            except queue.Empty:
                break
        for item in items:
            self.handle(item)
        self.timers(self.clock.wall_ms())

    def handle(self, item: tuple) -> None:
        """One inbound item of the current link (items of older links are ignored)."""
        kind, _cid, gen, data, wall, _perf = item
        if gen != self.conn.gen:
            return
        if kind == "open":
            self.conn.status, self.conn.opened_ms = OPEN, wall
            self.conn.next_ping_ms, self.conn.ping_sent_ms = wall + int(self.s.ping_interval_s * 1000), 0
            self.backfill_due, self.backfill_at_ms = True, wall
            self.journal.record("USER_FEED_CONNECTED", gen=gen, url=self.s.ws_user_url)
            self.write_status(wall)
        elif kind == "frame":
            self.on_frame(data, wall)
        elif kind == "closed":
            self.on_closed(str(data), wall)

    def on_frame(self, data: bytes, wall: int) -> None:
        """PONG, or events to parse and publish."""
        self.counts["msgs"] += 1
        self.last_msg_ms = self.conn.last_rx_ms = wall
        if data.strip() == b"PONG":
            metrics.USER_FEED_FRAMES.labels("pong").inc()
            self.conn.ping_sent_ms, self.conn.last_pong_ms, self.conn.attempt = 0, wall, 0
            return
        metrics.USER_FEED_FRAMES.labels("data").inc()
        assert self.creds is not None
        entries, errors = parse_frame(data, self.creds[0], str(getattr(self.venue, "wallet", "") or ""))
        for err in errors:
            self.parse_error(err, data, wall)
        self.counts["published"] += self.store.publish(entries)

    def parse_error(self, err: str, data: bytes, wall: int) -> None:
        """Count one unusable event; journal it with its text (at most JOURNAL_ERRORS_PER_S a second)."""
        self.counts["parse_errors"] += 1
        sec, n = self._gate
        if wall // 1000 != sec:
            sec, n = wall // 1000, 0
        self._gate = (sec, n + 1)
        if n < JOURNAL_ERRORS_PER_S:
            self.journal.record("USER_FEED_PARSE_ERROR", level="warn", detail=err[:300],
                                text=data[:500].decode("utf-8", "replace"))

    def on_closed(self, cause: str, wall: int) -> None:
        """The link ended: reconnect after a jittered backoff; an auth refusal re-derives credentials."""
        was_open = self.conn.status == OPEN
        self.conn.status, self.link = DOWN, None
        self.conn.attempt += 1
        delay = backoff_ms(self.conn.attempt, int(self.s.backoff_min_s * 1000), int(self.s.backoff_max_s * 1000),
                           self.rng.random())
        self.conn.retry_at_ms = wall + delay
        if "code=1008" in cause:
            self.creds = None
        self.counts["reconnects"] += 1
        self.journal.record("USER_FEED_DISCONNECTED", level="warn", cause=cause[:200], was_open=was_open,
                            retry_in_ms=delay, attempt=self.conn.attempt)
        self.write_status(wall)

    # ---- timers ----
    def timers(self, wall: int) -> None:
        """Connect, PING/PONG, backfill and status when due."""
        if self.conn.status == DOWN and wall >= self.conn.retry_at_ms:
            self.connect(wall)
        live = liveness(self.conn, wall, int(self.s.ping_interval_s * 1000), int(self.s.pong_timeout_s * 1000))
        if live == "dead":
            self.journal.record("USER_FEED_PONG_TIMEOUT", level="warn", ping_sent_ms=self.conn.ping_sent_ms,
                                pong_timeout_s=self.s.pong_timeout_s)
            self.link.abort()  # the reader then reports "closed"; until then the link is not trusted
            self.conn.status, self.conn.ping_sent_ms = CONNECTING, 0
            self.write_status(wall)
        elif live == "ping":
            self.ping(wall)
        if self.backfill_due and self.conn.status == OPEN and wall >= self.backfill_at_ms:
            self.run_backfill(wall)
        if wall >= self._next_status_ms:
            self.write_status(wall)

    def connect(self, wall: int) -> None:
        """Start a new link (credentials first; a failure to get them backs off like a failed link)."""
        if self.creds is None:
            try:
                self.creds = tuple(self.venue.api_credentials())  # type: ignore[assignment]
            except VenueError as exc:
                self.journal.record("USER_FEED_CREDS_FAILED", level="error", error=exc.message[:200])
                self.on_closed(f"credentials: {exc.message[:100]}", wall)
                return
        assert self.creds is not None
        self.conn.gen += 1
        self.conn.status = CONNECTING
        self.link = self.link_factory(0, self.conn.gen, self.s.ws_user_url, auth_frame(*self.creds),
                                      self.inbound, self.clock, self.s.connect_timeout_s)
        self.link.start()

    def ping(self, wall: int) -> None:
        """Send a text PING; the deadline counts from the oldest unanswered one."""
        try:
            self.link.send("PING")
        except Exception as exc:  # noqa: BLE001 - a dead link reports itself as closed; abort it to be sure
            self.journal.record("USER_FEED_PING_FAILED", level="warn", error=f"{type(exc).__name__}: {exc}"[:200])
            self.link.abort()
        if not self.conn.ping_sent_ms:
            self.conn.ping_sent_ms = wall
        self.conn.next_ping_ms = wall + int(self.s.ping_interval_s * 1000)

    def run_backfill(self, wall: int) -> None:
        """REST backfill of everything the channel may have missed (backfill.py); retried on failure."""
        wanted = open_orders_by_token(self.r)
        res = backfill(self.venue, wanted, self.store.seen, int(self.s.backfill_overlap_s * 1000),
                       self.clock.now_ms())
        self.counts["published"] += self.store.publish(res.entries)
        self.counts["backfill_trades"] += res.trades
        self.counts["backfill_orders"] += res.orders
        for token, error in res.failures:
            self.journal.record("USER_FEED_BACKFILL_FAILED", token_id=token, level="warn", error=error)
        if res.failures:
            self.backfill_at_ms = wall + BACKFILL_RETRY_MS
        else:
            self.backfill_due = False
            self.counts["backfills"] += 1
            self.journal.record("USER_FEED_BACKFILL", tokens=len(wanted), trades=res.trades, orders=res.orders)
        self.write_status(self.clock.wall_ms())

    def write_status(self, wall: int) -> None:
        """``pb:user:feed`` (module doc) and the service heartbeat."""
        state = {OPEN: "connected", CONNECTING: "connecting"}.get(self.conn.status, "down")
        fields = {"state": state, "connected": int(self.conn.status == OPEN), "backfill_pending": int(self.backfill_due),
                  "last_msg_wall_ms": self.last_msg_ms, "last_pong_ms": self.conn.last_pong_ms,
                  "updated_ms": wall, **self.counts}
        self.r.hset(keys.USER_FEED, mapping={k: str(v) for k, v in fields.items()})
        self.mirror.add(metrics.USER_FEED_DISCONNECTS, self.counts["reconnects"])
        self.mirror.add(metrics.USER_FEED_PUBLISHED, self.counts["published"])
        self.mirror.add(metrics.USER_FEED_PARSE_ERRORS, self.counts["parse_errors"])
        heartbeat(self.r, self.instance, SERVICE, self.clock, {"state": state})
        self._next_status_ms = wall + int(self.s.status_interval_s * 1000)

    def close(self) -> None:
        """Clean stop: abort the link and record ``state=down``."""
        if self.link is not None:
            self.link.abort()
        self.conn.status = DOWN
        self.backfill_due = False
        self.write_status(self.clock.wall_ms())
