"""Risk limits (SPEC S3.4 "Risk"), pure arithmetic plus the two shared Redis counters.

* Exposure (USD) of a token: shares held at their average entry plus what our open BUY orders may
  still buy. It is counted ACCOUNT-WIDE in the ledger ``pb:risk:{acct}:exposure``
  (``libs.common.exposure``; the worker's shell is ``services.maker_worker.exposure``): a new entry
  BUY is reserved there atomically before it is signed, against ``max_exposure_usd`` for all
  workers together, and ``max_position`` caps position + open BUY remainder per token (shares).
* Daily loss: realized P&L of every worker, per UTC day of market time, is summed in
  ``pb:risk:daily_pnl`` (micro-USD); each holder marks its position to market in ``pb:risk:{acct}:upnl``
  (position x (best bid - avg entry), micro-USD). At or below ``-daily_loss_limit_usd`` of
  realized + unrealized the worker SETs ``pb:halt`` (reason): every worker cancels all its open
  orders once and places no new entries until a human deletes the key (``polyband resume``).

Money is Decimal or integer micro-USD here; never float.
"""
from __future__ import annotations

import time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Iterable

from redis import Redis

from libs.common import keys
from services.maker_worker.models import ZERO, Place, TokenState

MICRO = Decimal(1_000_000)


def exposure_usd(states: Iterable[TokenState]) -> Decimal:
    """USD committed: sum of position * avg_entry plus open BUY remainder * price."""
    total = ZERO
    for s in states:
        total += s.position * s.avg_entry
        total += sum((o.remaining * o.price for o in s.orders if o.side == "BUY"), ZERO)
    return total


def exposure_room(states: Iterable[TokenState], cap: Decimal) -> Decimal:
    """How much more USD new entries may commit over ``states`` alone (never negative)."""
    return max(ZERO, cap - exposure_usd(states))


def micro_up(amount: Decimal) -> int:
    """``amount`` (USD or shares) in integer micro-units, rounded UP (a commitment is never understated)."""
    return int((amount * MICRO).to_integral_value(rounding=ROUND_CEILING))


def micro_down(amount: Decimal) -> int:
    """``amount`` in integer micro-units, rounded DOWN (a cap is never overstated)."""
    return int((amount * MICRO).to_integral_value(rounding=ROUND_FLOOR))


def commitment(state: TokenState) -> tuple[int, int]:
    """(exposure micro-USD, shares micro-shares) the token commits: position x avg entry + open BUY
    remainder x price; position + open BUY remainder (PENDING orders count: they may be live)."""
    buys = [o for o in state.orders if o.side == "BUY"]
    usd = state.position * state.avg_entry + sum((o.remaining * o.price for o in buys), ZERO)
    shares = state.position + sum((o.remaining for o in buys), ZERO)
    return micro_up(usd), micro_up(shares)


def need_of(p: Place) -> tuple[int, int]:
    """(micro-USD, micro-shares) a BUY ``p`` may commit once posted."""
    return micro_up(p.size * p.price), micro_up(p.size)


def upnl_micro(state: TokenState, best_bid: Decimal | None) -> int | None:
    """Unrealized P&L in micro-USD: position x (best bid - avg entry); 0 when flat; None (keep the last
    mark) when holding without a bid. Rounded half-even."""
    if state.position <= 0:
        return 0
    if best_bid is None:
        return None
    pnl = state.position * (best_bid - state.avg_entry) * MICRO
    return int(pnl.to_integral_value(rounding=ROUND_HALF_EVEN))


def room_usd(others_micro: int, own_micro: int, cap: Decimal) -> Decimal:
    """USD a new entry of this token may still commit: ``cap`` - every other token's ledger exposure -
    this token's own commitment (never negative)."""
    return max(ZERO, (Decimal(micro_down(cap) - others_micro - own_micro) / MICRO))


def mtm_pnl_micro(realized_micro: int, upnl: Iterable[int]) -> int:
    """Day's P&L marked to market: realized today + the sum of every token's unrealized P&L (micro-USD)."""
    return realized_micro + sum(upnl)


def mtm_limit_hit(pnl_micro: int, limit_usd: Decimal) -> bool:
    """True when the marked day P&L (micro-USD) is at or below ``-limit_usd``."""
    return pnl_micro <= -micro_down(limit_usd)


def parse_micro(raw: str | None) -> int:
    """An integer micro-USD field as stored ("" or None = 0; malformed raises ValueError)."""
    return int(raw) if raw else 0


def utc_day(market_ms: int) -> str:
    """``YYYY-MM-DD`` of a market-time instant (UTC)."""
    return time.strftime("%Y-%m-%d", time.gmtime(market_ms / 1000))


def add_realized(r: Redis, pnl_usd: Decimal, market_ms: int) -> Decimal:
    """Add ``pnl_usd`` to today's run-wide realized P&L; returns the new total in USD."""
    micro = int((pnl_usd * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    total = int(r.hincrby(keys.RISK_DAILY_PNL, utc_day(market_ms), micro))
    return Decimal(total) / MICRO


def loss_limit_hit(total_usd: Decimal, limit_usd: Decimal) -> bool:
    """True when the day's realized P&L is at or below ``-limit_usd``."""
    return total_usd <= -limit_usd


def set_halt(r: Redis, reason: str) -> bool:
    """SET ``pb:halt`` to ``reason`` unless already set; True when this call set it."""
    return bool(r.set(keys.HALT, reason, nx=True))
