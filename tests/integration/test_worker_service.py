"""maker_worker against a real Redis and the FakeVenue: entry, take profit, stop-loss ladder, exits,
unknown outcomes, book sources. Time is a FakeClock moved by the test (no sleeps)."""
from __future__ import annotations

from decimal import Decimal

from redis import Redis

from libs.common import keys
from libs.common.venue import VenueUnavailable
from tests.worker_fakes import T, Rig, hold

D = Decimal


def test_acquire_posts_post_only_buy_at_best_bid_recorded_with_fence(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    live = rig.venue.live(T)
    assert [(o.side, o.price, o.size, o.post_only) for o in live] == [("BUY", D("0.50"), D(10), True)]
    lease = r.hgetall(keys.lease(T))
    assert lease["worker"] == "w1"
    assert r.zscore(keys.SCHED_OFFERS, T) is None
    (rec,) = rig.records()
    assert rec["id"] == live[0].id and rec["status"] == "LIVE" and rec["fence"] == int(lease["fence"])
    assert rec["purpose"] == "entry" and rec["side"] == "BUY" and rec["price"] == "0.50"
    assert r.hget(keys.SUMMARY, "orders_posted") == "1"
    assert rig.events("ORDER_POSTED")[0]["side"] == "BUY"


def test_wide_spread_bids_one_tick_above_and_reprices_when_bid_moves_away(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.40", "0.45")
    rig.step()
    assert [o.price for o in rig.venue.live(T)] == [D("0.41")]
    rig.set_book("0.43", "0.45")  # someone bid above us
    rig.step()
    assert [o.price for o in rig.venue.live(T)] == [D("0.44")]
    assert len(rig.venue.posted) == 2 and rig.venue.posted[0].status == "CANCELED"


def test_fill_updates_position_and_posts_take_profit_sell(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    (buy,) = rig.venue.live(T)
    rig.venue.fill(buy.id)
    rig.step()
    tok = rig.tok()
    assert D(tok["position"]) == 10 and D(tok["avg_entry"]) == D("0.50")
    (sell,) = rig.venue.live(T)
    # max(0.50 * 1.02, 0.50 + 0.01) = 0.51, rounded up to the tick
    assert (sell.side, sell.price, sell.size, sell.post_only) == ("SELL", D("0.51"), D(10), True)
    assert r.hget(keys.SUMMARY, "fills") == "1" and r.hget(keys.SUMMARY, "sells_posted") == "1"
    assert rig.events("TAKE_PROFIT_POSTED")
    rig.venue.fill(sell.id)
    rig.step(n=2)
    tok = rig.tok()
    assert tok["state"] == "cooldown" and tok["reason"] == "TAKE_PROFIT_DONE"
    assert D(tok["position"]) == 0 and D(tok["realized_pnl"]) == D("0.1")
    assert not r.exists(keys.lease(T))


def test_stop_loss_steps_down_to_the_floor_and_keeps_the_floor_order(r: Redis) -> None:
    rig = Rig(r, floor_price=D("0.30"))
    hold(rig)
    rig.set_book("0.44", "0.48")  # bid <= 0.50 * (1 - 0.10): stop loss
    rig.step()
    assert rig.tok()["state"] == "exiting" and rig.tok()["reason"] == "STOP_LOSS"
    (sell,) = rig.venue.live(T)
    assert sell.price == D("0.47") and sell.post_only and sell.size == 10  # one tick inside a 4-tick spread
    rig.set_book("0.20", "0.48")
    prices = []
    for _ in range(10):  # every 5 s of market time without a fill: one tick lower, down to the floor
        rig.step(ms=5_000)
        prices.append(rig.venue.live(T)[0].price)
    floor = D("0.40")  # max(0.50 * (1 - 0.20), 0.30)
    assert prices == [D(p) for p in ("0.46", "0.45", "0.44", "0.43", "0.42", "0.41", "0.40", "0.40", "0.40", "0.40")]
    floor_orders = [o for o in rig.venue.posted if o.price == floor]
    assert len(floor_orders) == 1 and floor_orders[0].status == "LIVE"  # kept resting, not re-posted
    assert len(rig.events("FLOOR_HIT")) == 1
    assert all(o.price >= floor for o in rig.venue.posted if o.side == "SELL")


def test_aggressive_ask_joins_a_lower_best_ask_and_crosses_when_the_ladder_reaches_the_bid(r: Redis) -> None:
    rig = Rig(r)
    hold(rig)
    rig.set_book("0.44", "0.48")
    rig.step()
    rig.set_book("0.44", "0.46")  # someone undercut our 0.47
    rig.step()
    assert [o.price for o in rig.venue.live(T)] == [D("0.46")]
    rig.step(ms=5_000)
    rig.step(ms=5_000)  # 0.44 = best bid: sent without post-only, fills against the bid
    last = rig.venue.posted[-1]
    assert (last.price, last.post_only, last.status) == (D("0.44"), False, "MATCHED")
    rig.step(n=2)
    assert rig.tok()["state"] == "closed" and rig.tok()["reason"] == "EXIT_DONE"
    assert D(rig.tok()["realized_pnl"]) == D("-0.60")


def test_exit_only_with_nothing_to_sell_ends_closed(r: Redis) -> None:
    rig = Rig(r)
    rig.offer(mode="exit_only", state="exit_only")
    rig.set_book("0.50", "0.51")
    rig.step()
    assert rig.tok()["state"] == "closed" and rig.tok()["reason"] == "EXIT_ONLY_NOTHING_TO_SELL"
    assert not r.exists(keys.lease(T)) and rig.venue.posted == []
    assert rig.worker.held == {}


def test_exit_only_with_shares_sells_them_and_ends_closed(r: Redis) -> None:
    rig = Rig(r)
    rig.venue.balances[T] = D(10)
    rig.offer(mode="exit_only", state="exit_only", position="10")
    r.hset(keys.tok(T), "avg_entry", "0.50")
    rig.set_book("0.50", "0.51")
    rig.step()
    (sell,) = rig.venue.live(T)
    assert sell.side == "SELL" and sell.size == 10 and sell.price == D("0.51")
    assert not any(o.side == "BUY" for o in rig.venue.posted)
    rig.venue.fill(sell.id)
    rig.step(n=2)
    assert rig.tok()["state"] == "closed" and rig.tok()["reason"] == "EXIT_ONLY_DONE"


def test_unknown_post_outcome_is_resolved_by_id_not_re_signed(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.venue.lose_acks = 1
    rig.step()
    (rec,) = rig.records()
    assert rec["status"] == "PENDING"
    rig.step(n=3)
    assert sum(1 for name, _ in rig.venue.calls if name == "sign_limit") == 1
    assert len(rig.venue.live(T)) == 1
    (rec,) = rig.records()
    assert rec["status"] == "LIVE" and rig.events("ORDER_OUTCOME_RESOLVED")
    assert r.hget(keys.SUMMARY, "orders_posted") == "1"


def test_unknown_outcome_under_another_id_is_adopted_from_open_orders(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.venue.own_ids, rig.venue.lose_acks = True, 1
    rig.step(n=3)
    assert sum(1 for name, _ in rig.venue.calls if name == "sign_limit") == 1
    (live,) = rig.venue.live(T)
    assert rig.worker.held[T].state is not None
    assert [o.order_id for o in rig.worker.held[T].state.orders] == [live.id]
    assert rig.events("ORDER_ADOPTED")[0]["venue"] == live.id


def test_post_that_never_arrived_is_failed_after_polls_then_replaced(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.venue.fail_next("post_signed", VenueUnavailable(503, "upstream down"))
    rig.step()
    rig.step(n=2)
    assert sum(1 for name, _ in rig.venue.calls if name == "sign_limit") == 1  # waiting, not re-signing
    rig.step(n=2)
    assert [x["status"] for x in rig.records()].count("FAILED") == 1
    assert len(rig.venue.live(T)) == 1 and rig.events("ORDER_NEVER_ARRIVED")


def test_rest_fallback_when_gateway_stale_and_stale_data_when_both_fail(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.venue.set_book(T, "0.30", "0.35")
    rig.clock.advance(250)
    rig.worker.step()  # no gateway hash, no Redis book: REST
    assert [o.price for o in rig.venue.live(T)] == [D("0.31")]
    assert len(rig.events("BOOK_REST_FALLBACK")) == 1
    rig.venue.fail_next("get_book", VenueUnavailable(0, "ConnectError"), 5)
    for _ in range(5):
        rig.clock.advance(250)
        rig.worker.step()
    assert len(rig.events("STALE_DATA")) == 1 and r.hget(keys.COUNTS, "STALE_DATA") == "1"
    assert [o.price for o in rig.venue.live(T)] == [D("0.31")]  # state kept, nothing re-quoted
    rig.clock.advance(250)
    rig.worker.step()
    assert len(rig.events("STALE_RECOVERED")) == 1


def test_sell_only_window_cancels_the_entry_and_releases_a_flat_token(r: Redis) -> None:
    rig = Rig(r)
    rig.offer(end_in_ms=120_000)
    rig.set_book("0.50", "0.51")
    rig.step()
    assert len(rig.venue.live(T)) == 1
    rig.step(market_ms=61_000)
    assert rig.venue.live(T) == []
    assert rig.tok()["state"] == "cooldown" and rig.tok()["reason"] == "SELL_ONLY_WINDOW_FLAT"
    assert not r.exists(keys.lease(T))


def test_market_end_cancels_everything_and_closes_with_the_position(r: Redis) -> None:
    rig = Rig(r, sell_only_window_s=0.0)
    rig.offer(end_in_ms=20_000)
    rig.set_book("0.50", "0.51")
    rig.step()
    rig.venue.fill(rig.venue.live(T)[0].id)
    rig.step()
    assert len(rig.venue.live(T)) == 1
    rig.step(market_ms=20_000)
    assert rig.venue.live(T) == [] and rig.events("AWAITING_RESOLUTION")  # holding: waits for the resolution
    rig.step(market_ms=600_000)  # ... at most resolution_wait_ms
    assert rig.tok()["state"] == "closed" and rig.tok()["reason"] == "MARKET_ENDED"
    assert D(rig.events("MARKET_ENDED")[0]["position"]) == 10
