"""Pure full L2 order book of one token, in integer micros (see ``units.py``).

Rules (``reference/polymarket-api.md`` 1.1, "price_change"): a level update carries the level's new
*total* size, not a difference; size 0 deletes the level; BUY updates the bid side, SELL the ask
side; a ``book`` message replaces the whole book. The best bid is the highest bid price, the best
ask the lowest ask price (the wire lists bids ascending and asks descending, best last; this module
does not rely on any order).
"""
from __future__ import annotations

from typing import Iterable, NamedTuple


class TopOfBook(NamedTuple):
    """Best prices and their sizes in micros; ``None`` price (and size 0) when that side is empty."""

    bid: int | None
    bid_size: int
    ask: int | None
    ask_size: int

    @property
    def crossed(self) -> bool:
        """True when both sides exist and best bid >= best ask (a book that must never be published)."""
        return self.bid is not None and self.ask is not None and self.bid >= self.ask


EMPTY_TOP = TopOfBook(None, 0, None, 0)


class Book:
    """Levels ``price -> size`` per side with the best price of each side kept current.

    ``set_level`` is O(1) except when it deletes the best level (then O(levels) to find the next).
    """

    __slots__ = ("bids", "asks", "best_bid", "best_ask")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None

    def top(self) -> TopOfBook:
        """Current top of book."""
        bb, ba = self.best_bid, self.best_ask
        return TopOfBook(bb, self.bids[bb] if bb is not None else 0, ba, self.asks[ba] if ba is not None else 0)

    def replace(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> TopOfBook:
        """Replace both sides with ``(price, size)`` levels (size 0 levels are left out); returns the top."""
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self.best_bid = max(self.bids) if self.bids else None
        self.best_ask = min(self.asks) if self.asks else None
        return self.top()

    def clear(self) -> None:
        """Drop every level (the book is unknown until the next snapshot)."""
        self.replace((), ())

    def set_level(self, is_bid: bool, price: int, size: int) -> None:
        """Set the total size at ``price`` on the bid (``is_bid``) or ask side; size 0 deletes it."""
        if is_bid:
            side, best = self.bids, self.best_bid
            if size:
                side[price] = size
                if best is None or price > best:
                    self.best_bid = price
            elif side.pop(price, None) is not None and price == best:
                self.best_bid = max(side) if side else None
        else:
            side, best = self.asks, self.best_ask
            if size:
                side[price] = size
                if best is None or price < best:
                    self.best_ask = price
            elif side.pop(price, None) is not None and price == best:
                self.best_ask = min(side) if side else None

    def apply(self, is_bid: bool, price: int, size: int) -> TopOfBook | None:
        """``set_level`` and return the new top only when it changed (prices or sizes), else None."""
        before = self.top()
        self.set_level(is_bid, price, size)
        after = self.top()
        return after if after != before else None

    def same_levels(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> bool:
        """True when this book holds exactly these levels (e.g. a REST ``/book`` compared in a verify)."""
        return self.bids == {p: q for p, q in bids if q} and self.asks == {p: q for p, q in asks if q}
