"""The scheduler at 1,000 tracked tokens (issue 10): finished tokens with nothing to do (positions
awaiting their market's resolution) are re-read every QUIET_REREAD_MS, not at every step, so a
step's Redis work follows the tokens that can change; a resolution or a signal still reaches them."""
from __future__ import annotations

from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from services.scheduler import service
from tests.scheduler_fakes import FakeGamma, book, gateway_ok, make_scheduler, publish

QUIET = [str(700 + i) for i in range(40)]


@pytest.fixture()
def rig(r: Redis) -> Iterator[tuple[object, FakeClock, FakeGamma]]:
    with FakeGamma() as g:
        clock = FakeClock()
        pipe = r.pipeline(transaction=False)
        for t in QUIET:  # closed at market end, 5 shares held: tracked and subscribed until resolution
            pipe.hset(keys.tok(t), mapping={"state": "closed", "reason": "MARKET_ENDED", "position": "5",
                                            "avg_entry": "0.5", "updated_ms": str(clock.now), "end_ms": str(clock.now)})
            pipe.sadd(keys.SCHED_TRACKED, t)
            pipe.sadd(keys.MD_SUBS, t)
        pipe.execute()
        for t in QUIET:
            book(r, t, clock.now, clock.wall)
        gateway_ok(r, clock.wall)
        s = make_scheduler(r, clock, g.url)
        s.quiet_reread_ms = service.QUIET_REREAD_MS  # as python -m services.scheduler runs it
        yield s, clock, g
        s.metadata.close()


def hgetalls(r: Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0))


def step(s: object, r: Redis, clock: FakeClock, ms: int) -> int:
    """One step ``ms`` later; returns the HGETALL commands it sent."""
    clock.advance(ms)
    gateway_ok(r, clock.wall)
    r.config_resetstat()
    s.step()  # type: ignore[attr-defined]
    return hgetalls(r)


def test_quiet_tokens_are_read_every_interval_and_still_see_their_resolution(
        r: Redis, rig: tuple[object, FakeClock, FakeGamma]) -> None:
    s, clock, _ = rig
    full = step(s, r, clock, 0)  # the first step reads every token
    assert full >= 3 * len(QUIET)
    light = step(s, r, clock, 500)
    assert light < 3 * len(QUIET) / 4, f"a quiet step read {light} hashes"
    r.hset(keys.md_book(QUIET[3]), mapping={"resolved": "1", "payout": "1"})  # market_resolved
    assert r.hget(keys.tok(QUIET[3]), "state") == "closed"
    waited = 500
    while r.hget(keys.tok(QUIET[3]), "state") != "resolved":
        assert waited <= service.QUIET_REREAD_MS, "a quiet token's resolution was not seen in time"
        step(s, r, clock, 500)
        waited += 500
    assert step(s, r, clock, service.QUIET_REREAD_MS) >= 3 * len(QUIET) - 3  # the periodic full read


def test_without_a_reread_interval_every_token_is_read_at_every_step(
        r: Redis, rig: tuple[object, FakeClock, FakeGamma]) -> None:
    s, clock, _ = rig
    s.quiet_reread_ms = 0  # the back-test's scheduler (stepped only on events)
    step(s, r, clock, 0)
    assert step(s, r, clock, 500) >= 3 * len(QUIET)


def test_a_token_a_signal_touched_is_read_again_at_the_next_step(
        r: Redis, rig: tuple[object, FakeClock, FakeGamma]) -> None:
    s, clock, g = rig
    step(s, r, clock, 0)
    step(s, r, clock, 500)  # QUIET[5] is quiet now
    publish(r, "SELL", QUIET[5], "sell-q5", clock.now)  # the leader sells a token we hold awaiting resolution
    r.hset(keys.tok(QUIET[5]), "position", "0")  # and (say) the position went: nothing left to settle
    r.hset(keys.tok(QUIET[6]), "position", "0")  # the same on a token no signal touched
    step(s, r, clock, 500)
    assert not r.sismember(keys.SCHED_TRACKED, QUIET[5]), "read at once: cleaned up in that step"
    assert r.sismember(keys.SCHED_TRACKED, QUIET[6]), "still quiet: seen at the next full read"
    step(s, r, clock, service.QUIET_REREAD_MS)
    assert not r.sismember(keys.SCHED_TRACKED, QUIET[6])
