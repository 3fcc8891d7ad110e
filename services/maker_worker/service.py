"""maker_worker's imperative shell: heartbeat, lease acquisition, one step over held tokens, halt,
and the SIGTERM clean-up (SPEC S3.4; docs/contracts.md "Leases").

A worker holds up to ``max_leases`` tokens. Each step it heartbeats ``pb:workers``, scans
``pb:sched:offers`` for tokens to ``acquire`` (ZREM after success), reads the gateway hash, every
held token's book and ``pb:tok`` hash in one pipelined round trip, then steps each token
(``trading.TokenTrader``). A token whose lease is lost is dropped at once (LEASE_LOST).

Between steps (``idle``) the worker blocks on the held tokens' md streams (``book_feed``) and
re-quotes a token the moment md_gateway publishes a change of its book, so a price move reaches
the strategy in milliseconds rather than at the next step.
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

from libs.common import keys, runtime
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import LeaseLost, Leases
from libs.common.venue import Venue, VenueError
from services.maker_worker import risk
from services.maker_worker.book_feed import BookFeed
from services.maker_worker.book_source import gateway_ok
from services.maker_worker.config import WorkerSettings
from services.maker_worker.models import Cancel, Intent, MarketView
from services.maker_worker.orders import OrderDesk
from services.maker_worker.trading import Held, TokenTrader

log = logging.getLogger(__name__)
OFFER_SCAN = 100  # offers looked at per step
MAX_BLOCK_MS = 1000  # longest XREAD BLOCK: well inside any Redis socket timeout


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
        self.held: dict[str, Held] = {}
        self.feed = BookFeed(r)
        self._halted = False
        self._gw_ok = False  # the gateway's health as the last step saw it
        self._last_beat = 0

    def step(self) -> None:
        """One iteration (see module docstring). Redis errors propagate to ``run_loop``."""
        wall = self.clock.wall_ms()
        self._heartbeat(wall)
        halt = self.r.get(keys.HALT)
        if halt and not self._halted:
            self.journal.record("HALT_CANCEL_ALL", level="warn", why=halt, tokens=len(self.held),
                                canceled=self._cancel_all("HALT"))
        self._halted = bool(halt)
        self._acquire(wall)
        if not self.held:
            return
        gw, books, toks = self._snapshot()
        self._gw_ok = ok = gateway_ok(gw, wall, self.s.gateway_stale_ms)
        for token in list(self.held):
            self._guarded(token, lambda h, room: self.trader.step(h, toks[token], books[token], ok, self._halted, room))

    def idle(self, seconds: float, stop: threading.Event) -> None:
        """Spend up to ``seconds`` (wall) until the next step: block on the held tokens' md streams and
        re-quote every token whose book changed. Redis errors propagate (``run_loop`` backs off).

        ``time.monotonic`` only bounds the wait; trading decisions use the injected clock.
        """
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
            if token in self.held:
                self._guarded(token, lambda h, room: self.trader.quote(h, book, self._gw_ok, self._halted, room))

    def _heartbeat(self, wall: int) -> None:
        self.r.zadd(keys.WORKERS, {self.id: wall})
        if wall - self._last_beat >= 1000:
            self._last_beat = wall
            runtime.heartbeat(self.r, self.id, "maker_worker", self.clock, {"held": len(self.held)})

    def _acquire(self, wall: int) -> None:
        """Claim offered tokens up to ``max_leases``; while halted only exit-only offers."""
        if len(self.held) >= self.s.max_leases:
            return
        for token in self.r.zrange(keys.SCHED_OFFERS, 0, OFFER_SCAN - 1):
            if token in self.held:
                continue
            if self._halted and self.leases.read(token).get("mode") != "exit_only":
                continue
            grant = self.leases.acquire(token, self.id, wall, self.s.lease_ttl_ms)
            if grant is None:
                continue
            self.r.zrem(keys.SCHED_OFFERS, token)
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

    def _snapshot(self) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        tokens = list(self.held)
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.MD_GATEWAY)
        for t in tokens:
            pipe.hgetall(keys.md_book(t))
            pipe.hgetall(keys.tok(t))
        res = pipe.execute()
        books = {t: res[1 + 2 * i] for i, t in enumerate(tokens)}
        toks = {t: res[2 + 2 * i] for i, t in enumerate(tokens)}
        return res[0], books, toks

    def _guarded(self, token: str, run: Callable[[Held, Decimal], None]) -> None:
        """``run(held, exposure room)`` for one token: a lost lease drops the token (LEASE_LOST), any
        other failure is journaled (TOKEN_STEP_FAILED) without stopping the other tokens."""
        h = self.held[token]
        room = risk.exposure_room([x.state for x in self.held.values() if x.state], self.s.max_exposure_usd)
        try:
            run(h, room)
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
            self._drop(token)

    def _drop(self, token: str) -> None:
        """Forget a token this worker no longer holds."""
        self.held.pop(token, None)
        self.feed.untrack(token)

    def _cancel_all(self, why: str) -> int:
        """Cancel every open order of every held token (halt); returns how many cancels were sent."""
        n = 0
        for token, h in list(self.held.items()):
            if h.state is None or h.market is None:
                continue
            cancels: list[Intent] = [Cancel(o.order_id, why) for o in h.state.orders]
            try:
                self.trader.execute(h, cancels, h.market)
            except LeaseLost as exc:
                self.journal.record("LEASE_LOST", token_id=token, level="error", fence=exc.fence, why=exc.why)
                self._drop(token)
            n += len(cancels)
        return n

    def shutdown(self) -> None:
        """SIGTERM: cancel every open order of held tokens, record final fills, release leases (not done)."""
        total, tokens = 0, 0
        for token, h in list(self.held.items()):
            try:
                res = self.venue.cancel_token(token)
                total += len(res.canceled)
                tokens += 1
                self._final_poll(h)
                self.desk.close_records(h.grant)
                self._hand_back(h)
            except VenueError as exc:
                self.journal.record("SHUTDOWN_CANCEL_FAILED", token_id=token, level="error", error=exc.message[:200])
                self._hand_back(h)
            except LeaseLost as exc:
                self.journal.record("LEASE_LOST", token_id=token, level="error", fence=exc.fence, why=exc.why)
            self._drop(token)
        self.journal.record("SHUTDOWN_CANCEL", tokens=tokens, canceled=total, worker=self.id)
        self.r.zrem(keys.WORKERS, self.id)

    def _hand_back(self, h: Held) -> None:
        """Release (not done) and put the token back on the offers index for another worker."""
        if self.leases.release(h.grant, done=False):
            self.r.zadd(keys.SCHED_OFFERS, {h.grant.token_id: self.clock.wall_ms()})

    def _final_poll(self, h: Held) -> None:
        if h.state is None:
            return
        market = h.market or MarketView(None, None, h.state.tick_size, h.state.min_order_size, h.state.end_ms, False)
        for ev in self.desk.poll(h.grant, h.state):
            self.trader.apply(h, ev, market)
