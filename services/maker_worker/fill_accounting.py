"""Settling our orders from the venue's own record (issue 11 "No fill lost"): the pure rules. The shell
that reads the venue and Redis and acts is ``takeover.Settler``.

Accounting of one order (sizes in shares, Decimal): the shares of an order that already moved the
position are ``accounted = max(record matched, ledger accounted)``, where

- ``record matched`` is the ``matched`` of its ``pb:orders`` record (raised by every REST poll that
  counted a fill, and by every settlement), and
- ``ledger accounted`` is the sum of the sizes of its ``pb:fills`` entries (not FAILED) that moved the
  position: written by the lease that placed the order (``fence`` equal to the record's) or with
  ``counted`` > 0. An entry another lease wrote with ``counted`` 0 is a fill that was only LOGGED
  (the old takeover rule "already in the venue balance"): it is not accounted.

A new trade of ``size`` then counts ``trade_count(prior, matched, size)`` =
``max(0, prior + size - max(matched, prior))`` shares: what exceeds what was already accounted, so a
REST poll and the trade of the same shares never count twice, and a trade already in the ledger (by
``trade_id:order_id``) never counts again.

Fees of a fill (docs.polymarket.com/trading/fees; libs/common/fees.py): ``fee`` and ``rebate`` (pUSD)
of a ledger entry are ``fees.fill_fee(trade size, price, role, schedule)`` -- the whole trade's, as the
venue charged it, whichever path (poll or trade) counted its shares; 0 for a FAILED trade. The
schedule is the scheduler's ``pb:tok`` fee fields (``tokens.fee_schedule``), else the trade's own
``fee_rate_bps`` (exponent 1, no rebate); a market without fees books "0" whatever the role; a fee
market fill of unknown role books "" (unknown) with the reason code ``FEE_ROLE_UNKNOWN``.

Close check: a token may be closed (state closed/cooldown/resolved, lease released done) only when the
venue lists no open order on it that we do not track and its balance equals the position our fills
imply (``position + redeem_shares``).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from libs.common.fees import NO_FEES, FeeSchedule, fill_fee
from libs.common.pnl import stored_decimal
from libs.common.venue_types import OrderState

ZERO = Decimal(0)
OPEN = ("PENDING", "LIVE")
CLOSING = ("closed", "cooldown", "resolved")  # lifecycle states a done release writes
TRADES_MARGIN_MS = 60_000  # trades are listed from this long before our oldest record (clock skew)


dec = stored_decimal  # a stored decimal string (""/None/garbage -> 0): one parser for the ledger and the P&L


def ledger_accounted(entries: Iterable[Mapping[str, str]], order_id: str, record_fence: str) -> Decimal:
    """Shares of ``order_id`` the ``pb:fills`` entries say moved the position (module doc).

    Args:
        entries: decoded ledger values (``order_id, size, status, counted, fence`` as strings).
        record_fence: the fence of the order's ``pb:orders`` record ("" when there is none).
    """
    total = ZERO
    for e in entries:
        if e.get("order_id") != order_id or e.get("status") == "FAILED":
            continue
        if dec(e.get("counted")) > 0 or (record_fence != "" and str(e.get("fence", "")) == record_fence):
            total += dec(e.get("size"))
    return total


def trade_count(prior: Decimal, matched: Decimal, size: Decimal) -> Decimal:
    """Shares a new trade of ``size`` adds to the position, given ``prior`` ledger-accounted shares of
    its order and ``matched`` shares the order record/strategy already counted."""
    return max(ZERO, prior + size - max(matched, prior))


def plain(value: Decimal) -> str:
    """Decimal as plain text without exponent or trailing zeros (``Decimal("0.00000")`` -> ``"0"``)."""
    return format(value.normalize(), "f") if value else "0"


def trade_schedule(tok_schedule: FeeSchedule | None, trade_bps: str) -> FeeSchedule:
    """The schedule a fill is booked with (module doc): ``pb:tok``'s, else one from the trade's bps."""
    if tok_schedule is not None:
        return tok_schedule
    bps = dec(trade_bps)
    return FeeSchedule(bps / 10000, 1, True, ZERO) if bps > 0 else NO_FEES


def bps_mismatch(tok_schedule: FeeSchedule | None, trade_bps: str, role: str) -> bool:
    """A TAKER trade's ``fee_rate_bps`` disagrees with the ``pb:tok`` rate (x 10000)."""
    return (tok_schedule is not None and role == "TAKER" and trade_bps != ""
            and dec(trade_bps) != tok_schedule.rate * 10000)


def fill_fees(schedule: FeeSchedule, role: str, size: Decimal, price: Decimal) -> tuple[str, str, str]:
    """``(fee, rebate, problem)`` of one ledger entry (pUSD strings, module doc); ``problem`` is ""
    or a reason code (FEE_ROLE_UNKNOWN, FEE_UNCOMPUTABLE) with fee and rebate "" (unknown)."""
    if schedule.rate == 0:
        return "0", "0", ""
    if role not in ("MAKER", "TAKER"):
        return "", "", "FEE_ROLE_UNKNOWN"
    try:
        fee, rebate = fill_fee(size, price, role, schedule)
    except ValueError:
        return "", "", "FEE_UNCOMPUTABLE"
    return plain(fee), plain(rebate), ""


def trades_after_ms(placed_ms: Iterable[int]) -> int:
    """``after_ms`` for ``Venue.trades``: our oldest order's time minus TRADES_MARGIN_MS (0 if none)."""
    times = [t for t in placed_ms if t > 0]
    return max(0, min(times) - TRADES_MARGIN_MS) if times else 0


def final_status(record_status: str, venue: OrderState | None) -> tuple[str, str]:
    """(status to record, journal reason) for an order record after the takeover cancel.

    The venue's own status when it knows the order (MATCHED, CANCELED, or LIVE when a cancel did not
    take: ``ORDER_STILL_LIVE``); unknown to the venue: a PENDING record never arrived (FAILED,
    ``ORDER_NEVER_ARRIVED``), any other vanished (CANCELED, ``ORDER_VANISHED``)."""
    if venue is None:
        return ("FAILED", "ORDER_NEVER_ARRIVED") if record_status == "PENDING" else ("CANCELED", "ORDER_VANISHED")
    if venue.status == "LIVE":
        return "LIVE", "ORDER_STILL_LIVE"
    return venue.status, "ORDER_SETTLED"


@dataclass(frozen=True)
class CloseCheck:
    """What the venue shows against our books before a close: ``expected`` shares (position +
    settled-not-redeemed), the venue's ``venue`` balance, and its open orders we do not track."""

    expected: Decimal
    venue: Decimal
    unexplained: tuple[OrderState, ...] = ()

    @property
    def diff(self) -> Decimal:
        """venue - expected (positive: the venue holds shares our fills do not explain)."""
        return self.venue - self.expected

    @property
    def ok(self) -> bool:
        """Nothing unexplained: the close may proceed."""
        return self.diff == 0 and not self.unexplained


def close_check(expected: Decimal, venue_balance: Decimal, venue_open: Sequence[OrderState],
                tracked: set[str], token_id: str) -> CloseCheck:
    """Compare our books with the venue before a close (module doc); open orders naming another token
    are never ours to explain (one account serves every worker)."""
    unexplained = tuple(v for v in venue_open if v.token_id in ("", token_id) and v.id not in tracked)
    return CloseCheck(expected, venue_balance, unexplained)
