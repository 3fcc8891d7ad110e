"""The venue's REST API driven by the REAL py_clob_client_v2 over HTTP (fake tape, no Redis needed):
API keys, books, post-only orders, fills from the tape, balances, cancels, market orders, errors,
fault injection, data-api, Gamma and /_sim."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import httpx
import pytest
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.clob_types import (AssetType, BalanceAllowanceParams, BookParams, CreateOrderOptions,
                                          MarketOrderArgsV2,
                                          OpenOrderParams, OrderArgsV2, OrderMarketCancelParams, OrderPayload,
                                          OrderType, PartialCreateOrderOptions)
from py_clob_client_v2.exceptions import PolyApiException

from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.rest import END_CURSOR, INITIAL_CURSOR, PAGE_SIZE, create_app, make_http_server, page
from tests.unit.test_venue_engine_fakes import CID, END_MS, KEY, NO, START_MS, YES, make_engine

OPTS = PartialCreateOrderOptions(tick_size="0.01")
LEADER = "0x00000000000000000000000000000000000de111"


def _leader_file(tmp_path: Path) -> Path:
    t0 = (START_MS + 5_000) // 1000
    rows = [{"proxyWallet": LEADER, "side": side, "asset": YES, "conditionId": CID, "size": 10, "price": 0.5,
             "timestamp": t0 + dt, "transactionHash": f"0x{i:064x}"}
            for i, (side, dt) in enumerate([("BUY", 0), ("BUY", 0), ("SELL", 3), ("BUY", 60)])]
    path = tmp_path / "leader.jsonl"
    path.write_text("\n".join([json.dumps({"_meta": {"synthetic": True}})] + [json.dumps(r) for r in rows]) + "\n")
    return path


@pytest.fixture()
def venue(tmp_path: Path) -> Iterator[SimpleNamespace]:
    engine, books, clock, events = make_engine(start_usdc="1000", audit_path=tmp_path / "audit.jsonl")
    leaders = Leaders([_leader_file(tmp_path)], clock, START_MS, END_MS)
    app = create_app(engine, books, engine.markets, leaders, clock, Faults(), engine.audit)
    server = make_http_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}"
    client = ClobClient(url, chain_id=137, key=KEY)
    yield SimpleNamespace(url=url, engine=engine, books=books, clock=clock, events=events, client=client,
                          http=httpx.Client(base_url=url, timeout=5), audit=tmp_path / "audit.jsonl")
    server.shutdown()
    thread.join(5)
    server.server_close()
    engine.audit.close()


def _authed(v: SimpleNamespace) -> ClobClient:
    creds = v.client.create_or_derive_api_key()
    v.client.set_api_creds(creds)
    return v.client


def test_keys_book_post_fill_balance_cancel(venue: SimpleNamespace) -> None:
    client = _authed(venue)
    assert client.derive_api_key().api_key == client.creds.api_key  # derive = what create made
    assert client.get_tick_size(YES) == "0.01" and client.get_neg_risk(YES) is False
    resp = client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.48, size=10, side="BUY"), OPTS,
                                        OrderType.GTC, post_only=True)
    assert resp["success"] is True and resp["status"] == "live"
    oid = resp["orderID"]
    book = client.get_order_book(YES)
    assert [b["price"] for b in book["bids"]] == ["0.47", "0.48"]  # ascending, best LAST
    assert [a["price"] for a in book["asks"]] == ["0.6", "0.53", "0.52"]  # descending, best LAST
    assert book["bids"][-1]["size"] == "110"  # tape 100 + our resting 10
    assert client.get_order_book_hash(dict(book)) == book["hash"] and len(book["hash"]) == 40
    assert [o["id"] for o in client.get_open_orders()] == [oid]
    assert client.get_open_orders(OpenOrderParams(asset_id=NO)) == []
    collateral = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)
    assert client.get_balance_allowance(collateral)["balance"] == "1000000000"

    venue.books.set(YES, [("0.46", "100")], [("0.47", "20")])  # the tape's ask moves down through our bid
    venue.engine.on_tape_update(YES)
    order = client.get_order(oid)
    assert order["status"] == "MATCHED" and order["size_matched"] == "10"
    assert client.get_balance_allowance(collateral)["balance"] == str(1_000_000_000 - 4_800_000)
    shares = BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=YES)
    assert client.update_balance_allowance(shares)["balance"] == "10000000"
    trades = client.get_trades()
    assert len(trades) == 1 and trades[0]["trader_side"] == "MAKER" and trades[0]["maker_orders"][0]["order_id"] == oid

    sell = client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.55, size=10, side="SELL"), OPTS,
                                        OrderType.GTC, post_only=True)
    assert sell["status"] == "live"
    result = client.cancel_market_orders(OrderMarketCancelParams(asset_id=YES))
    assert result == {"canceled": [sell["orderID"]], "not_canceled": {}}
    again = client.cancel_order(OrderPayload(orderID=sell["orderID"]))
    assert again == {"canceled": [], "not_canceled": {sell["orderID"]: "already canceled or matched"}}
    assert client.get_open_orders() == []
    kinds = [json.loads(line)["kind"] for line in venue.audit.read_text().splitlines()]
    assert kinds == ["order_accepted", "fill", "order_accepted", "cancel"]


def test_rejections_reach_the_client_with_polymarket_errors(venue: SimpleNamespace) -> None:
    client = _authed(venue)
    with pytest.raises(PolyApiException) as exc:
        client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.48, size=5000, side="BUY"), OPTS,
                                     OrderType.GTC, post_only=True)
    assert exc.value.status_code == 400 and exc.value.error_msg == {"error": "not enough balance / allowance"}
    with pytest.raises(PolyApiException) as exc:
        client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.55, size=10, side="BUY"), OPTS,
                                     OrderType.GTC, post_only=True)
    assert exc.value.error_msg == {"error": "invalid post-only order: order crosses book"}
    v1 = client.builder.build_order(OrderArgsV2(token_id=YES, price=0.40, size=10, side="BUY"),
                                    CreateOrderOptions(tick_size="0.01", neg_risk=False), version=1)
    with pytest.raises(PolyApiException) as exc:
        client.post_order(v1)
    assert exc.value.error_msg == {"error": "invalid order version, please use the latest clob-client"}
    with pytest.raises(PolyApiException) as exc:
        client.get_order_book("999")
    assert exc.value.status_code == 404
    bad_auth = venue.http.get("/data/orders", headers={"POLY_API_KEY": "x", "POLY_ADDRESS": "0x1"})
    assert bad_auth.status_code == 401 and bad_auth.json() == {"error": "Unauthorized/Invalid api key"}
    missing = venue.http.get("/no/such/path")
    assert missing.status_code == 404 and "error" in missing.json()


def test_market_order_uses_market_info_endpoints_and_fills_as_taker(venue: SimpleNamespace) -> None:
    client = _authed(venue)
    resp = client.create_and_post_market_order(MarketOrderArgsV2(token_id=YES, amount=5.2, side="BUY"),
                                               order_type=OrderType.FOK)
    assert resp["status"] == "matched" and resp["takingAmount"] == "10" and resp["makingAmount"] == "5.2"
    assert resp["transactionsHashes"]  # present, so the client does not poll /data/trades
    assert client.get_clob_market_info(CID)["t"][0]["t"] == YES
    heartbeat = client.post_heartbeat("")
    assert "heartbeat_id" in heartbeat


def test_fault_injection_is_seen_by_the_client(venue: SimpleNamespace) -> None:
    client = _authed(venue)
    r = venue.http.post("/_sim/fault", json={"path": "/order", "method": "POST", "status": 429, "count": 1})
    assert r.status_code == 200
    with pytest.raises(PolyApiException) as exc:
        client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.40, size=10, side="BUY"), OPTS,
                                     OrderType.GTC, post_only=True)
    assert exc.value.status_code == 429 and exc.value.error_msg == {"error": "Too Many Requests"}
    ok = client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.40, size=10, side="BUY"), OPTS,
                                      OrderType.GTC, post_only=True)
    assert ok["status"] == "live"  # only the next request was faulted
    bad = venue.http.post("/_sim/fault", json={"path": "/order", "status": 99})
    assert bad.status_code == 400 and "'status'" in bad.json()["error"]
    state = venue.http.get("/_sim/state").json()
    assert state["accounts"][0]["open_orders"] == 1 and state["counts"]["faults_served"] == 1
    assert state["leaders"][0]["synthetic"] is True
    assert [o["status"] for o in venue.http.get("/_sim/orders").json()] == ["LIVE"]


def test_data_api_trades_and_positions(venue: SimpleNamespace) -> None:
    http = venue.http
    venue.clock.now = START_MS + 8_000  # rows at +5 s (two) and +8 s visible, +65 s not yet
    mixed_case = LEADER.upper().replace("0X", "0x")
    rows = http.get("/data-api/trades", params={"user": mixed_case, "takerOnly": "false"}).json()
    assert [r["transactionHash"][-1] for r in rows] == ["2", "0", "1"]  # newest first, file order at equal ts
    assert http.get("/data-api/trades", params={"user": LEADER, "limit": 1, "offset": 1}).json() == [rows[1]]
    assert http.get("/data-api/trades", params={"user": LEADER, "side": "SELL"}).json() == [rows[0]]
    assert http.get("/data-api/trades", params={"user": "0xother"}).json() == []
    assert http.get("/data-api/trades", params={"limit": 10001}).status_code == 400
    venue.clock.now = START_MS + 65_000
    assert len(http.get("/data-api/trades").json()) == 4
    client = _authed(venue)
    client.create_and_post_order(OrderArgsV2(token_id=YES, price=0.52, size=10, side="BUY"), OPTS, OrderType.GTC)
    positions = http.get("/data-api/positions", params={"user": client.get_address()}).json()
    assert len(positions) == 1 and positions[0]["asset"] == YES and positions[0]["size"] == 10
    assert positions[0]["avgPrice"] == 0.52 and positions[0]["outcome"] == "Up"


def test_gamma_markets(venue: SimpleNamespace) -> None:
    markets = venue.http.get("/gamma/markets", params={"clob_token_ids": YES}).json()
    assert len(markets) == 1
    m = markets[0]
    assert json.loads(m["clobTokenIds"]) == [YES, NO] and json.loads(m["outcomes"]) == ["Up", "Down"]
    assert m["conditionId"] == CID and m["closed"] is False and m["acceptingOrders"] is True
    assert m["orderMinSize"] == 5 and m["orderPriceMinTickSize"] == 0.01 and m["negRisk"] is False
    assert m["bestBid"] == 0.48 and m["bestAsk"] == 0.52 and m["endDate"].endswith("Z")
    assert venue.http.get("/gamma/markets", params={"clob_token_ids": "123"}).json() == []
    venue.clock.now = END_MS
    assert venue.http.get("/gamma/markets", params={"condition_ids": CID}).json()[0]["closed"] is True


def test_public_market_data_through_the_client(venue: SimpleNamespace) -> None:
    client = venue.client
    assert client.get_ok() == "OK" and client.get_version() == 2
    assert client.get_server_time() == venue.clock.wall_ms() // 1000
    assert client.get_midpoint(YES) == {"mid": "0.5"}
    assert client.get_spread(YES) == {"spread": "0.04"}
    assert client.get_price(YES, "BUY") == {"price": "0.48"} and client.get_price(YES, "SELL") == {"price": "0.52"}
    assert client.get_last_trade_price(YES) == {"price": "0.5", "side": ""}  # no trade yet: neutral default
    books = client.get_order_books([BookParams(token_id=YES), BookParams(token_id=NO)])
    assert [b["asset_id"] for b in books] == [YES, NO]
    market = client.get_market(CID)
    assert market["condition_id"] == CID and [t["token_id"] for t in market["tokens"]] == [YES, NO]
    assert market["minimum_order_size"] == 5 and market["minimum_tick_size"] == 0.01
    assert client.get_markets()["next_cursor"] == "LTE="
    assert venue.http.get("/fee-rate", params={"token_id": YES}).json() == {"base_fee": 0}
    assert venue.http.get(f"/markets-by-token/{YES}").json()["condition_id"] == CID
    assert venue.http.get("/tick-size", params={"token_id": "abc"}).status_code == 400


def test_api_key_listing_and_deletion(venue: SimpleNamespace) -> None:
    client = _authed(venue)
    assert client.get_api_keys() == {"apiKeys": [client.creds.api_key]}
    assert client.get_closed_only_mode() == {"closed_only": False}
    client.delete_api_key()
    with pytest.raises(PolyApiException) as exc:
        client.get_open_orders()
    assert exc.value.status_code == 401


def test_open_orders_are_paged_until_the_end_cursor() -> None:
    items = list(range(PAGE_SIZE * 2 + 5))
    seen, cursor = [], INITIAL_CURSOR
    while cursor != END_CURSOR:
        result = page(items, cursor)
        seen.extend(result["data"])
        cursor = result["next_cursor"]
    assert seen == items
    assert page([], INITIAL_CURSOR) == {"data": [], "next_cursor": END_CURSOR, "limit": PAGE_SIZE, "count": 0}
