"""Reconciliation with the venue at lease acquisition and periodically (SPEC S3.4 last bullet; issue 7
item 4), against a real Redis and the FakeVenue: unknown orders on our token are cancelled (fenced),
an order that reached the venue under another id is adopted, position drift is journaled with its
size, and a fill the user channel never reported is recovered once."""
from __future__ import annotations

from decimal import Decimal

import pytest
from redis import Redis

from libs.common import keys
from libs.common.leases import LeaseLost
from libs.common.venue import VenueUnavailable
from libs.common.venue_types import TradeFill
from services.user_feed.parse import fill_entry
from services.user_feed.store import StreamStore
from tests.worker_fakes import FakeOrder, Rig, T, hold, entered

D = Decimal
INTERVAL_MS = 10_000  # PB_RECONCILE_INTERVAL_S paper default


def feed_up(r: Redis) -> None:
    """The user channel is healthy: no REST polling of LIVE orders, so only reconciliation sees the venue."""
    r.hset(keys.USER_FEED, mapping={"state": "connected", "connected": 1, "backfill_pending": 0,
                                    "updated_ms": 10 ** 15})


def stray(rig: Rig, oid: str = "stray", side: str = "SELL", price: str = "0.60", size: str = "7") -> FakeOrder:
    """An open order on our token that no record of ours knows (another process, a lost-lease holder)."""
    o = FakeOrder(oid, T, side, D(price), D(size), True)
    rig.venue.orders[oid] = o
    return o


def past_interval(rig: Rig) -> None:
    rig.step(ms=5_000, n=2)  # 10 s of wall time in steps shorter than the lease TTL


def test_unknown_open_order_is_cancelled_before_the_first_quote(r: Redis) -> None:
    rig = Rig(r)
    o = stray(rig)
    buy = entered(rig)
    assert o.status == "CANCELED" and buy.side == "BUY" and buy.status == "LIVE"
    (ev,) = rig.events("ORDER_UNKNOWN_CANCELED")
    assert (ev["order_id"], ev["side"], D(ev["price"]), D(ev["size"]), ev["source"]) == \
        ("stray", "SELL", D("0.60"), D(7), "takeover")
    assert not any(name == "cancel_token" for name, _ in rig.venue.calls), "a fresh lease has nothing to clean up"


def test_unknown_open_order_is_cancelled_periodically_and_ours_are_kept(r: Redis) -> None:
    rig = Rig(r)
    buy = entered(rig)
    o = stray(rig, "stray-buy", "BUY", "0.40", "5")
    rig.step(n=4)
    assert o.status == "LIVE", "not before the interval"
    past_interval(rig)
    assert o.status == "CANCELED" and buy.status == "LIVE"
    assert [(e["order_id"], e["source"]) for e in rig.events("ORDER_UNKNOWN_CANCELED")] == [("stray-buy", "periodic")]
    assert [c for c in rig.venue.calls if c[0] == "cancel"] == [("cancel", ("stray-buy",))]
    assert rig.events("ORDER_RECORD_DRIFT") == [] and rig.events("POSITION_DRIFT") == []


def test_reconcile_without_the_lease_sends_no_cancel(r: Redis) -> None:
    rig = Rig(r)
    entered(rig)
    o = stray(rig)
    h = rig.worker.held[T]
    r.hset(keys.lease(T), "worker", "w-other")  # the lease went to another worker meanwhile
    calls = len(rig.venue.calls)
    with pytest.raises(LeaseLost):
        rig.worker.trader.reconciler.periodic(h, lambda ev: None)
    assert o.status == "LIVE" and not any(c[0] == "cancel" for c in rig.venue.calls[calls:])


def test_pending_record_whose_order_lives_under_another_id_is_adopted(r: Redis) -> None:
    rig = Rig(r, reconcile_interval_s=0.25)  # every step
    rig.venue.own_ids, rig.venue.lose_acks = True, 1  # the venue names the order itself; the ack is lost
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    (rec,) = rig.records()
    assert rec["status"] == "PENDING"
    rig.venue.fail_next("open_orders", VenueUnavailable(503, "down"))  # the poll's own adoption cannot list
    rig.step()
    (live,) = rig.venue.live(T)
    (ev,) = rig.events("ORDER_ADOPTED")
    assert (ev["ours"], ev["venue"], ev["side"], D(ev["price"]), D(ev["size"]), ev["source"]) == \
        (rec["id"], live.id, "BUY", D("0.50"), D(10), "periodic")
    h = rig.worker.held[T]
    assert h.state is not None and [o.order_id for o in h.state.orders] == [live.id]
    assert {x["id"]: x["status"] for x in rig.records()} == {rec["id"]: "FAILED", live.id: "LIVE"}
    rig.step(n=3)
    assert rig.venue.live(T) == [live] and rig.events("ORDER_UNKNOWN_CANCELED") == []
    assert sum(1 for name, _ in rig.venue.calls if name == "sign_limit") == 1


def test_position_drift_at_takeover_is_journaled_and_the_venue_wins(r: Redis) -> None:
    rig = Rig(r)
    rig.venue.balances[T] = D(10)
    rig.offer(position="4")
    rig.set_book("0.50", "0.51")
    rig.step()
    (ev,) = rig.events("POSITION_DRIFT")
    assert (D(ev["redis"]), D(ev["venue"]), D(ev["diff"]), ev["source"], ev["action"]) == \
        (D(4), D(10), D(6), "takeover", "venue_wins")
    assert D(rig.tok()["position"]) == 10


def test_periodic_position_drift_is_journaled_with_its_size_not_overwritten(r: Redis) -> None:
    rig = Rig(r)
    hold(rig)  # 10 shares, take profit resting
    assert rig.events("POSITION_DRIFT") == []
    rig.venue.balances[T] -= 3  # shares left the account behind our back
    past_interval(rig)
    (ev,) = rig.events("POSITION_DRIFT")
    assert (D(ev["redis"]), D(ev["venue"]), D(ev["diff"]), ev["source"], ev["action"]) == \
        (D(10), D(7), D(-3), "periodic", "journal_only")
    assert ev["level"] == "warn" and D(rig.tok()["position"]) == 10


def test_live_order_the_venue_reports_matched_becomes_one_fill(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r)
    buy = entered(rig)
    rig.venue.fill(buy.id)  # the channel never reports it
    rig.step(n=4)
    assert D(rig.tok()["position"]) == 0 and rig.events("FILL") == []
    past_interval(rig)
    (fill,) = rig.events("FILL")
    assert fill["order_id"] == buy.id and D(fill["size"]) == 10 and D(rig.tok()["position"]) == 10
    (ev,) = rig.events("ORDER_RECORD_DRIFT")
    assert (ev["order_id"], ev["why"], ev["outcome"], D(ev["filled"])) == (buy.id, "NOT_OPEN", "MATCHED", D(10))
    assert rig.events("POSITION_DRIFT") == [], "the recovered fill closes the gap"
    assert [o.side for o in rig.venue.live(T)] == ["SELL"], "take profit posted after the recovered fill"
    # the channel's late copy of the trade and later reconciliations count nothing more
    StreamStore(r, 1000).publish([fill_entry(TradeFill("t-1", buy.id, T, "BUY", D("0.50"), D(10), "MATCHED", 1))])
    past_interval(rig)
    past_interval(rig)
    assert len(rig.events("FILL")) == 1 and D(rig.tok()["position"]) == 10 and r.hget(keys.SUMMARY, "fills") == "1"
    assert len(rig.events("ORDER_RECORD_DRIFT")) == 1


def test_partial_fill_the_channel_missed_is_counted_from_the_listed_order(r: Redis) -> None:
    feed_up(r)
    rig = Rig(r)
    buy = entered(rig)
    rig.venue.fill(buy.id, D(4))
    past_interval(rig)
    (ev,) = rig.events("ORDER_RECORD_DRIFT")
    assert (ev["why"], D(ev["venue_matched"]), D(ev["filled"]), ev["outcome"]) == ("MATCHED_BEHIND", D(4), D(4), "OPEN")
    assert D(rig.tok()["position"]) == 4 and buy.status == "LIVE"
    assert [x["matched"] for x in rig.records()] == ["4"]


def test_another_tokens_order_is_never_cancelled_even_if_the_venue_lists_it(r: Redis) -> None:
    rig = Rig(r)
    entered(rig)
    theirs = FakeOrder("other-token-order", "OTHER", "BUY", D("0.30"), D(5), True)
    rig.venue.orders[theirs.id] = theirs
    rig.venue.open_orders = lambda token_id: [o.state() for o in rig.venue.live()]  # type: ignore[method-assign]
    past_interval(rig)
    assert theirs.status == "LIVE" and rig.events("ORDER_UNKNOWN_CANCELED") == []
