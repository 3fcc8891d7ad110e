"""Fees in our fills ledger (``pb:fills:{token}``), against a real Redis and the FakeVenue: every
record gains ``role``, ``fee_rate_bps``, ``fee`` and ``rebate`` (pUSD, libs/common/fees.py) computed
from the token's ``pb:tok`` fee fields, on the channel path and on the takeover recovery path, with
the existing fields and the once-per-trade rule unchanged."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import orjson
from redis import Redis

from libs.common import keys
from libs.common.venue_types import TradeFill
from services.user_feed.parse import fill_entry
from services.user_feed.store import StreamStore
from tests.integration.test_worker_no_fill_lost import take_over
from tests.integration.test_worker_user_channel import entry, feed, order
from tests.worker_fakes import Rig, T, TradeVenue, entered

D = Decimal
CRYPTO_TOK = {"fee_rate": "0.07", "fee_exponent": "1", "rebate_rate": "0.2", "fee_taker_only": "1"}
FEE = D(10) * D("0.07") * D("0.49") * D("0.51")  # 0.17493 pUSD: 10 shares at 0.49


def publish(rig: Rig, order_id: str, role: str, bps: str = "700", trade_id: str = "t-1",
            status: str = "MATCHED") -> None:
    """A trade of our order (10 shares at 0.49) on ``pb:user`` as user_feed publishes it."""
    o = rig.venue.orders[order_id]
    tf = TradeFill(trade_id, order_id, T, o.side, D("0.49"), D(10), status, 1_000, role, bps)
    StreamStore(rig.r, 1000).publish([fill_entry(tf)])


def ledger(r: Redis) -> list[dict]:
    return [orjson.loads(v) for v in r.hvals(keys.fills(T))]


def filled(r: Redis, role: str, tok: dict[str, str] | None = CRYPTO_TOK, bps: str = "700") -> tuple[Rig, dict]:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    if tok:
        r.hset(keys.tok(T), mapping=tok)
    rig.venue.fill(buy)
    order(rig, buy)
    publish(rig, buy, role, bps)
    publish(rig, buy, role, bps)  # the backfill repeats it: still one record
    rig.step(n=3)
    (rec,) = ledger(r)
    return rig, rec


def test_a_maker_fill_books_no_fee_and_the_rebate_estimate(r: Redis) -> None:
    rig, rec = filled(r, "MAKER")
    assert (rec["trade_id"], rec["side"], D(rec["counted"]), rec["status"]) == ("t-1", "BUY", 10, "MATCHED")
    assert (rec["role"], rec["fee_rate_bps"], rec["fee"]) == ("MAKER", "700", "0")
    assert D(rec["rebate"]) == (FEE * D("0.2")).quantize(D("0.00001"), rounding="ROUND_DOWN") == D("0.03498")
    assert D(rig.tok()["position"]) == 10


def test_a_taker_fill_books_the_fee(r: Redis) -> None:
    rig, rec = filled(r, "TAKER")
    assert (rec["role"], D(rec["fee"]), rec["rebate"]) == ("TAKER", FEE, "0")
    assert rig.events("FEE_RATE_MISMATCH") == []


def test_a_fill_counted_first_by_a_poll_still_books_its_fee_once(r: Redis) -> None:
    feed(r, up=False)
    rig = Rig(r)
    buy = entry(rig)
    r.hset(keys.tok(T), mapping=CRYPTO_TOK)
    rig.venue.fill(buy)
    rig.step(n=2)  # the REST poll counts the 10 shares
    feed(r)
    publish(rig, buy, "TAKER")
    rig.step(n=3)
    (rec,) = ledger(r)
    assert D(rec["counted"]) == 0 and D(rec["fee"]) == FEE, "the fee belongs to the trade, not to who counted it"


def test_without_fee_fields_the_trades_rate_is_used(r: Redis) -> None:
    _, rec = filled(r, "TAKER", tok=None)
    assert D(rec["fee"]) == FEE and rec["rebate"] == "0"  # 700 bps from the trade, no rebate known


def test_a_market_without_fees_books_zero_whatever_the_role(r: Redis) -> None:
    _, rec = filled(r, "", tok=None, bps="")
    assert (rec["role"], rec["fee_rate_bps"], rec["fee"], rec["rebate"]) == ("", "", "0", "0")


def test_an_unknown_role_on_a_fee_market_is_journaled_and_never_blocks_the_fill(r: Redis) -> None:
    rig, rec = filled(r, "", bps="700")
    assert (rec["fee"], rec["rebate"], D(rec["counted"])) == ("", "", 10)
    (ev,) = rig.events("FEE_ROLE_UNKNOWN")
    assert ev["trade_id"] == "t-1" and ev["level"] == "warn"


def test_malformed_fee_fields_are_journaled_and_the_trades_rate_used(r: Redis) -> None:
    rig, rec = filled(r, "TAKER", tok={**CRYPTO_TOK, "fee_rate": "lots"}, bps="300")
    assert D(rec["fee"]) == (D(10) * D("0.03") * D("0.49") * D("0.51")).quantize(D("0.00001"), rounding="ROUND_DOWN")
    (bad,) = rig.events("FEE_SCHEDULE_INVALID")
    assert "fee_rate" in bad["detail"] and "lots" in bad["detail"] and bad["level"] == "error"


def test_a_rate_differing_from_pb_tok_is_journaled(r: Redis) -> None:
    rig, rec = filled(r, "TAKER", bps="300")
    assert D(rec["fee"]) == FEE and len(rig.events("FEE_RATE_MISMATCH")) == 1  # pb:tok wins, the gap is journaled


def test_a_fill_recovered_at_a_takeover_carries_the_fee_fields(r: Redis) -> None:
    feed(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    r.hset(keys.tok(T), mapping=CRYPTO_TOK)
    rig.venue.fill(buy.id, price="0.49", trade_id="t-1")  # w1 is frozen: nobody sees it
    rig.venue.fills_made[-1] = replace(rig.venue.fills_made[-1], role="TAKER", fee_rate_bps="700")
    rig2 = take_over(rig)
    (rec,) = ledger(r)
    assert (rec["source"], rec["role"], rec["fee_rate_bps"], D(rec["fee"]), rec["rebate"]) == (
        "venue", "TAKER", "700", FEE, "0")
    assert D(rig2.tok()["position"]) == 10 and len(rig2.events("FILL_RECOVERED")) == 1
