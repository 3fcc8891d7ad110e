"""Where a worker's top of book comes from: the Redis book when fresh, else REST ``GET /book``.

Freshness rule (docs/contracts.md "Market data"): ``pb:md:gateway`` has ``state=connected`` and
``updated_ms`` within ``gateway_stale_ms`` (wall), the book's ``status`` is ``ok`` and
``max(recv_ts_ms, verified_ts_ms)`` is within ``book_max_age_ms`` (wall). Quiet is not stale: a book
verified by REST recently is fresh even with no WS message. The same rule serves bid and ask.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from libs.common.venue import Venue, VenueError
from services.maker_worker.models import MarketView


@dataclass(frozen=True)
class BookRead:
    """One top-of-book read: ``source`` redis|rest|none; ``error`` says why the other sources failed."""

    best_bid: Decimal | None
    best_ask: Decimal | None
    tick_size: Decimal | None
    min_order_size: Decimal | None
    source: str
    error: str = ""

    def view(self, tick: Decimal, min_size: Decimal, end_ms: int) -> MarketView:
        """MarketView using the book's tick/min size when it has them, else the token's metadata."""
        return MarketView(self.best_bid, self.best_ask, self.tick_size or tick, self.min_order_size or min_size,
                          end_ms, fresh=self.source != "none")


def int_field(raw: dict[str, str], name: str) -> int:
    """An integer field of a Redis hash (ms stamps, seq); 0 when absent or not an integer."""
    try:
        return int(raw.get(name) or 0)
    except ValueError:
        return 0


def gateway_ok(gateway: dict[str, str], wall_ms: int, gateway_stale_ms: int) -> bool:
    """The gateway is connected and updated its hash within ``gateway_stale_ms`` (wall)."""
    return gateway.get("state") == "connected" and wall_ms - int_field(gateway, "updated_ms") <= gateway_stale_ms


def price(raw: dict[str, str], name: str) -> Decimal | None:
    """A price field of a book hash; None when empty ("" = that side is empty).

    Raises:
        ValueError: naming the field and value when it is not a price in [0, 1].
    """
    value = raw.get(name, "")
    if value == "":
        return None
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"book field {name}={value!r} is not a number") from None
    if not out.is_finite() or not 0 <= out <= 1:
        raise ValueError(f"book field {name}={value!r} is not a price in [0, 1]")
    return out


def size(raw: dict[str, str], name: str) -> Decimal | None:
    """A size field (shares > 0) of a book hash; None when empty.

    Raises:
        ValueError: naming the field and value when it is not a positive number.
    """
    value = raw.get(name, "")
    if value == "":
        return None
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"book field {name}={value!r} is not a number") from None
    if not out.is_finite() or out <= 0:
        raise ValueError(f"book field {name}={value!r} is not a size > 0")
    return out


def from_redis(book: dict[str, str], gw_ok: bool, wall_ms: int, max_age_ms: int) -> BookRead | None:
    """The Redis book when it is fresh by the rule above, else None (so REST is asked).

    Raises:
        ValueError: a field of a fresh-looking book is malformed (named in the message).
    """
    if not gw_ok or not book or book.get("status", "ok") != "ok" or book.get("resolved") == "1":
        return None
    seen = max(int_field(book, "recv_ts_ms"), int_field(book, "verified_ts_ms"))
    if wall_ms - seen > max_age_ms:
        return None
    tick = price(book, "tick_size")
    return BookRead(price(book, "best_bid"), price(book, "best_ask"), tick or None, size(book, "min_order_size"),
                    "redis")


def from_rest(venue: Venue, token_id: str) -> BookRead:
    """REST ``GET /book`` through the venue client; ``source`` none with the error when it fails."""
    try:
        b = venue.get_book(token_id)
    except VenueError as exc:
        return BookRead(None, None, None, None, "none", f"{type(exc).__name__}: {exc.message}"[:200])
    return BookRead(b.best_bid, b.best_ask, b.tick_size, b.min_order_size, "rest")
