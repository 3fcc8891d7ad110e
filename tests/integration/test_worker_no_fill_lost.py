"""No fill lost (issue 11 items 1 and 2), against a real Redis and a venue that keeps one trade per fill
(``TradeVenue``): an earlier holder's order that filled while it was frozen becomes exactly one FILL
at the trade's price at the takeover (never a blind CANCELED), a partial fill counted before the
freeze is not counted again, the channel's later copy of a recovered trade adds nothing, and a token
is never closed while the venue holds shares or open orders our books do not explain."""
from __future__ import annotations

from decimal import Decimal

import orjson
from redis import Redis

from libs.common import keys
from libs.common.leases import Leases
from libs.common.venue import VenueUnavailable
from libs.common.venue_types import TradeFill
from services.user_feed.parse import fill_entry
from services.user_feed.store import StreamStore
from tests.worker_fakes import FakeOrder, Rig, T, TradeVenue, entered

D = Decimal


def feed_up(r: Redis) -> None:
    """user_feed's health hash says the channel is healthy: no REST polling of LIVE orders."""
    r.hset(keys.USER_FEED, mapping={"state": "connected", "connected": 1, "backfill_pending": 0,
                                    "updated_ms": 10 ** 15})


def channel_trade(r: Redis, t: TradeFill) -> None:
    """Publish ``t`` on ``pb:user:{token}`` as user_feed does."""
    StreamStore(r, 1000).publish([fill_entry(t)])


def take_over(rig: Rig) -> Rig:
    """w1 stops stepping (frozen) past its lease; the scheduler re-offers the expired lease (pb:tok as
    w1 left it); w2 takes the token over, waits the grace period and settles."""
    rig2 = Rig(rig.r, "w2", venue=rig.venue, clock=rig.clock)
    rig.clock.advance(30_000)
    Leases(rig.r).offer(T, "maker", rig.clock.wall_ms())
    rig.r.zadd(keys.SCHED_OFFERS, {T: rig.clock.wall_ms()})
    rig2.set_book(*rig.book)
    rig2.step(n=3, ms=6_000)
    assert rig.r.hget(keys.lease(T), "prev_worker") == "w1" or rig2.events("TAKEOVER_CANCELED")
    return rig2


def record(rig: Rig, oid: str) -> dict:
    return next(x for x in rig.records() if x["id"] == oid)


def test_order_filled_during_the_freeze_becomes_one_fill_at_its_trade_price(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.venue.fill(buy.id, price="0.49", trade_id="t-1")  # w1 is frozen: nobody sees it
    rig2 = take_over(rig)
    tok = rig2.tok()
    assert D(tok["position"]) == 10 and D(tok["avg_entry"]) == D("0.49")
    (fill,) = rig2.events("FILL")
    assert (fill["order_id"], D(fill["price"]), D(fill["size"])) == (buy.id, D("0.49"), D(10))
    assert r.hget(keys.SUMMARY, "fills") == "1"
    (rec,) = rig2.events("FILL_RECOVERED")
    assert (rec["trade_id"], rec["source"], rec["level"]) == ("t-1", "takeover", "warn")
    assert record(rig2, buy.id)["status"] == "MATCHED", "settled from the venue, not blindly CANCELED"
    assert rig2.events("POSITION_DRIFT") == [], "the fills explain the balance"
    assert [o.side for o in rig2.venue.live(T)] == ["SELL"], "take profit quoted after the recovered fill"
    # the channel delivers the same trade later (backfill after a reconnect): nothing more is counted
    channel_trade(r, TradeFill("t-1", buy.id, T, "BUY", D("0.49"), D(10), "MINED", 0))
    rig2.step(n=3)
    assert len(rig2.events("FILL")) == 1 and D(rig2.tok()["position"]) == 10 and r.hget(keys.SUMMARY, "fills") == "1"
    (entry,) = [orjson.loads(v) for v in r.hvals(keys.fills(T))]
    assert entry["status"] == "MINED" and D(entry["counted"]) == 10


def test_partial_fill_counted_before_the_freeze_plus_a_later_trade_counts_only_the_new_shares(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.venue.fill(buy.id, D(4), trade_id="t-1")
    channel_trade(r, rig.venue.fills_made[-1])
    rig.step()  # w1 counts the first 4 @ 0.50 from the channel (its record still says matched 0)
    assert D(rig.tok()["position"]) == 4
    rig.venue.fill(buy.id, D(2), price="0.47", trade_id="t-2")  # frozen: 2 more, at a better price
    rig2 = take_over(rig)  # cancel_token cancels the 4 left
    tok = rig2.tok()
    assert D(tok["position"]) == 6 and D(tok["avg_entry"]) == (4 * D("0.50") + 2 * D("0.47")) / 6
    fills = rig2.events("FILL")
    assert [(f["order_id"], D(f["price"]), D(f["size"])) for f in fills] == \
        [(buy.id, D("0.50"), D(4)), (buy.id, D("0.47"), D(2))]
    rec = record(rig2, buy.id)
    assert rec["status"] == "CANCELED" and D(rec["matched"]) == 6
    assert rig2.events("POSITION_DRIFT") == []


def test_take_profit_filled_during_the_freeze_books_its_realized_pnl(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.venue.fill(buy.id, trade_id="t-1")
    channel_trade(r, rig.venue.fills_made[-1])
    rig.step(n=2)
    (sell,) = rig.venue.live(T)
    assert sell.side == "SELL" and D(rig.tok()["position"]) == 10
    rig.venue.fill(sell.id, price="0.53", trade_id="t-2")  # frozen
    rig2 = take_over(rig)
    tok = rig2.tok()
    assert D(tok["position"]) == 0 and D(tok["realized_pnl"]) == 10 * (D("0.53") - D("0.50"))
    assert record(rig2, sell.id)["status"] == "MATCHED" and r.hget(keys.SUMMARY, "fills") == "2"
    (done,) = rig2.events("TAKE_PROFIT_DONE")
    assert tok["state"] == "cooldown" and D(done["position"]) == 0, "the band is over: released flat, rightly"


def test_a_flat_close_waits_while_the_venue_holds_shares_our_books_do_not_explain(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    ghost = FakeOrder("ghost", T, "BUY", D("0.45"), D(10), True)  # ours, but no record of it anywhere
    rig.venue.orders[ghost.id] = ghost
    rig.venue.fill(ghost.id, trade_id="t-ghost")
    stray = FakeOrder("stray", T, "SELL", D("0.70"), D(5), True)
    rig.venue.orders[stray.id] = stray
    rig.step(n=2, market_ms=100_000)  # past the signal timeout while flat: SIGNAL_TIMEOUT_FLAT
    assert buy.status == "CANCELED"
    (drift,) = rig.events("CLOSE_DRIFT")
    assert (drift["why"], D(drift["position"]), D(drift["venue"]), D(drift["diff"]), drift["open_orders"]) == \
        ("SIGNAL_TIMEOUT_FLAT", D(0), D(10), D(10), "1")
    assert stray.status == "CANCELED", "the unexplained open order is cancelled first"
    assert rig.events("ORDER_UNKNOWN_FILLED") and rig.events("CLOSE_DEFERRED")
    (fill,) = rig.events("FILL")
    assert (fill["order_id"], D(fill["price"]), D(fill["size"])) == ("ghost", D("0.45"), D(10))
    assert rig.events("SIGNAL_TIMEOUT_FLAT") == [], "not closed flat"
    tok = rig.tok()
    assert tok["state"] == "active" and D(tok["position"]) == 10 and D(tok["avg_entry"]) == D("0.45")
    assert r.hget(keys.lease(T), "worker") == "w1", "not released"
    rig.step(n=2)
    assert any(o.side == "SELL" for o in rig.venue.live(T)), "the recovered shares are sold, not abandoned"


def test_balance_drift_without_any_trade_is_an_error_and_the_close_still_waits(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    entered(rig)
    rig.venue.balances[T] = D(7)  # shares appeared with no trade the venue can show
    rig.step(n=2, market_ms=100_000)
    (ev,) = [e for e in rig.events("POSITION_DRIFT") if e["source"] == "close"]
    assert (ev["level"], D(ev["redis"]), D(ev["venue"]), ev["action"]) == ("error", D(0), D(7), "venue_wins")
    assert rig.tok()["state"] == "active" and D(rig.tok()["position"]) == 7
    assert r.hget(keys.lease(T), "worker") == "w1"


def test_entry_filled_unseen_at_the_market_end_is_counted_and_the_close_waits_for_the_resolution(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.venue.fill(buy.id, trade_id="t-1")  # the channel never reports it
    rig.step(market_ms=700_000)  # past end_ms: forced finish; the cancel reads the order MATCHED
    (fill,) = rig.events("FILL")
    assert fill["order_id"] == buy.id and D(rig.tok()["position"]) == 10
    (deferred,) = rig.events("CLOSE_DEFERRED")
    assert (deferred["why"], deferred["cause"], D(deferred["position"])) == ("MARKET_ENDED", "FILL_DURING_CLOSE", D(10))
    assert rig.events("MARKET_ENDED") == [], "not closed flat while the venue holds 10 shares"
    assert rig.events("AWAITING_RESOLUTION"), "holding at the end: waits for the resolution instead"
    assert rig.tok()["state"] == "active" and r.hget(keys.lease(T), "worker") == "w1"


def test_a_user_channel_reconnect_settles_the_fills_it_missed_once(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.step(n=2)
    rig.venue.fill(buy.id, D(6), price="0.48", trade_id="t-1")  # while the channel was down: never reported
    r.hset(keys.USER_FEED, "reconnects", 1)  # user_feed reconnected
    rig.step(n=2)
    (rec,) = rig.events("FILL_RECOVERED")
    assert (rec["trade_id"], rec["source"], D(rec["size"]), D(rec["price"])) == ("t-1", "reconnect", D(6), D("0.48"))
    tok = rig.tok()
    assert D(tok["position"]) == 6 and D(tok["avg_entry"]) == D("0.48")
    channel_trade(r, rig.venue.fills_made[-1])  # the reconnect's backfill publishes the same trade
    rig.step(n=2)
    assert len(rig.events("FILL")) == 1 and D(rig.tok()["position"]) == 6 and r.hget(keys.SUMMARY, "fills") == "1"
    trades_calls = sum(1 for name, _ in rig.venue.calls if name == "trades")
    rig.step(n=3)
    assert sum(1 for name, _ in rig.venue.calls if name == "trades") == trades_calls, "once per reconnect"


def test_a_takeover_settlement_cut_short_by_the_venue_resumes_without_counting_twice(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    buy = entered(rig)
    rig.venue.fill(buy.id, price="0.49", trade_id="t-1")
    rig.venue.fail_next("get_order", VenueUnavailable(503, "down"))  # after the fill is booked, before the status
    rig2 = take_over(rig)
    assert [e["level"] for e in rig2.events("RECONCILE_FAILED")] == ["warn"]
    assert len(rig2.events("FILL")) == 1 and len(rig2.events("FILL_RECOVERED")) == 1
    tok = rig2.tok()
    assert D(tok["position"]) == 10 and D(tok["avg_entry"]) == D("0.49")
    assert record(rig2, buy.id)["status"] == "MATCHED" and rig2.events("POSITION_DRIFT") == []


def test_shutdown_records_the_venues_final_status_and_the_next_holder_counts_the_fill(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r, venue=TradeVenue())
    entered(rig)
    fence = int(r.hget(keys.lease(T), "fence"))
    lost = FakeOrder("untracked", T, "BUY", D("0.48"), D(5), True)  # recorded under our fence, not tracked
    rig.venue.orders[lost.id] = lost
    r.hset(keys.orders(T), lost.id, orjson.dumps({"id": lost.id, "side": "BUY", "price": "0.48", "size": "5",
                                                  "matched": "0", "status": "LIVE", "fence": fence, "ts_ms": 1,
                                                  "purpose": "entry"}).decode())
    rig.venue.fill(lost.id, trade_id="t-lost")  # filled; no event ever reported it
    rig.worker.shutdown()
    rec = record(rig, lost.id)
    assert (rec["status"], rec["matched"]) == ("MATCHED", "0"), "the venue's status, not a blind CANCELED"
    rig2 = Rig(r, "w2", venue=rig.venue, clock=rig.clock)
    rig2.set_book(*rig.book)
    rig2.step(n=2)
    (fill,) = rig2.events("FILL")
    assert (fill["order_id"], D(fill["price"]), D(fill["size"])) == (lost.id, D("0.48"), D(5))
    assert D(rig2.tok()["position"]) == 5 and rig2.events("POSITION_DRIFT") == []
