"""The market channel (``/ws/market``) of the paper venue: subscriptions, dumps, tape frames, overlay.

Protocol (reference/polymarket-api.md 1.1): the first message ``{"assets_ids": [...], "type":
"market", "initial_dump": true, "custom_feature_enabled": bool}`` is answered by ONE frame holding a
JSON array of ``book`` objects (only assets with a book); ``{"operation": "subscribe"|"unsubscribe",
"assets_ids": [...]}`` changes the set on an open socket; text ``PING`` gets text ``PONG``.
``best_bid_ask``, ``market_resolved`` and ``new_market`` go only to ``custom_feature_enabled``
clients. Every client sees the books with our resting orders inserted (the overlay; shown in the
order's own token only, not mirrored at 1 - p into the complementary token).

Venue-made frames (compact JSON): a tick flip -> ``tick_size_change`` then a fresh ``book``; our
order placed/updated/cancelled -> ``best_bid_ask`` (when the overlay top changed) then a
``price_change`` with the level's new total; our fill -> ``last_trade_price`` (taker side,
``fee_rate_bps`` of the market's fee schedule) then a fresh ``book`` (reference/polymarket-api.md, simulator checklist 2-3).

One dispatcher thread serialises everything a client can see (tape frames, venue events, engine
events, subscription changes), so a dump is always followed by every later change. A tape frame
whose events need no filtering and no overlay is forwarded as the exact tape text. Each connection
has a bounded outbox drained by its own writer thread: a slow client never stalls the replay; on
overflow it is closed and counted (``WS_CLIENT_OVERFLOW``).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

import orjson

from services.venue_sim.books import (Applied, ParsedFrame, TapeBooks, best, book_hash, book_message, fmt,
                                      merged, wire_levels)
from services.venue_sim.controls import Conn, Hub, Recorder, Silence
from services.venue_sim.engine import OrderEvent, TradeEvent

log = logging.getLogger(__name__)
Top = tuple[Decimal | None, Decimal | None]
Resting = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]  # our (BUY, SELL) size by price
CUSTOM_ONLY = frozenset({"best_bid_ask", "market_resolved", "new_market"})


# ---- per-client filtering and the overlay (pure) ----
@dataclass(frozen=True)
class FrameOut:
    """What goes out for one frame: the exact tape text (``raw``; None for venue-made events), its
    events after the overlay, whether it is an array frame and whether the overlay changed anything."""

    raw: str | None
    events: tuple[dict[str, Any], ...]
    is_array: bool
    modified: bool


def single(event: dict[str, Any]) -> FrameOut:
    """A venue-made event sent as one JSON object frame."""
    return FrameOut(None, (event,), False, True)


def filter_event(ev: dict[str, Any], assets: set[str] | frozenset[str], custom: bool) -> dict[str, Any] | None:
    """``ev`` restricted to a client's ``assets``: the same object when all of it is kept, a copy with
    only that client's ``price_changes`` entries, or None (custom-only event without custom features)."""
    kind = ev.get("event_type")
    if kind in CUSTOM_ONLY and not custom:
        return None
    if kind == "price_change" and isinstance(ev.get("price_changes"), list):
        kept = [e for e in ev["price_changes"] if e.get("asset_id") in assets]
        if not kept:
            return None
        return ev if len(kept) == len(ev["price_changes"]) else {**ev, "price_changes": kept}
    if kind in ("market_resolved", "new_market"):
        return ev if assets.intersection(ev.get("assets_ids") or ()) else None
    return ev if ev.get("asset_id") in assets else None


def client_text(out: FrameOut, assets: set[str] | frozenset[str], custom: bool) -> str | None:
    """The frame text for one client, or None when nothing in it concerns the client. Unchanged
    events go out as the exact tape text; otherwise compact JSON (an array frame ends with ``\\n``)."""
    kept, changed = [], out.modified or out.raw is None
    for ev in out.events:
        k = filter_event(ev, assets, custom)
        changed = changed or k is not ev
        if k is not None:
            kept.append(k)
    if not kept:
        return None
    if not changed and out.raw is not None:
        return out.raw
    return orjson.dumps(kept).decode() + "\n" if out.is_array else orjson.dumps(kept[0]).decode()


def _dec(text: Any) -> Decimal | None:
    try:
        return Decimal(text) if isinstance(text, str) and text else None
    except ArithmeticError:
        return None


def _best_str(tape: Any, ours: dict[Decimal, Decimal], bids: bool) -> Any:
    """The tape's best price string combined with our best (``"0"`` bid / ``"1"`` ask = empty side)."""
    mine = best({p: s for p, s in ours.items() if s > 0}, bids)
    if mine is None:
        return tape
    t = _dec(tape)
    if t is None or t == (0 if bids else 1):
        return fmt(mine)
    return fmt(max(t, mine) if bids else min(t, mine))


def _entry(e: dict[str, Any], ours: Resting) -> dict[str, Any]:
    """One level change with our size at its price added, and best_bid/best_ask including ours."""
    out = dict(e)
    price, size = _dec(e.get("price")), _dec(e.get("size"))
    mine = (ours[0] if e.get("side") == "BUY" else ours[1]).get(price, Decimal(0)) if price is not None else 0
    if mine and size is not None:
        out["size"] = fmt(size + mine)
    if "best_bid" in e:
        out["best_bid"] = _best_str(e["best_bid"], ours[0], True)
    if "best_ask" in e:
        out["best_ask"] = _best_str(e["best_ask"], ours[1], False)
    return e if out == e else out


def _levels(raw: list[dict[str, str]]) -> dict[Decimal, Decimal]:
    return {Decimal(lv["price"]): Decimal(lv["size"]) for lv in raw}


def _overlay_book(ev: dict[str, Any], ours: Resting | None, tick: Decimal | None) -> dict[str, Any]:
    out = ev
    if ours is not None:
        out = {**ev, "bids": wire_levels(merged(_levels(ev["bids"]), ours[0]), True),
               "asks": wire_levels(merged(_levels(ev["asks"]), ours[1]), False)}
    if tick is not None and _dec(ev.get("tick_size")) != tick:
        out = {**out, "tick_size": fmt(tick)}
    return out


def _overlay_bba(ev: dict[str, Any], ours: Resting) -> dict[str, Any]:
    out = {**ev, "best_bid": _best_str(ev.get("best_bid"), ours[0], True),
           "best_ask": _best_str(ev.get("best_ask"), ours[1], False)}
    bid, ask = _dec(out["best_bid"]), _dec(out["best_ask"])
    if "spread" in out and bid is not None and ask is not None:
        out["spread"] = fmt(ask - bid)
    return ev if out == ev else out


def _overlay_entries(ev: dict[str, Any], name: str, rest: Callable[[str], Resting | None],
                     token_id: str | None) -> dict[str, Any]:
    entries = ev[name]
    new = []
    for e in entries:
        ours = rest(token_id if token_id is not None else str(e.get("asset_id", "")))
        new.append(_entry(e, ours) if ours else e)
    return ev if all(a is b for a, b in zip(new, entries)) else {**ev, name: new}


def overlay_event(ev: dict[str, Any], rest: Callable[[str], Resting | None],
                  tick: Callable[[str], Decimal | None]) -> dict[str, Any]:
    """A tape event with our resting orders in it: sizes at our prices and best prices include them.
    ``rest(token)`` gives our orders (None = none); ``tick(token)`` the venue's tick, written into a
    ``book`` whose tick differs (a tick flip). Returns ``ev`` itself when nothing changes."""
    kind = ev.get("event_type")
    if kind == "price_change" and isinstance(ev.get("price_changes"), list):
        return _overlay_entries(ev, "price_changes", rest, None)
    token_id = ev.get("asset_id")
    if not isinstance(token_id, str):
        return ev
    if kind == "book":
        return _overlay_book(ev, rest(token_id), tick(token_id))
    ours = rest(token_id)
    if ours is None:
        return ev
    if kind == "price_change":
        return _overlay_entries(ev, "changes", rest, token_id) if isinstance(ev.get("changes"), list) else _entry(ev, ours)
    if kind == "best_bid_ask":
        return _overlay_bba(ev, ours)
    return ev


# ---- the hub ----


class MarketHub(Hub):
    """Fans tape frames and venue events out to market-channel connections (see module doc).

    Args:
        books: the tape books. resting: ``engine.resting_levels``. last_trade: ``engine.last_trade``
            (our last fill: (price, taker side) or None). clock: ``now_ms`` market ms, ``wall_ms``.
        journal: records client and overflow problems. silence: the half-open switch (controls).
        queue_max: outbox bound per connection.
    """

    kind = "market"

    def __init__(self, books: TapeBooks, resting: Callable[[str], Resting],
                 last_trade: Callable[[str], tuple[Decimal, str] | None], clock: Any, journal: Recorder,
                 silence: Silence, queue_max: int) -> None:
        super().__init__(clock, journal, silence, queue_max)
        self.books, self.resting, self.last_trade = books, resting, last_trade
        self._q: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._tops: dict[str, Top] = {}
        self._thread: threading.Thread | None = None
        self.frames_in = 0

    # ---- producers (any thread) ----
    def publish_frame(self, raw: str, parsed: ParsedFrame, applied: Applied) -> None:
        """A tape frame was applied to the books: forward it (and its tick flips) to clients."""
        self._q.put(("frame", raw, parsed, applied))

    def publish_events(self, events: list[dict[str, Any]]) -> None:
        """Venue-made events (``market_resolved``...): one frame each, filtered per client."""
        self._q.put(("events", events))

    def on_engine_event(self, event: OrderEvent | TradeEvent) -> None:
        """Engine listener: our order changed a level, or one of our orders filled."""
        self._q.put(("engine", event))

    def subscribe(self, conn: Conn, assets: list[str], custom: bool | None, dump: bool, initial: bool) -> None:
        """Add ``assets`` (replace them when ``initial``), and send their books when ``dump``."""
        self._q.put(("sub", conn, assets, custom, dump, initial))

    def unsubscribe(self, conn: Conn, assets: list[str]) -> None:
        """Stop sending ``assets`` to ``conn``."""
        self._q.put(("unsub", conn, assets))

    def inject(self, text: str) -> int:
        """Send ``text`` unchanged to every market connection (after everything queued before it)."""
        self._q.put(("inject", text))
        return len(self.connections())

    def state(self) -> dict[str, Any]:
        """Counters and connections of the market channel, with tape frames received."""
        return {**super().state(), "frames_in": self.frames_in, "dispatch_queue": self._q.qsize()}

    # ---- the dispatcher ----
    def start(self) -> None:
        """Run the dispatcher thread."""
        self._thread = threading.Thread(target=self._loop, name="ws-market-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the dispatcher thread (after what is queued)."""
        self._q.put(("stop",))
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item[0] == "stop":
                return
            self._safely(item)

    def pump(self) -> int:
        """Dispatch everything queued now in the calling thread (tests without the thread); returns count."""
        n = 0
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return n
            if item[0] != "stop":
                self._safely(item)
            n += 1

    def _safely(self, item: tuple[Any, ...]) -> None:
        try:
            getattr(self, f"_on_{item[0]}")(*item[1:])
        except Exception as exc:  # noqa: BLE001 - journaled; the dispatcher must survive any one item
            log.exception("event WS_DISPATCH_FAILED item=%s", item[0])
            self.journal.record("WS_DISPATCH_FAILED", level="error", item=item[0], error=f"{type(exc).__name__}: {exc}"[:300])

    def _resting_cache(self) -> Callable[[str], Resting | None]:
        cache: dict[str, Resting | None] = {}

        def get(token_id: str) -> Resting | None:
            if token_id not in cache:
                buys, sells = self.resting(token_id)
                cache[token_id] = (buys, sells) if (buys or sells) else None
            return cache[token_id]
        return get

    def _on_frame(self, raw: str, parsed: ParsedFrame, applied: Applied) -> None:
        self.frames_in += 1
        rest = self._resting_cache()
        events = tuple(overlay_event(ev, rest, self._known_tick) for ev in parsed.events)
        modified = any(a is not b for a, b in zip(events, parsed.events))
        self._fan_out(FrameOut(raw, events, parsed.is_array, modified))
        for tick_event in applied.tick_events:
            self._fan_out(single(tick_event))
            self._send_book(tick_event["asset_id"], tick_event["timestamp"])
        for token_id in applied.touched:
            self._tops[token_id] = self._overlay_top(token_id)

    def _on_events(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            self._fan_out(single(ev))

    def _on_inject(self, text: str) -> None:
        for conn in self.connections():
            self._offer(conn, text)

    def _on_engine(self, event: OrderEvent | TradeEvent) -> None:
        now = str(self.clock.now_ms())
        if isinstance(event, TradeEvent):
            self._fan_out(single(self._last_trade_message(event, now)))
            self._send_book(event.token_id, now)
            return
        order = event.order
        token_id, side, price = order["asset_id"], order["side"], Decimal(order["price"])
        buys, sells = self.resting(token_id)
        total = self.books.level_size(token_id, side, price) + (buys if side == "BUY" else sells).get(price, Decimal(0))
        top = self._overlay_top(token_id)
        market = order.get("market") or self.books.market_of(token_id)
        if top != self._tops.get(token_id):
            self._fan_out(single(_best_bid_ask(token_id, market, top, now)))
            self._tops[token_id] = top
        entry = {"asset_id": token_id, "price": fmt(price), "size": fmt(total), "side": side,
                 "hash": book_hash(token_id, side, price, total, now), "best_bid": _px(top[0], "0"),
                 "best_ask": _px(top[1], "1")}
        self._fan_out(single({"market": market, "price_changes": [entry], "timestamp": now,
                              "event_type": "price_change"}))

    def _on_sub(self, conn: Conn, assets: list[str], custom: bool | None, dump: bool, initial: bool) -> None:
        new = [a for a in dict.fromkeys(assets) if initial or a not in conn.assets]
        conn.assets = set(new) if initial else conn.assets | set(new)
        if custom is not None:
            conn.custom = custom
        conn.subscribed = True
        if dump:
            books = [b for b in (self.book_for(a) for a in new) if b is not None]
            if initial or books:
                self._offer(conn, orjson.dumps(books).decode() + "\n")

    def _on_unsub(self, conn: Conn, assets: list[str]) -> None:
        conn.assets -= set(assets)

    # ---- helpers ----
    def _known_tick(self, token_id: str) -> Decimal | None:
        return self.books.tick_size(token_id) if self.books.known(token_id) else None

    def _overlay_top(self, token_id: str) -> Top:
        state = self.books.state(token_id)
        if state is None:
            return None, None
        buys, sells = self.resting(token_id)
        return best(merged(state.bids, buys), True), best(merged(state.asks, sells), False)

    def book_for(self, token_id: str, timestamp: str = "") -> dict[str, Any] | None:
        """The overlay ``book`` object of ``token_id`` now, or None when the tape has no book for it."""
        if not self.books.has_book(token_id):
            return None
        state = self.books.state(token_id)
        assert state is not None
        ours = self.last_trade(token_id)
        return book_message(state, self.resting(token_id), fmt(ours[0]) if ours else "", timestamp)

    def _send_book(self, token_id: str, timestamp: str) -> None:
        book = self.book_for(token_id, timestamp)
        if book is not None:
            self._fan_out(single(book))

    def _last_trade_message(self, event: TradeEvent, now: str) -> dict[str, Any]:
        trade = event.trade
        return {"asset_id": event.token_id, "event_type": "last_trade_price", "fee_rate_bps": str(trade.get("fee_rate_bps", "0")),
                "market": trade.get("market") or self.books.market_of(event.token_id), "price": fmt(event.price),
                "side": event.taker_side, "size": fmt(event.size), "timestamp": now,
                "transaction_hash": trade.get("transaction_hash", "")}

    def _fan_out(self, out: FrameOut) -> None:
        for conn in self.connections():
            if conn.subscribed:
                text = client_text(out, conn.assets, conn.custom)
                if text is not None:
                    self._offer(conn, text)


def _px(price: Decimal | None, empty: str) -> str:
    return empty if price is None else fmt(price)


def _best_bid_ask(token_id: str, market: str, top: Top, now: str) -> dict[str, str]:
    spread = fmt(top[1] - top[0]) if top[0] is not None and top[1] is not None else ""
    return {"market": market, "asset_id": token_id, "best_bid": _px(top[0], "0"), "best_ask": _px(top[1], "1"),
            "spread": spread, "timestamp": now, "event_type": "best_bid_ask"}


def handle_market_text(hub: MarketHub, conn: Conn, text: str) -> None:
    """One client message (not PING): initial subscribe or dynamic (un)subscribe; else journaled."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        hub.bad_message(conn, text, "not JSON")
        return
    assets = msg.get("assets_ids") if isinstance(msg, dict) else None
    if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
        hub.bad_message(conn, text, f"field 'assets_ids' has bad value {str(assets)[:80]!r}")
        return
    op = msg.get("operation")
    custom = msg.get("custom_feature_enabled")
    custom = bool(custom) if custom is not None else None
    dump = msg.get("initial_dump", True) is not False
    if op is None and str(msg.get("type", "")).lower() == "market":
        hub.subscribe(conn, assets, bool(custom), dump, initial=True)
    elif op == "subscribe":
        hub.subscribe(conn, assets, custom, dump, initial=False)
    elif op == "unsubscribe":
        hub.unsubscribe(conn, assets)
    else:
        hub.bad_message(conn, text, f"field 'operation' has bad value {op!r}")


