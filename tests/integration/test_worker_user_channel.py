"""maker_worker tracking orders from the user channel (``pb:user:{token}``), against a real Redis and
the FakeVenue: no per-order REST polling while the feed is healthy, fills once per trade id at the
trade's price, REST polling as the fallback without counting a share twice when the channel's
backfill repeats what polling saw, and takeovers that do not re-count an earlier holder's fills."""
from __future__ import annotations

from decimal import Decimal

import orjson
from redis import Redis

from libs.common import keys
from libs.common.venue_types import OrderState, TradeFill
from services.user_feed.parse import fill_entry, state_entry
from services.user_feed.store import StreamStore
from tests.worker_fakes import T, Rig

D = Decimal


def feed(r: Redis, up: bool = True) -> None:
    """Play user_feed's health hash: connected and fresh (far-future updated_ms) or down."""
    r.hset(keys.USER_FEED, mapping={"state": "connected" if up else "down", "connected": int(up),
                                    "backfill_pending": 0, "updated_ms": 10 ** 15 if up else 0})


def trade(rig: Rig, order_id: str, size: str, price: str, trade_id: str, status: str = "MATCHED") -> None:
    """Publish a trade entry of our order, as user_feed does."""
    o = rig.venue.orders[order_id]
    StreamStore(rig.r, 1000).publish([fill_entry(TradeFill(trade_id, order_id, T, o.side, D(price), D(size),
                                                           status, 1_000))])


def order(rig: Rig, order_id: str) -> None:
    """Publish the venue's current state of one order, as user_feed does."""
    o = rig.venue.orders[order_id]
    StreamStore(rig.r, 1000).publish([state_entry(OrderState(o.id, o.status, o.side, o.price, o.size, o.matched), T, 1)])


def get_order_calls(rig: Rig) -> int:
    return sum(1 for name, _ in rig.venue.calls if name == "get_order")


def entry(rig: Rig) -> str:
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    (buy,) = rig.venue.live(T)
    return buy.id


def test_with_the_channel_up_fills_come_once_per_trade_at_the_trade_price_and_nothing_is_polled(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.step(n=4)
    assert get_order_calls(rig) == 0, "no per-order polling while the channel is up"
    rig.venue.fill(buy)
    order(rig, buy)  # MATCHED arrives before its trade: the OrderGone waits for the trade
    rig.step(n=2)
    assert D(rig.tok()["position"]) == 0 and [o.side for o in rig.venue.live(T)] == [], "no re-entry, no sell yet"
    trade(rig, buy, "10", "0.49", "t-1")  # a better price than our limit: the trade's price counts
    trade(rig, buy, "10", "0.49", "t-1")  # the backfill repeats it after a reconnect
    trade(rig, buy, "10", "0.49", "t-1", "MINED")
    trade(rig, buy, "10", "0.49", "t-1", "CONFIRMED")
    rig.step(n=3)
    tok = rig.tok()
    assert D(tok["position"]) == 10 and D(tok["avg_entry"]) == D("0.49")
    fills = rig.events("FILL")
    assert len(fills) == 1 and D(fills[0]["price"]) == D("0.49") and r.hget(keys.SUMMARY, "fills") == "1"
    (rec,) = [orjson.loads(v) for v in r.hvals(keys.fills(T))]
    assert rec["trade_id"] == "t-1" and rec["status"] == "CONFIRMED" and D(rec["counted"]) == 10
    assert [o.side for o in rig.venue.live(T)] == ["SELL"], "take profit posted after the fill"
    assert get_order_calls(rig) == 0
    assert [x for x in rig.records() if x["id"] == buy][0]["status"] == "MATCHED"


def test_with_the_channel_down_polling_counts_and_the_later_backfill_adds_nothing(r: Redis) -> None:
    feed(r, up=False)
    rig = Rig(r)
    buy = entry(rig)
    rig.step()
    assert get_order_calls(rig) >= 1, "the fallback polls REST"
    rig.venue.fill(buy)
    rig.step(n=2)
    assert D(rig.tok()["position"]) == 10 and len(rig.events("FILL")) == 1
    feed(r)  # the channel is back; its backfill publishes the trade polling already counted
    order(rig, buy)
    trade(rig, buy, "10", "0.50", "t-1")
    before = get_order_calls(rig)
    rig.step(n=3)
    assert D(rig.tok()["position"]) == 10 and len(rig.events("FILL")) == 1
    (rec,) = [orjson.loads(v) for v in r.hvals(keys.fills(T))]
    assert rec["trade_id"] == "t-1" and D(rec["counted"]) == 0
    assert get_order_calls(rig) == before, "polling stops once the channel is healthy again"


def test_partial_fills_by_trade_then_the_rest_by_a_poll_sum_to_the_order(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.venue.fill(buy, D(4))
    trade(rig, buy, "4", "0.50", "t-1")
    rig.step()
    assert D(rig.tok()["position"]) == 4
    feed(r, up=False)
    rig.venue.fill(buy)  # the other 6 while the channel is down: polling sees size_matched 10
    rig.step(n=2)
    assert D(rig.tok()["position"]) == 10
    feed(r)
    trade(rig, buy, "6", "0.50", "t-2")  # the backfill's copy of the second trade
    rig.step(n=2)
    assert D(rig.tok()["position"]) == 10
    assert sum(D(f["size"]) for f in rig.events("FILL")) == 10


def test_an_earlier_leases_fill_is_counted_once_at_the_takeover_and_not_again_from_the_channel(r: Redis) -> None:
    """Issue 11: the new holder settles the earlier holder's order from the venue's trades (one FILL at
    the trade's price) instead of taking the balance; the channel's copy of the same trade adds nothing."""
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.venue.fill(buy)
    rig.step()  # w1 has not seen the trade yet ...
    # ... and dies; its trade is published, and w2 takes the lease after expiry and reads the stream from its start
    trade(rig, buy, "10", "0.50", f"trade-{buy}")  # the venue's own trade id (FakeVenue.trades)
    rig2 = Rig(r, "w2", venue=rig.venue, clock=rig.clock)
    rig.clock.advance(30_000)
    rig2.offer()
    rig2.set_book("0.50", "0.51")
    rig2.step(n=3, ms=6_000)
    assert r.hget(keys.lease(T), "worker") == "w2"
    assert D(rig2.tok()["position"]) == 10 and D(rig2.tok()["avg_entry"]) == D("0.50")
    (fill,) = rig.events("FILL")
    assert fill["order_id"] == buy and D(fill["size"]) == 10 and r.hget(keys.SUMMARY, "fills") == "1"
    (rec,) = [orjson.loads(v) for v in r.hvals(keys.fills(T))]
    assert rec["trade_id"] == f"trade-{buy}" and D(rec["counted"]) == 10
    assert rig.events("POSITION_DRIFT") == []


def test_settlement_status_only_moves_forward_and_a_failed_fill_is_an_error(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.venue.fill(buy)
    for status in ("MATCHED", "CONFIRMED", "MATCHED"):  # the last one: a late REST copy
        trade(rig, buy, "10", "0.50", "t-1", status)
    rig.step()
    (rec,) = [orjson.loads(v) for v in r.hvals(keys.fills(T))]
    assert rec["status"] == "CONFIRMED" and len(rig.events("FILL")) == 1
    trade(rig, buy, "10", "0.50", "t-1", "FAILED")
    r.hset(keys.fills(T), "junk:0x1", "{not json")  # a bad ledger record does not stall the stream
    rig.step()
    (failed,) = rig.events("FILL_FAILED_AFTER_MATCH")
    assert failed["trade_id"] == "t-1" and failed["level"] == "error"
    assert rig.events("FILL_RECORD_MALFORMED")[0]["key"] == "junk:0x1"
    assert orjson.loads(r.hget(keys.fills(T), "t-1:" + buy))["status"] == "FAILED"


def test_a_pending_order_is_resolved_by_its_channel_event_without_polling(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    rig.venue.lose_acks = 1  # the POST's answer is lost: the order is PENDING, its outcome unknown
    buy = entry(rig)
    assert rig.events("ORDER_OUTCOME_UNKNOWN")
    order(rig, buy)  # the venue's PLACEMENT reaches the stream before the worker's next step
    rig.step()
    (resolved,) = rig.events("ORDER_OUTCOME_RESOLVED")
    assert resolved["order_id"] == buy and resolved["source"] == "rest"
    assert get_order_calls(rig) == 0
    assert [x["status"] for x in rig.records() if x["id"] == buy] == ["LIVE"]


def test_a_final_order_whose_trades_never_come_is_settled_by_one_rest_read(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.venue.fill(buy)
    order(rig, buy)  # MATCHED, and its trade event is lost
    rig.step(n=2)
    assert D(rig.tok()["position"]) == 0 and get_order_calls(rig) == 0
    rig.step(ms=3_000)
    assert rig.events("USER_TRADES_LATE")[0]["order_id"] == buy
    assert D(rig.tok()["position"]) == 10 and get_order_calls(rig) == 1
    assert len(rig.events("FILL")) == 1


def test_an_order_the_venue_cancels_on_its_own_is_reconciled_before_the_token_is_quoted_again(r: Redis) -> None:
    """Heartbeat expiry (or an operator) cancels our LIVE BUY: the worker journals ORDER_CANCELED_BY_VENUE,
    re-quotes nothing on a pushed book change, and its next step reconciles before it posts again."""
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.venue.orders[buy].status = "CANCELED"  # the venue's own cancel, seen on the user channel only
    order(rig, buy)
    h = rig.worker.held[T]
    rig.worker.trader.user.sync(h, lambda ev: rig.worker.trader.apply(h, ev, h.market))
    (ev,) = rig.events("ORDER_CANCELED_BY_VENUE")
    assert ev["order_id"] == buy
    rig.set_book("0.51", "0.52")  # a pushed change before the next step: no blind re-quote
    rig.worker.on_books([T])
    assert rig.venue.live(T) == [], "quoted again before reconciling"
    rig.step()
    assert rig.events("RECONCILED") and rig.events("RECONCILED")[0]["source"] == "requested"
    (new,) = rig.venue.live(T)
    assert new.id != buy
    posted = [e for e in rig.events("ORDER_POSTED") if e["order_id"] == new.id]
    assert posted and r.xrange(keys.EVENTS)  # the new order follows the reconcile in the journal
    ids = {e["reason"]: i for i, e in r.xrange(keys.EVENTS) if e.get("reason") in ("RECONCILED", "ORDER_POSTED")
           and (e.get("order_id") in (None, new.id))}
    assert ids["RECONCILED"] < ids["ORDER_POSTED"]


def test_our_own_cancel_is_not_taken_for_the_venue_s(r: Redis) -> None:
    feed(r)
    rig = Rig(r)
    buy = entry(rig)
    rig.set_book("0.52", "0.53")  # the bid moved away: the worker cancels and re-prices
    rig.step(n=2)
    order(rig, buy)  # the channel reports our CANCELED after the fact
    rig.step(n=2)
    assert rig.events("ORDER_CANCELED_BY_VENUE") == [] and rig.events("RECONCILED") == []
