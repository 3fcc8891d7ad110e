"""A Redis stall does not by itself expire every lease (issue 11 item 3; docs/contracts.md "Leases").

Fake clocks: a stall is time passing with nobody writing to Redis. The holder renews first when Redis
answers; takeovers wait for evidence the holder is gone (its heartbeat stale for a lease TTL while
Redis was answering); a dead holder is still taken over, with a higher fence.
"""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from redis import Redis

from libs.common import keys
from libs.common.leases import Leases
from tests.scheduler_fakes import book, events, gateway_ok, make_market, publish
from tests.worker_fakes import Rig, T

TTL = 10_000
STALL = 15_000  # longer than the TTL


def beat(r: Redis, worker: str, wall_ms: int) -> None:
    r.zadd(keys.WORKERS, {worker: wall_ms})


def test_acquire_waits_a_ttl_after_the_outage_for_the_holder_to_renew(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g1 = leases.acquire(T, "w1", 0, TTL)
    assert g1 is not None
    beat(r, "w1", 0)
    back = STALL  # Redis answers again; nobody could renew or beat meanwhile
    assert leases.acquire(T, "w2", back + 1, TTL, grace_ms=TTL, up_since_ms=back) is None
    assert leases.last_refusal == "GRACE"
    g1b = leases.renew(g1, back + 50, TTL)  # the holder renews first: same fence
    assert g1b.fence == g1.fence
    assert leases.acquire(T, "w2", back + 100, TTL, grace_ms=TTL, up_since_ms=back) is None
    assert leases.last_refusal == "HELD"


def test_a_dead_holder_is_taken_over_at_expiry_and_a_silent_one_after_the_grace(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g1 = leases.acquire(T, "w1", 0, TTL)
    beat(r, "w1", 0)  # then w1 dies: no more heartbeats
    assert leases.acquire(T, "w2", TTL - 1, TTL, grace_ms=TTL, up_since_ms=0) is None
    g2 = leases.acquire(T, "w2", TTL + 1, TTL, grace_ms=TTL, up_since_ms=0)
    assert g1 and g2 and g2.fence == g1.fence + 1 and g2.prev_worker == "w1"
    # w2 heartbeats after its lease expired but never renews: taken over one TTL after the expiry
    beat(r, "w2", 2 * TTL + 500)
    assert leases.acquire(T, "w3", 2 * TTL + 600, TTL, grace_ms=TTL, up_since_ms=0) is None
    g3 = leases.acquire(T, "w3", 3 * TTL + 2, TTL, grace_ms=TTL, up_since_ms=0)
    assert g3 is not None and g3.fence == g2.fence + 1


def test_worker_renews_first_after_a_stall_and_trades_on_with_the_same_fence(r: Redis) -> None:
    w1 = Rig(r, "w1")
    w1.offer()
    w1.set_book("0.50", "0.51")
    w1.step()
    fence = w1.worker.held[T].grant.fence
    assert w1.venue.live(T)
    w1.clock.advance(STALL)  # Redis stalled: no renew, no heartbeat
    back = w1.clock.wall_ms()
    r.zadd(keys.SCHED_OFFERS, {T: back})  # a stale offer index entry
    w2 = Rig(r, "w2", venue=w1.venue, clock=w1.clock)
    w2.worker.redis_up_since = lambda: back
    w2.book = w1.book
    w2.step(ms=10)
    assert T not in w2.worker.held, "taken over although the holder was only waiting on Redis"
    order = []
    renew = w1.worker.leases.renew
    w1.worker.leases.renew = lambda *a, **k: (order.append("renew"), renew(*a, **k))[1]  # type: ignore[method-assign]
    zadd = w1.r.zadd
    w1.r.zadd = lambda *a, **k: (order.append("redis"), zadd(*a, **k))[1]  # type: ignore[method-assign]
    w1.step(ms=10)
    w1.r.zadd = zadd  # type: ignore[method-assign]
    assert order[0] == "renew", order
    assert w1.worker.held[T].grant.fence == fence and r.hget(keys.lease(T), "worker") == "w1"
    assert len(w1.events("LEASE_RENEWED_LATE")) == 1 and not w1.events("LEASE_LOST")
    w1.set_book("0.52", "0.53")
    w1.step(n=3)
    w2.step(ms=100)  # the offer is still indexed: w2 tries again and finds the lease held
    assert T not in w2.worker.held and r.hget(keys.lease(T), "fence") == str(fence)
    assert Decimal("0.52") in [o.price for o in w1.venue.live(T)], "w1 trades on: its entry follows the bid"


def test_scheduler_neither_reoffers_nor_ends_a_token_whose_holder_was_waiting_on_redis(env: SimpleNamespace) -> None:
    s = env.new(lease_ttl_ms=TTL)
    env.gamma.add(make_market(("5", "59"), env.clock.now + 6 * 3_600_000))
    gateway_ok(env.r, env.clock.wall)
    publish(env.r, "BUY", "5", "buy-5", env.clock.now)
    s.step()
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None
    env.r.zrem(keys.SCHED_OFFERS, "5")
    beat(env.r, "w1", env.clock.wall)
    env.r.hset(keys.tok("5"), "end_ms", str(env.clock.now + STALL - 1))  # the market ends during the stall
    env.clock.advance(STALL)
    back = env.clock.wall
    s.store.redis_up_since = lambda: back
    gateway_ok(env.r, back)
    book(env.r, "5", env.clock.now, back)
    s.step()
    assert env.r.hget(keys.tok("5"), "state") == "active", "closed while its holder was waiting on Redis"
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is None and not events(env.r, "LEASE_EXPIRED_REOFFERED", "5")
    env.clock.advance(TTL + 1)  # the holder never came back: now it is gone, its orders maybe live
    gateway_ok(env.r, env.clock.wall)
    s.step()  # not closed flat: a worker's takeover must cancel and settle what the vanished holder left
    assert env.r.hget(keys.tok("5"), "state") == "exit_only" and env.r.hget(keys.tok("5"), "reason") == "MARKET_ENDED"
    assert env.r.hget(keys.lease("5"), "mode") == "exit_only" and env.r.zscore(keys.SCHED_OFFERS, "5") is not None
