"""The user channel's pure parser: real message samples (nautilus fixtures, the SDK's models), our leg
of a trade, bad events counted without hiding good ones, REST backfill rows shaped like live ones."""
from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest
from polymarket.models.clob.user_events import parse_user_event

from libs.common.venue_types import OrderState, TradeFill
from services.maker_worker.user_events import feed_ok, fill_size
from services.user_feed.backfill import after_ms, backfill
from services.user_feed.link import auth_frame
from services.user_feed.parse import fill_entry, parse_frame, state_entry, time_ms

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "nautilus"
KEY = "00000000-0000-0000-0000-000000000001"  # the fixtures' owner (our API key)
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def sample(name: str) -> dict:
    return json.loads((FIX / f"{name}.json").read_text())


def one(item: dict) -> dict[str, str]:
    entries, errors = parse_frame(orjson.dumps(item), KEY)
    assert errors == [] and len(entries) == 1
    return entries[0][1]


@pytest.mark.parametrize("name,status,matched", [
    ("ws_user_order_placement", "LIVE", "0"), ("ws_user_order_update", "LIVE", "25"),
    ("ws_user_order_matched", "MATCHED", "100"), ("ws_user_order_cancellation", "CANCELED", "0"),
    ("ws_user_order_venue_cancel", "CANCELED", "0"), ("ws_user_order_fok_killed", "CANCELED", "0")])
def test_order_samples_become_order_entries(name: str, status: str, matched: str) -> None:
    item = {"event_type": "order", **sample(name)}
    fields = one(item)
    assert fields["kind"] == "order" and fields["status"] == status and fields["size_matched"] == matched
    assert fields["order_id"] == item["id"] and fields["side"] == "BUY" and fields["source"] == "ws"
    assert fields["ts_ms"] == str(int(item["timestamp"]))


def test_taker_trade_is_the_top_level_fill_with_its_match_time() -> None:
    item = sample("ws_user_trade_msg")
    [(token, f)] = parse_frame(orjson.dumps(item), KEY)[0]
    assert token == TOKEN and f["kind"] == "trade" and f["trade_id"] == "trade-0xabcdef1234"
    assert (f["order_id"], f["side"], f["price"], f["size"]) == (item["taker_order_id"], "BUY", "0.5", "25")
    assert f["trade_status"] == "CONFIRMED" and f["ts_ms"] == str(time_ms("2024-01-01T00:00:00Z"))


def test_maker_trade_is_our_leg_at_the_legs_price_size_side_and_asset() -> None:
    item = {**sample("ws_user_trade_msg"), "trader_side": "MAKER", "side": "SELL", "price": "0.6",
            "maker_orders": [
                {"order_id": "0xother", "owner": "someone", "matched_amount": "3", "price": "0.6", "asset_id": TOKEN,
                 "side": "BUY"},
                {"order_id": "0xours", "owner": KEY, "matched_amount": "7.0000", "price": "0.4", "asset_id": "999",
                 "side": "BUY"}]}
    [(token, f)] = parse_frame(orjson.dumps(item), KEY)[0]
    assert token == "999", "a complementary leg is on its own asset"
    assert (f["order_id"], f["side"], f["price"], f["size"]) == ("0xours", "BUY", "0.4", "7")


def test_a_bad_event_is_reported_and_the_good_ones_of_the_frame_still_count() -> None:
    good = {"event_type": "order", **sample("ws_user_order_placement")}
    frame = orjson.dumps([good, {"event_type": "order", **good, "price": "abc"}, {"event_type": "mystery"},
                          {**sample("ws_user_trade_msg"), "status": "WEIRD"}, 7])
    entries, errors = parse_frame(frame, KEY)
    assert len(entries) == 1 and len(errors) == 4
    assert any("'price'" in e for e in errors) and any("event_type" in e for e in errors)
    assert parse_frame(b"{not json", KEY) == ([], [parse_frame(b"{not json", KEY)[1][0]])
    assert parse_frame(b"{not json", KEY)[1][0].startswith("not JSON")


def test_maker_trade_without_our_leg_is_an_error_not_a_guess() -> None:
    item = {**sample("ws_user_trade"), "trader_side": "MAKER"}
    entries, errors = parse_frame(orjson.dumps({"event_type": "trade", **item}), KEY)
    assert entries == [] and "no maker_orders leg of ours" in errors[0]


def test_rest_rows_are_shaped_like_live_entries() -> None:
    tf = TradeFill("t1", "0xo", TOKEN, "BUY", D("0.50"), D("10.0"), "CONFIRMED", 1_700_000_000_000, "MAKER", "700")
    token, f = fill_entry(tf)
    assert token == TOKEN and f == {"kind": "trade", "trade_id": "t1", "trade_status": "CONFIRMED", "order_id": "0xo",
                                    "side": "BUY", "price": "0.5", "size": "10", "ts_ms": "1700000000000",
                                    "source": "rest", "role": "MAKER", "fee_rate_bps": "700"}
    token, f = state_entry(OrderState("0xo", "MATCHED", "BUY", D("0.5"), D("10"), D("10")), TOKEN, 5)
    assert token == TOKEN and f["status"] == "MATCHED" and f["size_matched"] == "10" and f["source"] == "rest"


def test_time_ms_reads_seconds_ms_and_iso() -> None:
    assert time_ms("1700000000") == time_ms(1_700_000_000_000) == 1_700_000_000_000
    assert time_ms("") == 0 and time_ms("2024-01-01T00:00:00Z") == 1_704_067_200_000


def test_auth_frame_is_the_sdks_all_markets_subscribe() -> None:
    frame = orjson.loads(auth_frame("k", "s", "p"))
    assert frame == {"type": "user", "auth": {"apiKey": "k", "secret": "s", "passphrase": "p"}}
    assert orjson.loads(auth_frame("k", "s", "p", ["0xm"]))["markets"] == ["0xm"]


class Rows:
    """A venue whose reads for one token fail."""

    def __init__(self, failing: str) -> None:
        self.failing, self.calls = failing, []

    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]:
        from libs.common.venue_types import VenueUnavailable
        self.calls.append((token_id, after_ms))
        if token_id == self.failing:
            raise VenueUnavailable(0, "timeout")
        return [TradeFill("t-" + token_id, "o", token_id, "SELL", D("0.6"), D(5), "MATCHED", 9)]

    def get_order(self, order_id: str) -> OrderState | None:
        return None if order_id == "gone" else OrderState(order_id, "LIVE", "BUY", D("0.5"), D(10), D(0))


def test_backfill_reads_from_the_last_match_minus_overlap_and_reports_failures_per_token() -> None:
    venue = Rows(failing="bad")
    res = backfill(venue, {"a": ["o1", "gone"], "b": [], "bad": ["o2"]}, {"a": 10_000}, 2_000, 5)
    assert ("a", 8_000) in venue.calls and ("b", 0) in venue.calls
    assert res.trades == 2 and res.orders == 1 and res.failures == [("bad", "timeout")]
    assert [e[1]["kind"] for e in res.entries] == ["trade", "order", "trade"]
    assert after_ms(0, 2000) == 0 and after_ms(1000, 2000) == 0


def test_feed_ok_needs_connected_fresh_and_no_pending_backfill() -> None:
    ok = {"state": "connected", "connected": "1", "backfill_pending": "0", "updated_ms": "1000"}
    assert feed_ok(ok, 3000, 5000)
    assert not feed_ok(ok, 7000, 5000), "a feed that stopped writing its health is not trusted"
    assert not feed_ok({**ok, "backfill_pending": "1"}, 3000, 5000)
    assert not feed_ok({**ok, "state": "down", "connected": "0"}, 3000, 5000)
    assert not feed_ok({}, 3000, 5000)


def test_fill_size_counts_only_what_is_not_accounted_yet() -> None:
    assert fill_size(D(5), D(0)) == 5
    assert fill_size(D(10), D(10)) == 0, "a REST poll already counted these shares"
    assert fill_size(D(10), D(7)) == 3


def test_the_sdk_parses_the_venues_events() -> None:
    """The paper venue's order and trade events are valid for Polymarket's own SDK models."""
    from services.venue_sim.orders import Order, trade_wire, user_order_event
    o = Order(id="0x" + "ab" * 32, owner=KEY, maker="0x" + "11" * 20, api_address="0x" + "11" * 20, token_id=TOKEN,
              market="0x" + "cd" * 32, outcome="Up", side="BUY", price=D("0.5"), original_size=D(10),
              order_type="GTC", post_only=True, expiration=0, created_ms=1_700_000_000_000, seq=1)
    ev = parse_user_event(user_order_event(o, "PLACEMENT", 1_700_000_000_000))
    assert ev.type == "order" and ev.payload.id == o.id
    ids = {"trade": "t-1", "tape_order": "0x" + "00" * 32, "tx": "0x" + "ee" * 32}
    trade = trade_wire(o, D("0.5"), D(10), True, 1_700_000_000_000, ids)
    ev = parse_user_event(trade)
    assert ev.type == "trade" and ev.payload.maker_orders[0].order_id == o.id
    [(token, f)] = parse_frame(orjson.dumps(trade), KEY)[0]
    assert (token, f["order_id"], f["side"], f["size"], f["trade_id"]) == (TOKEN, o.id, "BUY", "10", "t-1")


def test_trade_entries_carry_our_role_and_the_fee_rate() -> None:
    """Our role is MAKER when the fill is our maker_orders leg, TAKER when it is the taker order; the
    trade's fee_rate_bps passes through (the leg's when it has one), "" when absent."""
    from services.venue_sim.orders import Order, trade_wire
    o = Order(id="0x" + "ab" * 32, owner=KEY, maker="0x" + "11" * 20, api_address="0x" + "11" * 20, token_id=TOKEN,
              market="0x" + "cd" * 32, outcome="Up", side="BUY", price=D("0.5"), original_size=D(10),
              order_type="GTC", post_only=False, expiration=0, created_ms=1_700_000_000_000, seq=1)
    ids = {"trade": "t-1", "tape_order": "0x" + "00" * 32, "tx": "0x" + "ee" * 32}
    for maker, role in ((True, "MAKER"), (False, "TAKER")):
        wire = trade_wire(o, D("0.5"), D(10), maker, 1_700_000_000_000, ids, 700)
        assert wire["fee_rate_bps"] == "700" and wire["trader_side"] == role
        [(_, f)] = parse_frame(orjson.dumps(wire), KEY)[0]
        assert (f["order_id"], f["role"], f["fee_rate_bps"]) == (o.id, role, "700")
    wire = trade_wire(o, D("0.5"), D(10), False, 1_700_000_000_000, ids)
    del wire["fee_rate_bps"]
    [(_, f)] = parse_frame(orjson.dumps(wire), KEY)[0]
    assert f["fee_rate_bps"] == "" and f["role"] == "TAKER"
    wire["fee_rate_bps"] = "lots"
    entries, errors = parse_frame(orjson.dumps(wire), KEY)
    assert entries == [] and "fee_rate_bps" in errors[0] and "lots" in errors[0]
