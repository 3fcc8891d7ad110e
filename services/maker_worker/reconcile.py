"""Reconciliation of one token against the venue (SPEC S3.4 last bullet; S2 "reconciles position
before quoting"): the pure comparison. The shell that reads both sides and acts is ``reconciler``.

``diff(records, venue_orders, recorded_position, venue_position) -> Drift`` compares our open order
records (LIVE/PENDING, as ``OpenOrder``) and our recorded position (shares) with what the venue
reports: its open orders on the token (``OrderState``, from ``Venue.open_orders``) and its balance of
the token (shares, ``Venue.token_balance``). Rules:

- A venue order none of our records carries is UNKNOWN. It is ADOPTED when a PENDING record of ours
  (a POST whose outcome is unknown) that the venue does not list has the same side, price and size:
  the order reached the venue under another id (``OrderDesk._adopt``). Pairing is greedy in the
  venue's order; a record adopts at most one order. Any other unknown order is CANCELED.
- A record the venue does not list as open is resolved by id (``get_order``): it may have filled
  (MATCHED) or been cancelled. Reason ``NOT_OPEN``.
- A record the venue lists with more shares matched than we recorded has a fill we have not
  counted yet: resolved by id too. Reason ``MATCHED_BEHIND``.
- Position: any difference, ``size`` = venue - recorded (positive: the venue holds more).

Everything is Decimal (prices in [0, 1], sizes in shares); nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from libs.common.venue_types import OrderState
from services.maker_worker.models import OpenOrder

OPEN = ("LIVE", "PENDING")


@dataclass(frozen=True)
class Adopt:
    """Track venue order ``venue`` in place of our PENDING ``record`` (same side, price, size)."""

    record: OpenOrder
    venue: OrderState


@dataclass(frozen=True)
class Resolve:
    """Read ``record`` by id: ``why`` NOT_OPEN (the venue does not list it) or MATCHED_BEHIND (listed
    with ``venue_matched`` shares matched, more than ``record.matched``; None when not listed)."""

    record: OpenOrder
    why: str
    venue_matched: Decimal | None = None


@dataclass(frozen=True)
class PositionDrift:
    """Recorded and venue position (shares) that differ; ``size`` = venue - recorded."""

    recorded: Decimal
    venue: Decimal

    @property
    def size(self) -> Decimal:
        return self.venue - self.recorded


@dataclass(frozen=True)
class Drift:
    """What reconciliation must do: ``cancel`` unknown venue orders, ``adopt`` pairs, ``resolve``
    records by id; ``position`` the position drift (None = none)."""

    cancel: tuple[OrderState, ...] = ()
    adopt: tuple[Adopt, ...] = ()
    resolve: tuple[Resolve, ...] = ()
    position: PositionDrift | None = None

    @property
    def clean(self) -> bool:
        """Nothing to do and nothing to journal."""
        return not (self.cancel or self.adopt or self.resolve or self.position)


def position_drift(recorded: Decimal, venue: Decimal) -> PositionDrift | None:
    """A PositionDrift when the two sizes differ (exact Decimal comparison), else None."""
    return None if recorded == venue else PositionDrift(recorded, venue)


def _matches(record: OpenOrder, v: OrderState) -> bool:
    return record.side == v.side and record.price == v.price and record.size == v.original_size


def order_diff(records: Sequence[OpenOrder], venue_orders: Sequence[OrderState]) -> Drift:
    """The order part of ``diff`` (module doc); records not LIVE/PENDING are ignored; the venue's
    orders are taken as open whatever their status says."""
    ours = [o for o in records if o.status in OPEN]
    ids = {o.order_id for o in ours}
    listed = {v.id: v for v in venue_orders}
    orphans = [o for o in ours if o.status == "PENDING" and o.order_id not in listed]
    cancel: list[OrderState] = []
    adopt: list[Adopt] = []
    for v in venue_orders:
        if v.id in ids:
            continue
        match = next((o for o in orphans if _matches(o, v)), None)
        if match is None:
            cancel.append(v)
        else:
            orphans.remove(match)
            adopt.append(Adopt(match, v))
    adopted = {a.record.order_id for a in adopt}
    resolve: list[Resolve] = []
    for o in ours:
        v = listed.get(o.order_id)
        if v is None and o.order_id not in adopted:
            resolve.append(Resolve(o, "NOT_OPEN"))
        elif v is not None and v.size_matched > o.matched:
            resolve.append(Resolve(o, "MATCHED_BEHIND", v.size_matched))
    return Drift(tuple(cancel), tuple(adopt), tuple(resolve))


def diff(records: Sequence[OpenOrder], venue_orders: Sequence[OrderState], recorded_position: Decimal,
         venue_position: Decimal) -> Drift:
    """Compare our records and position with the venue's open orders and balance (module doc).

    Args:
        records: our order records (only LIVE/PENDING ones count), ids unique.
        venue_orders: the venue's open orders on the same token.
        recorded_position, venue_position: shares.
    Returns:
        Drift listing the actions; ``Drift.clean`` when both sides agree.
    """
    d = order_diff(records, venue_orders)
    return Drift(d.cancel, d.adopt, d.resolve, position_drift(recorded_position, venue_position))
