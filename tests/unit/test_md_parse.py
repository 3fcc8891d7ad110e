"""md_gateway: every market-channel event and schema parses once into typed events; bad input is a
counted reject with a reason code, the field, the value and the text, never an exception."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.md_gateway import schemas as s
from services.md_gateway.parse import RestBookError, parse_frame, parse_rest_book
from services.md_gateway.units import BadValue, fmt_micros, price_micros, to_micros

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CAPTURE = REPO / "data" / "tapes" / "enrico-2026-09-24" / "frames.jsonl"
NAUTILUS = FIXTURES / "nautilus"
CAP = 4 * 1024 * 1024
A, B = "1111", "2222"


def payloads() -> list[str]:
    return [json.loads(line)["payload"] for line in CAPTURE.read_text().splitlines()]


def one(text: str | bytes) -> s.Parsed:
    return parse_frame(text.encode() if isinstance(text, str) else text, CAP)


def test_the_whole_capture_parses_without_a_reject() -> None:
    frames = payloads()
    parsed = [one(p) for p in frames]
    assert all(not p.rejects for p in parsed)
    dump = parsed[0].events
    assert len(dump) == 28 and all(isinstance(e, s.BookSnap) for e in dump)
    entries = [e for p in parsed[1:] for e in p.events if isinstance(e, s.LevelChange)]
    assert len(entries) == 102  # data/README.md: 102 price-change entries
    assert all(e.expect is not None for e in entries)
    first = dump[0]
    assert max(first.bids)[0] == 410_000 and min(first.asks)[0] == 430_000 and first.tick_size == 10_000
    assert first.last_trade == "0.420"


def test_current_price_change_schema_gives_one_level_change_per_entry() -> None:
    p = one(payloads()[4])
    a, b = p.events
    assert isinstance(a, s.LevelChange) and a.is_bid and a.price == 620_000 and a.size == 65_750_000
    assert a.expect == (620_000, 660_000) and a.ts_ms == 1790267379253
    assert isinstance(b, s.LevelChange) and not b.is_bid and b.price == 380_000


def test_legacy_changes_schema_and_oldest_single_level_schema() -> None:
    legacy = one(json.dumps({"event_type": "price_change", "asset_id": A, "market": "m", "timestamp": "5",
                             "hash": "h", "changes": [{"price": "0.4", "side": "BUY", "size": "10"},
                                                      {"price": "0.6", "side": "SELL", "size": "0"}]}))
    assert [(e.token_id, e.is_bid, e.price, e.size) for e in legacy.events] == [(A, True, 400_000, 10_000_000),
                                                                              (A, False, 600_000, 0)]
    oldest = one(json.dumps({"event_type": "price_change", "asset_id": B, "market": "m", "price": "0.55",
                             "side": "SELL", "size": "3.5", "hash": "h", "timestamp": "7"}))
    got = [(e.token_id, e.is_bid, e.price, e.size, e.expect) for e in oldest.events]
    assert got == [(B, False, 550_000, 3_500_000, None)]


def test_nautilus_examples_of_every_other_event_type() -> None:
    def fixture(name: str) -> s.Parsed:
        return one((NAUTILUS / name).read_bytes())

    tick = fixture("ws_market_tick_size_msg.json").events[0]
    assert isinstance(tick, s.TickSizeChange) and tick.new_tick == 10_000
    trade = fixture("ws_market_last_trade_msg.json").events[0]
    assert isinstance(trade, s.LastTrade) and trade.price == "0.51"
    bba = fixture("ws_market_best_bid_ask_msg.json").events[0]
    assert isinstance(bba, s.BestBidAsk) and (bba.bid, bba.ask) == (730_000, 770_000)
    res = fixture("ws_market_resolved_msg.json").events[0]
    assert isinstance(res, s.Resolved) and len(res.token_ids) == 2
    book = fixture("ws_market_book_msg.json").events[0]
    assert isinstance(book, s.BookSnap) and book.tick_size is None
    new_market = fixture("ws_market_new_market_msg.json")
    assert new_market.events == [] and new_market.rejects == [] and new_market.ignored == 1


def test_empty_side_markers_in_reported_tops() -> None:
    p = one(json.dumps({"event_type": "price_change", "market": "m", "timestamp": "1", "price_changes": [
        {"asset_id": A, "price": "0.5", "size": "0", "side": "BUY", "best_bid": "0", "best_ask": "1"}]}))
    assert p.events[0].expect == (None, None)


BAD = [
    ("truncated", '{"event_type":"price_change","market":"m","times', s.BAD_JSON, "$"),
    ("unknown_type", '{"event_type":"order_book_delta","asset_id":"1"}', s.UNKNOWN_EVENT, "event_type"),
    ("missing_field", '{"event_type":"book","asset_id":"1","bids":[],"asks":[],"timestamp":"1"}', s.MISSING_FIELD,
     "market"),
    ("missing_level_field", '{"event_type":"price_change","market":"m","timestamp":"1","price_changes":'
     '[{"asset_id":"1","price":"0.5","side":"BUY"}]}', s.MISSING_FIELD, "price_changes[0].size"),
    ("negative_size", '{"event_type":"price_change","market":"m","timestamp":"1","price_changes":'
     '[{"asset_id":"1","price":"0.5","size":"-2","side":"BUY"}]}', s.BAD_VALUE, "price_changes[].size"),
    ("price_above_1", '{"event_type":"price_change","market":"m","timestamp":"1","price_changes":'
     '[{"asset_id":"1","price":"1.01","size":"2","side":"BUY"}]}', s.BAD_VALUE, "price_changes[].price"),
    ("negative_price", '{"event_type":"book","asset_id":"1","market":"m","timestamp":"1","asks":[],'
     '"bids":[{"price":"-0.1","size":"3"}]}', s.BAD_VALUE, "bids[].price"),
    ("number_not_string", '{"event_type":"best_bid_ask","asset_id":"1","market":"m","best_bid":0.5,'
     '"best_ask":"0.6","timestamp":"1"}', s.BAD_VALUE, "best_bid"),
    ("bad_side", '{"event_type":"price_change","market":"m","timestamp":"1","price_changes":'
     '[{"asset_id":"1","price":"0.5","size":"2","side":"HOLD"}]}', s.BAD_VALUE, "price_changes[].side"),
    ("bad_timestamp", '{"event_type":"last_trade_price","asset_id":"1","market":"m","price":"0.5",'
     '"timestamp":"yesterday"}', s.BAD_VALUE, "timestamp"),
    ("not_an_object", '"PONG?"', s.BAD_VALUE, "$"),
]


@pytest.mark.parametrize("name,text,reason,field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_reject_naming_reason_field_and_text(name: str, text: str, reason: str, field: str) -> None:
    p = one(text)
    assert p.events == []
    assert len(p.rejects) == 1, name
    rej = p.rejects[0]
    assert (rej.reason, rej.field) == (reason, field)
    assert rej.text == text[: s.TEXT_SHOWN]


def test_a_frame_over_the_cap_is_rejected_before_parsing() -> None:
    big = b'{"event_type":"book","pad":"' + b"x" * (5 * 1024 * 1024) + b'"}'
    p = parse_frame(big, CAP)
    assert [r.reason for r in p.rejects] == [s.TOO_LARGE] and p.rejects[0].value == str(len(big))
    assert len(p.rejects[0].text) == s.TEXT_SHOWN


def test_one_bad_book_in_a_dump_does_not_cost_the_others() -> None:
    dump = json.loads(payloads()[0])
    dump[3]["bids"][0]["size"] = "-1"
    del dump[5]["market"]
    p = one(json.dumps(dump))
    assert len(p.events) == 26
    assert sorted(r.reason for r in p.rejects) == [s.BAD_VALUE, s.MISSING_FIELD]


def test_one_bad_entry_rejects_its_whole_price_change() -> None:
    p = one(json.dumps({"event_type": "price_change", "market": "m", "timestamp": "1", "price_changes": [
        {"asset_id": A, "price": "0.5", "size": "1", "side": "BUY"},
        {"asset_id": B, "price": "0.5", "size": "x", "side": "SELL"}]}))
    assert p.events == [] and p.rejects[0].field == "price_changes[].size" and p.rejects[0].value == "x"


@given(st.integers(min_value=0, max_value=10**15))
def test_micros_print_and_parse_back_exactly(v: int) -> None:
    assert to_micros(fmt_micros(v), "x") == v


@pytest.mark.parametrize("text,micros", [("0.62", 620_000), ("0.620", 620_000), ("1", 1_000_000), ("0", 0),
                                         ("0.0001", 100), ("0.1234560", 123_456), ("65.75", 65_750_000)])
def test_decimal_strings_to_micros(text: str, micros: int) -> None:
    assert to_micros(text, "size") == micros


@pytest.mark.parametrize("text", ["", "-1", "1e-3", " 1", "1_000", "0.0000001", "٣", "0x1", "nan", "1."])
def test_malformed_numbers_raise_naming_the_field(text: str) -> None:
    with pytest.raises(BadValue, match="field 'size'"):
        to_micros(text, "size")


def test_prices_above_one_are_refused() -> None:
    with pytest.raises(BadValue, match="outside"):
        price_micros("1.000001")


def test_rest_book_parses_and_checks_the_token() -> None:
    path = FIXTURES / "enrico" / "rest_responses.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    body = next(r for r in rows if "/book" in r["url"])["raw_response"].encode()
    token = json.loads(body)["asset_id"]
    snap = parse_rest_book(body, token)
    assert snap.min_order_size == "5" and snap.tick_size == 1_000 and snap.bids and snap.asks
    with pytest.raises(RestBookError, match="asked for"):
        parse_rest_book(body, "999")
    with pytest.raises(RestBookError) as err:
        parse_rest_book(b'{"asset_id":"1"}', "1")
    assert err.value.reason == s.MISSING_FIELD
