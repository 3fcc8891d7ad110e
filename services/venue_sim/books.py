"""The tape's L2 books of the paper venue, built from recorded market-channel frames.

Frames are parsed (replay.parse_frame) into the updates below, then applied here. Wire facts
(reference/polymarket-api.md 1.1): a ``book`` is a full replace of one asset's book, with bids
ascending and asks descending (best LAST); a ``price_change`` gives the new total ``size`` at a
level and ``"0"`` deletes it; BUY changes bids, SELL asks.

Tick flips: Polymarket trades a token at tick 0.001 while its price is above 0.96 or below 0.04
(reference/polymarket-api.md, ``tick_size_change``). When a token's tape best bid or best ask goes
outside ``[flip_low, flip_high]`` its tick becomes 0.001; when both are back inside it returns to
the market tick (the last tick the tape or markets.json gave). Each change yields a
``tick_size_change`` event. Prices and sizes are Decimal everywhere; a frame is parsed completely
before anything is applied, so a bad frame changes nothing. The overlay helpers at the end add our
resting orders (engine.resting_levels) to the tape's levels for the wire.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Protocol

import orjson

from libs.common.tapes import MarketMeta

FLIP_TICK = Decimal("0.001")
DEFAULT_TICK = Decimal("0.01")
Level = tuple[Decimal, Decimal]
ZERO = Decimal(0)


class BookView(Protocol):
    """What the exchange core (engine.py) reads from the tape's books (prices in [0, 1], sizes in shares)."""

    def tape_top(self, token_id: str) -> tuple[Decimal | None, Decimal | None]: ...

    def tape_levels(self, token_id: str) -> tuple[list[Level], list[Level]]: ...

    def tick_size(self, token_id: str) -> Decimal: ...

    def known(self, token_id: str) -> bool: ...


@dataclass(frozen=True)
class Snapshot:
    """A ``book`` event: full replace of ``token_id``'s levels (any order), optional tick and last trade."""

    token_id: str
    market: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    tick_size: Decimal | None
    last_trade_price: str | None
    timestamp: str


@dataclass(frozen=True)
class LevelChange:
    """One level's new total ``size`` (0 deletes) on side BUY (bids) or SELL (asks)."""

    token_id: str
    market: str
    side: str
    price: Decimal
    size: Decimal
    timestamp: str


@dataclass(frozen=True)
class TickChange:
    """The tape's own ``tick_size_change``: the market tick of ``token_id`` is now ``new_tick``."""

    token_id: str
    market: str
    new_tick: Decimal


@dataclass(frozen=True)
class LastTrade:
    """The tape's ``last_trade_price`` (kept as the wire string)."""

    token_id: str
    market: str
    price: str


Update = Snapshot | LevelChange | TickChange | LastTrade


@dataclass(frozen=True)
class ParsedFrame:
    """A frame's JSON objects (``events``, one unless ``is_array``) and the book updates they carry."""

    events: tuple[dict[str, Any], ...]
    is_array: bool
    updates: tuple[Update, ...]


def fmt(value: Decimal) -> str:
    """Decimal as a plain wire string without exponent or trailing zeros (``Decimal("5.50")`` -> ``"5.5"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass
class _Token:
    market: str
    base_tick: Decimal
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    has_book: bool = False
    flipped: bool = False
    last_trade_price: str = ""
    timestamp: str = ""

    def tick(self) -> Decimal:
        return min(FLIP_TICK, self.base_tick) if self.flipped else self.base_tick

    def top(self) -> tuple[Decimal | None, Decimal | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)


@dataclass(frozen=True)
class Applied:
    """What applying a frame did: tokens whose book, tick or last trade changed (first-touch order)
    and the ``tick_size_change`` events the flip rule produced (wire dicts)."""

    touched: tuple[str, ...]
    tick_events: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class BookState:
    """A consistent copy of one token's tape book: levels as price -> size."""

    token_id: str
    market: str
    bids: dict[Decimal, Decimal]
    asks: dict[Decimal, Decimal]
    tick_size: Decimal
    last_trade_price: str
    timestamp: str


class TapeBooks:
    """Thread-safe L2 books of the tape, per token (implements ``BookView`` for the engine).

    Args:
        markets: the tape's markets; their tokens are known from the start with the market's tick.
        flip_low, flip_high: the tick-flip band (prices; see module doc).
    """

    def __init__(self, markets: Iterable[MarketMeta], flip_low: Decimal = Decimal("0.04"),
                 flip_high: Decimal = Decimal("0.96")) -> None:
        self._lock = threading.Lock()
        self.flip_low, self.flip_high = flip_low, flip_high
        self._tokens: dict[str, _Token] = {}
        for m in markets:
            for token_id in m.token_ids:
                self._tokens[token_id] = _Token(m.condition_id, m.tick_size)

    # ---- BookView ----
    def known(self, token_id: str) -> bool:
        """True for a token of the market list or one the tape has sent."""
        with self._lock:
            return token_id in self._tokens

    def tape_top(self, token_id: str) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) of the tape; None for an empty side or an unknown token."""
        with self._lock:
            tok = self._tokens.get(token_id)
            return tok.top() if tok else (None, None)

    def tape_levels(self, token_id: str) -> tuple[list[Level], list[Level]]:
        """(bids, asks) as (price, size), BEST FIRST; empty lists for an unknown token."""
        with self._lock:
            tok = self._tokens.get(token_id)
            if tok is None:
                return [], []
            return sorted(tok.bids.items(), reverse=True), sorted(tok.asks.items())

    def tick_size(self, token_id: str) -> Decimal:
        """The token's tick now (0.001 while flipped).

        Raises:
            KeyError: unknown token (check ``known`` first).
        """
        with self._lock:
            tok = self._tokens.get(token_id)
            if tok is None:
                raise KeyError(f"unknown token_id {token_id!r}")
            return tok.tick()

    # ---- reads for the WebSocket channels ----
    def has_book(self, token_id: str) -> bool:
        """True once the tape has given the token any level (a ``book`` or a ``price_change``)."""
        with self._lock:
            tok = self._tokens.get(token_id)
            return bool(tok and tok.has_book)

    def market_of(self, token_id: str) -> str:
        """The token's condition id ("" when unknown)."""
        with self._lock:
            tok = self._tokens.get(token_id)
            return tok.market if tok else ""

    def state(self, token_id: str) -> BookState | None:
        """A copy of the token's book, or None when unknown."""
        with self._lock:
            t = self._tokens.get(token_id)
            if t is None:
                return None
            return BookState(token_id, t.market, dict(t.bids), dict(t.asks), t.tick(), t.last_trade_price, t.timestamp)

    def level_size(self, token_id: str, side: str, price: Decimal) -> Decimal:
        """Tape size at ``price`` on ``side`` (BUY = bids, SELL = asks); 0 when there is none."""
        with self._lock:
            tok = self._tokens.get(token_id)
            if tok is None:
                return ZERO
            return (tok.bids if side == "BUY" else tok.asks).get(price, ZERO)

    # ---- writes (the replay thread) ----
    def apply(self, frame: ParsedFrame, now_ms: int) -> Applied:
        """Apply every update of ``frame`` in order, then the tick-flip rule to the touched tokens.

        ``now_ms`` (market ms) stamps the ``tick_size_change`` events produced.
        """
        with self._lock:
            touched: dict[str, None] = {}
            for u in frame.updates:
                tok = self._tokens.get(u.token_id)
                if tok is None:
                    tok = self._tokens[u.token_id] = _Token(u.market, DEFAULT_TICK)
                touched[u.token_id] = None
                _apply_update(tok, u)
            flips = (self._reflip(t, now_ms) for t in touched)
            return Applied(tuple(touched), tuple(e for e in flips if e is not None))

    def _reflip(self, token_id: str, now_ms: int) -> dict[str, str] | None:
        tok = self._tokens[token_id]
        outside = any(p is not None and (p > self.flip_high or p < self.flip_low) for p in tok.top())
        if outside == tok.flipped:
            return None
        old = tok.tick()
        tok.flipped = outside
        if tok.tick() == old:
            return None
        return {"event_type": "tick_size_change", "asset_id": token_id, "market": tok.market,
                "old_tick_size": fmt(old), "new_tick_size": fmt(tok.tick()), "timestamp": str(now_ms)}


def _apply_update(tok: _Token, u: Update) -> None:
    if isinstance(u, Snapshot):
        tok.bids = {p: s for p, s in u.bids if s > 0}
        tok.asks = {p: s for p, s in u.asks if s > 0}
        tok.has_book = True
        tok.base_tick = u.tick_size or tok.base_tick
        tok.last_trade_price = u.last_trade_price or tok.last_trade_price
        tok.timestamp = u.timestamp or tok.timestamp
        tok.market = u.market or tok.market
    elif isinstance(u, LevelChange):
        levels = tok.bids if u.side == "BUY" else tok.asks
        if u.size > 0:
            levels[u.price] = u.size
        else:
            levels.pop(u.price, None)
        tok.has_book = True
        tok.timestamp = u.timestamp or tok.timestamp
    elif isinstance(u, TickChange):
        tok.base_tick = u.new_tick
    else:
        tok.last_trade_price = u.price


# ---- the overlay: tape levels plus our resting orders, in wire form ----
def merged(tape: dict[Decimal, Decimal], ours: dict[Decimal, Decimal]) -> dict[Decimal, Decimal]:
    """Tape sizes plus our resting sizes per price (our zero/negative sizes are ignored)."""
    if not ours:
        return tape
    out = dict(tape)
    for price, size in ours.items():
        if size > 0:
            out[price] = out.get(price, ZERO) + size
    return out


def best(levels: dict[Decimal, Decimal], bids: bool) -> Decimal | None:
    """Best price of one side (highest bid / lowest ask) or None when empty."""
    if not levels:
        return None
    return max(levels) if bids else min(levels)


def wire_levels(levels: dict[Decimal, Decimal], bids: bool) -> list[dict[str, str]]:
    """Levels as wire ``[{"price","size"}]``: bids ascending, asks descending (best LAST)."""
    return [{"price": fmt(p), "size": fmt(s)} for p, s in sorted(levels.items(), reverse=not bids)]


def book_hash(*parts: object) -> str:
    """A 40-hex (sha1, no 0x) hash of the parts, like the wire's ``hash``."""
    return hashlib.sha1(orjson.dumps([str(p) for p in parts])).hexdigest()


NEUTRAL_LAST_TRADE = "0.5"  # used only when neither the tape nor our fills ever gave a last trade


def book_message(state: BookState, resting: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]],
                 last_trade_price: str = "", timestamp: str = "") -> dict[str, Any]:
    """The wire ``book`` object with the overlay, fields in the real order: ``market, asset_id,
    timestamp, hash, bids, asks, tick_size, event_type, last_trade_price``.

    ``last_trade_price`` overrides the tape's (our own fill); ``timestamp`` (ms string) overrides
    the book's last-change time.
    """
    bids = wire_levels(merged(state.bids, resting[0]), True)
    asks = wire_levels(merged(state.asks, resting[1]), False)
    ts = timestamp or state.timestamp
    return {"market": state.market, "asset_id": state.token_id, "timestamp": ts,
            "hash": book_hash(state.market, state.token_id, ts, bids, asks), "bids": bids, "asks": asks,
            "tick_size": fmt(state.tick_size), "event_type": "book",
            "last_trade_price": last_trade_price or state.last_trade_price or NEUTRAL_LAST_TRADE}
