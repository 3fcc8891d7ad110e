"""venue_sim tape books: every price_change schema, deletes, ordering, tick flips, bad frames."""
from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from libs.common.tapes import MarketMeta, load_markets, read_tape
from services.venue_sim.books import LevelChange, Snapshot, TapeBooks, book_message, fmt
from services.venue_sim.replay import FrameError, parse_frame

REPO = Path(__file__).resolve().parents[2]
ENRICO = REPO / "data" / "tapes" / "enrico-2026-09-24"
YES, NO, MKT = "111", "222", "0xabc"


def market(tick: str = "0.01") -> MarketMeta:
    return MarketMeta(MKT, "q?", "q", (YES, NO), ("Yes", "No"), 0, 10_000, D(tick), D("5"), False, False)


def book_frame(asset: str = YES, bids: list[tuple[str, str]] | None = None, asks: list[tuple[str, str]] | None = None,
               tick: str = "0.01") -> str:
    bids = bids if bids is not None else [("0.40", "10"), ("0.45", "20")]
    asks = asks if asks is not None else [("0.60", "30"), ("0.55", "40")]
    return orjson.dumps({"market": MKT, "asset_id": asset, "timestamp": "1000", "hash": "ab" * 20,
                         "bids": [{"price": p, "size": s} for p, s in bids],
                         "asks": [{"price": p, "size": s} for p, s in asks],
                         "tick_size": tick, "event_type": "book", "last_trade_price": "0.500"}).decode()


def apply(books: TapeBooks, text: str, now: int = 2000):  # type: ignore[no-untyped-def]
    return books.apply(parse_frame(text), now)


def test_book_is_a_full_replace_and_levels_come_best_first() -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    assert books.tape_top(YES) == (D("0.45"), D("0.55"))
    assert books.tape_levels(YES) == ([(D("0.45"), D("20")), (D("0.40"), D("10"))],
                                      [(D("0.55"), D("40")), (D("0.60"), D("30"))])
    apply(books, book_frame(bids=[("0.30", "1")], asks=[]))
    assert books.tape_levels(YES) == ([(D("0.30"), D("1"))], [])
    assert books.tape_top(YES) == (D("0.30"), None)


def test_current_schema_sets_new_totals_and_zero_deletes() -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    apply(books, book_frame(NO))
    frame = ('{"market":"0xabc", "price_changes":[{"asset_id":"111", "price":"0.45", "size":"5", "side":"BUY", '
             '"hash":"x", "best_bid":"0.45", "best_ask":"0.55"}, {"asset_id":"222", "price":"0.55", "size":"0", '
             '"side":"SELL", "hash":"y", "best_bid":"0.45", "best_ask":"0.6"}], "timestamp":"2", "event_type":"price_change"}')
    applied = apply(books, frame)
    assert applied.touched == (YES, NO)
    assert books.level_size(YES, "BUY", D("0.45")) == D("5")  # total, not a diff
    assert books.tape_top(NO) == (D("0.45"), D("0.60"))  # 0.55 ask deleted


def test_legacy_changes_schema_and_oldest_single_level_schema() -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    legacy = {"event_type": "price_change", "asset_id": YES, "market": MKT, "timestamp": "3", "hash": "h",
              "changes": [{"price": "0.50", "side": "BUY", "size": "7"}, {"price": "0.55", "side": "SELL", "size": "0"}]}
    apply(books, orjson.dumps(legacy).decode())
    assert books.tape_top(YES) == (D("0.50"), D("0.60"))
    oldest = {"event_type": "price_change", "asset_id": YES, "market": MKT, "price": "0.52", "side": "SELL",
              "size": "3", "hash": "h", "timestamp": "4"}
    apply(books, orjson.dumps(oldest).decode())
    assert books.tape_top(YES) == (D("0.50"), D("0.52"))


def test_parse_gives_typed_decimal_updates() -> None:
    parsed = parse_frame(book_frame())
    snap = parsed.updates[0]
    assert isinstance(snap, Snapshot) and snap.tick_size == D("0.01") and snap.bids[0] == (D("0.40"), D("10"))
    parsed = parse_frame('{"event_type":"price_change","asset_id":"1","market":"m","price":"0.1","side":"BUY","size":"2"}')
    assert parsed.updates == (LevelChange("1", "m", "BUY", D("0.1"), D("2"), ""),)


@pytest.mark.parametrize("text, needle", [
    ('{"event_type":"book"', "not JSON"),
    ('{"event_type":"price_change","asset_id":"1","price":"0.1","side":"BUY","size":"-2"}', "'size' has bad value '-2'"),
    ('{"event_type":"price_change","asset_id":"1","price":"1.5","side":"BUY","size":"2"}', "'price' has bad value '1.5'"),
    ('{"event_type":"price_change","asset_id":"1","price":"0.5","side":"HOLD","size":"2"}', "'side' has bad value 'HOLD'"),
    ('{"event_type":"price_change","price_changes":[{"price":"0.5","side":"BUY","size":"2"}]}', "'asset_id' has bad value None"),
    ('{"event_type":"surprise","asset_id":"1"}', "'event_type' has bad value 'surprise'"),
    ('[{"event_type":"book","asset_id":"1","bids":[{"price":"x","size":"1"}],"asks":[]}]', "'price' has bad value 'x'"),
])
def test_bad_frames_name_field_and_value_and_change_nothing(text: str, needle: str) -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    before = books.tape_levels(YES)
    with pytest.raises(FrameError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        parse_frame(text)
    assert books.tape_levels(YES) == before


def test_tick_flips_to_0_001_outside_the_band_and_back_inside() -> None:
    books = TapeBooks([market()])
    assert apply(books, book_frame()).tick_events == ()
    assert books.tick_size(YES) == D("0.01")
    up = ('{"market":"0xabc", "price_changes":[{"asset_id":"111", "price":"0.97", "size":"5", "side":"BUY", '
          '"hash":"x"}], "timestamp":"5", "event_type":"price_change"}')
    applied = apply(books, up, now=7777)
    assert books.tick_size(YES) == D("0.001")
    assert applied.tick_events == ({"event_type": "tick_size_change", "asset_id": YES, "market": MKT,
                                    "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "7777"},)
    assert list(applied.tick_events[0]) == ["event_type", "asset_id", "market", "old_tick_size", "new_tick_size", "timestamp"]
    assert apply(books, up).tick_events == ()  # still outside: no repeat
    back = up.replace('"0.97", "size":"5"', '"0.97", "size":"0"')
    applied = apply(books, back)
    assert books.tick_size(YES) == D("0.01")
    assert [e["new_tick_size"] for e in applied.tick_events] == ["0.01"]
    low = book_frame(bids=[("0.03", "1")], asks=[("0.50", "1")])
    assert [e["new_tick_size"] for e in apply(books, low).tick_events] == ["0.001"]


def test_no_tick_event_when_the_market_tick_is_already_0_001() -> None:
    books = TapeBooks([market("0.001")])
    applied = apply(books, book_frame(bids=[("0.98", "1")], asks=[("0.99", "1")], tick="0.001"))
    assert applied.tick_events == () and books.tick_size(YES) == D("0.001")


def test_tape_tick_size_change_updates_the_market_tick() -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    apply(books, '{"event_type":"tick_size_change","asset_id":"111","market":"0xabc","old_tick_size":"0.01",'
                 '"new_tick_size":"0.001","timestamp":"9"}')
    assert books.tick_size(YES) == D("0.001")


def test_unknown_token_is_learnt_from_the_tape_and_tick_of_unknown_raises() -> None:
    books = TapeBooks([market()])
    assert not books.known("999")
    with pytest.raises(KeyError, match="999"):
        books.tick_size("999")
    apply(books, book_frame("999"))
    assert books.known("999") and books.has_book("999") and books.market_of("999") == MKT


def test_book_message_overlays_our_orders_in_wire_order_best_last() -> None:
    books = TapeBooks([market()])
    apply(books, book_frame())
    state = books.state(YES)
    assert state is not None
    msg = book_message(state, ({D("0.45"): D("5"), D("0.47"): D("10")}, {D("0.58"): D("2")}))
    assert list(msg) == ["market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "event_type",
                         "last_trade_price"]
    assert msg["bids"] == [{"price": "0.4", "size": "10"}, {"price": "0.45", "size": "25"}, {"price": "0.47", "size": "10"}]
    assert msg["asks"] == [{"price": "0.6", "size": "30"}, {"price": "0.58", "size": "2"}, {"price": "0.55", "size": "40"}]
    assert len(msg["hash"]) == 40 and msg["last_trade_price"] == "0.500" and msg["tick_size"] == "0.01"
    assert books.tape_top(YES) == (D("0.45"), D("0.55"))  # the tape book itself is untouched


def test_fmt_is_plain() -> None:
    assert [fmt(D(x)) for x in ("5.50", "100", "1E+2", "0.001", "0")] == ["5.5", "100", "100", "0.001", "0"]


def test_enrico_capture_books_reproduce_every_reported_best_bid_and_ask() -> None:
    books = TapeBooks(load_markets(ENRICO / "markets.json"))
    checked = 0
    for frame in read_tape(ENRICO / "frames.jsonl"):
        parsed = parse_frame(frame.payload)
        books.apply(parsed, frame.recv_ms)
        for ev in parsed.events:
            for entry in ev.get("price_changes", []) if isinstance(ev, dict) else []:
                bid, ask = books.tape_top(entry["asset_id"])
                assert (fmt(bid) if bid else "0", fmt(ask) if ask else "1") == \
                    (fmt(D(entry["best_bid"])), fmt(D(entry["best_ask"]))), frame.seq
                checked += 1
    assert checked == 102
