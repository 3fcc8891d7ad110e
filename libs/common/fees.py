"""Polymarket's trading fees and maker rebates. Pure, Decimal throughout.

Source: docs.polymarket.com/trading/fees ("Fees"): fees are set by the protocol at match time, only
takers pay, ``fee = C x feeRate x p x (1 - p)`` with C the shares matched and p the fill price,
rounded to 5 decimals (0.00001 pUSD is the smallest fee charged). Rates by market category
(taker rate, maker rebate share): crypto 0.07 / 20 %, sports 0.03 / 25 %, finance, politics,
mentions, tech 0.04 / 25 %, economics, culture, weather and anything else 0.05 / 25 %,
geopolitics fee-free. The market object carries the schedule as
``feeSchedule {rate, exponent, takerOnly, rebateRate}`` (Gamma; reference/polymarket-api.md);
``exponent`` generalises ``p x (1 - p)`` to ``(p x (1 - p)) ** exponent`` (1 on every market today).

Maker rebates are paid daily from a pool of the taker fees of each market, pro rata to the maker
volume filled. A per-fill equivalent is what polyband books: a maker fill earns ``rebateRate`` times
the fee its counterparty paid on it (the same approximation NautilusTrader's PolymarketFeeModel
uses); it is an estimate of a payment that arrives the next day, reported apart from fees.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

__all__ = ["FeeSchedule", "NO_FEES", "CATEGORY_SCHEDULES", "schedule_for_category", "taker_fee", "maker_rebate",
           "fill_fee"]

FEE_QUANTUM = Decimal("0.00001")  # fees are rounded to 5 decimals (docs: trading/fees)
ZERO = Decimal(0)


@dataclass(frozen=True)
class FeeSchedule:
    """One market's ``feeSchedule``: ``rate`` (taker fee rate, e.g. 0.07), ``exponent`` (1),
    ``taker_only`` (makers pay nothing: true on every market today), ``rebate_rate`` (share of the
    taker fee returned to makers, e.g. 0.2)."""

    rate: Decimal
    exponent: int = 1
    taker_only: bool = True
    rebate_rate: Decimal = ZERO

    def as_json(self) -> dict[str, object]:
        """The ``markets.json`` / Gamma form: decimal strings and a bool."""
        return {"rate": str(self.rate), "exponent": str(self.exponent), "taker_only": self.taker_only,
                "rebate_rate": str(self.rebate_rate)}


NO_FEES = FeeSchedule(ZERO, 1, True, ZERO)

CATEGORY_SCHEDULES: dict[str, FeeSchedule] = {
    "crypto": FeeSchedule(Decimal("0.07"), 1, True, Decimal("0.20")),
    "sports": FeeSchedule(Decimal("0.03"), 1, True, Decimal("0.25")),
    "finance": FeeSchedule(Decimal("0.04"), 1, True, Decimal("0.25")),
    "politics": FeeSchedule(Decimal("0.04"), 1, True, Decimal("0.25")),
    "mentions": FeeSchedule(Decimal("0.04"), 1, True, Decimal("0.25")),
    "tech": FeeSchedule(Decimal("0.04"), 1, True, Decimal("0.25")),
    "economics": FeeSchedule(Decimal("0.05"), 1, True, Decimal("0.25")),
    "culture": FeeSchedule(Decimal("0.05"), 1, True, Decimal("0.25")),
    "weather": FeeSchedule(Decimal("0.05"), 1, True, Decimal("0.25")),
    "geopolitics": NO_FEES,
}
OTHER = FeeSchedule(Decimal("0.05"), 1, True, Decimal("0.25"))  # "Other / general" in the docs' table


def schedule_for_category(category: str) -> FeeSchedule:
    """The docs' schedule for a market category (case-insensitive); unknown categories get the
    "other" row (0.05 / 25 %)."""
    return CATEGORY_SCHEDULES.get(category.strip().lower(), OTHER)


def _curve(price: Decimal, exponent: int) -> Decimal:
    return (price * (1 - price)) ** exponent


def taker_fee(shares: Decimal, price: Decimal, schedule: FeeSchedule) -> Decimal:
    """pUSD a taker pays for ``shares`` matched at ``price`` (in [0, 1]), floored to 0.00001.

    Raises:
        ValueError: negative shares or a price outside [0, 1].
    """
    if shares < 0 or not ZERO <= price <= 1:
        raise ValueError(f"taker_fee: shares={shares} price={price} out of range")
    raw = shares * schedule.rate * _curve(price, schedule.exponent)
    return raw.quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


def maker_rebate(shares: Decimal, price: Decimal, schedule: FeeSchedule) -> Decimal:
    """Estimated pUSD rebate of a maker fill: ``rebate_rate`` x the fee its taker paid (module doc),
    floored to 0.00001."""
    return (taker_fee(shares, price, schedule) * schedule.rebate_rate).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


def fill_fee(shares: Decimal, price: Decimal, role: str, schedule: FeeSchedule) -> tuple[Decimal, Decimal]:
    """``(fee, rebate)`` in pUSD of one fill of ours: a TAKER pays the fee and earns nothing, a MAKER
    pays nothing (``taker_only``) and earns the rebate estimate.

    Raises:
        ValueError: ``role`` is not MAKER or TAKER, or the amounts are out of range.
    """
    if role == "TAKER":
        return taker_fee(shares, price, schedule), ZERO
    if role == "MAKER":
        fee = ZERO if schedule.taker_only else taker_fee(shares, price, schedule)
        return fee, maker_rebate(shares, price, schedule)
    raise ValueError(f"fill_fee: role={role!r} is not MAKER or TAKER")
