"""maker_worker's imperative shell: heartbeat, lease acquisition, one step over held tokens, halt,
and the SIGTERM clean-up (SPEC S3.4; docs/contracts.md "Leases").

A worker holds up to ``max_leases`` tokens. Each step it heartbeats ``pb:workers``, scans
``pb:sched:offers`` for tokens to ``acquire`` (ZREM after success), reads the gateway hash, every
held token's book, ``pb:tok`` hash and new user-stream entries in one pipelined round trip, renews
every held lease in another, then steps each token (``trading.TokenTrader``): a step's round trips do
not grow with the tokens held. A token whose lease is lost is dropped at once (LEASE_LOST).

Between steps (``idle``) the worker blocks on the held tokens' md streams (``book_feed``) and
re-quotes a token the moment md_gateway publishes a change of its book, so a price move reaches
the strategy in milliseconds rather than at the next step; a long step (many tokens, a reconcile's
REST calls) looks at those streams every ``YIELD_S`` between tokens.

Fence before every cancel (SPEC S2): each cancel a worker sends -- per order, the takeover clean-up,
halt's cancel-all, SIGTERM shutdown -- comes right after a lease renew; a worker whose lease passed to
another sends nothing for that token and writes none of its records. Shutdown cancels OUR orders one
by one, never the whole token (that would cancel a new holder's orders). Account-wide risk (one
exposure cap, per-token position cap, marked-to-market daily loss) is ``exposure.RiskDesk``: loaded
with each step's snapshot, reserved before each entry BUY, synced after each token step.
"""
from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Callable

import orjson
from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys, metrics, runtime
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import LeaseLost, Leases
from libs.common.venue import Venue, VenueError
from services.maker_worker import winddown
from services.maker_worker.book_feed import BookFeed
from services.maker_worker.book_source import gateway_ok
from services.maker_worker.config import WorkerSettings
from services.maker_worker.exposure import RiskDesk
from services.maker_worker.models import Cancel, Intent
from services.maker_worker.orders import OrderDesk
from services.maker_worker.trading import Held, TokenTrader
from services.maker_worker.user_events import UserEvents

log = logging.getLogger(__name__)
OFFER_SCAN = 100  # offers looked at per step
MAX_BLOCK_MS = 1000  # longest XREAD BLOCK: well inside any Redis socket timeout
YIELD_S = 0.002  # a long step looks at the md streams at least this often (wall s) once pushes are on


class Worker:
    """One maker_worker instance.

    Args:
        r: decoded Redis client; venue: the exchange (VenueClient or a fake); settings; clock (market
        time for trading, wall time for leases/freshness); journal; worker_id: lease holder id.
    """

    def __init__(self, r: Redis, venue: Venue, settings: WorkerSettings, clock: Clock, journal: Journal,
                 worker_id: str) -> None:
        self.r, self.venue, self.s, self.clock, self.journal, self.id = r, venue, settings, clock, journal, worker_id
        self.leases = Leases(r)
        self.desk = OrderDesk(r, self.leases, venue, journal, clock)
        self.trader = TokenTrader(r, self.leases, venue, self.desk, journal, clock, settings)
        self.risk = RiskDesk(r, journal, clock, settings)
        self.trader.admit = self.risk.admit  # account-wide exposure/position reservation before each entry
        self.held: dict[str, Held] = {}
        self.feed = BookFeed(r)
        self._halted = False
        self._gw_ok = False  # the gateway's health as the last step saw it
        self._pushed = False  # True once ``idle`` runs (wall-time loop): steps then yield to pushed changes
        self._books: dict[str, dict[str, str]] = {}  # the running step's books (on_books refreshes them)
        self._last_beat = 0
        self._connect_failures = 0  # failed venue.connect() calls so far; -1 once connected
        self.redis_up_since: Callable[[], int] = lambda: 0  # RedisGate.up_since_ms (set by __main__)

    def step(self) -> None:
        """One iteration (see module docstring), timed in ``pb_worker_step_seconds``. Redis errors
        propagate to ``run_loop``."""
        with metrics.WORKER_STEP.time():
            self._step()

    def _step(self) -> None:
        self.renew_due()  # first: after any stall (Redis, this process) the held leases come before all else
        wall = self.clock.wall_ms()
        self._heartbeat(wall)
        halt = self.r.get(keys.HALT)
        if halt and not self._halted:
            self.journal.record("HALT_CANCEL_ALL", level="warn", why=halt, tokens=len(self.held),
                                canceled=self._cancel_all("HALT"))
        self._halted = bool(halt)
        if not self._venue_ready():
            return
        self._acquire(wall)
        metrics.WORKER_LEASES.set(len(self.held))
        if not self.held:
            return
        gw, self._books, toks, users, risk_reads = self._snapshot()
        self.risk.load(*risk_reads)
        self._gw_ok = ok = gateway_ok(gw, wall, self.s.gateway_stale_ms)
        self._renew_held()
        last = time.perf_counter()
        for token in list(self.held):
            if token not in self.held:  # dropped while the step yielded to a pushed change
                continue
            self._guarded(token, lambda h, room: self.trader.step(h, toks[token], self._books[token], ok,
                                                                  self._halted, room, users.get(token)))
            if self._pushed and time.perf_counter() - last >= YIELD_S:
                self._drain_feed()
                last = time.perf_counter()
        self._books = {}

    def _renew_held(self) -> None:
        """Renew every held lease in one round trip (a worker renews at every step: SHARED_RULES), so
        ``TokenTrader.step`` need not renew one by one; a lost lease drops its token (LEASE_LOST)."""
        grants = [h.grant for h in self.held.values()]
        for g, res in zip(grants, self.leases.renew_many(grants, self.clock.wall_ms(), self.s.lease_ttl_ms)):
            if isinstance(res, LeaseLost):
                self.journal.record("LEASE_LOST", token_id=g.token_id, level="error", fence=res.fence, why=res.why)
                self.drop(g.token_id)
            else:
                self.held[g.token_id].grant = res
                self.held[g.token_id].renewed = True

    def _drain_feed(self) -> None:
        """Inside a long step: re-quote the held tokens whose book changed since the last look
        (non-blocking read), so a change waits for one token's step, not for all of them."""
        changed = [t for t in self.feed.poll() if t in self.held]
        if changed:
            self.on_books(changed)

    def idle(self, seconds: float, stop: threading.Event) -> None:
        """Spend up to ``seconds`` (wall) until the next step: block on the held tokens' md streams and
        re-quote every token whose book changed. Redis errors propagate (``run_loop`` backs off).

        ``time.monotonic`` only bounds the wait; trading decisions use the injected clock. From the
        first call on, steps also yield to pushed changes (``_drain_feed``); the back-test, which
        delivers changes itself in virtual time, never calls this.
        """
        self._pushed = True
        end = time.monotonic() + seconds
        while not stop.is_set():
            left_ms = int((end - time.monotonic()) * 1000)
            if left_ms <= 0:
                return
            if not self.held:
                stop.wait(left_ms / 1000)
                return
            changed = [t for t in self.feed.wait(min(left_ms, MAX_BLOCK_MS)) if t in self.held]
            if changed:
                self.on_books(changed)

    def on_books(self, tokens: list[str]) -> None:
        """Re-quote ``tokens`` (held) on their current Redis books, read in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for t in tokens:
            pipe.hgetall(keys.md_book(t))
        for token, book in zip(tokens, pipe.execute()):
            if token in self._books:  # a step is running: its later trader.step sees this book, not an older one
                self._books[token] = book
            if token in self.held:
                self._guarded(token, lambda h, room: self.trader.quote(h, book, self._gw_ok, self._halted, room))

    def renew_due(self) -> None:
        """Renew every held lease not renewed for a third of the TTL (a stall: Redis was down or this
        process was paused), before any other Redis or venue work; also ``run_loop``'s ``on_recover``.
        A lease renewed after its expiry (nobody took it over) is journaled LEASE_RENEWED_LATE; a lost
        one drops the token (LEASE_LOST). Redis errors propagate."""
        ttl = self.s.lease_ttl_ms
        for token, h in list(self.held.items()):
            wall = self.clock.wall_ms()
            if h.grant.expires_ms - wall > ttl * 2 // 3:
                continue
            try:
                late_ms = wall - h.grant.expires_ms
                h.grant = self.leases.renew(h.grant, wall, ttl)
                if late_ms > 0:
                    self.journal.record("LEASE_RENEWED_LATE", token_id=token, level="warn", fence=h.grant.fence,
                                        late_ms=late_ms)
            except LeaseLost as exc:
                self.journal.record("LEASE_LOST", token_id=token, level="error", fence=exc.fence, why=exc.why)
                self.drop(token)

    def _heartbeat(self, wall: int) -> None:
        self.r.zadd(keys.WORKERS, {self.id: wall})
        if wall - self._last_beat >= 1000:
            self._last_beat = wall
            runtime.heartbeat(self.r, self.id, "maker_worker", self.clock, {"held": len(self.held)})

    def _venue_ready(self) -> bool:
        """Authenticate with the venue once before the first lease (a lease must not wait on it):
        VENUE_CONNECTED, or VENUE_CONNECT_FAILED (warn, first failure and then every 100th) and
        no lease this step."""
        if self._connect_failures < 0:
            return True
        try:
            self.venue.connect()
        except VenueError as exc:
            if self._connect_failures % 100 == 0:
                self.journal.record("VENUE_CONNECT_FAILED", level="warn", attempts=self._connect_failures + 1,
                                    error=exc.message[:200])
            self._connect_failures += 1
            return False
        self.journal.record("VENUE_CONNECTED", attempts=self._connect_failures + 1)
        self._connect_failures = -1
        return True

    def _acquire(self, wall: int) -> None:
        """Claim offered tokens up to ``max_leases``; while halted only exit-only offers."""
        if len(self.held) >= self.s.max_leases:
            return
        for token in self.r.zrange(keys.SCHED_OFFERS, 0, OFFER_SCAN - 1):
            if token in self.held:
                continue
            if self._halted and self.leases.read(token).get("mode") != "exit_only":
                continue
            grant = self.leases.acquire(token, self.id, wall, self.s.lease_ttl_ms, grace_ms=self.s.lease_ttl_ms,
                                        up_since_ms=self.redis_up_since())  # takeover rule: leases.py
            if grant is None:
                continue
            self.r.zrem(keys.SCHED_OFFERS, token)
            if grant.prev_worker:
                metrics.WORKER_TAKEOVERS.inc()
            leftovers = self._has_open_records(token)
            h = Held(grant, cleanup=bool(grant.prev_worker) or leftovers)
            if grant.prev_worker:
                h.ready_wall_ms = grant.prev_expires_ms + int(self.s.http_timeout_s * 1000)
            self.held[token] = h
            self.feed.track(token)
            self.journal.record("LEASE_ACQUIRED", token_id=token, fence=grant.fence, mode=grant.mode,
                                prev_worker=grant.prev_worker, quote_after_wall_ms=h.ready_wall_ms)
            if len(self.held) >= self.s.max_leases:
                return

    def _has_open_records(self, token: str) -> bool:
        """Any PENDING/LIVE order record left by an earlier holder (unreadable records count too)."""
        for text in self.r.hvals(keys.orders(token)):
            try:
                if orjson.loads(text).get("status") in ("PENDING", "LIVE"):
                    return True
            except orjson.JSONDecodeError:
                return True
        return False

    def _snapshot(self) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, str]],
                                 dict[str, list], list]:
        """Gateway hash, held books and token hashes, the user streams of reconciled tokens (what
        ``UserEvents.sync`` would read), and the risk reads, in one round trip."""
        tokens = list(self.held)
        ready = [t for t in tokens if self.held[t].state is not None]
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.MD_GATEWAY)
        for t in tokens:
            pipe.hgetall(keys.md_book(t))
            pipe.hgetall(keys.tok(t))
        for t in ready:
            UserEvents.pending_read(pipe, self.held[t])
        self.risk.snapshot_reads(pipe)
        res = pipe.execute()
        books = {t: res[1 + 2 * i] for i, t in enumerate(tokens)}
        toks = {t: res[2 + 2 * i] for i, t in enumerate(tokens)}
        n = 1 + 2 * len(tokens)
        users = {t: res[n + i] for i, t in enumerate(ready)}
        return res[0], books, toks, users, res[n + len(ready):]

    def _guarded(self, token: str, run: Callable[[Held, Decimal], None]) -> None:
        """``run(held, exposure room)`` for one token, then sync its account-wide risk entry: a lost lease
        drops the token (LEASE_LOST), any other failure is journaled (TOKEN_STEP_FAILED) without
        stopping the other tokens."""
        h = self.held[token]
        room = self.risk.room(token, h.state)
        try:
            run(h, room)
            self.risk.sync(h)
            self._export(h)
        except LeaseLost as exc:
            self.journal.record("LEASE_LOST", token_id=token, level="error", fence=exc.fence, why=exc.why)
            h.released = True
        except RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 - one token's failure must not stop the others; journaled
            log.exception("token step failed token=%s", token)
            self.journal.record("TOKEN_STEP_FAILED", token_id=token, level="error", error=type(exc).__name__,
                                detail=str(exc)[:300])
        if h.released:
            self.drop(token)

    def drop(self, token: str) -> None:
        """Forget a token this worker no longer holds."""
        self.held.pop(token, None)
        self.feed.untrack(token)
        self.risk.forget(token)
        metrics.forget_token(token)
        metrics.WORKER_LEASES.set(len(self.held))

    @staticmethod
    def _export(h: Held) -> None:
        """Position and P&L gauges of ``h`` (realized at average cost, unrealized at the best bid while
        the market is open; before fees: the P&L of record is ``libs.common.pnl``'s)."""
        s, bid = h.state, h.market.best_bid if h.market else None
        if s is not None and not h.released:
            unrealized = s.position * (bid - s.avg_entry) if bid is not None and not s.resolved else Decimal(0)
            metrics.set_token(h.grant.token_id, s.position, s.realized_pnl, unrealized)

    def _cancel_all(self, why: str) -> int:
        """Cancel every open order of every held token (halt); returns how many cancels were sent. Each
        cancel is fenced (``TokenTrader.execute`` renews the lease first): a token whose lease is gone
        gets nothing sent (LEASE_LOST) and is dropped."""
        n = 0
        for token, h in list(self.held.items()):
            if h.state is None or h.market is None:
                continue
            cancels: list[Intent] = [Cancel(o.order_id, why) for o in h.state.orders]
            try:
                self.trader.execute(h, cancels, h.market)
                self.risk.sync(h)  # release the cancelled BUYs' exposure at once
            except LeaseLost as exc:
                self.journal.record("LEASE_LOST", token_id=token, level="error", fence=exc.fence, why=exc.why)
                self.drop(token)
            n += len(cancels)
        return n

    def shutdown(self) -> None:
        """SIGTERM: give every held token back (``winddown.shutdown``)."""
        winddown.shutdown(self)
