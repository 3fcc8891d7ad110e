"""Scheduler health (30-min warning, 60-min clean-up, market time) vs feed failures; lease repair."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from libs.common import keys
from libs.common.leases import Grant
from tests.scheduler_fakes import book, events, gateway_ok, make_market, publish

MIN = 60_000
TTL = 10_000
LONG_TTL = 6 * 3_600_000  # a live worker renewing all along, without stepping through every renew


def start(env: SimpleNamespace, t: str = "5", worker: bool = True, position: str = "0") -> tuple[object, Grant | None]:
    s = env.new()
    env.gamma.add(make_market((t, t + "9"), env.clock.now + 6 * 3_600_000, condition_id="0xc"))
    gateway_ok(env.r, env.clock.wall)
    publish(env.r, "BUY", t, f"buy-{t}", env.clock.now)
    s.step()
    book(env.r, t, env.clock.now, env.clock.wall)
    env.r.hset(keys.tok(t), "position", position)
    grant = env.leases.acquire(t, "w1", env.clock.wall, LONG_TTL) if worker else None
    return s, grant


def later(env: SimpleNamespace, s, ms: int, gateway: bool = True) -> None:
    env.clock.advance(ms)
    if gateway:
        gateway_ok(env.r, env.clock.wall)
    s.step()


def state(env: SimpleNamespace, t: str = "5") -> tuple[str, str]:
    h = env.r.hgetall(keys.tok(t))
    return h["state"], h["reason"]


def test_warn_at_30_min_once_recover_then_cleanup_at_60_min(env: SimpleNamespace) -> None:
    s, _ = start(env)
    later(env, s, 29 * MIN)
    assert events(env.r, "HEALTH_INACTIVE_WARN") == []
    later(env, s, 2 * MIN)
    later(env, s, MIN)
    assert len(events(env.r, "HEALTH_INACTIVE_WARN", "5")) == 1, "warned once, not every step"
    book(env.r, "5", env.clock.now, env.clock.wall)
    later(env, s, 1000)
    assert len(events(env.r, "HEALTH_RECOVERED", "5")) == 1
    assert state(env) == ("active", "ACTIVATED")
    later(env, s, 31 * MIN)
    assert len(events(env.r, "HEALTH_INACTIVE_WARN", "5")) == 2
    later(env, s, 30 * MIN)
    assert state(env) == ("exiting", "INACTIVE_CLEANUP"), "the worker holding it is told to release/sell"
    assert env.r.hget(keys.lease("5"), "worker") == "w1"


def test_fills_count_as_activity(env: SimpleNamespace) -> None:
    s, _ = start(env)
    later(env, s, 50 * MIN)
    env.r.hset(keys.tok("5"), "last_fill_ms", env.clock.now)
    later(env, s, 50 * MIN)
    assert state(env)[0] == "active"


@pytest.mark.parametrize(("position", "want"), [("0", ("cooldown", "INACTIVE_CLEANUP_FLAT")),
                                               ("12", ("exit_only", "INACTIVE_CLEANUP"))])
def test_cleanup_without_worker(env: SimpleNamespace, position: str, want: tuple[str, str]) -> None:
    s, _ = start(env, worker=False, position=position)
    later(env, s, 61 * MIN)
    assert state(env) == want
    if want[0] == "exit_only":
        assert env.r.hget(keys.lease("5"), "mode") == "exit_only"
        assert env.r.zscore(keys.SCHED_OFFERS, "5") is not None
    else:
        later(env, s, 1000)
        assert not env.r.sismember(keys.MD_SUBS, "5") and not env.r.exists(keys.lease("5"))


def test_gateway_down_is_reported_once_and_never_counted_as_inactivity(env: SimpleNamespace) -> None:
    s, _ = start(env)
    env.r.hset(keys.MD_GATEWAY, mapping={"state": "down", "updated_ms": env.clock.wall})
    for _ in range(12):
        later(env, s, 10 * MIN, gateway=False)
    assert len(events(env.r, "FEED_GATEWAY_DOWN")) == 1
    assert events(env.r, "HEALTH_INACTIVE_WARN") == [] and state(env)[0] == "active"
    later(env, s, 1000)
    assert len(events(env.r, "FEED_GATEWAY_RESTORED")) == 1
    later(env, s, 29 * MIN)
    assert events(env.r, "HEALTH_INACTIVE_WARN") == [], "inactivity restarts when the feed comes back"
    later(env, s, 2 * MIN)
    assert len(events(env.r, "HEALTH_INACTIVE_WARN")) == 1


def test_stale_gateway_heartbeat_counts_as_down(env: SimpleNamespace) -> None:
    s, _ = start(env)
    for _ in range(8):
        later(env, s, 10 * MIN, gateway=False)  # state stays "connected" but updated_ms ages
    assert len(events(env.r, "FEED_GATEWAY_DOWN")) == 1
    assert "age_ms" in events(env.r, "FEED_GATEWAY_DOWN")[0]["detail"]
    assert state(env)[0] == "active"


def test_missing_or_resyncing_book_is_a_feed_failure_not_inactivity(env: SimpleNamespace) -> None:
    s, _ = start(env)
    book(env.r, "5", env.clock.now, env.clock.wall, status="resync")
    for _ in range(8):
        later(env, s, 10 * MIN)
    assert len(events(env.r, "FEED_NO_BOOK", "5")) == 1 and events(env.r, "HEALTH_INACTIVE_WARN") == []
    book(env.r, "5", env.clock.now - 5 * MIN, env.clock.wall)
    later(env, s, 1000)
    assert len(events(env.r, "FEED_RECOVERED", "5")) == 1
    later(env, s, 29 * MIN)
    assert events(env.r, "HEALTH_INACTIVE_WARN") == [] and state(env)[0] == "active"


def test_lost_subscription_is_repaired(env: SimpleNamespace) -> None:
    s, _ = start(env)
    env.r.srem(keys.MD_SUBS, "5")
    later(env, s, 1000)
    assert env.r.sismember(keys.MD_SUBS, "5")
    assert len(events(env.r, "SUBSCRIPTION_REPAIRED", "5")) == 1


def test_expired_lease_is_reoffered_and_next_acquire_has_a_higher_fence(env: SimpleNamespace) -> None:
    s = env.new()
    env.gamma.add(make_market(("5", "59"), env.clock.now + 6 * 3_600_000))
    publish(env.r, "BUY", "5", "buy-5", env.clock.now)
    s.step()
    g1 = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g1 is not None
    env.r.zrem(keys.SCHED_OFFERS, "5")  # as the worker does after acquiring
    later(env, s, TTL // 2)
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is None, "a live lease is not offered"
    later(env, s, TTL)
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is not None
    assert len(events(env.r, "LEASE_EXPIRED_REOFFERED", "5")) == 1
    g2 = env.leases.acquire("5", "w2", env.clock.wall, TTL)
    assert g2 is not None and g2.fence > g1.fence and g2.prev_worker == "w1"
    s.step()
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is None, "the stale index entry of a held lease goes"


def test_missing_lease_of_active_token_is_offered_again(env: SimpleNamespace) -> None:
    s, g = start(env, worker=False)
    env.r.delete(keys.lease("5"))
    env.r.zrem(keys.SCHED_OFFERS, "5")
    later(env, s, 1000)
    assert env.r.hget(keys.lease("5"), "mode") == "maker" and env.r.zscore(keys.SCHED_OFFERS, "5") is not None
    assert len(events(env.r, "LEASE_MISSING_REOFFERED", "5")) == 1


def test_unclaimed_offer_is_reported_once(env: SimpleNamespace) -> None:
    s, _ = start(env, worker=False)
    for _ in range(5):
        later(env, s, TTL)
    assert len(events(env.r, "OFFER_UNCLAIMED", "5")) == 1


def test_gateway_reported_missing_subscription_is_a_feed_failure(env: SimpleNamespace) -> None:
    s, _ = start(env)
    env.r.hset(keys.MD_GATEWAY, mapping={"missing_subscription": "1", "missing_subscription_ex": "5"})
    for _ in range(8):
        later(env, s, 10 * MIN)
    assert len(events(env.r, "FEED_NOT_SUBSCRIBED", "5")) == 1
    assert events(env.r, "HEALTH_INACTIVE_WARN") == [] and state(env)[0] == "active"
    env.r.hset(keys.MD_GATEWAY, mapping={"missing_subscription": "0", "missing_subscription_ex": ""})
    later(env, s, 1000)
    assert len(events(env.r, "FEED_RECOVERED", "5")) == 1
