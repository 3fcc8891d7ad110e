"""Venue core: matching, balances, reservations and order rules, with orders signed by the real
py_clob_client_v2 classes and a fake tape (no network, no Redis)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from py_clob_client_v2.clob_types import CreateOrderOptions, OrderArgsV2
from py_clob_client_v2.order_builder.builder import OrderBuilder
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
from py_clob_client_v2.signer import Signer

from services.venue_sim.engine import OrderEvent, TradeEvent
from services.venue_sim.orders import OrderReject
from tests.unit.test_venue_engine_fakes import CID, END_MS, KEY, NO, YES, make_engine, signed_body

D = Decimal


def _setup(**kw):
    engine, books, clock, events = make_engine(**kw)
    creds = engine.register_key(Signer(KEY, 137).address(), 0)
    return engine, books, clock, events, creds


def _collateral(engine, creds) -> int:
    return int(engine.balance(creds.address)["balance"])


def _shares(engine, creds, token=YES) -> int:
    return int(engine.balance(creds.address, token)["balance"])


def test_post_only_buy_at_best_bid_rests_live_and_reserves() -> None:
    engine, books, clock, events, creds = _setup()
    resp = engine.place(creds, signed_body(creds, 0.48, 10, post_only=True))
    assert resp["success"] is True and resp["status"] == "live"
    assert resp["orderID"].startswith("0x") and len(resp["orderID"]) == 66
    assert engine.resting_levels(YES) == ({D("0.48"): D("10")}, {})
    assert isinstance(events[0], OrderEvent) and events[0].kind == "PLACEMENT"
    assert events[0].order["status"] == "LIVE" and events[0].order["owner"] == creds.api_key
    # balance is total (not minus reservations), as on Polymarket; the reservation shows in funding
    assert _collateral(engine, creds) == 100_000_000
    with pytest.raises(OrderReject, match="not enough balance / allowance"):
        engine.place(creds, signed_body(creds, 0.48, 200, post_only=True))  # 96 + 4.8 > 100


def test_resting_buy_fills_when_tape_ask_crosses_at_own_price() -> None:
    engine, books, clock, events, creds = _setup()
    oid = engine.place(creds, signed_body(creds, 0.48, 10, post_only=True))["orderID"]
    books.set(YES, [("0.47", "100")], [("0.49", "40")])  # ask above our bid: no fill
    engine.on_tape_update(YES)
    assert engine.orders[oid].status == "LIVE"
    books.set(YES, [("0.46", "100")], [("0.45", "3")])  # ask drops through our 0.48 bid
    engine.on_tape_update(YES)
    order = engine.orders[oid]
    assert order.status == "MATCHED" and order.size_matched == D("10")  # whole size, not capped at 3
    assert _collateral(engine, creds) == 100_000_000 - 4_800_000  # paid our own price 0.48
    assert _shares(engine, creds) == 10_000_000
    trade = [e for e in events if isinstance(e, TradeEvent)][0]
    assert (trade.price, trade.size, trade.taker_side) == (D("0.48"), D("10"), "SELL")
    assert trade.trade["trader_side"] == "MAKER" and trade.trade["maker_orders"][0]["order_id"] == oid
    assert [e.kind for e in events if isinstance(e, OrderEvent)] == ["PLACEMENT", "UPDATE"]
    assert engine.resting_levels(YES) == ({}, {})


def test_resting_sell_fills_when_tape_bid_rises() -> None:
    engine, books, clock, events, creds = _setup()
    engine.place(creds, signed_body(creds, 0.52, 10))  # taker BUY at the ask: 10 shares at 0.52
    assert _shares(engine, creds) == 10_000_000
    oid = engine.place(creds, signed_body(creds, 0.55, 10, side="SELL", post_only=True))["orderID"]
    with pytest.raises(OrderReject, match="not enough balance"):
        engine.place(creds, signed_body(creds, 0.56, 5, side="SELL", post_only=True))  # shares reserved
    books.set(YES, [("0.56", "10")], [("0.58", "10")])
    engine.on_tape_update(YES)
    assert engine.orders[oid].status == "MATCHED"
    assert _shares(engine, creds) == 0
    assert _collateral(engine, creds) == 100_000_000 - 5_200_000 + 5_500_000


def test_post_only_order_crossing_tape_is_rejected_with_polymarket_text() -> None:
    engine, books, clock, events, creds = _setup()
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, signed_body(creds, 0.52, 10, post_only=True))
    assert (exc.value.status, exc.value.message) == (400, "invalid post-only order: order crosses book")
    assert engine.orders == {} and events == [] and engine.audit.counts["order_rejected"] == 1


def test_marketable_limit_walks_tape_levels_then_rests() -> None:
    engine, books, clock, events, creds = _setup(start_usdc="1000")
    resp = engine.place(creds, signed_body(creds, 0.53, 200))
    order = engine.orders[resp["orderID"]]
    assert resp["status"] == "matched"
    assert order.size_matched == D("150") and order.status == "LIVE"  # 100 @0.52 + 50 @0.53, 50 rest
    assert resp["makingAmount"] == "78.5" and resp["takingAmount"] == "150"  # 52 + 26.5 pUSD
    assert engine.resting_levels(YES) == ({D("0.53"): D("50")}, {})
    assert len(resp["tradeIDs"]) == 2 and "transactionsHashes" not in resp  # settled asynchronously
    # the tape liquidity we took is consumed until the tape updates that token
    fok = signed_body(creds, 0.53, 10, order_type="FOK")
    with pytest.raises(OrderReject, match="FOK orders are fully filled or killed"):
        engine.place(creds, fok)


def test_fok_and_fak() -> None:
    engine, books, clock, events, creds = _setup(start_usdc="1000")
    with pytest.raises(OrderReject, match="FOK orders are fully filled"):
        engine.place(creds, signed_body(creds, 0.52, 150, order_type="FOK"))  # only 100 at <= 0.52
    resp = engine.place(creds, signed_body(creds, 0.52, 150, order_type="FAK"))
    order = engine.orders[resp["orderID"]]
    assert order.size_matched == D("100") and order.status == "MATCHED"
    assert engine.resting_levels(YES) == ({}, {})  # the rest was killed, nothing rests
    with pytest.raises(OrderReject, match="invalid post-only order: only GTC and GTD"):
        engine.place(creds, signed_body(creds, 0.40, 10, order_type="FAK", post_only=True))


def test_cancel_releases_reservation() -> None:
    engine, books, clock, events, creds = _setup()
    oid = engine.place(creds, signed_body(creds, 0.45, 200, post_only=True))["orderID"]  # 90 of 100
    with pytest.raises(OrderReject, match="not enough balance"):
        engine.place(creds, signed_body(creds, 0.45, 30, post_only=True))
    result = engine.cancel(creds.address, [oid, "0xunknown"])
    assert result["canceled"] == [oid]
    assert result["not_canceled"] == {"0xunknown": "Order not found or already canceled"}
    assert engine.cancel(creds.address, [oid])["not_canceled"] == {oid: "already canceled or matched"}
    assert engine.place(creds, signed_body(creds, 0.45, 30, post_only=True))["status"] == "live"
    assert events[1].kind == "CANCELLATION" and events[1].order["status"] == "CANCELED"


def test_cancel_market_orders_filters_by_asset() -> None:
    engine, books, clock, events, creds = _setup()
    a = engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))["orderID"]
    b = engine.place(creds, signed_body(creds, 0.40, 10, token_id=NO, post_only=True))["orderID"]
    assert engine.cancel_where(creds.address, asset_id=YES)["canceled"] == [a]
    assert engine.orders[b].status == "LIVE"
    assert engine.cancel_where(creds.address, market=CID)["canceled"] == [b]


def test_market_end_cancels_and_closes() -> None:
    engine, books, clock, events, creds = _setup()
    oid = engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))["orderID"]
    engine.on_market_end(CID)
    assert engine.orders[oid].status == "CANCELED_MARKET_RESOLVED" and engine.orders[oid].cancel_reason == "MARKET_ENDED"
    assert events[-1].kind == "CANCELLATION"
    assert engine.audit.counts["market_end"] == 1
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))
    assert exc.value.reason == "MARKET_CLOSED"


def test_order_after_end_time_is_rejected_even_before_market_end_call() -> None:
    engine, books, clock, events, creds = _setup()
    clock.now = END_MS
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))
    assert exc.value.reason == "MARKET_CLOSED"


def test_tick_and_min_size_rules_use_polymarket_text() -> None:
    engine, books, clock, events, creds = _setup()
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, signed_body(creds, 0.455, 10, post_only=True, tick="0.001"))
    assert "is invalid. Price (0.455) breaks minimum tick size rule: 0.01" in exc.value.message
    assert exc.value.reason == "INVALID_ORDER_MIN_TICK_SIZE"
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, signed_body(creds, 0.45, 4, post_only=True))
    assert "is invalid. Size (4) lower than the minimum: 5" in exc.value.message
    books.ticks[YES] = Decimal("0.001")  # tick flipped: the same price is now valid
    assert engine.place(creds, signed_body(creds, 0.455, 10, post_only=True, tick="0.001"))["status"] == "live"


def test_duplicate_and_unknown_token() -> None:
    engine, books, clock, events, creds = _setup()
    body = signed_body(creds, 0.40, 10, post_only=True)
    engine.place(creds, body)
    with pytest.raises(OrderReject, match="is invalid. Duplicated."):
        engine.place(creds, json.loads(json.dumps(body)))
    with pytest.raises(OrderReject, match="Invalid token id"):
        engine.place(creds, signed_body(creds, 0.40, 10, token_id="123", post_only=True))


def test_heartbeat_expiry_cancels_all_orders_of_that_address() -> None:
    engine, books, clock, events, creds = _setup()
    oid = engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))["orderID"]
    clock.wall += 60_000  # no heartbeats started yet: nothing happens
    engine.sweep()
    assert engine.orders[oid].status == "LIVE"
    engine.heartbeat(creds.address, "")
    clock.wall += 9_000
    engine.sweep()
    assert engine.orders[oid].status == "LIVE"
    clock.wall += 2_000
    engine.balance(creds.address)  # any engine call sweeps
    assert engine.orders[oid].cancel_reason == "HEARTBEAT_EXPIRED"
    assert engine.audit.counts["heartbeat_expired"] == 1


def test_gtd_order_expires_in_market_time() -> None:
    engine, books, clock, events, creds = _setup()
    expires_s = (clock.now + 120_000) // 1000
    order = OrderBuilder(Signer(KEY, 137)).build_order(
        OrderArgsV2(token_id=YES, price=0.40, size=10, side="BUY", expiration=expires_s),
        CreateOrderOptions(tick_size="0.01", neg_risk=False))
    oid = engine.place(creds, order_to_json_v2(order, creds.api_key, "GTD", True))["orderID"]
    clock.now += 119_000
    engine.sweep()
    assert engine.orders[oid].status == "LIVE"
    clock.now += 1_000
    engine.sweep()
    assert engine.orders[oid].cancel_reason == "EXPIRED" and engine.orders[oid].status == "CANCELED_EXPIRED_ORDER"
    short = OrderBuilder(Signer(KEY, 137)).build_order(
        OrderArgsV2(token_id=YES, price=0.40, size=10, side="BUY", expiration=clock.now // 1000 + 30),
        CreateOrderOptions(tick_size="0.01", neg_risk=False))
    with pytest.raises(OrderReject, match="invalid expiration"):
        engine.place(creds, order_to_json_v2(short, creds.api_key, "GTD", True))


def test_matching_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[str]:
        engine, books, clock, events, creds = _setup(seed=seed)
        body = signed_body(creds, 0.52, 10)
        return engine.place(creds, body)["tradeIDs"] + [creds.api_key]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_audit_lines_have_every_field(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    engine, books, clock, events, creds = _setup(audit_path=path)
    engine.place(creds, signed_body(creds, 0.52, 10))
    with pytest.raises(OrderReject):
        engine.place(creds, signed_body(creds, 0.52, 10, post_only=True))
    engine.audit.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["order_accepted", "fill", "order_rejected"]
    for line in lines:
        assert {"ts_ms", "wall_ms", "kind", "order_id", "token_id", "side", "price", "size", "post_only",
                "order_type", "reason", "maker"} <= set(line)
    assert lines[1]["price"] == "0.52" and lines[1]["size"] == "10" and lines[1]["ts_ms"] == clock.now
    assert lines[2]["reason"] == "INVALID_POST_ONLY_ORDER"


class _MarketHubLike:
    def __init__(self) -> None:
        self.seen: list = []

    def on_engine_event(self, event) -> None:
        self.seen.append(event)


def test_fills_settle_later_and_only_non_market_listeners_see_the_status_changes() -> None:
    engine, books, clock, events, creds = _setup(settle_mined_ms=500, settle_confirmed_ms=1_500)
    hub = _MarketHubLike()
    engine.listen(hub.on_engine_event, settlement_updates=False)  # as __main__ wires the market channel
    resp = engine.place(creds, signed_body(creds, 0.52, 10))  # takes the tape's ask
    (trade_id,) = resp["tradeIDs"]
    assert [t["status"] for t in engine.trades_of(creds.address, {})] == ["MATCHED"]
    assert engine.trades_of(creds.address, {})[0]["transaction_hash"] == ""  # no tx before MINED
    clock.now += 2_000
    rows = engine.trades_of(creds.address, {"id": trade_id, "maker_address": creds.address.lower()})
    assert rows[0]["status"] == "CONFIRMED" and rows[0]["transaction_hash"].startswith("0x")
    updates = [(e.trade["id"], e.trade["status"]) for e in events if isinstance(e, TradeEvent) and e.settlement]
    assert updates == [(trade_id, "MINED"), (trade_id, "CONFIRMED")]
    assert [type(e).__name__ for e in hub.seen] == ["OrderEvent", "TradeEvent"]  # the fill only


def test_unfundable_fill_and_unknown_token_cancel_with_polymarket_statuses() -> None:
    engine, books, clock, events, creds = _setup()
    oid = engine.place(creds, signed_body(creds, 0.40, 10, post_only=True))["orderID"]
    engine.ledger.account(creds.address).collateral = D(0)  # funds gone (a reservation bug in real life)
    books.set(YES, [("0.30", "10")], [("0.39", "10")])
    engine.on_tape_update(YES)
    assert engine.orders[oid].status == "CANCELED_NOT_ENOUGH_BALANCE"
    engine.ledger.account(creds.address).collateral = D(100)
    other = engine.place(creds, signed_body(creds, 0.45, 10, token_id=NO, post_only=True))["orderID"]
    del books.levels[NO]
    engine.on_tape_update(NO)
    assert engine.orders[other].status == "CANCELED_MARKET_NOT_FOUND"
    assert engine.counts()["canceled"] == 2


@pytest.mark.parametrize("tick,good,bad", [("0.005", 0.425, 0.4275), ("0.0025", 0.4275, 0.42625)])
def test_new_tick_sizes(tick: str, good: float, bad: float) -> None:
    engine, books, clock, events, creds = _setup()
    books.ticks[YES] = D(tick)
    assert engine.place(creds, signed_body(creds, good, 10, tick=tick, post_only=True))["status"] == "live"
    with pytest.raises(OrderReject, match="breaks minimum tick size rule"):
        engine.place(creds, signed_body(creds, bad, 10, tick="0.0001" if tick == "0.0025" else "0.0025",
                                        post_only=True))
