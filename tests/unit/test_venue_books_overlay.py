"""venue_sim market channel, pure part: per-client filtering and the overlay of our resting orders."""
from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import orjson

from services.venue_sim.ws_market import FrameOut, client_text, filter_event, overlay_event, single

A, B = "111", "222"
PC = ('{"market":"0xm", "price_changes":[{"asset_id":"111", "price":"0.45", "size":"10", "side":"BUY", "hash":"h1", '
      '"best_bid":"0.45", "best_ask":"0.55"}, {"asset_id":"222", "price":"0.55", "size":"10", "side":"SELL", '
      '"hash":"h2", "best_bid":"0.45", "best_ask":"0.55"}], "timestamp":"1", "event_type":"price_change"}')
BBA = '{"market":"0xm", "asset_id":"111", "best_bid":"0.45", "best_ask":"0.55", "spread":"0.1", "timestamp":"1", "event_type":"best_bid_ask"}'
NONE: dict[str, Any] = {}


def rest_of(table: dict[str, tuple[dict[D, D], dict[D, D]]]):  # type: ignore[no-untyped-def]
    return lambda token: table.get(token)


def no_tick(_token: str) -> D | None:
    return None


def out_of(text: str, table: dict[str, Any] | None = None) -> FrameOut:
    data = orjson.loads(text)
    events = tuple(data) if isinstance(data, list) else (data,)
    over = tuple(overlay_event(e, rest_of(table or {}), no_tick) for e in events)
    return FrameOut(text, over, isinstance(data, list), any(a is not b for a, b in zip(over, events)))


def test_unchanged_frame_goes_out_as_the_exact_tape_bytes() -> None:
    assert client_text(out_of(PC), {A, B}, False) == PC
    assert client_text(out_of(BBA), {A}, True) == BBA


def test_price_change_keeps_only_the_clients_entries_and_is_dropped_when_none_remain() -> None:
    text = client_text(out_of(PC), {B}, False)
    assert text is not None
    msg = orjson.loads(text)
    assert [e["asset_id"] for e in msg["price_changes"]] == [B]
    assert list(msg) == ["market", "price_changes", "timestamp", "event_type"]
    assert client_text(out_of(PC), {"333"}, True) is None


def test_custom_events_only_with_custom_features() -> None:
    assert client_text(out_of(BBA), {A}, False) is None
    resolved = {"event_type": "market_resolved", "assets_ids": [A, B], "winning_asset_id": A}
    assert filter_event(resolved, {B}, True) is resolved
    assert filter_event(resolved, {B}, False) is None
    assert filter_event(resolved, {"9"}, True) is None


def test_overlay_adds_our_size_at_the_level_and_improves_best_prices() -> None:
    ours = {A: ({D("0.45"): D("5"), D("0.47"): D("2")}, {D("0.50"): D("3")})}
    text = client_text(out_of(PC, ours), {A, B}, False)
    assert text is not None
    entry_a, entry_b = orjson.loads(text)["price_changes"]
    assert entry_a == {"asset_id": A, "price": "0.45", "size": "15", "side": "BUY", "hash": "h1",
                       "best_bid": "0.47", "best_ask": "0.5"}
    assert entry_b["size"] == "10" and entry_b["best_bid"] == "0.45"  # B has no orders of ours


def test_overlay_fills_an_empty_tape_side_with_ours() -> None:
    ev = orjson.loads(PC)
    ev["price_changes"][0]["best_bid"] = "0"
    out = overlay_event(ev, rest_of({A: ({D("0.30"): D("1")}, {})}), no_tick)
    assert out["price_changes"][0]["best_bid"] == "0.3"


def test_overlay_of_best_bid_ask_recomputes_the_spread() -> None:
    out = overlay_event(orjson.loads(BBA), rest_of({A: ({}, {D("0.50"): D("3")})}), no_tick)
    assert (out["best_bid"], out["best_ask"], out["spread"]) == ("0.45", "0.5", "0.05")


def test_overlay_of_legacy_and_oldest_schemas_adds_sizes() -> None:
    legacy = {"event_type": "price_change", "asset_id": A, "changes": [{"price": "0.45", "side": "BUY", "size": "1"}]}
    ours = rest_of({A: ({D("0.45"): D("4")}, {})})
    assert overlay_event(legacy, ours, no_tick)["changes"][0]["size"] == "5"
    oldest = {"event_type": "price_change", "asset_id": A, "price": "0.45", "side": "BUY", "size": "1"}
    assert overlay_event(oldest, ours, no_tick)["size"] == "5"
    assert overlay_event(oldest, rest_of({}), no_tick) is oldest


def test_book_overlay_merges_levels_and_writes_a_flipped_tick() -> None:
    book = {"market": "0xm", "asset_id": A, "timestamp": "1", "hash": "h", "bids": [{"price": "0.4", "size": "1"}],
            "asks": [{"price": "0.6", "size": "2"}], "tick_size": "0.01", "event_type": "book", "last_trade_price": "0.5"}
    out = overlay_event(book, rest_of({A: ({D("0.4"): D("2"), D("0.45"): D("1")}, {})}), lambda t: D("0.001"))
    assert out["bids"] == [{"price": "0.4", "size": "3"}, {"price": "0.45", "size": "1"}]
    assert out["tick_size"] == "0.001" and book["tick_size"] == "0.01"
    assert overlay_event(book, rest_of({}), lambda t: D("0.01")) is book


def test_array_frame_is_filtered_per_client_and_ends_with_newline() -> None:
    dump = orjson.dumps([{"event_type": "book", "asset_id": A, "bids": [], "asks": []},
                         {"event_type": "book", "asset_id": B, "bids": [], "asks": []}]).decode() + "\n"
    assert client_text(out_of(dump), {A, B}, False) == dump
    text = client_text(out_of(dump), {B}, False)
    assert text is not None and text.endswith("\n") and [b["asset_id"] for b in orjson.loads(text)] == [B]


def test_venue_made_event_is_compact_json() -> None:
    text = client_text(single({"event_type": "tick_size_change", "asset_id": A}), {A}, False)
    assert text == '{"event_type":"tick_size_change","asset_id":"111"}'
