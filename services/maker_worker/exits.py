"""Holding a position: take profit, exit triggers, the aggressive sell ladder, dust and finishing.

Aggressive exit (SPEC S3.4): start at (or one tick inside) the best ask; every
``aggressive_step_after`` of market time without a fill lower the ask by ``aggressive_step_ticks``;
join a lower best ask at once; never go below the floor ``max(avg_entry * (1 - max_loss),
floor_price)``, where the order is kept resting ("hit floor, keep floor order", FLOOR_HIT once).
Choice: an aggressive order is post-only while it rests above the best bid; once the ladder reaches
the best bid it is sent as a plain GTC limit (it crosses and takes the bid, never below our price)
-- a post-only order there would only be rejected.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.maker_worker.models import (
    Cancel, Intent, MarketView, Note, Params, Place, Redeem, Redeemed, RedeemFailed, Release, TokenState, Transition,
)
from services.maker_worker.pricing import (
    clamp_price, floor_of, in_sell_only_window, round_up_to_tick, sell_target_size, signal_timed_out,
    take_profit_target,
)

Result = tuple[TokenState, list[Intent]]


def finish(state: TokenState, new_state: str, reason: str, force: bool = False) -> Result:
    """End the token: cancel its orders, write ``new_state``/``reason`` and release the lease (done).

    Without ``force`` only the cancels are returned while orders remain (the next Tick finishes, so
    a fill racing the cancel is still seen); with ``force`` (market ended, failed) all at once.
    """
    cancels: list[Intent] = [Cancel(o.order_id, reason) for o in state.orders]
    if cancels and not force:
        return state, cancels
    return replace(state, done=True), cancels + [Transition(new_state, reason), Release(True)]


def finish_exit(state: TokenState) -> Result:
    """Flat while exiting: exit-only tasks ALWAYS end closed, sold or not (the legacy left them stuck)."""
    if state.exit_only:
        return finish(state, "closed", "EXIT_ONLY_DONE" if state.sold_any else "EXIT_ONLY_NOTHING_TO_SELL")
    if state.exit_reason == "INACTIVE_CLEANUP" and not state.sold_any:
        return finish(state, "cooldown", "INACTIVE_CLEANUP_FLAT")
    return finish(state, "closed", "EXIT_DONE")


def holding(state: TokenState, m: MarketView, now_ms: int, params: Params) -> Result:
    """Switch to exiting when a trigger fires, cancel what is left of the entry, then quote the SELL.

    An entry filled below the market minimum keeps resting (its rest may still fill) unless exiting.
    """
    state, trig = exit_triggers(state, m, now_ms, params)
    buys = [o for o in state.orders if o.side == "BUY"]
    if buys and not state.exit_reason and sell_target_size(state) < m.min_order_size:
        return state, trig
    intents: list[Intent] = [Cancel(o.order_id, "ENTRY_FILLED") for o in buys] + trig
    if not m.fresh:
        return state, intents  # stale: keep state and resting orders, quote nothing new
    if state.exit_reason:
        state, more = aggressive(state, m, now_ms, params)
    else:
        state, more = place_sell(state, m, take_profit_target(state, m, params), "take_profit", True)
    return state, intents + more


def exit_triggers(state: TokenState, m: MarketView, now_ms: int, params: Params) -> Result:
    """SELL_ONLY_WINDOW, SIGNAL_TIMEOUT_HOLDING or STOP_LOSS -> state exiting (once)."""
    if state.exit_reason:
        return state, []
    reason = ""
    if in_sell_only_window(state, now_ms, params):
        reason = "SELL_ONLY_WINDOW"
    elif signal_timed_out(state, now_ms, params):
        reason = "SIGNAL_TIMEOUT_HOLDING"
    elif m.fresh and m.best_bid is not None and m.best_bid <= state.avg_entry * (1 - params.stop_loss):
        reason = "STOP_LOSS"
    if not reason:
        return state, []
    return replace(state, exit_reason=reason), [Transition("exiting", reason)]


def initial_ask(m: MarketView) -> Decimal | None:
    """First aggressive ask: one tick inside the spread when it is two ticks or wider, else the best
    ask; one tick above the bid when there is no ask; None with an empty book."""
    if m.best_ask is not None:
        if m.best_bid is not None and m.best_ask - m.best_bid >= 2 * m.tick_size:
            return m.best_ask - m.tick_size
        return m.best_ask
    return None if m.best_bid is None else m.best_bid + m.tick_size


def aggressive(state: TokenState, m: MarketView, now_ms: int, params: Params) -> Result:
    """One rung of the aggressive ladder (see module docstring)."""
    tick = m.tick_size
    floor = floor_of(state, params, tick)
    if state.agg_price is None:
        price, step_ms = initial_ask(m), now_ms
        if price is None:
            return state, []
    else:
        price, step_ms = state.agg_price, state.agg_step_ms
        if now_ms - step_ms >= params.aggressive_step_after_ms:
            price, step_ms = price - params.aggressive_step_ticks * tick, now_ms
        if m.best_ask is not None and m.best_ask < price:
            price = m.best_ask
    price = max(floor, clamp_price(round_up_to_tick(price, tick), tick))
    notes: list[Intent] = []
    at_floor = price <= floor
    if at_floor and not state.floor_hit:
        notes.append(Note("FLOOR_HIT", "warn", {"price": str(floor), "msg": "hit floor, keep floor order"}))
    state = replace(state, agg_price=price, agg_step_ms=step_ms, floor_hit=state.floor_hit or at_floor)
    post_only = m.best_bid is None or price > m.best_bid
    state, more = place_sell(state, m, price, "floor" if at_floor else "aggressive", post_only)
    return state, notes + more


def place_sell(state: TokenState, m: MarketView, price: Decimal, purpose: str, post_only: bool) -> Result:
    """Keep a SELL that already has this price and size; else cancel ours (phase 1) or place (phase 2).

    The size is every share we may sell (``sell_target_size``: position, refreshed balance and the
    reduced size after a balance reject); below ``min_order_size`` it is dust.
    """
    size = sell_target_size(state)
    sells = [o for o in state.orders if o.side == "SELL"]
    if sells:
        o = sells[0]
        if len(sells) == 1 and o.price == price and o.remaining == size:
            return state, []
        return state, [Cancel(s.order_id, "REPRICE" if s.price != price else "RESIZE") for s in sells]
    if size < m.min_order_size:
        return dust(state, size)
    return state, [Place("SELL", price, size, purpose, post_only)]


def dust(state: TokenState, sellable: Decimal) -> Result:
    """A remainder below the market minimum cannot be sold: journal DUST_REMAINDER once and close the
    token (the position stays recorded for redemption) instead of retrying forever."""
    notes: list[Intent] = []
    if not state.dust_noted:
        fields = {"position": str(state.position), "sellable": str(sellable),
                  "min_order_size": str(state.min_order_size)}
        notes.append(Note("DUST_REMAINDER", "warn", fields))
    state, intents = finish(replace(state, dust_noted=True), "closed", "DUST_REMAINDER")
    return state, notes + intents


# ---------------------------------------------------------------- market end and resolution
def market_end(state: TokenState, now_ms: int, params: Params) -> Result:
    """Market time reached ``end_ms``. Flat: closed MARKET_ENDED. Holding: cancel every order, place
    nothing, and wait up to ``resolution_wait_ms`` for the resolution (AWAITING_RESOLUTION once); past
    that, closed MARKET_ENDED (the position stays recorded; the scheduler settles it at resolution)."""
    if state.position <= 0 or now_ms >= state.end_ms + params.resolution_wait_ms:
        return finish(state, "closed", "MARKET_ENDED", force=True)
    intents: list[Intent] = [Cancel(o.order_id, "MARKET_ENDED") for o in state.orders]
    if not state.awaiting_noted:
        fields = {"position": str(state.position), "wait_ms": str(params.resolution_wait_ms)}
        intents.append(Note("AWAITING_RESOLUTION", fields=fields))
    return replace(state, awaiting_noted=True), intents


def on_resolved(state: TokenState, payout: Decimal | None, condition_id: str = "") -> Result:
    """The market resolved: remember it and its payout (first report wins); the next Tick settles."""
    if state.resolved:
        return state, []
    return replace(state, resolved=True, payout=payout, condition_id=state.condition_id or condition_id), []


def settle(state: TokenState, now_ms: int) -> Result:
    """A Tick on a resolved token: cancel every order first; then settle the position at the payout
    (realized P&L += position * (payout - avg_entry), exact Decimal, average cost) and ask the shell to
    redeem; a flat token ends ``resolved`` SETTLED_FLAT; an unknown payout ends ``failed``
    PAYOUT_UNKNOWN (nothing can be settled; the position stays recorded)."""
    if state.orders:
        return state, [Cancel(o.order_id, "MARKET_RESOLVED") for o in state.orders]
    if state.payout is None:
        return finish(state, "failed", "PAYOUT_UNKNOWN", force=True)
    first = state.redeem_shares == 0
    if first and state.position <= 0:
        info = {"payout": str(state.payout), "realized_pnl": str(state.realized_pnl)}
        return replace(state, done=True), [Transition("resolved", "SETTLED_FLAT", info), Release(True)]
    intents: list[Intent] = []
    if first:
        pnl = state.position * (state.payout - state.avg_entry)
        state = replace(state, redeem_shares=state.position, settled_pnl=pnl, position=Decimal(0),
                        realized_pnl=state.realized_pnl + pnl, balance=None, sell_cap=None)
        intents.append(Transition("resolved", "MARKET_RESOLVED", {"payout": str(state.payout)}))
    if now_ms < state.backoff_until_ms:
        return state, intents
    return state, intents + [Redeem(state.redeem_shares, state.payout, state.settled_pnl, first)]


def on_redeemed(state: TokenState, ev: Redeemed) -> Result:
    """Redeemed: the token ends ``resolved`` (REDEEMED with the settlement's numbers) and is released."""
    info = {"condition_id": ev.condition_id, "shares": str(state.redeem_shares), "payout": str(state.payout),
            "payout_usd": "" if ev.payout_usd is None else str(ev.payout_usd), "pnl": str(state.settled_pnl),
            "realized_pnl": str(state.realized_pnl), "tx_id": ev.tx_id}
    return replace(state, redeem_shares=Decimal(0), done=True), [Transition("resolved", "REDEEMED", info),
                                                                Release(True)]


def on_redeem_failed(state: TokenState, ev: RedeemFailed, now_ms: int, params: Params) -> Result:
    """A failed redeem: retry after ``redeem_backoff_ms * 2**(n-1)``; the n-th failure with n =
    ``max_redeem_attempts`` ends the token ``failed`` REDEEM_FAILED (never a silent loop)."""
    n = state.redeem_failures + 1
    info = {"why": ev.reason[:200], "attempt": str(n), "shares": str(state.redeem_shares)}
    if n >= params.max_redeem_attempts:
        state = replace(state, redeem_failures=n, done=True)
        return state, [Transition("failed", "REDEEM_FAILED", info), Release(True)]
    delay = params.redeem_backoff_ms * 2 ** (n - 1)
    state = replace(state, redeem_failures=n, backoff_until_ms=now_ms + delay)
    return state, [Note("REDEEM_FAILED", "warn", {**info, "retry_in_ms": str(delay)})]
