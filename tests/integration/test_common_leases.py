"""Leases and fencing (SPEC S2): the Lua scripts against a real Redis."""
from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from redis import Redis

from libs.common import keys
from libs.common.leases import Grant, LeaseLost, Leases

T = "7087467268535103530871133345881326346657501309973952143921926744954887549159"
TTL = 10_000


def test_acquire_needs_an_offer(r: Redis) -> None:
    leases = Leases(r)
    assert leases.acquire(T, "w1", 1000, TTL) is None
    assert leases.offer(T, "maker", 1000) is True
    g = leases.acquire(T, "w1", 1000, TTL)
    assert g is not None and g.fence == 1 and g.mode == "maker" and g.prev_worker == ""
    assert r.hget(keys.lease(T), "worker") == "w1"


def test_held_lease_cannot_be_taken_until_it_expires(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g1 = leases.acquire(T, "w1", 1000, TTL)
    assert leases.acquire(T, "w2", 1000 + TTL - 1, TTL) is None
    g2 = leases.acquire(T, "w2", 1000 + TTL + 1, TTL)
    assert g1 and g2 and g2.fence > g1.fence
    assert g2.prev_worker == "w1" and g2.prev_expires_ms == 1000 + TTL


def test_stale_fence_is_refused_everywhere(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g1 = leases.acquire(T, "w1", 0, TTL)
    assert g1 is not None
    g2 = leases.acquire(T, "w2", TTL + 1, TTL)
    assert g2 is not None
    with pytest.raises(LeaseLost):
        leases.renew(g1, TTL + 2, TTL)
    with pytest.raises(LeaseLost):
        leases.fenced_hset(g1, keys.orders(T), {"intent:1": "{}"}, TTL + 2)
    assert r.hlen(keys.orders(T)) == 0
    assert leases.release(g1, done=True) is False
    leases.fenced_hset(g2, keys.orders(T), {"intent:1": "{}"}, TTL + 2)
    assert r.hget(keys.orders(T), "intent:1") == "{}"


def test_expired_holder_cannot_write_until_it_renews_and_renews_while_nobody_took_over(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g = leases.acquire(T, "w1", 0, TTL)
    assert g is not None
    with pytest.raises(LeaseLost):
        leases.fenced_hset(g, keys.tok(T), {"state": "closed"}, TTL + 1)
    g = leases.renew(g, TTL + 1, TTL)  # it was only waiting (a Redis stall): same worker, same fence
    assert g.fence == 1 and g.expires_ms == 2 * TTL + 1
    leases.fenced_hset(g, keys.tok(T), {"state": "active"}, TTL + 2)
    assert leases.acquire(T, "w2", 3 * TTL + 2, TTL) is not None
    with pytest.raises(LeaseLost, match="LOST"):
        leases.renew(g, 3 * TTL + 3, TTL)


def test_mode_change_reaches_the_holder_on_renew(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g = leases.acquire(T, "w1", 0, TTL)
    assert g is not None
    assert leases.offer(T, "exit_only", 5) is False
    assert leases.renew(g, 10, TTL).mode == "exit_only"


def test_release_reoffer_and_done(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    g = leases.acquire(T, "w1", 0, TTL)
    assert g and leases.release(g, done=False)
    g2 = leases.acquire(T, "w2", 1, TTL)
    assert g2 is not None and g2.fence == g.fence + 1
    assert leases.release(g2, done=True)
    assert not r.exists(keys.lease(T))
    assert r.get(keys.fence(T)) == str(g2.fence), "the fence counter survives the lease"


def test_withdraw_leaves_live_holders_alone(r: Redis) -> None:
    leases = Leases(r)
    leases.offer(T, "maker", 0)
    leases.acquire(T, "w1", 0, TTL)
    assert leases.withdraw(T, 5) is False
    assert leases.withdraw(T, TTL + 1) is True
    assert not r.exists(keys.lease(T))


class LeaseMachine(RuleBasedStateMachine):
    """Random acquire/renew/write/release/time steps by three workers: fences only increase and
    only the current holder's writes land."""

    def __init__(self) -> None:
        super().__init__()
        self.r = Redis.from_url(URL[0], decode_responses=True)
        self.r.flushdb()
        self.leases = Leases(self.r)
        self.now = 0
        self.grants: dict[str, Grant] = {}
        self.max_fence = 0
        self.writes = 0

    @initialize()
    def offer(self) -> None:
        self.leases.offer(T, "maker", self.now)

    @rule(ms=st.integers(0, 2 * TTL))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(w=st.sampled_from(["a", "b", "c"]))
    def acquire(self, w: str) -> None:
        g = self.leases.acquire(T, w, self.now, TTL)
        if g is not None:
            assert g.fence > self.max_fence
            self.max_fence = g.fence
            self.grants[w] = g

    @rule(w=st.sampled_from(["a", "b", "c"]))
    def write(self, w: str) -> None:
        g = self.grants.get(w)
        if g is None:
            return
        lease = self.r.hgetall(keys.lease(T))
        current = lease.get("worker") == w and lease.get("fence") == str(g.fence) and int(lease["expires_ms"]) >= self.now
        try:
            self.leases.fenced_hset(g, keys.orders(T), {"w": f"{w}:{g.fence}"}, self.now)
            assert current, "a stale holder's write landed"
            self.writes += 1
        except LeaseLost:
            assert not current, "the current holder was refused"

    @rule(w=st.sampled_from(["a", "b", "c"]))
    def renew(self, w: str) -> None:
        g = self.grants.get(w)
        if g is not None:
            try:
                self.grants[w] = self.leases.renew(g, self.now, TTL)
            except LeaseLost:
                del self.grants[w]

    @rule(w=st.sampled_from(["a", "b", "c"]))
    def release(self, w: str) -> None:
        g = self.grants.pop(w, None)
        if g is not None:
            self.leases.release(g, done=False)

    @invariant()
    def fence_counter_matches(self) -> None:
        assert int(self.r.get(keys.fence(T)) or 0) == self.max_fence

    def teardown(self) -> None:
        self.r.close()


URL: list[str] = [""]


def test_lease_state_machine(redis_url: str) -> None:
    URL[0] = redis_url
    LeaseMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
    LeaseMachine.TestCase().runTest()
