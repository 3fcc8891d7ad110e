"""Risk limits (SPEC S3.4 "Risk"): exposure across a worker's tokens and the daily loss halt.

* Exposure (USD) of a token: shares held at their average entry plus what our open BUY orders may
  still buy. New entries must fit under ``max_exposure_usd`` summed over this worker's tokens.
* Daily loss: realized P&L of every worker, per UTC day of market time, is summed in
  ``pb:risk:daily_pnl`` as integer micro-USD (no float arithmetic on money). At or below
  ``-daily_loss_limit_usd`` the worker SETs ``pb:halt`` (reason): every worker cancels all its open
  orders once and places no new entries until a human deletes the key (``polyband resume``).
"""
from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable

from redis import Redis

from libs.common import keys
from services.maker_worker.models import ZERO, TokenState

MICRO = Decimal(1_000_000)


def exposure_usd(states: Iterable[TokenState]) -> Decimal:
    """USD committed: sum of position * avg_entry plus open BUY remainder * price."""
    total = ZERO
    for s in states:
        total += s.position * s.avg_entry
        total += sum((o.remaining * o.price for o in s.orders if o.side == "BUY"), ZERO)
    return total


def exposure_room(states: Iterable[TokenState], cap: Decimal) -> Decimal:
    """How much more USD new entries may commit (never negative)."""
    return max(ZERO, cap - exposure_usd(states))


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
