"""A worker on FakeVenue when its token's market resolves (gateway publish -> settle -> redeem)."""
from __future__ import annotations

from decimal import Decimal

from redis import Redis

from libs.common import keys
from libs.common.venue import VenueUnavailable
from services.md_gateway.publish import Publisher
from services.md_gateway.state import Publish
from tests.worker_fakes import T, Rig, hold

D = Decimal
COND = "0xc0ffee"


def publish_resolved(r: Redis, payout: str) -> None:
    """What md_gateway publishes on ``market_resolved`` (its Publisher, book_publish.lua)."""
    pub = Publisher(r, 1000)
    pub.add([Publish(T, False, "market_resolved", ["resolved", "1", "payout", payout])], [], [])
    pub.flush()
    pub.close()


def holding_rig(r: Redis) -> Rig:
    rig = Rig(r, sell_only_window_s=0.0)
    hold(rig)  # 10 shares bought at 0.50, take-profit SELL resting
    r.hset(keys.tok(T), "condition_id", COND)
    assert len(rig.venue.live(T)) == 1 and rig.venue.balances[T] == 10
    return rig


def test_resolution_while_holding_cancels_settles_and_redeems_once(r: Redis) -> None:
    rig = holding_rig(r)
    order_id = rig.venue.live(T)[0].id
    rig.venue.resolve(COND, {T: "1", "loser": "0"})
    publish_resolved(r, "1")
    rig.step()
    assert rig.venue.orders[order_id].status == "CANCELED" and rig.venue.live(T) == []
    assert [c for c in rig.venue.calls if c[0] == "redeem"] == [("redeem", (COND,))]
    tok = rig.tok()
    assert (tok["state"], tok["reason"], tok["position"]) == ("resolved", "REDEEMED", "0")
    assert D(tok["realized_pnl"]) == D("5.00")  # 10 x (1 - 0.50), to the micro-dollar
    assert rig.venue.usdc == D(1005) and rig.venue.balances[T] == 0  # paid 10 x 1, spent 10 x 0.50
    ev = rig.events("REDEEMED")[0]
    assert (ev["condition_id"], D(ev["shares"]), D(ev["payout"]), D(ev["payout_usd"])) == (COND, 10, 1, 10)
    assert r.hget(keys.SUMMARY, "redeemed") == "1" and not r.exists(keys.lease(T))
    n_posted = len(rig.venue.posted)
    rig.step(n=3)
    assert len(rig.venue.posted) == n_posted and len([c for c in rig.venue.calls if c[0] == "redeem"]) == 1


def test_a_losing_token_settles_at_zero(r: Redis) -> None:
    rig = holding_rig(r)
    rig.venue.resolve(COND, {T: "0"})
    publish_resolved(r, "0")
    rig.step()
    assert D(rig.tok()["realized_pnl"]) == D("-5.00") and rig.venue.usdc == D(995)
    assert rig.tok()["state"] == "resolved"


def test_redeem_failures_are_retried_with_backoff_then_succeed(r: Redis) -> None:
    rig = holding_rig(r)
    rig.venue.fail_next("redeem", VenueUnavailable(502, "bad gateway"), 2)
    rig.venue.resolve(COND, {T: "1"})
    publish_resolved(r, "1")
    rig.step()
    tok = rig.tok()
    got = (tok["state"], tok["reason"], D(tok["position"]), D(tok["redeem_pending"]))
    assert got == ("resolved", "MARKET_RESOLVED", 0, 10)
    assert len(rig.events("REDEEM_FAILED")) == 1 and D(rig.tok()["realized_pnl"]) == D("5.00")
    rig.step(market_ms=2_000)
    rig.step(market_ms=4_000)
    assert len(rig.events("REDEEM_FAILED")) == 2 and rig.tok()["state"] == "resolved"
    assert D(rig.tok()["realized_pnl"]) == D("5.00") and rig.venue.usdc == D(1005)  # booked once


def test_redeem_failing_every_time_fails_the_token_with_the_reason(r: Redis) -> None:
    rig = holding_rig(r)
    rig.venue.fail_next("redeem", VenueUnavailable(502, "bad gateway"), 99)
    rig.venue.resolve(COND, {T: "1"})
    publish_resolved(r, "1")
    for _ in range(8):
        rig.step(market_ms=60_000)
    tok = rig.tok()
    assert (tok["state"], tok["reason"], D(tok["redeem_pending"])) == ("failed", "REDEEM_FAILED", 10)
    assert len([c for c in rig.venue.calls if c[0] == "redeem"]) == 5  # max_redeem_attempts, then stop
    assert "bad gateway" in rig.events("REDEEM_FAILED")[-1]["why"]
    assert not r.exists(keys.lease(T))


def test_flat_token_at_resolution_settles_flat(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    assert len(rig.venue.live(T)) == 1  # the entry BUY
    publish_resolved(r, "0")
    rig.step()
    assert rig.venue.live(T) == [] and rig.tok()["reason"] == "SETTLED_FLAT" and rig.tok()["state"] == "resolved"
    assert not [c for c in rig.venue.calls if c[0] == "redeem"]


def test_a_sibling_redeem_of_the_same_market_counts_as_redeemed(r: Redis) -> None:
    rig = holding_rig(r)
    rig.venue.resolve(COND, {T: "0", "sibling": "1"})
    rig.venue.balances["sibling"] = D(10)
    rig.venue.redeem(COND)  # the other outcome's worker redeemed the market first: our shares are gone too
    publish_resolved(r, "0")
    rig.step()
    tok = rig.tok()
    assert (tok["state"], tok["reason"], D(tok["realized_pnl"])) == ("resolved", "REDEEMED", D("-5.00"))
    assert rig.events("REDEEMED")[0]["tx_id"] == "already-redeemed"
    assert len([c for c in rig.venue.calls if c[0] == "redeem"]) == 1  # only the sibling's
