"""venue_sim market hub without sockets: tick flips reach clients as tick_size_change plus a fresh
book, custom-only events, engine events (our order, our fill), outbox overflow."""
from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from typing import Any

import orjson

from libs.common.clock import FakeClock
from libs.common.tapes import MarketMeta
from services.venue_sim.books import TapeBooks
from services.venue_sim.controls import Outbox, Silence
from services.venue_sim.engine import OrderEvent, TradeEvent
from services.venue_sim.replay import parse_frame
from services.venue_sim.ws_market import MarketHub

YES, NO, MKT = "111", "222", "0xm"


class FakeWs:
    """Collects what the writer thread sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def send(self, text: str) -> None:
        with self.lock:
            self.sent.append(text)

    def frames(self, n: int, timeout: float = 2.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.sent) >= n:
                    return [orjson.loads(t) for t in self.sent]
            time.sleep(0.005)
        raise AssertionError(f"got {self.sent}")


class Journal:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def record(self, reason: str, **_: object) -> None:
        self.reasons.append(reason)


def make_hub(resting: dict[str, tuple[dict[D, D], dict[D, D]]] | None = None, queue_max: int = 100) -> tuple[MarketHub, TapeBooks, Journal]:
    books = TapeBooks([MarketMeta(MKT, "q", "q", (YES, NO), ("Yes", "No"), 0, 1, D("0.01"), D("5"), False, False)])
    table = resting if resting is not None else {}
    clock = FakeClock(now=5000, wall=5000)
    journal = Journal()
    hub = MarketHub(books, lambda t: table.get(t, ({}, {})), lambda t: None, clock, journal, Silence(clock.wall_ms), queue_max)
    return hub, books, journal


def feed(hub: MarketHub, books: TapeBooks, text: str) -> None:
    parsed = parse_frame(text)
    hub.publish_frame(text, parsed, books.apply(parsed, 4000))
    hub.pump()


BOOK = ('{"market":"0xm","asset_id":"111","timestamp":"1","hash":"h","bids":[{"price":"0.5","size":"10"}],'
        '"asks":[{"price":"0.6","size":"10"}],"tick_size":"0.01","event_type":"book","last_trade_price":"0.55"}')


def client(hub: MarketHub, assets: list[str], custom: bool) -> FakeWs:
    ws = FakeWs()
    conn = hub.attach(ws)
    hub.subscribe(conn, assets, custom, dump=True, initial=True)
    hub.pump()
    return ws


def test_tick_flip_sends_tick_size_change_then_a_fresh_book() -> None:
    hub, books, _ = make_hub()
    ws = client(hub, [YES], custom=False)
    feed(hub, books, BOOK)
    feed(hub, books, '{"market":"0xm", "price_changes":[{"asset_id":"111", "price":"0.97", "size":"1", "side":"BUY", '
                     '"hash":"x"}], "timestamp":"2", "event_type":"price_change"}')
    dump, book, change, tick, fresh = ws.frames(5)
    assert dump == [] and book["event_type"] == "book" and change["event_type"] == "price_change"
    assert (tick["event_type"], tick["old_tick_size"], tick["new_tick_size"]) == ("tick_size_change", "0.01", "0.001")
    assert fresh["event_type"] == "book" and fresh["tick_size"] == "0.001" and fresh["bids"][-1]["price"] == "0.97"


def test_custom_only_events_and_other_assets_are_filtered() -> None:
    hub, books, _ = make_hub()
    plain, custom, other = client(hub, [YES], False), client(hub, [YES], True), client(hub, [NO], True)
    feed(hub, books, BOOK)
    hub.publish_events([{"event_type": "market_resolved", "market": MKT, "assets_ids": [YES, NO], "winning_asset_id": YES}])
    hub.pump()
    assert [f["event_type"] for f in custom.frames(3)[1:]] == ["book", "market_resolved"]
    assert [f["event_type"] for f in other.frames(2)[1:]] == ["market_resolved"]
    time.sleep(0.05)  # let a wrongly sent frame arrive before checking that none did
    assert [f["event_type"] for f in plain.frames(2)[1:]] == ["book"]


def test_our_order_and_fill_become_price_change_last_trade_and_book() -> None:
    ours: dict[str, tuple[dict[D, D], dict[D, D]]] = {}
    hub, books, _ = make_hub(ours)
    ws = client(hub, [YES], custom=True)
    feed(hub, books, BOOK)
    ours[YES] = ({D("0.5"): D("5")}, {})
    order = {"asset_id": YES, "market": MKT, "side": "BUY", "price": "0.5", "owner": "k"}
    hub.on_engine_event(OrderEvent("PLACEMENT", order))
    hub.pump()
    change = ws.frames(3)[2]
    assert change["price_changes"][0] | {"hash": ""} == {"asset_id": YES, "price": "0.5", "size": "15", "side": "BUY",
                                                         "hash": "", "best_bid": "0.5", "best_ask": "0.6"}
    ours[YES] = ({D("0.51"): D("5")}, {})  # a better bid of ours: the top changes -> best_bid_ask first
    hub.on_engine_event(OrderEvent("PLACEMENT", {**order, "price": "0.51"}))
    hub.pump()
    bba, change = ws.frames(5)[3:5]
    assert (bba["event_type"], bba["best_bid"], bba["spread"]) == ("best_bid_ask", "0.51", "0.09")
    assert change["price_changes"][0]["best_bid"] == "0.51"
    ours[YES] = ({}, {})
    trade = {"market": MKT, "transaction_hash": "0x" + "1" * 64}
    hub.on_engine_event(TradeEvent(trade, YES, D("0.51"), D("5"), "SELL"))
    hub.pump()
    last, book = ws.frames(7)[5:7]
    assert last == {"asset_id": YES, "event_type": "last_trade_price", "fee_rate_bps": "0", "market": MKT,
                    "price": "0.51", "side": "SELL", "size": "5", "timestamp": "5000", "transaction_hash": "0x" + "1" * 64}
    assert book["event_type"] == "book" and book["bids"] == [{"price": "0.5", "size": "10"}] and book["timestamp"] == "5000"


def test_overflow_closes_only_that_connection_and_is_journaled() -> None:
    hub, books, journal = make_hub(queue_max=2)

    class StuckWs(FakeWs):
        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()
            self.closed = False

        def send(self, text: str) -> None:
            self.release.wait(2)

        def close_socket(self) -> None:
            self.closed = True
            self.release.set()

    stuck, ok = StuckWs(), FakeWs()
    for ws in (stuck, ok):
        hub.subscribe(hub.attach(ws), [YES], False, dump=False, initial=True)
    hub.pump()
    for i in range(5):
        hub.inject('"x"')
        hub.pump()
        ok.frames(i + 1)  # the healthy client keeps up
    assert hub.counts["overflow_closed"] == 1 and journal.reasons == ["WS_CLIENT_OVERFLOW"]
    assert len(hub.connections()) == 1
    deadline = time.monotonic() + 2
    while not stuck.closed and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stuck.closed and len(ok.frames(5)) == 5


def test_outbox_is_bounded_and_close_wakes_the_taker() -> None:
    box = Outbox(2)
    assert box.offer("a") and box.offer("b") and not box.offer("c")
    assert box.take(0) == "a" and len(box) == 1
    box.close()
    assert box.take(0) is None and box.offer("d")  # closed: discarded, not an overflow
