"""Exactly-once from the journal alone: every record a signal causes carries its ``signal_id``.

A batch of varied signals (new token, refresh, re-entries refused for every reason, SELLs in every
state, Gamma down, a bad token field, a transition conflict, a duplicate, a malformed entry, an entry
that keeps failing, a crash before the ack) goes through the scheduler one entry at a time; every
record journaled while an entry is processed must carry that entry's ``signal_id``, and the ids in
the journal's effects are exactly the ids consumed (``pb:sig:done`` and ``pb:sig:dead``).
"""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from libs.common import keys
from services.scheduler.signals import SignalConsumer
from tests.scheduler_fakes import gateway_ok, make_market, publish

HOUR = 3_600_000
TTL = 10_000
HELD = {"position": "10", "avg_entry": "0.5", "end_ms": "0"}

# token -> (state hash fields, lease held by a worker?) of tokens a signal finds already tracked
SEEDED: dict[str, tuple[dict[str, str], bool]] = {
    "RES": ({"state": "resolved", "reason": "MARKET_RESOLVED", "payout": "1"}, False),
    "EX": ({"state": "exiting", "reason": "LEADER_SELL", **HELD}, True),
    "HL": ({"state": "active", "reason": "ACTIVATED", **HELD}, True),
    "HN": ({"state": "active", "reason": "ACTIVATED", **HELD}, False),
    "BF": ({"state": "active", "reason": "ACTIVATED", "position": "abc"}, False),
    "BZ": ({"state": "closed", "reason": "EXIT_DONE"}, True),
    "UK": ({"state": "weird", "reason": "?"}, False),
}

# (signal_id, side, token, reasons journaled while the entry is processed); "!"-prefixed ids get a hook
BATCH: list[tuple[str, str, str, set[str]]] = [
    ("b-new", "BUY", "A1", {"BUY_SIGNAL", "QUEUED"}),
    ("b-refresh", "BUY", "A1", {"SIGNAL_REFRESH"}),
    ("s-unknown", "SELL", "ZZ", {"IGNORED_NO_POSITION"}),
    ("b-nomarket", "BUY", "NM", {"BUY_SIGNAL", "NO_MARKET"}),
    ("b-nomarket-2", "BUY", "NM", {"REENTRY_REFUSED"}),
    ("b-soon", "BUY", "SOON", {"BUY_SIGNAL", "ENDING_SOON"}),
    ("b-soon-2", "BUY", "SOON", {"REENTRY_COOLDOWN"}),
    ("b-p1", "BUY", "P1", {"BUY_SIGNAL", "QUEUED"}),
    ("s-p1", "SELL", "P1", {"LEADER_SOLD_BEFORE_ENTRY", "IGNORED_NO_POSITION"}),
    ("b-resolved", "BUY", "RES", {"REENTRY_REFUSED_RESOLVED"}),
    ("b-exiting", "BUY", "EX", {"BUY_WHILE_EXITING"}),
    ("s-exiting", "SELL", "EX", {"SELL_ALREADY_EXITING"}),
    ("s-held", "SELL", "HL", {"LEADER_SELL"}),
    ("s-held-nolease", "SELL", "HN", {"LEADER_SELL"}),
    ("s-badfield", "SELL", "BF", {"TOKEN_FIELD_INVALID"}),
    ("b-busy", "BUY", "BZ", {"REENTRY_BUSY"}),
    ("b-unknown", "BUY", "UK", {"UNKNOWN_STATE"}),
    ("!gamma-down", "BUY", "G1", {"BUY_SIGNAL", "GAMMA_UNAVAILABLE"}),
    ("!conflict", "BUY", "CF", {"TRANSITION_CONFLICT"}),
    ("!crash-before-ack", "BUY", "A2", {"BUY_SIGNAL", "QUEUED"}),
    ("!boom", "BUY", "BOOM", {"SIGNAL_FAILED"}),
    ("s-unknown", "SELL", "ZZ", {"SIGNAL_DUPLICATE"}),
    ("!malformed", "BUY", "A1", {"SIGNAL_MALFORMED"}),
]


class Crash(Exception):
    """Stands for the process dying at that point."""


def seed(env: SimpleNamespace) -> None:
    """Markets on the fake Gamma and the tokens a signal finds already in some state."""
    env.gamma.add(make_market(("A1", "P1"), env.clock.now + 4 * HOUR, condition_id="0xa"))
    env.gamma.add(make_market(("A2", "G1"), env.clock.now + 4 * HOUR, condition_id="0xb"))
    env.gamma.add(make_market(("CF", "BOOM"), env.clock.now + 4 * HOUR, condition_id="0xc"))
    env.gamma.add(make_market(("SOON", "S2"), env.clock.now + HOUR // 2, condition_id="0xd"))
    for token, (fields, held) in SEEDED.items():
        env.r.hset(keys.tok(token), mapping={**fields, "updated_ms": str(env.clock.now)})
        if held:
            env.leases.offer(token, "maker", env.clock.wall)
            assert env.leases.acquire(token, "w1", env.clock.wall, TTL) is not None


def new_events(r: Any, after: str) -> tuple[list[dict[str, str]], str]:
    """Journal entries after stream id ``after`` and the id of the last one."""
    got = r.xrange(keys.EVENTS, min=f"({after}") if after != "0" else r.xrange(keys.EVENTS)
    return [f for _, f in got], (got[-1][0] if got else after)


def hooks(s: Any, signal_id: str, monkeypatch: pytest.MonkeyPatch, env: SimpleNamespace) -> dict[str, str]:
    """Arrange the fault a "!" signal stands for; returns fields to publish it with."""
    if signal_id == "!gamma-down":
        env.gamma.fail_next(1, 503)
    elif signal_id == "!conflict":
        monkeypatch.setattr(s.store, "cas", lambda *a, **k: (False, "pending"))
    elif signal_id == "!crash-before-ack":  # the effect and pb:sig:done are written, the XACK is not
        real, crashed = SignalConsumer.ack, []

        def ack_once(self: SignalConsumer, stream_id: str) -> None:
            if not crashed:
                crashed.append(stream_id)
                raise Crash()
            real(self, stream_id)
        monkeypatch.setattr(SignalConsumer, "ack", ack_once)
    elif signal_id == "!boom":
        monkeypatch.setattr(s.store, "token", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    elif signal_id == "!malformed":
        return {"price": "1.5"}
    return {}


def process_one(s: Any, env: SimpleNamespace) -> None:
    """Run the signal consumer until no entry is pending, surviving crashes and failures as a
    restarted scheduler would (it re-reads its pending entries first)."""
    for _ in range(10):
        try:
            s.process_signals(env.clock.now, env.clock.wall)
        except (Crash, RuntimeError):
            continue
        if int(env.r.xpending(keys.SIG_STREAM, keys.SIG_GROUP)["pending"]) == 0:
            return
    raise AssertionError("entry never settled")


def test_every_effect_of_a_signal_carries_its_id_exactly_once(env: SimpleNamespace,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env)
    s = env.new(signal_batch=1)
    last, published = "0", []
    for signal_id, side, token, reasons in BATCH:
        publish(env.r, side, token, signal_id, env.clock.now, **hooks(s, signal_id, monkeypatch, env))
        published.append(signal_id)
        process_one(s, env)
        monkeypatch.undo()
        got, last = new_events(env.r, last)
        assert {e["reason"] for e in got} == reasons, signal_id
        assert [e.get("signal_id") for e in got] == [signal_id] * len(got), (signal_id, got)

    # later effects of the queued signals: Gamma retried for G1, then activations
    gateway_ok(env.r, env.clock.wall)
    for _ in range(3):
        env.clock.advance(2_000)
        gateway_ok(env.r, env.clock.wall)
        s.step()
    got, last = new_events(env.r, last)
    later = {(e["reason"], e["token_id"]): e.get("signal_id") for e in got}
    assert later[("QUEUED", "G1")] == "!gamma-down"
    for token, follows in (("A1", "b-refresh"), ("A2", "!crash-before-ack"), ("G1", "!gamma-down")):
        assert later[("ACTIVATED", token)] == follows == env.r.hget(keys.tok(token), "last_signal_id")

    audit(env.r, set(published))


def audit(r: Any, published: set[str]) -> None:
    """The journal alone shows every signal consumed once, with at most one record of each effect."""
    effects = [f for _, f in r.xrange(keys.EVENTS) if f.get("signal_id")]
    done = r.hgetall(keys.SIG_DONE)
    dead = {f["signal_id"] for _, f in r.xrange(keys.SIG_DEAD)}
    assert {e["signal_id"] for e in effects} == set(done) | dead == published
    stream = {sid: f["signal_id"] for sid, f in r.xrange(keys.SIG_STREAM)}
    for signal_id, value in done.items():
        first = min(sid for sid, x in stream.items() if x == signal_id)
        assert value in (first, "claimed:" + first), signal_id  # claimed: the entry that kept failing
    twice = {k: n for k, n in Counter((e["signal_id"], e["reason"], e["token_id"]) for e in effects).items()
             if n > 1 and k[1] != "SIGNAL_DUPLICATE"}
    assert twice == {}, "an effect journaled twice (redelivery applied it again)"
