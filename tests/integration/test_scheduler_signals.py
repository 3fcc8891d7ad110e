"""Signal delivery: idempotency across crashes and re-publishes, dead letters, idle claims, Gamma
failures, and the live exchange heartbeat."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from services.scheduler.heartbeat import ExchangeHeartbeat
from services.scheduler.signals import SignalConsumer
from tests.scheduler_fakes import FakeGamma, events, make_market, make_scheduler, publish

HOUR = 3_600_000


@pytest.fixture()
def env(r: Redis) -> Iterator[SimpleNamespace]:
    with FakeGamma() as g:
        clock = FakeClock()
        made: list = []

        def new(**kw: object):
            s = make_scheduler(r, clock, g.url, **kw)
            made.append(s)
            return s

        g.add(make_market(("5", "59"), clock.now + 4 * HOUR))
        yield SimpleNamespace(r=r, gamma=g, clock=clock, new=new)
        for s in made:
            s.metadata.close()


class Crash(Exception):
    """Stands for the process dying at that point."""


def pending_count(r: Redis) -> int:
    return int(r.xpending(keys.SIG_STREAM, keys.SIG_GROUP)["pending"])


def test_crash_before_xack_redelivers_with_one_effect(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(env.r, "SELL", "404", "sell-1", env.clock.now)
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    s1 = env.new()
    monkeypatch.setattr(SignalConsumer, "ack", lambda self, stream_id: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        s1.step()
    assert pending_count(env.r) == 2, "both entries delivered, none acked"
    monkeypatch.undo()
    s2 = env.new()  # restart: same consumer name, re-reads its pending entries first
    s2.step()
    s2.step()
    assert pending_count(env.r) == 0
    assert env.r.hget(keys.COUNTS, "IGNORED_NO_POSITION") == "1"
    assert env.r.hget(keys.tok("5"), "state") == "active"
    assert env.r.hget(keys.SUMMARY, "tokens_activated") == "1"
    assert len(events(env.r, "BUY_SIGNAL", "5")) == 1 and events(env.r, "SIGNAL_REFRESH") == []


def test_crash_after_claim_before_effect_applies_it_on_redelivery(env: SimpleNamespace,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    s = env.new()
    real = s.store.apply
    monkeypatch.setattr(s.store, "apply", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        s.step()
    assert env.r.hget(keys.SIG_DONE, "buy-1").startswith("claimed:")
    monkeypatch.setattr(s.store, "apply", real)
    s.step()
    assert env.r.hget(keys.tok("5"), "state") == "active"
    assert env.r.hget(keys.SIG_DONE, "buy-1") == env.r.xrange(keys.SIG_STREAM)[0][0]
    assert pending_count(env.r) == 0


def test_republished_signal_has_one_effect(env: SimpleNamespace) -> None:
    publish(env.r, "SELL", "404", "sell-1", env.clock.now)
    publish(env.r, "SELL", "404", "sell-1", env.clock.now)
    s = env.new()
    s.step()
    assert env.r.hget(keys.COUNTS, "IGNORED_NO_POSITION") == "1"
    assert len(events(env.r, "SIGNAL_DUPLICATE")) == 1
    assert pending_count(env.r) == 0


@pytest.mark.parametrize(("side", "token", "ts", "over", "field"), [
    ("BUY", "", None, {}, "token_id"), ("HOLD", "5", None, {}, "side"), ("BUY", "5", None, {"price": "1.5"}, "price"),
    ("BUY", "5", "yesterday", {}, "ts_ms"), ("BUY", "5", None, {"account": None}, "account")])
def test_malformed_signal_goes_to_dead_letters_and_is_acked(env: SimpleNamespace, side: str, token: str,
                                                             ts: str | None, over: dict, field: str) -> None:
    publish(env.r, side, token, "bad-1", ts or env.clock.now, **over)  # type: ignore[arg-type]
    publish(env.r, "BUY", "5", "good-1", env.clock.now)
    s = env.new()
    s.step()
    dead = env.r.xrange(keys.SIG_DEAD)
    assert len(dead) == 1 and dead[0][1]["reason"] == "SIGNAL_MALFORMED" and dead[0][1]["field"] == field
    assert env.r.hget(keys.ERRORS, "SIGNAL_MALFORMED") == "1"
    assert pending_count(env.r) == 0
    assert env.r.hget(keys.tok("5"), "state") == "active", "a poison entry does not block the next"


def test_entries_of_a_dead_consumer_are_claimed(env: SimpleNamespace) -> None:
    s = env.new(claim_idle_ms=50)
    s.consumer.ensure_group()
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    env.r.xreadgroup(keys.SIG_GROUP, "scheduler-dead", {keys.SIG_STREAM: ">"}, count=10)
    deadline = time.monotonic() + 5  # XAUTOCLAIM idle time is Redis' own clock
    while env.r.hget(keys.tok("5"), "state") != "active" and time.monotonic() < deadline:
        env.clock.advance(1000)
        s.step()
    assert env.r.hget(keys.tok("5"), "state") == "active"
    assert pending_count(env.r) == 0


def test_gamma_failure_is_journaled_and_retried(env: SimpleNamespace) -> None:
    env.gamma.fail_next(1, 503)
    s = env.new()
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    s.step()
    assert env.r.hget(keys.tok("5"), "state") == "candidate"
    assert env.r.hget(keys.ERRORS, "GAMMA_UNAVAILABLE") == "1"
    s.step()
    assert env.gamma.requests == 1, "no retry before the backoff"
    env.clock.advance(1000)
    s.step()
    s.step()
    assert env.r.hget(keys.tok("5"), "state") == "active"


def test_gamma_down_for_good_ends_in_cooldown(env: SimpleNamespace) -> None:
    env.gamma.fail_next(10, 500)
    s = env.new(gamma_max_attempts=3)
    publish(env.r, "BUY", "5", "buy-1", env.clock.now)
    for _ in range(6):
        s.step()
        env.clock.advance(60_000)
    h = env.r.hgetall(keys.tok("5"))
    assert (h["state"], h["reason"], h["meta_attempts"]) == ("cooldown", "METADATA_UNAVAILABLE", "3")
    assert env.gamma.requests == 3


def test_bad_market_metadata_fails_the_token_naming_the_field(env: SimpleNamespace) -> None:
    bad = make_market(("6", "69"), env.clock.now + HOUR * 4)
    bad["orderPriceMinTickSize"] = "zero"
    env.gamma.add(bad)
    s = env.new()
    publish(env.r, "BUY", "6", "buy-6", env.clock.now)
    s.step()
    assert env.r.hget(keys.tok("6"), "state") == "failed"
    ev = events(env.r, "BAD_MARKET_METADATA", "6")
    assert len(ev) == 1 and ev[0]["field"] == "orderPriceMinTickSize" and ev[0]["value"] == "zero"


class Poster:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = 0

    def post_heartbeat(self, heartbeat_id: str = "") -> str:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("venue down")
        self.sent.append(heartbeat_id)
        return f"hb-{len(self.sent)}"


def test_exchange_heartbeat_chains_ids_every_interval_and_journals_failures(r: Redis) -> None:
    clock = FakeClock()
    p = Poster()
    hb = ExchangeHeartbeat(p, Journal(r, "scheduler", clock), interval_ms=5000)
    assert hb.tick(clock.wall) is True
    assert hb.tick(clock.wall + 4999) is False
    p.fail = 1
    assert hb.tick(clock.wall + 5000) is False
    assert r.hget(keys.ERRORS, "EXCHANGE_HEARTBEAT_FAILED") == "1"
    assert hb.tick(clock.wall + 10_000) is True
    assert p.sent == ["", "hb-1"]
    assert r.hget(keys.COUNTS, "EXCHANGE_HEARTBEAT_RESTORED") == "1"
