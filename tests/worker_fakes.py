"""FakeVenue (an in-memory exchange implementing ``libs.common.venue.Venue``) and Rig (a worker on it, with helpers
that play the scheduler and the gateway) for maker_worker tests.

Behaves like the paper venue where the worker cares: post-only orders that would cross are
rejected, a non-post-only crossing order fills at once, an order that cannot be funded gets
InsufficientBalance, fills move shares and pUSD, cancels are final. Tests drive it by hand:
``set_book``, ``fill``, ``cross`` and ``fail_next`` (fault injection per method).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from libs.common.leases import Leases
from libs.common.venue import (
    CancelResult, InsufficientBalance, OrderAck, OrderRejected, OrderState, PostOnlyCross, RestBook, SignedOrder,
    VenueUnavailable,
)
from libs.common.venue_types import RedeemResult, TradeFill
from services.maker_worker.config import WorkerSettings
from services.maker_worker.service import Worker
from services.md_gateway.publish import Publisher
from services.md_gateway.state import Publish

ZERO = Decimal(0)


@dataclass
class FakeOrder:
    """One order on the fake venue."""

    id: str
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    post_only: bool
    matched: Decimal = ZERO
    status: str = "LIVE"

    def state(self) -> OrderState:
        return OrderState(self.id, self.status, self.side, self.price, self.size, self.matched, self.token_id)


@dataclass
class FakeVenue:
    """See module docstring. ``calls`` logs every method call as (name, args)."""

    tick: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal(5)
    usdc: Decimal = Decimal(1000)
    books: dict[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)
    balances: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    faults: dict[str, list[Exception]] = field(default_factory=dict)
    posted: list[FakeOrder] = field(default_factory=list)
    lose_acks: int = 0  # the next n accepted POSTs answer with a timeout (outcome unknown to the caller)
    own_ids: bool = False  # the venue names orders itself instead of using the EIP-712 hash
    _n: int = 0

    # ---- test controls ----
    def set_book(self, token: str, bid: str | None, ask: str | None) -> None:
        self.books[token] = (Decimal(bid) if bid else None, Decimal(ask) if ask else None)

    def fail_next(self, method: str, exc: Exception, count: int = 1) -> None:
        self.faults.setdefault(method, []).extend([exc] * count)

    def _fault(self, method: str, *args: object) -> None:
        self.calls.append((method, args))
        queue = self.faults.get(method)
        if queue:
            raise queue.pop(0)

    def live(self, token: str | None = None) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.status == "LIVE" and token in (None, o.token_id)]

    def fill(self, order_id: str, size: Decimal | None = None) -> None:
        """Match ``size`` (default: all the rest) of a live order at its own price."""
        o = self.orders[order_id]
        qty = o.size - o.matched if size is None else size
        o.matched += qty
        sign = 1 if o.side == "BUY" else -1
        self.balances[o.token_id] = self.balances.get(o.token_id, ZERO) + sign * qty
        self.usdc -= sign * qty * o.price
        if o.matched >= o.size:
            o.status = "MATCHED"

    def cross(self, token: str) -> None:
        """Fill every live order the book crosses (BUY >= best ask, SELL <= best bid)."""
        bid, ask = self.books.get(token, (None, None))
        for o in self.live(token):
            if (o.side == "BUY" and ask is not None and o.price >= ask) or (
                    o.side == "SELL" and bid is not None and o.price <= bid):
                self.fill(o.id)

    # ---- Venue protocol ----
    def connect(self) -> None:
        self._fault("connect")

    def get_book(self, token_id: str) -> RestBook:
        self._fault("get_book", token_id)
        bid, ask = self.books.get(token_id, (None, None))
        return RestBook(bid, ask, Decimal(100), Decimal(100), self.tick, self.min_size, False, None, 0)

    def sign_limit(self, token_id: str, side: str, price: Decimal, size: Decimal, tick_size: Decimal,
                   neg_risk: bool) -> SignedOrder:
        self._fault("sign_limit", token_id, side, price, size)
        if price % tick_size != 0 or not tick_size <= price <= 1 - tick_size:
            raise OrderRejected(0, f"invalid price ({price}), tick {tick_size}")
        self._n += 1
        return SignedOrder(f"0x{self._n:064x}", token_id, side, price, size, None)

    def post_signed(self, order: SignedOrder, post_only: bool) -> OrderAck:
        self._fault("post_signed", order.order_id, order.side, order.price, order.size, post_only)
        if order.size < self.min_size:
            raise OrderRejected(400, f"Size ({order.size}) lower than the minimum: {self.min_size}")
        bid, ask = self.books.get(order.token_id, (None, None))
        crosses = (order.side == "BUY" and ask is not None and order.price >= ask) or (
            order.side == "SELL" and bid is not None and order.price <= bid)
        if crosses and post_only:
            raise PostOnlyCross(400, "invalid post-only order: order crosses book")
        self._check_funds(order)
        oid = f"venue-{len(self.orders)}" if self.own_ids else order.order_id
        o = FakeOrder(oid, order.token_id, order.side, order.price, order.size, post_only)
        self.orders[o.id] = o
        self.posted.append(o)
        if crosses:
            self.fill(o.id)
        if self.lose_acks > 0:
            self.lose_acks -= 1
            raise VenueUnavailable(0, "ReadTimeout: the order was accepted but the answer was lost")
        return OrderAck(o.id, "matched" if o.status == "MATCHED" else "live", ZERO, ZERO)

    def _check_funds(self, order: SignedOrder) -> None:
        if order.side == "SELL":
            locked = sum((o.size - o.matched for o in self.live(order.token_id) if o.side == "SELL"), ZERO)
            if order.size > self.balances.get(order.token_id, ZERO) - locked:
                raise InsufficientBalance(400, "not enough balance / allowance")
        else:
            locked = sum(((o.size - o.matched) * o.price for o in self.live() if o.side == "BUY"), ZERO)
            if order.size * order.price > self.usdc - locked:
                raise InsufficientBalance(400, "not enough balance / allowance")

    def cancel(self, order_id: str) -> CancelResult:
        self._fault("cancel", order_id)
        o = self.orders.get(order_id)
        if o is None or o.status != "LIVE":
            return CancelResult((), {order_id: "already canceled or matched"})
        o.status = "CANCELED"
        return CancelResult((order_id,), {})

    def cancel_token(self, token_id: str) -> CancelResult:
        self._fault("cancel_token", token_id)
        ids = [o.id for o in self.live(token_id)]
        for i in ids:
            self.orders[i].status = "CANCELED"
        return CancelResult(tuple(ids), {})

    def get_order(self, order_id: str) -> OrderState | None:
        self._fault("get_order", order_id)
        o = self.orders.get(order_id)
        return o.state() if o else None

    def open_orders(self, token_id: str) -> list[OrderState]:
        self._fault("open_orders", token_id)
        return [o.state() for o in self.live(token_id)]

    def token_balance(self, token_id: str) -> Decimal:
        self._fault("token_balance", token_id)
        return self.balances.get(token_id, ZERO)

    def collateral(self) -> Decimal:
        self._fault("collateral")
        return self.usdc

    def refresh_balance(self, token_id: str) -> None:
        self._fault("refresh_balance", token_id)

    # ---- resolution (redeem): ``resolve`` is the test control, ``redeem`` the Venue method ----
    payouts: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # condition id -> token -> USD/share

    def resolve(self, condition_id: str, payouts: dict[str, str]) -> None:
        """The market ``condition_id`` resolved: its tokens pay ``payouts`` (token -> "1"/"0") per share;
        its live orders are cancelled (as the paper venue does at a market's end)."""
        self.payouts[condition_id] = {t: Decimal(p) for t, p in payouts.items()}
        for o in self.live():
            if o.token_id in payouts:
                o.status = "CANCELED"

    def redeem(self, condition_id: str) -> RedeemResult:
        """Pay shares x payout of every token of the resolved market into ``usdc`` and zero the shares."""
        self._fault("redeem", condition_id)
        paid = ZERO
        for token, payout in self.payouts.get(condition_id, {}).items():
            paid += self.balances.get(token, ZERO) * payout
            self.balances[token] = ZERO
        self.usdc += paid
        return RedeemResult(condition_id, "CONFIRMED", f"0xredeem{len(self.calls)}", paid)

    # ---- trades (user_feed's REST backfill) ----
    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]:
        """One trade per order of ``token_id`` with a match so far (id ``trade-<order id>``, at the order's
        price, MATCHED), all at match time 0 (so ``after_ms`` filters nothing out)."""
        self._fault("trades", token_id, after_ms)
        return [TradeFill(f"trade-{o.id}", o.id, o.token_id, o.side, o.price, o.matched, "MATCHED", 0)
                for o in self.orders.values() if o.token_id == token_id and o.matched > 0]


T = "7087467268535103530871133345881326346657501309973952143921926744954887549159"


def gateway_publish(r: Redis, venue: FakeVenue, token: str, bid: str, ask: str, wall_ms: int) -> int:
    """Move ``token``'s book to ``bid``/``ask`` on the venue and publish it as md_gateway does
    (its own Publisher and book_publish.lua: seq bump, hash fields, stream entry); returns the seq."""
    venue.set_book(token, bid, ask)
    wall = str(wall_ms)
    fields = ["best_bid", bid, "best_ask", ask, "bid_size", "100", "ask_size", "100", "exch_ts_ms", wall,
              "recv_ts_ms", wall, "source", "ws", "status", "ok", "tick_size", "0.01", "min_order_size", "5"]
    pub = Publisher(r, 1000)
    pub.add([Publish(token, True, "price_change", fields)], [], [])
    pub.flush()
    pub.close()
    return int(r.hget(keys.md_book(token), "seq"))


class Rig:
    """A worker, its FakeVenue and helpers to play the scheduler and the gateway."""

    def __init__(self, r: Redis, worker_id: str = "w1", venue: FakeVenue | None = None,
                 clock: FakeClock | None = None, **overrides: object) -> None:
        self.r, self.clock = r, clock or FakeClock()
        self.venue = venue or FakeVenue()
        opts: dict[str, object] = dict(mode="paper", aggressive_step_after_s=5.0, sell_only_window_s=60.0,
                                       signal_timeout_s=150.0, balance_backoff_s=0.0, step_interval_s=0.25)
        opts.update(overrides)
        self.settings = WorkerSettings(**opts)  # type: ignore[arg-type]
        self.journal = Journal(r, "maker_worker", self.clock)
        self.worker = Worker(r, self.venue, self.settings, self.clock, self.journal, worker_id)
        self.book: tuple[str, str] = ("", "")

    def offer(self, token: str = T, mode: str = "maker", end_in_ms: int = 600_000, state: str = "active",
              position: str = "0") -> None:
        now = self.clock.now_ms()
        self.r.hset(keys.tok(token), mapping={
            "state": state, "reason": "ACTIVATED", "end_ms": now + end_in_ms, "tick_size": "0.01",
            "min_order_size": "5", "neg_risk": "false", "leader_price": "0.50", "signal_ts_ms": now,
            "position": position})
        Leases(self.r).offer(token, mode, self.clock.wall_ms())
        self.r.zadd(keys.SCHED_OFFERS, {token: self.clock.wall_ms()})

    def set_book(self, bid: str, ask: str, token: str = T) -> None:
        self.book = (bid, ask)
        self.venue.set_book(token, bid, ask)
        self._publish(token)

    def _publish(self, token: str = T) -> None:
        wall = self.clock.wall_ms()
        self.r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": wall})
        self.r.hset(keys.md_book(token), mapping={"best_bid": self.book[0], "best_ask": self.book[1], "status": "ok",
                                                  "recv_ts_ms": wall, "tick_size": "0.01", "min_order_size": "5"})

    def step(self, ms: int = 250, n: int = 1, token: str = T, market_ms: int = 0) -> None:
        """``n`` worker steps, each after ``ms`` of market and wall time (+ ``market_ms`` market only,
        as a fast replay does: leases live in wall time)."""
        for _ in range(n):
            self.clock.advance(ms)
            self.clock.now += market_ms
            self._publish(token)
            self.worker.step()

    def tok(self, token: str = T) -> dict[str, str]:
        return self.r.hgetall(keys.tok(token))

    def records(self, token: str = T) -> list[dict[str, object]]:
        return [json.loads(v) for v in self.r.hvals(keys.orders(token))]

    def events(self, reason: str) -> list[dict[str, str]]:
        return [f for _, f in self.r.xrange(keys.EVENTS) if f["reason"] == reason]


def entered(rig: Rig) -> FakeOrder:
    """Offer the token and let the worker post its entry BUY at 0.50; returns that live order."""
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    (buy,) = rig.venue.live(T)
    return buy


def hold(rig: Rig) -> None:
    """Offer the token, let the entry BUY at 0.50 fill (10 shares), step once more (take profit posted)."""
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    rig.venue.fill(rig.venue.live(T)[0].id)
    rig.step()


@dataclass
class TradeVenue(FakeVenue):
    """A FakeVenue that keeps one trade per fill, as a real venue does: ``fill`` takes the trade's price
    (a maker order can trade better than its limit) and id, balances move at that price, and
    ``trades`` lists those trades (``after_ms`` is logged in ``calls``, not applied)."""

    fills_made: list[TradeFill] = field(default_factory=list)

    def fill(self, order_id: str, size: Decimal | None = None, price: str | None = None,  # type: ignore[override]
             trade_id: str | None = None, ts_ms: int = 0) -> None:
        o = self.orders[order_id]
        qty = o.size - o.matched if size is None else size
        px = Decimal(price) if price else o.price
        o.matched += qty
        sign = 1 if o.side == "BUY" else -1
        self.balances[o.token_id] = self.balances.get(o.token_id, ZERO) + sign * qty
        self.usdc -= sign * qty * px
        if o.matched >= o.size:
            o.status = "MATCHED"
        tid = trade_id or f"trade-{len(self.fills_made) + 1}"
        self.fills_made.append(TradeFill(tid, o.id, o.token_id, o.side, px, qty, "MATCHED", ts_ms))

    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]:
        self._fault("trades", token_id, after_ms)
        return [t for t in self.fills_made if t.token_id == token_id]
