"""The band strategy core (SPEC S3.4): ``step(state, market, event, now_ms, params)``, pure.

Non-Tick events only update the state (fills, acks, rejects, balances, signals, mode changes);
every order decision is taken on a ``Tick``, so feeding several events before one Tick never
doubles an order. Orders are replaced in two phases: a Tick cancels what no longer fits, the
next Tick (once the venue confirmed) places the new order -- shares are never offered twice.
"""
from __future__ import annotations

from dataclasses import replace

from services.maker_worker import exits
from services.maker_worker.models import (
    ZERO, Balance, Cancel, Event, Fill, Intent, MarketView, ModeChange, Note, OpenOrder, OrderGone, OrderLive,
    Params, Place, Posted, Redeemed, RedeemFailed, Rejected, Resolved, SignalRefresh, Tick, TokenState,
)
from services.maker_worker.pricing import (
    entry_target, entry_too_expensive, in_sell_only_window, locked_in_sells, round_size, signal_timed_out,
)

Result = tuple[TokenState, list[Intent]]


def step(state: TokenState, market: MarketView, event: Event, now_ms: int, params: Params) -> Result:
    """Apply ``event`` at market time ``now_ms``; returns the new state and the intents to execute.

    A released state (``done``) ignores everything.
    """
    if state.done:
        return state, []
    if isinstance(event, Tick):
        return decide(state, market, event, now_ms, params)
    return apply_event(state, event, now_ms, params)


# ---------------------------------------------------------------- events
def apply_event(state: TokenState, event: Event, now_ms: int, params: Params) -> Result:
    """State change for one non-Tick event (see models for each event's meaning)."""
    if isinstance(event, Fill):
        return on_fill(state, event, now_ms), []
    if isinstance(event, OrderGone):
        return replace(state, orders=tuple(o for o in state.orders if o.order_id != event.order_id)), []
    if isinstance(event, Posted):
        kept = tuple(o for o in state.orders if o.order_id != event.order.order_id)
        return replace(state, orders=kept + (event.order,), rejects=0), []
    if isinstance(event, OrderLive):
        orders = tuple(replace(o, status="LIVE") if o.order_id == event.order_id else o for o in state.orders)
        return replace(state, orders=orders), []
    if isinstance(event, Rejected):
        return on_rejected(state, event, now_ms, params)
    if isinstance(event, Balance):
        return replace(state, balance=event.shares), []
    if isinstance(event, SignalRefresh):
        price = event.leader_price if event.leader_price is not None else state.leader_price
        return replace(state, leader_price=price, last_signal_ms=max(state.last_signal_ms, event.ts_ms)), []
    if isinstance(event, ModeChange):
        return on_mode(state, event)
    return on_resolution_event(state, event, now_ms, params)


def on_resolution_event(state: TokenState, event: Event, now_ms: int, params: Params) -> Result:
    """Resolved (market resolved, payout), Redeemed and RedeemFailed (outcomes of a Redeem intent)."""
    if isinstance(event, Resolved):
        return exits.on_resolved(state, event.payout, event.condition_id)
    if isinstance(event, Redeemed):
        return exits.on_redeemed(state, event)
    if isinstance(event, RedeemFailed):
        return exits.on_redeem_failed(state, event, now_ms, params)
    raise TypeError(f"unknown event {event!r}")


def on_fill(state: TokenState, f: Fill, now_ms: int) -> TokenState:
    """Position, avg_entry (BUY) or realized P&L (SELL), and the order's matched size."""
    orders = tuple(replace(o, matched=o.matched + f.size) if o.order_id == f.order_id else o for o in state.orders)
    if f.side == "BUY":
        pos = state.position + f.size
        avg = (state.position * state.avg_entry + f.size * f.price) / pos if pos > 0 else ZERO
        # A new fill is the only thing that lifts a reduced sell size (SPEC S3.4 sizing rule).
        return replace(state, orders=orders, position=pos, avg_entry=avg, last_fill_ms=now_ms,
                       sell_cap=None, balance=None, balance_failures=0)
    sold = min(f.size, state.position)
    return replace(
        state, orders=orders, position=state.position - sold, last_fill_ms=now_ms, sold_any=True,
        realized_pnl=state.realized_pnl + (f.price - state.avg_entry) * sold, agg_step_ms=now_ms,
        balance=None if state.balance is None else max(ZERO, state.balance - sold),
        sell_cap=None if state.sell_cap is None else max(ZERO, state.sell_cap - sold))


def on_rejected(state: TokenState, ev: Rejected, now_ms: int, params: Params) -> Result:
    """Balance rejects shrink the sell size and count toward BALANCE_FAILURES; other rejects back off."""
    if ev.kind in ("POST_ONLY_CROSS", "RATE_LIMITED", "UNAVAILABLE"):
        # the book moved (re-priced after the pause), or the venue asked us to slow down: not counted
        return replace(state, backoff_until_ms=now_ms + params.balance_backoff_ms), []
    if ev.kind == "INSUFFICIENT_BALANCE":
        n = state.balance_failures + 1
        cap = state.sell_cap
        if ev.side == "SELL":
            known = state.position if state.balance is None else state.balance
            cap = round_size(min(ev.size, known - locked_in_sells(state)))
        new = replace(state, balance_failures=n, sell_cap=cap, backoff_until_ms=now_ms + params.balance_backoff_ms * n)
        if n >= params.max_balance_failures:
            return exits.finish(new, "failed", "BALANCE_FAILURES", force=True)
        return new, []
    n = state.rejects + 1
    new = replace(state, rejects=n, backoff_until_ms=now_ms + params.balance_backoff_ms * n)
    if n >= params.max_balance_failures:
        return exits.finish(new, "failed", "ORDER_REJECTED", force=True)
    return new, []


def on_mode(state: TokenState, ev: ModeChange) -> Result:
    """Switch to aggressive selling once; an exit-only lease also forbids buying."""
    if state.exit_reason:
        return replace(state, exit_only=state.exit_only or ev.mode == "exit_only"), []
    reason = "EXIT_ONLY" if ev.mode == "exit_only" else (ev.reason or "EXITING")
    note = Note("EXIT_MODE", fields={"mode": ev.mode, "why": reason})
    return replace(state, exit_reason=reason, exit_only=ev.mode == "exit_only"), [note]


# ---------------------------------------------------------------- decisions
def decide(state: TokenState, m: MarketView, tick: Tick, now_ms: int, params: Params) -> Result:
    """One decision on a Tick: lifecycle first, then quotes. Places are held back during a backoff.
    A resolved market is settled and nothing is ever placed again; at the market end a held position
    waits for the resolution (``exits.market_end``)."""
    if state.resolved:
        return exits.settle(state, now_ms)
    if now_ms >= state.end_ms:
        return exits.market_end(state, now_ms, params)
    if any(o.status == "PENDING" for o in state.orders):
        return state, []  # an unknown outcome is resolved by id before anything else is sent
    state, intents = freshness(state, m, now_ms)
    if state.position > 0:
        state, more = exits.holding(state, m, now_ms, params)
    else:
        state, more = flat(state, m, tick, now_ms, params)
    intents = dedupe(intents + more)
    if now_ms < state.backoff_until_ms:
        intents = [i for i in intents if not isinstance(i, Place)]
    return state, intents


def dedupe(intents: list[Intent]) -> list[Intent]:
    """Drop a second Cancel of the same order id (keeps the order of the rest)."""
    seen: set[str] = set()
    out: list[Intent] = []
    for i in intents:
        if isinstance(i, Cancel):
            if i.order_id in seen:
                continue
            seen.add(i.order_id)
        out.append(i)
    return out


def freshness(state: TokenState, m: MarketView, now_ms: int = 0) -> Result:
    """STALE_DATA once per episode (counted by the journal), STALE_RECOVERED when it ends; then, on a
    fresh book, the per-side gaps (``side_gaps``)."""
    if not m.fresh and not state.stale:
        return replace(state, stale=True), [Note("STALE_DATA", "warn")]
    if m.fresh and state.stale:
        state, notes = side_gaps(replace(state, stale=False), m, now_ms)
        return state, [Note("STALE_RECOVERED")] + notes
    return side_gaps(state, m, now_ms) if m.fresh else (state, [])


def side_gaps(state: TokenState, m: MarketView, now_ms: int) -> Result:
    """BOOK_SIDE_MISSING ``side=bid|ask`` once when a side of a fresh book is empty, BOOK_SIDE_RESTORED
    ``side``, ``gap_ms`` (market ms) when it is back; ``state.side_missing_ms`` holds the open gaps."""
    notes: list[Intent] = []
    marks = list(state.side_missing_ms)
    for i, (side, price) in enumerate((("bid", m.best_bid), ("ask", m.best_ask))):
        if price is None and not marks[i]:
            marks[i] = max(1, now_ms)
            notes.append(Note("BOOK_SIDE_MISSING", "warn", {"side": side}))
        elif price is not None and marks[i]:
            notes.append(Note("BOOK_SIDE_RESTORED", fields={"side": side, "gap_ms": str(max(0, now_ms - marks[i]))}))
            marks[i] = 0
    if not notes:
        return state, []
    return replace(state, side_missing_ms=(marks[0], marks[1])), notes


def flat(state: TokenState, m: MarketView, tick: Tick, now_ms: int, params: Params) -> Result:
    """Nothing held: finish the token when its job is over, otherwise quote the entry."""
    if state.exit_reason:
        return exits.finish_exit(state)
    if state.sold_any:
        return exits.finish(state, "cooldown", "TAKE_PROFIT_DONE")
    if in_sell_only_window(state, now_ms, params):
        return exits.finish(state, "cooldown", "SELL_ONLY_WINDOW_FLAT")
    if signal_timed_out(state, now_ms, params):
        return exits.finish(state, "cooldown", "SIGNAL_TIMEOUT_FLAT")
    if tick.halted:
        return state, [Cancel(o.order_id, "HALT") for o in state.orders]
    if not m.fresh:
        return state, []
    if entry_too_expensive(m, state.leader_price, params):
        return exits.finish(state, "cooldown", "ENTRY_ABANDONED")
    return entry(state, m, tick, params)


def entry(state: TokenState, m: MarketView, tick: Tick, params: Params) -> Result:
    """Post-only BUY at the entry target; re-price when the best bid moved away from our order."""
    target = entry_target(m)
    buys = [o for o in state.orders if o.side == "BUY"]
    if buys:
        o = buys[0]
        if len(buys) == 1 and (o.price == target or m.best_bid == o.price or target is None):
            return state, []  # still at (or making) the best bid
        return state, [Cancel(b.order_id, "REPRICE") for b in buys]
    if target is None:
        return state, []
    size = round_size(min(max(params.order_size, m.min_order_size), params.max_position))
    block = ""
    if size < m.min_order_size:
        block = "MAX_POSITION_BELOW_MIN"
    elif size * target > tick.exposure_room_usd:
        block = "EXPOSURE_CAP"
    if block:
        return blocked(state, block)
    return replace(state, entry_block=""), [Place("BUY", target, size, "entry", True)]


def blocked(state: TokenState, why: str) -> Result:
    """ENTRY_BLOCKED journaled once per cause."""
    if state.entry_block == why:
        return state, []
    return replace(state, entry_block=why), [Note("ENTRY_BLOCKED", "warn", {"why": why})]


def new_order(place: Place, order_id: str, now_ms: int, status: str = "LIVE") -> OpenOrder:
    """The OpenOrder for a Place the venue accepted (or whose outcome is pending)."""
    return OpenOrder(order_id, place.side, place.price, place.size, place.purpose, now_ms, status=status)
