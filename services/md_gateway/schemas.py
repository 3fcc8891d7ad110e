"""Market-channel models: the wire shapes (msgspec, strings) and the typed events they become.

Units: every price and size in a typed event is an ``int`` of micros (1e-6, see ``units.py``);
timestamps are ``int`` Unix ms (market time).

Wire facts (``reference/polymarket-api.md`` 1.1): a frame is one JSON object, or a JSON array of
objects (the subscription dump); every number is a decimal *string*; ``event_type`` tags the object.
``price_change`` comes in three schemas: current ``price_changes[]`` (since 2025-09-15), legacy
``changes[]`` with a top-level ``asset_id`` (2024-10..2025-09), and the oldest single level with
``price/side/size`` at top level. ``size`` is the new level total, ``"0"`` deletes. BUY = bid side.
In ``price_changes[]`` entries ``best_bid "0"`` / ``best_ask "1"`` mean that side is empty.

``parse.parse_frame`` turns a frame into these events and never raises on bad input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import msgspec

TEXT_SHOWN = 300  # characters of a rejected frame quoted in the journal

# Reject reason codes (journaled as ``WS_`` + code, counted in pb:md:gateway as ``reject:<code>``).
BAD_JSON = "PARSE_BAD_JSON"
UNKNOWN_EVENT = "PARSE_UNKNOWN_EVENT"
MISSING_FIELD = "PARSE_MISSING_FIELD"
BAD_VALUE = "PARSE_BAD_VALUE"
TOO_LARGE = "FRAME_TOO_LARGE"
# Any other exception while decoding or converting one frame (or one array element): ``value`` is the
# exception's type, e.g. ``RecursionError`` from a deeply nested frame.
INTERNAL = "PARSE_INTERNAL_ERROR"
CROSSED = "BOOK_CROSSED"


# ---------------------------------------------------------------- wire models (strings, msgspec)
class WLevel(msgspec.Struct):
    """One book level on the wire: ``price`` and ``size`` decimal strings."""

    price: str
    size: str


class WEntry(msgspec.Struct):
    """One entry of a current-schema ``price_changes[]`` (with the token's top after it, if sent)."""

    asset_id: str
    price: str
    size: str
    side: str
    hash: str = ""
    best_bid: Optional[str] = None
    best_ask: Optional[str] = None


class WChange(msgspec.Struct):
    """One entry of the legacy ``changes[]`` schema (the token is the message's ``asset_id``)."""

    price: str
    size: str
    side: str


class WBook(msgspec.Struct, tag_field="event_type", tag="book"):
    """``book``: a full snapshot of one token (alone, or inside the subscription dump array)."""

    asset_id: str
    market: str
    bids: list[WLevel]
    asks: list[WLevel]
    timestamp: str
    hash: str = ""
    tick_size: Optional[str] = None
    last_trade_price: Optional[str] = None


class WPriceChange(msgspec.Struct, tag_field="event_type", tag="price_change"):
    """``price_change`` in any of its three schemas (which fields are set tells which)."""

    market: str
    timestamp: str
    price_changes: Optional[list[WEntry]] = None
    changes: Optional[list[WChange]] = None
    asset_id: Optional[str] = None
    price: Optional[str] = None
    size: Optional[str] = None
    side: Optional[str] = None


class WTickSize(msgspec.Struct, tag_field="event_type", tag="tick_size_change"):
    """``tick_size_change``: the token's tick became ``new_tick_size``."""

    asset_id: str
    market: str
    new_tick_size: str
    timestamp: str
    old_tick_size: str = ""


class WLastTrade(msgspec.Struct, tag_field="event_type", tag="last_trade_price"):
    """``last_trade_price``: a trade printed (``side`` is the taker's)."""

    asset_id: str
    market: str
    price: str
    timestamp: str
    size: str = ""
    side: str = ""


class WBestBidAsk(msgspec.Struct, tag_field="event_type", tag="best_bid_ask"):
    """``best_bid_ask`` (custom feature): the exchange's own top of book of one token."""

    asset_id: str
    market: str
    best_bid: str
    best_ask: str
    timestamp: str


class WResolved(msgspec.Struct, tag_field="event_type", tag="market_resolved"):
    """``market_resolved`` (custom feature): the market and its tokens."""

    market: str
    assets_ids: list[str]
    timestamp: str
    winning_asset_id: str = ""


class WNewMarket(msgspec.Struct, tag_field="event_type", tag="new_market"):
    """``new_market`` (custom feature): known, not used."""

    market: str = ""


class WRestBook(msgspec.Struct):
    """REST ``GET /book`` body (``reference/polymarket-api.md`` 1.3)."""

    asset_id: str
    market: str
    bids: list[WLevel]
    asks: list[WLevel]
    timestamp: str
    tick_size: str
    min_order_size: str
    hash: str = ""
    last_trade_price: Optional[str] = None


WEvent = Union[WBook, WPriceChange, WTickSize, WLastTrade, WBestBidAsk, WResolved, WNewMarket]
# Decoders are immutable and thread-safe: built once, shared.
FRAME = msgspec.json.Decoder(Union[list[WEvent], WEvent])
ONE = msgspec.json.Decoder(WEvent)
RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
REST = msgspec.json.Decoder(WRestBook)


# ---------------------------------------------------------------- typed events (micros)
# Treated as immutable values, but not ``frozen``: a frozen dataclass sets each field through
# ``object.__setattr__`` and costs 4x to build (1.5 us against 0.34 us for a LevelChange), which is
# about 2 us of every price-change entry on the gateway's hot path.
Levels = list[tuple[int, int]]


@dataclass(slots=True)
class BookSnap:
    """Full replace of one token's book. ``bids``/``asks``: (price, size) micros, any order.
    ``tick_size`` micros or None; ``last_trade``/``min_order_size`` decimal strings or ""."""

    token_id: str
    market: str
    bids: Levels
    asks: Levels
    ts_ms: int
    tick_size: int | None = None
    last_trade: str = ""
    min_order_size: str = ""


@dataclass(slots=True)
class LevelChange:
    """One level's new total: ``is_bid`` (BUY side), ``price``/``size`` micros (size 0 deletes).
    ``expect`` is the (best_bid, best_ask) the frame reports after it (None = empty side), or None."""

    token_id: str
    market: str
    is_bid: bool
    price: int
    size: int
    ts_ms: int
    expect: tuple[int | None, int | None] | None = None


@dataclass(slots=True)
class TickSizeChange:
    """The token's tick size became ``new_tick`` (micros); its book must be re-snapshotted."""

    token_id: str
    market: str
    new_tick: int
    ts_ms: int


@dataclass(slots=True)
class LastTrade:
    """A trade printed at ``price`` (decimal string as received, e.g. ``"0.420"``)."""

    token_id: str
    market: str
    price: str
    ts_ms: int


@dataclass(slots=True)
class BestBidAsk:
    """The exchange's own top of book (None = empty side): a cross-check, never a source."""

    token_id: str
    bid: int | None
    ask: int | None
    ts_ms: int


@dataclass(slots=True)
class Resolved:
    """Market ``market`` resolved; ``token_ids`` are its tokens; ``winner`` the wire's
    ``winning_asset_id`` ("" when the frame names none)."""

    market: str
    token_ids: tuple[str, ...]
    ts_ms: int
    winner: str = ""

    def has_winner(self) -> bool:
        """The winner is one of the market's tokens (a missing or foreign winner is no winner)."""
        return self.winner != "" and self.winner in self.token_ids

    def payout(self, token_id: str) -> str:
        """Payout per share of ``token_id`` in USD as a decimal string: "1" for the winner, "0" for the
        other tokens, "" when the winner is unknown (missing, or not a token of this market)."""
        if not self.has_winner():
            return ""
        return "1" if token_id == self.winner else "0"


Event = Union[BookSnap, LevelChange, TickSizeChange, LastTrade, BestBidAsk, Resolved]


@dataclass(slots=True)
class Reject:
    """A frame (or array element) that was skipped: ``reason`` code, ``field``, ``value``, ``detail``,
    and ``text`` (the first :data:`TEXT_SHOWN` characters of the frame)."""

    reason: str
    field: str
    value: str
    detail: str
    text: str


@dataclass(slots=True)
class Parsed:
    """Result of :func:`parse_frame`: events in wire order, rejects, and ``ignored`` known-but-unused
    objects (``new_market``)."""

    events: list[Event]
    rejects: list[Reject]
    ignored: int = 0
