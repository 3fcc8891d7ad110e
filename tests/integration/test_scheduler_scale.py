"""Planning scales: hundreds of queued tokens cost one pipelined read, not a round trip each."""
from __future__ import annotations

from typing import Iterator

import pytest
from redis import Redis
from redis.connection import AbstractConnection

from libs.common import keys
from libs.common.clock import FakeClock
from tests.scheduler_fakes import FakeGamma, gateway_ok, make_scheduler

HOUR = 3_600_000


@pytest.fixture()
def gamma() -> Iterator[FakeGamma]:
    with FakeGamma() as g:
        yield g


def seed(r: Redis, n: int, now: int) -> list[str]:
    """``n`` pending tokens with metadata, queued by signal time (token i signalled i ms after the first)."""
    tokens = [str(90_000 + i) for i in range(n)]
    pipe = r.pipeline(transaction=False)
    for i, t in enumerate(reversed(tokens)):  # written newest first: the queue order must come from scores
        ts = now - 10 * HOUR + (n - 1 - i)
        pipe.hset(keys.tok(t), mapping={"state": "pending", "reason": "QUEUED", "updated_ms": ts,
                                        "end_ms": now + 4 * HOUR, "signal_ts_ms": ts, "tick_size": "0.01"})
        pipe.zadd(keys.SCHED_PENDING, {t: ts})
        pipe.sadd(keys.SCHED_TRACKED, t)
    pipe.execute()
    return tokens


def one_step(r: Redis, gamma_url: str, n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, list[str]]:
    """(round trips, HGETALL commands, tokens active) of one scheduler step over ``n`` queued tokens."""
    r.flushdb()
    clock = FakeClock()
    tokens = seed(r, n, clock.now)
    gateway_ok(r, clock.wall)
    s = make_scheduler(r, clock, gamma_url, max_active_tokens=10)
    s.step()  # warm-up: creates the consumer group and loads the Lua scripts
    for t in r.smembers(keys.MD_SUBS):
        r.hset(keys.tok(t), "state", "closed")  # free the capacity again: the next step activates 10 more
    s.step()
    trips = [0]
    real = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        trips[0] += 1
        real(self, command, check_health)

    r.config_resetstat()
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    for t in r.smembers(keys.MD_SUBS):
        r.hset(keys.tok(t), "state", "closed")
    trips[0] = 0
    s.step()
    monkeypatch.undo()
    hgetall = int(r.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))
    active = [t for t in tokens if r.hget(keys.tok(t), "state") == "active"]
    s.metadata.close()
    return trips[0], hgetall, active


def test_300_queued_tokens_planned_in_one_step_with_bounded_round_trips(
        r: Redis, gamma: FakeGamma, monkeypatch: pytest.MonkeyPatch) -> None:
    small_trips, small_hgetall, small_active = one_step(r, gamma.url, 30, monkeypatch)
    big_trips, big_hgetall, big_active = one_step(r, gamma.url, 300, monkeypatch)
    assert big_active == [str(90_000 + i) for i in range(20, 30)], "FIFO by signal time, 10 at a time"
    assert len(small_active) == 10
    assert big_trips == small_trips, "round trips do not grow with the queue"
    assert big_trips <= 12 + 20 * 8, "a constant read plus a bounded cost per token activated or cleaned"
    # one HGETALL per token hash (tok, lease, book) of the tokens still tracked (10 were cleaned up
    # in the step before), plus the gateway and health hashes
    assert big_hgetall == 3 * 290 + 2 and small_hgetall == 3 * 20 + 2
