"""The REST backfill after every (re)connect: the user channel replays nothing, so whatever happened
while it was down is read from the venue and published exactly like live events (``source=rest``).

For each token with open order records or tracked by the scheduler (``store.open_orders_by_token``):
``Venue.trades(token, after_ms)`` from the newest match time seen minus an overlap (duplicates are
harmless: workers record a fill once per trade id), and ``Venue.get_order`` of each non-final order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from libs.common.venue_types import OrderState, TradeFill, VenueError
from services.user_feed.parse import Entry, fill_entry, state_entry


class BackfillVenue(Protocol):
    """The two venue reads a backfill needs (``libs.common.venue_types.Venue`` has both)."""

    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]: ...
    def get_order(self, order_id: str) -> OrderState | None: ...


@dataclass
class BackfillResult:
    """Entries to publish, per-kind counts and one ``(token_id, error)`` per failed venue read."""

    entries: list[Entry] = field(default_factory=list)
    trades: int = 0
    orders: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def after_ms(seen_ms: int, overlap_ms: int) -> int:
    """Where a token's trade read starts: ``overlap_ms`` before the newest match seen (0 = all)."""
    return max(0, seen_ms - overlap_ms) if seen_ms else 0


def backfill(venue: BackfillVenue, wanted: dict[str, list[str]], seen: dict[str, int], overlap_ms: int,
             now_ms: int) -> BackfillResult:
    """Read the venue for every token of ``wanted`` (token -> open order ids); a failed read is
    reported and the other tokens still done (the caller retries the whole backfill later)."""
    out = BackfillResult()
    for token in sorted(wanted):
        try:
            fills = venue.trades(token, after_ms(seen.get(token, 0), overlap_ms))
            states = [venue.get_order(oid) for oid in wanted[token]]
        except VenueError as exc:
            out.failures.append((token, exc.message[:200]))
            continue
        for f in sorted(fills, key=lambda f: (f.ts_ms, f.trade_id)):
            out.entries.append(fill_entry(f, token))
        out.trades += len(fills)
        for st in states:
            if st is not None:
                out.entries.append(state_entry(st, token, now_ms))
                out.orders += 1
    return out
