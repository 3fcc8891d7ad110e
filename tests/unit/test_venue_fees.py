"""Venue fees (docs.polymarket.com/trading/fees; libs/common/fees.py): a TAKER fill pays
``shares x rate x p x (1 - p)`` pUSD from the maker wallet, a MAKER fill pays 0 and its rebate
estimate is audited, never credited; fills and trades carry the fee fields; the market info endpoints
answer from the schedule. Orders are signed by py_clob_client_v2, the tape is fake (no Redis)."""
from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from flask import Blueprint, Flask
from py_clob_client_v2.signer import Signer

from libs.common.fees import CATEGORY_SCHEDULES
from services.venue_sim import accounts as acc
from services.venue_sim.engine import TradeEvent
from services.venue_sim.gamma import gamma_market, register_market_info
from services.venue_sim.orders import OrderReject
from tests.unit.test_venue_engine_fakes import CID, KEY, NO, YES, make_engine, signed_body

D = Decimal
CRYPTO = CATEGORY_SCHEDULES["crypto"]  # 0.07 taker rate, 20 % maker rebate


def _setup(tmp_path: Any, start_usdc: str = "100", schedule: Any = CRYPTO) -> tuple[Any, Any, Any, list, Any]:
    engine, books, clock, events = make_engine(start_usdc=start_usdc, audit_path=tmp_path / "audit.jsonl")
    for token in (YES, NO):
        engine.markets[token] = replace(engine.markets[token], fee_schedule=schedule)
    creds = engine.register_key(Signer(KEY, 137).address(), 0)
    return engine, books, clock, events, creds


def _collateral(engine: Any, creds: Any) -> Decimal:
    return engine.ledger.account(creds.address).collateral


def _fills(tmp_path: Any) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    return [x for x in lines if x["kind"] == "fill"]


def test_taker_buy_then_sell_pay_the_fee_exactly(tmp_path: Any) -> None:
    engine, books, clock, events, creds = _setup(tmp_path)
    engine.place(creds, signed_body(creds, 0.52, 10))  # crosses the 0.52 ask: taker
    fee = D(10) * D("0.07") * D("0.52") * D("0.48")  # 0.17472, already 5 decimals
    assert _collateral(engine, creds) == D(100) - D("5.2") - fee
    assert engine.ledger.account(creds.address).shares(YES) == D(10)  # the BUY's fee is taken in pUSD, not shares
    engine.place(creds, signed_body(creds, 0.48, 10, side="SELL"))  # hits the 0.48 bid: taker
    sell_fee = D(10) * D("0.07") * D("0.48") * D("0.52")
    assert _collateral(engine, creds) == D(100) - D("5.2") - fee + D("4.8") - sell_fee
    buy, sell = _fills(tmp_path)
    assert (buy["role"], buy["fee"], buy["rebate"], buy["fee_rate_bps"]) == ("TAKER", "0.17472", "0", 700)
    assert (sell["role"], sell["side"], sell["fee"], sell["rebate"]) == ("TAKER", "SELL", "0.17472", "0")
    trades = [e.trade for e in events if isinstance(e, TradeEvent) and not e.settlement]
    assert [(t["fee_rate_bps"], t["trader_side"]) for t in trades] == [("700", "TAKER"), ("700", "TAKER")]
    rest = engine.ledger.trades_of(creds.address, {})
    assert {t["fee_rate_bps"] for t in rest} == {"700"} and {t["trader_side"] for t in rest} == {"TAKER"}


def test_maker_fill_pays_nothing_and_the_rebate_is_only_audited(tmp_path: Any) -> None:
    engine, books, clock, events, creds = _setup(tmp_path)
    engine.place(creds, signed_body(creds, 0.48, 10, post_only=True))
    books.set(YES, [("0.46", "100")], [("0.45", "3")])  # the ask drops through our bid: we are maker
    engine.on_tape_update(YES)
    assert _collateral(engine, creds) == D(100) - D("4.8")  # no fee, no rebate credited
    (fill,) = _fills(tmp_path)
    rebate = (D(10) * D("0.07") * D("0.48") * D("0.52")).quantize(D("0.00001")) * D("0.2")
    assert (fill["role"], fill["fee"], fill["fee_rate_bps"]) == ("MAKER", "0", 700)
    assert D(fill["rebate"]) == rebate.quantize(D("0.00001"), rounding="ROUND_DOWN") == D("0.03494")
    (trade,) = [e.trade for e in events if isinstance(e, TradeEvent)]
    assert (trade["fee_rate_bps"], trade["maker_orders"][0]["fee_rate_bps"], trade["trader_side"]) == (
        "700", "700", "MAKER")


def test_a_taker_buy_cannot_overdraw_with_its_fee(tmp_path: Any) -> None:
    engine, books, clock, events, creds = _setup(tmp_path, start_usdc="5.2")
    with pytest.raises(OrderReject, match="not enough balance"):
        engine.place(creds, signed_body(creds, 0.52, 10))  # 5.2 pUSD + up to 0.175 fee > 5.2
    assert engine.place(creds, signed_body(creds, 0.48, 10, post_only=True))["status"] == "live"  # maker: no fee
    assert acc.order_need("BUY", D("0.52"), D(10), CRYPTO, True) == D("5.2") + D("0.175")
    assert acc.order_need("BUY", D("0.30"), D(10), CRYPTO, True) == D("3") + D("0.147")  # curve at 0.3
    assert acc.order_need("SELL", D("0.52"), D(10), CRYPTO, True) == D(10)


def test_markets_without_a_schedule_charge_nothing(tmp_path: Any) -> None:
    engine, books, clock, events, creds = _setup(tmp_path, schedule=replace(CRYPTO, rate=D(0), rebate_rate=D(0)))
    engine.place(creds, signed_body(creds, 0.52, 10))
    assert _collateral(engine, creds) == D(100) - D("5.2")
    (fill,) = _fills(tmp_path)
    assert (fill["fee"], fill["rebate"], fill["fee_rate_bps"]) == ("0", "0", 0)


def test_market_info_answers_from_the_schedule(tmp_path: Any) -> None:
    engine, books, clock, events, creds = _setup(tmp_path)
    market = gamma_market(engine.markets[YES], engine, books, clock.now_ms())
    assert market["feesEnabled"] is True and (market["takerBaseFee"], market["makerBaseFee"]) == (700, 0)
    assert market["feeSchedule"] == {"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0.2}
    app, bp = Flask(__name__), Blueprint("info", __name__)
    register_market_info(bp, engine, books, engine.markets, clock)
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get(f"/fee-rate?token_id={YES}").get_json() == {"base_fee": 700}
    assert client.get(f"/clob-markets/{CID}").get_json()["fd"] == {"r": 0.07, "e": 1, "to": True}
    assert client.get(f"/markets/{CID}").get_json()["taker_base_fee"] == 700
    free = replace(engine.markets[YES], fee_schedule=replace(CRYPTO, rate=D(0)))
    plain = gamma_market(free, engine, books, clock.now_ms())
    assert plain["feesEnabled"] is False and "feeSchedule" not in plain and plain["takerBaseFee"] == 0
