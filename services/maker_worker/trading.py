"""One step of one held token: renew, takeover clean-up, book, order polling, strategy, execution;
and ``quote``, the book-only step run when md_gateway pushes a change of the token's book.

The strategy (pure) decides; this shell only performs its intents and feeds the outcomes back as
events. Every write goes through the lease fence; LeaseLost propagates to the worker, which drops
the token at once.

Book seq (SPEC S2: a reader can always tell new data from old): each held token remembers the
highest ``seq`` it acted on. A book with a lower seq is never traded on: it is journaled
``BOOK_SEQ_BACKWARDS`` (error) and REST is read instead for that step; the mark then moves to the
new seq, so a Redis that lost its data costs one REST read, not a worker stuck on REST.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Callable

from redis import Redis

from libs.common import keys, metrics
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import Grant, Leases
from libs.common.venue import Venue, VenueError
from services.maker_worker import risk, settle, strategy
from services.maker_worker.book_source import from_redis, from_rest, int_field
from services.maker_worker.config import WorkerSettings
from services.maker_worker.models import (
    Cancel, Event, Fill, Intent, MarketView, Note, Place, Posted, Redeem, Release, Tick, TokenState, Transition,
)
from services.maker_worker.orders import OrderDesk
from services.maker_worker.reconciler import REQUESTED, Reconciler, recorded_position
from services.maker_worker.fill_accounting import CLOSING
from services.maker_worker.takeover import Settler
from services.maker_worker.user_events import UserEvents
from services.maker_worker.tokens import (
    TokenMetaError, initial_state, position_fields, resolution_events, tok_events,
)


@dataclass
class Held:
    """A token whose lease this worker holds. ``state`` is None until the position is reconciled;
    ``cleanup`` (takeover or leftover orders) cancels the token's orders first, not before
    ``ready_wall_ms`` (old lease expiry + HTTP timeout)."""

    grant: Grant
    state: TokenState | None = None
    neg_risk: bool = False
    cleanup: bool = False
    ready_wall_ms: int = 0
    book_source: str = ""
    market: MarketView | None = None
    released: bool = False
    last_seq: int = 0  # highest book seq acted on (0 = none yet)
    change_wall_ms: int = 0  # gateway receipt (wall ms) of the new Redis book being acted on (0: none/REST)
    change_seq: int = 0  # seq of that new Redis book (0: none/REST); journaled on the orders it causes
    data_age_ms: int = 0  # wall ms between the book's receipt / REST check and this decision (0: read by REST now)
    fallback_wall_ms: int = 0  # wall ms the token left the Redis book for REST (0: on the feed)
    user_id: str = "0-0"  # last pb:user:{token} entry handled ("0-0" at acquisition: read from the start)
    reconcile_due_wall_ms: int = 0  # next periodic reconcile with the venue (wall ms; set by prepare)
    reopened: bool = False  # a fill arrived while a close was being executed (the close is deferred)
    feed_gen: str = ""  # the user feed's ``reconnects`` when this token's orders were last settled
    renewed: bool = False  # the worker renewed the lease for this step already (``Worker._renew_held``)


class TokenTrader:
    """Runs held tokens; see the module docstring. Raises LeaseLost from ``step``."""

    def __init__(self, r: Redis, leases: Leases, venue: Venue, desk: OrderDesk, journal: Journal,
                 clock: Clock, settings: WorkerSettings) -> None:
        self.r, self.leases, self.venue, self.desk = r, leases, venue, desk
        self.journal, self.clock, self.s, self.params = journal, clock, settings, settings.params()
        self.user = UserEvents(r, leases, desk, journal, clock, settings.gateway_stale_ms)  # the user channel
        self.reconciler = Reconciler(r, leases, venue, desk, journal, clock, settings, self.user)
        self.user.on_external_cancel = self.reconciler.request
        self.settler = Settler(self)  # orders settled from the venue's record: takeover and close checks
        # risk gate run just before an order is signed (the worker sets RiskDesk.admit); False = send nothing
        self.admit: Callable[[Held, Place], bool] = lambda h, p: True

    def step(self, h: Held, tok: dict[str, str], book: dict[str, str], gw_ok: bool, halted: bool,
             room: Decimal, user_entries: list | None = None) -> None:
        """One step of one token (see module docstring). ``user_entries``: the token's user stream
        read in the worker's snapshot (None: read here)."""
        wall = self.clock.wall_ms()
        if not h.renewed:  # renewed at every step: by the worker's batch, or here
            h.grant = self.leases.renew(h.grant, wall, self.s.lease_ttl_ms)
        h.renewed = False
        if h.state is None and not self.prepare(h, tok, wall):
            return
        assert h.state is not None
        h.market = market = self.market(h, book, gw_ok, wall)
        events = tok_events(h.state, tok, h.grant.mode) + resolution_events(h.state, tok, book)
        for ev in events:
            self.apply(h, ev, market)
        self.user.sync(h, lambda ev: self.apply(h, ev, market), user_entries)  # user channel; REST when down
        if self.user.feed_gen != h.feed_gen:  # the user channel reconnected: settle what it may have missed
            self.resweep(h, market)
        if self.reconciler.due(h, self.clock.wall_ms()):  # orders and position against the venue
            self.reconciler.periodic(h, lambda ev: self.apply(h, ev, market))
        self._tick(h, halted, room, market)

    def quote(self, h: Held, book: dict[str, str], gw_ok: bool, halted: bool, room: Decimal) -> None:
        """The book of ``h`` changed (pushed by md_gateway): re-run the strategy on the new book only.
        Nothing when the token is not reconciled yet (or a reconcile was requested), or the book's seq
        was already acted on."""
        if h.state is None or h.released or (h.last_seq and int_field(book, "seq") == h.last_seq):
            return
        if h.reconcile_due_wall_ms == REQUESTED:  # the venue cancelled orders on its own: the step reconciles first
            return
        h.market = market = self.market(h, book, gw_ok, self.clock.wall_ms())
        self._tick(h, halted, room, market)

    def _tick(self, h: Held, halted: bool, room: Decimal, market: MarketView) -> None:
        for _ in range(2):  # a second pass places what replaces the orders just cancelled
            if h.released or not self.apply(h, Tick(halted, room), market):
                break

    # ---- takeover and reconcile ----
    def prepare(self, h: Held, tok: dict[str, str], wall: int) -> bool:
        """Cancel leftovers (after the grace period), build state from the recorded position, settle every
        order record from the venue's trades and statuses (``takeover.Settler``), check the balance."""
        token = h.grant.token_id
        if h.cleanup and wall < h.ready_wall_ms:
            return False
        try:
            if h.cleanup:
                h.grant = self.leases.renew(h.grant, self.clock.wall_ms(), self.s.lease_ttl_ms)  # fence first
                res = self.venue.cancel_token(token)
                self.journal.record("TAKEOVER_CANCELED", token_id=token, prev_worker=h.grant.prev_worker,
                                    canceled=len(res.canceled))
                h.cleanup = False
            self.reconciler.takeover(h, tok)  # unknown open orders cancelled
            h.state = initial_state(token, tok, recorded_position(tok) or Decimal(0), h.grant.mode,
                                    self.clock.now_ms())
            view = MarketView(None, None, h.state.tick_size, h.state.min_order_size, h.state.end_ms, False)
            self.user.channel_up()  # notes the feed's reconnect count: settled up to here
            h.feed_gen = self.user.feed_gen
            self.settler.takeover(h, tok, lambda ev: self.apply(h, ev, view))  # fills before any quote
        except VenueError as exc:
            h.state = None  # retried from pb:tok and the ledger: recovered fills are already persisted
            self.journal.record("RECONCILE_FAILED", token_id=token, level="warn", error=exc.message[:200])
            return False
        except TokenMetaError as exc:
            self.journal.record("TOKEN_META_INVALID", token_id=token, level="error", detail=str(exc))
            self.transition(h, Transition("failed", "TOKEN_META_INVALID"))
            self.release(h, Release(True))
            return False
        except Exception:
            h.state = None  # never quote on a half-settled token: the next step settles again
            raise
        h.neg_risk = tok.get("neg_risk", "").lower() in ("1", "true")
        self.leases.fenced_hset(h.grant, keys.tok(token), position_fields(h.state), self.clock.wall_ms())
        return True

    def market(self, h: Held, book: dict[str, str], gw_ok: bool, wall: int) -> MarketView:
        """Redis book when fresh, else REST (BOOK_REST_FALLBACK / BOOK_REST_FAILED once per episode)."""
        assert h.state is not None
        token = h.grant.token_id
        seq, read = int_field(book, "seq"), None
        if seq < h.last_seq:
            self.journal.record("BOOK_SEQ_BACKWARDS", token_id=token, level="error", seq=seq, last_seq=h.last_seq)
        else:
            try:
                read = from_redis(book, gw_ok, wall, self.s.book_max_age_ms)
            except ValueError as exc:
                self.journal.record("BOOK_MALFORMED", token_id=token, level="error", detail=str(exc))
        fresh = read is not None and seq > h.last_seq
        h.change_wall_ms = int_field(book, "recv_ts_ms") if fresh else 0
        h.change_seq = seq if fresh else 0
        h.last_seq = seq
        if read is not None:  # book age at decision time: the freshness rule's own age
            seen = max(int_field(book, "recv_ts_ms"), int_field(book, "verified_ts_ms"))
            metrics.WORKER_DATA_AGE.observe(max(0, wall - seen) / 1000)
        if read is None:
            read = from_rest(self.venue, token)
            if read.source != h.book_source:
                if read.source == "rest":
                    self.journal.record("BOOK_REST_FALLBACK", token_id=token, level="warn")
                else:
                    self.journal.record("BOOK_REST_FAILED", token_id=token, level="error", error=read.error)
        self._feed_returned(h, read.source, book, wall)
        h.book_source = read.source
        return read.view(h.state.tick_size, h.state.min_order_size, h.state.end_ms)

    def _feed_returned(self, h: Held, source: str, book: dict[str, str], wall: int) -> None:
        """Note the data age of this decision; journal BOOK_FEED_RETURNED (``after_ms``: wall ms on REST)
        when the book comes back from REST (or nothing) to the Redis feed."""
        seen = max(int_field(book, "recv_ts_ms"), int_field(book, "verified_ts_ms"))
        h.data_age_ms = max(0, wall - seen) if source == "redis" else 0
        if source != "redis" and h.book_source in ("", "redis"):
            h.fallback_wall_ms = wall
        elif source == "redis" and h.book_source in ("rest", "none"):
            self.journal.record("BOOK_FEED_RETURNED", token_id=h.grant.token_id, was=h.book_source,
                                after_ms=max(0, wall - h.fallback_wall_ms))

    # ---- strategy and execution ----
    def apply(self, h: Held, ev: Event, market: MarketView) -> bool:
        """Run the strategy on ``ev`` and execute its intents; True when an order was cancelled."""
        assert h.state is not None
        before = h.state
        if isinstance(ev, Fill) and before.done:  # a fill racing a close counts; the close is decided again
            h.state, h.reopened = replace(before, done=False), True
        h.state, intents = strategy.step(h.state, market, ev, self.clock.now_ms(), self.params)
        if isinstance(ev, Fill):
            self.on_fill(h, ev, before)
        return self.execute(h, intents, market)

    def execute(self, h: Held, intents: list[Intent], market: MarketView) -> bool:
        """Perform intents in order; outcomes go back into the strategy as events."""
        assert h.state is not None
        cancelled = deferred = False
        for i in intents:
            events: list[Event] = []
            if isinstance(i, Place):
                if h.state.done or h.released or not self.admit(h, i):  # admit: account-wide risk reservation
                    continue
                events = self.desk.place(h.grant, i, market.tick_size, h.neg_risk, h.data_age_ms,
                                         h.change_seq or None)
                if h.change_wall_ms and any(isinstance(e, Posted) and e.order.status == "LIVE" for e in events):
                    metrics.WORKER_TICK_TO_ORDER.observe(max(0, self.clock.wall_ms() - h.change_wall_ms) / 1000)
            elif isinstance(i, Cancel):
                order = next((o for o in h.state.orders if o.order_id == i.order_id), None)
                if order is None:
                    continue
                h.grant = self.leases.renew(h.grant, self.clock.wall_ms(), self.s.lease_ttl_ms)  # fence first
                events, cancelled = self.desk.cancel(h.grant, order, i.why, h.data_age_ms), True
            elif isinstance(i, Transition):
                if i.state in CLOSING and (h.state.done or h.reopened) and not self.may_close(h, i, market):
                    deferred = True
                    continue
                self.transition(h, i)
            elif isinstance(i, Release):
                if not deferred:
                    self.release(h, i)
            elif isinstance(i, Note):
                self.journal.record(i.reason, token_id=h.grant.token_id, level=i.level, **i.fields)
            elif isinstance(i, Redeem):
                settle.perform(self, h, i, market)
            for ev in events:
                self.apply(h, ev, market)
        return cancelled

    def resweep(self, h: Held, market: MarketView) -> None:
        """Settle the token's orders from the venue after a user-channel reconnect (``Settler.sweep``);
        a venue failure is journaled RECONCILE_FAILED and retried at the next step."""
        gen = self.user.feed_gen
        try:
            self.settler.sweep(h, lambda ev: self.apply(h, ev, market), "reconnect")
            h.feed_gen = gen
        except VenueError as exc:
            self.journal.record("RECONCILE_FAILED", token_id=h.grant.token_id, level="warn", source="reconnect",
                                error=exc.message[:200])

    def may_close(self, h: Held, t: Transition, market: MarketView) -> bool:
        """The venue check before a close (``Settler.may_close``); a fill that raced the close re-opens
        the token instead (journaled CLOSE_DEFERRED), so the strategy decides on the new position."""
        assert h.state is not None
        if h.reopened:
            h.reopened = False
            h.state = replace(h.state, done=False)
            self.journal.record("CLOSE_DEFERRED", token_id=h.grant.token_id, level="warn", state=t.state,
                                why=t.reason, position=h.state.position, cause="FILL_DURING_CLOSE")
            return False
        return self.settler.may_close(h, t, lambda ev: self.apply(h, ev, market))

    def on_fill(self, h: Held, f: Fill, before: TokenState) -> None:
        """Persist position (fenced), journal FILL, count it; add realized P&L and halt past the limit."""
        assert h.state is not None
        s, token, now = h.state, h.grant.token_id, self.clock.now_ms()
        self.leases.fenced_hset(h.grant, keys.tok(token), position_fields(s), self.clock.wall_ms())
        self.journal.record("FILL", token_id=token, order_id=f.order_id, side=f.side, price=f.price, size=f.size,
                            position=s.position, avg_entry=s.avg_entry)
        self.journal.bump("fills")
        purpose = next((o.purpose for o in before.orders if o.order_id == f.order_id), "unknown")
        metrics.WORKER_ORDERS.labels(f.side, "filled", purpose).inc()
        pnl = s.realized_pnl - before.realized_pnl
        if f.side == "SELL" and pnl != 0:
            total = risk.add_realized(self.r, pnl, now)
            if risk.loss_limit_hit(total, self.s.daily_loss_limit_usd) and risk.set_halt(
                    self.r, f"DAILY_LOSS_LIMIT day_pnl={total} limit={self.s.daily_loss_limit_usd}"):
                self.journal.record("HALT_DAILY_LOSS", token_id=token, level="error", day_pnl=total,
                                    limit=self.s.daily_loss_limit_usd)

    def transition(self, h: Held, t: Transition) -> None:
        """Write the lifecycle state (fenced) and journal it with its reason."""
        token, now = h.grant.token_id, self.clock.now_ms()
        fields = {"state": t.state, "reason": t.reason, "updated_ms": str(now)}
        self.leases.fenced_hset(h.grant, keys.tok(token), fields, self.clock.wall_ms())
        pos = h.state.position if h.state else ""
        self.journal.record(t.reason, token_id=token, level="error" if t.state == "failed" else "info",
                            state=t.state, position=pos, **t.info)

    def release(self, h: Held, rel: Release) -> None:
        """Give the lease up (once)."""
        if h.released:
            return
        h.released = True
        ok = self.leases.release(h.grant, rel.done)
        self.journal.record("LEASE_RELEASED", token_id=h.grant.token_id, done=rel.done, fence=h.grant.fence,
                            level="info" if ok else "warn", released=ok)
