"""Scheduler and worker on one Redis when a held token's market resolves: settled, redeemed, never refilled."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from libs.common import keys
from services.md_gateway.publish import Publisher
from services.md_gateway.state import Publish
from tests.scheduler_fakes import events, make_market, publish
from tests.worker_fakes import Rig

HOUR = 3_600_000
TTL = 10_000
D = Decimal


def resolved(r: object, token: str, payout: str) -> None:
    pub = Publisher(r, 1000)  # type: ignore[arg-type]
    pub.add([Publish(token, False, "market_resolved", ["resolved", "1", "payout", payout])], [], [])
    pub.flush()
    pub.close()


def active(env: SimpleNamespace, s: object) -> None:
    env.gamma.add(make_market(("5", "59"), env.clock.now + 4 * HOUR, condition_id="0xc5"))
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    s.step()  # type: ignore[attr-defined]
    assert env.r.hget(keys.tok("5"), "state") == "active"


def test_resolution_while_a_worker_holds_it_then_a_new_buy_is_refused(env: SimpleNamespace) -> None:
    s = env.new()
    active(env, s)
    rig = Rig(env.r, clock=env.clock, sell_only_window_s=0.0)
    rig.set_book("0.50", "0.51", token="5")
    rig.step(token="5")
    rig.venue.fill(rig.venue.live("5")[0].id)
    rig.step(token="5")
    assert rig.venue.live("5") and rig.venue.balances["5"] == 10
    rig.venue.resolve("0xc5", {"5": "1", "59": "0"})
    resolved(env.r, "5", "1")
    s.step()  # a worker holds it: the scheduler leaves the settlement to it
    assert env.r.hget(keys.tok("5"), "state") == "active"
    rig.step(token="5")
    tok = env.r.hgetall(keys.tok("5"))
    assert (tok["state"], tok["reason"], D(tok["realized_pnl"])) == ("resolved", "REDEEMED", D("5.00"))
    assert [c for c in rig.venue.calls if c[0] == "redeem"] == [("redeem", ("0xc5",))]
    env.clock.advance(TTL)
    s.step()
    assert not env.r.sismember(keys.SCHED_TRACKED, "5") and not env.r.sismember(keys.MD_SUBS, "5")
    publish(env.r, "BUY", "5", "buy-2", env.clock.now)
    s.step()
    rig.step(token="5")
    assert env.r.hget(keys.tok("5"), "state") == "resolved" and not env.r.exists(keys.lease("5"))
    assert events(env.r, "REENTRY_REFUSED_RESOLVED", "5") and env.r.zscore(keys.SCHED_OFFERS, "5") is None
    assert len(rig.venue.posted) == 2  # the entry and its take profit, nothing after the resolution


def test_nobody_holds_it_a_settle_lease_is_offered_and_a_worker_redeems(env: SimpleNamespace) -> None:
    s = env.new()
    active(env, s)
    env.r.hset(keys.tok("5"), mapping={"position": "10", "avg_entry": "0.40"})  # its worker is gone
    resolved(env.r, "5", "0")
    s.step()
    tok = env.r.hgetall(keys.tok("5"))
    assert (tok["state"], tok["reason"], tok["payout"]) == ("resolved", "MARKET_RESOLVED", "0")
    assert env.r.hget(keys.lease("5"), "mode") == "exit_only" and env.r.zscore(keys.SCHED_OFFERS, "5") is not None
    rig = Rig(env.r, clock=env.clock)
    rig.venue.balances["5"] = D(10)
    rig.venue.resolve("0xc5", {"5": "0"})
    rig.set_book("0.01", "0.02", token="5")
    rig.step(token="5", n=2)
    tok = env.r.hgetall(keys.tok("5"))
    assert (tok["state"], tok["reason"], D(tok["position"])) == ("resolved", "REDEEMED", 0)
    assert D(tok["realized_pnl"]) == D("-4.00") and rig.venue.balances["5"] == 0  # 10 x (0 - 0.40)
    assert not [p for p in rig.venue.posted]  # a settle lease never trades
    env.clock.advance(TTL)
    s.step()
    assert not env.r.sismember(keys.SCHED_TRACKED, "5")
