"""Pure price and size arithmetic on Decimals: ticks, floors, targets and sellable shares.

Rules from SPEC S3.4; tick rules from polymarket-api.md "Order types and rules" (a price must be a
multiple of the tick and lie in [tick, 1 - tick]; sizes carry 2 decimals, ROUNDING_CONFIG).
"""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from services.maker_worker.models import ZERO, MarketView, Params, TokenState

SIZE_STEP = Decimal("0.01")


def round_up_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Smallest multiple of ``tick`` >= ``price``."""
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def round_down_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Largest multiple of ``tick`` <= ``price``."""
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def clamp_price(price: Decimal, tick: Decimal) -> Decimal:
    """``price`` limited to [tick, 1 - tick], the valid range of a Polymarket price."""
    return min(max(price, tick), Decimal(1) - tick)


def round_size(size: Decimal) -> Decimal:
    """Shares rounded DOWN to 0.01 (never sell or buy more than asked); negative becomes 0."""
    return max(ZERO, size.quantize(SIZE_STEP, rounding=ROUND_DOWN))


def floor_of(state: TokenState, params: Params, tick: Decimal) -> Decimal:
    """Lowest ask an exit may use: ``max(avg_entry * (1 - max_loss), floor_price)`` rounded up to tick."""
    raw = max(state.avg_entry * (1 - params.max_loss), params.floor_price)
    return clamp_price(round_up_to_tick(raw, tick), tick)


def entry_target(m: MarketView) -> Decimal | None:
    """Entry BUY price: the best bid, or one tick above it when the spread is at least two ticks;
    never at or through the best ask (post-only). None without a bid."""
    if m.best_bid is None:
        return None
    price = m.best_bid
    if m.best_ask is not None and m.best_ask - m.best_bid >= 2 * m.tick_size:
        price = m.best_bid + m.tick_size
    price = clamp_price(round_down_to_tick(price, m.tick_size), m.tick_size)
    if m.best_ask is not None and price >= m.best_ask:
        return None
    return price


def take_profit_target(state: TokenState, m: MarketView, params: Params) -> Decimal:
    """``max(avg_entry * (1 + take_profit), best_bid + tick)`` rounded UP to tick, within [tick, 1-tick]."""
    raw = state.avg_entry * (1 + params.take_profit)
    if m.best_bid is not None:
        raw = max(raw, m.best_bid + m.tick_size)
    return clamp_price(round_up_to_tick(raw, m.tick_size), m.tick_size)


def sell_target_size(state: TokenState) -> Decimal:
    """Total shares we may have offered for sale: position, limited by the refreshed venue balance and
    the reduced size after a balance reject, rounded down to 0.01."""
    size = state.position
    if state.balance is not None:
        size = min(size, state.balance)
    if state.sell_cap is not None:
        size = min(size, state.sell_cap)
    return round_size(size)


def locked_in_sells(state: TokenState) -> Decimal:
    """Shares locked in our open SELL orders (their unmatched remainder)."""
    return sum((o.remaining for o in state.orders if o.side == "SELL"), ZERO)


def available_shares(state: TokenState) -> Decimal:
    """Shares free to sell now: sell target minus what our open SELL orders already lock."""
    return round_size(sell_target_size(state) - locked_in_sells(state))


def in_sell_only_window(state: TokenState, now_ms: int, params: Params) -> bool:
    """True within ``sell_only_window`` of the market end (no new buys)."""
    return now_ms >= state.end_ms - params.sell_only_window_ms


def signal_timed_out(state: TokenState, now_ms: int, params: Params) -> bool:
    """True after ``signal_timeout`` with neither a new signal nor a fill."""
    return now_ms - max(state.last_signal_ms, state.last_fill_ms) >= params.signal_timeout_ms


def entry_too_expensive(m: MarketView, leader_price: Decimal | None, params: Params) -> bool:
    """The bid ran more than ``max_entry_premium`` (a fraction of the leader's price) above the leader."""
    if leader_price is None or m.best_bid is None:
        return False
    return m.best_bid > leader_price * (1 + params.max_entry_premium)
