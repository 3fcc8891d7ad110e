"""Scheduler lifecycle against a real Redis and a fake Gamma (SPEC S3.3)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from libs.common import keys
from tests.scheduler_fakes import book, events, gateway_ok, make_market, publish

HOUR = 3_600_000
MIN = 60_000
TTL = 10_000


def market(env: SimpleNamespace, *tokens: str, ends_in: int = 4 * HOUR, **kw: object) -> None:
    for i in range(0, len(tokens), 2):
        pair = (tokens[i], tokens[i + 1] if i + 1 < len(tokens) else tokens[i] + "0")
        env.gamma.add(make_market(pair, env.clock.now + ends_in, condition_id=f"0xc{tokens[i]}", **kw))


def tok(env: SimpleNamespace, t: str) -> dict[str, str]:
    return env.r.hgetall(keys.tok(t))


def test_buy_becomes_active_with_lease_offered_and_subscription(env: SimpleNamespace) -> None:
    market(env, "101", "102", tick=0.001, min_size=5)
    s = env.new()
    publish(env.r, "BUY", "101", "sig-1", env.clock.now - 2000, price="0.43")
    s.step()
    h = tok(env, "101")
    assert h["state"] == "active" and h["reason"] == "ACTIVATED"
    assert (h["condition_id"], h["tick_size"], h["min_order_size"], h["outcome"]) == ("0xc101", "0.001", "5", "Up")
    assert int(h["end_ms"]) == env.clock.now + 4 * HOUR - (env.clock.now + 4 * HOUR) % 1000
    assert (h["leader_price"], h["last_signal_id"], h["signal_ts_ms"]) == ("0.43", "sig-1", str(env.clock.now - 2000))
    assert env.r.sismember(keys.MD_SUBS, "101")
    lease = env.r.hgetall(keys.lease("101"))
    assert lease["mode"] == "maker" and lease["worker"] == ""
    assert env.r.zscore(keys.SCHED_OFFERS, "101") is not None
    assert env.r.hget(keys.SUMMARY, "tokens_activated") == "1"
    assert [e["reason"] for e in events(env.r, token_id="101")][:3] == ["BUY_SIGNAL", "QUEUED", "ACTIVATED"]
    assert env.r.sismember(keys.TOKENS, "101")
    g = env.leases.acquire("101", "w1", env.clock.wall, TTL)
    assert g is not None and g.mode == "maker"


def test_capacity_limit_fifo_queue_and_activation_when_one_closes(env: SimpleNamespace) -> None:
    market(env, "1", "2", "3", "4")
    s = env.new(max_active_tokens=2)
    now = env.clock.now
    for t, ts in (("1", now - 100), ("2", now - 400), ("3", now - 300), ("4", now - 200)):
        publish(env.r, "BUY", t, f"s{t}", ts)
    s.step()
    states = {t: tok(env, t)["state"] for t in "1234"}
    assert states == {"2": "active", "3": "active", "4": "pending", "1": "pending"}
    assert env.r.zrange(keys.SCHED_PENDING, 0, -1) == ["4", "1"]
    s.step()
    assert tok(env, "4")["state"] == "pending", "no capacity, nothing more activates"
    g = env.leases.acquire("2", "w1", env.clock.wall, TTL)
    assert g is not None
    env.leases.fenced_hset(g, keys.tok("2"), {"state": "cooldown", "reason": "TAKE_PROFIT_DONE"}, env.clock.wall)
    env.leases.release(g, done=True)
    s.step()
    assert tok(env, "4")["state"] == "active", "the oldest pending token takes the freed place"
    assert tok(env, "1")["state"] == "pending"
    assert not env.r.sismember(keys.MD_SUBS, "2") and env.r.zscore(keys.SCHED_OFFERS, "2") is None
    assert env.r.hget(keys.SUMMARY, "tokens_activated") == "3"


@pytest.mark.parametrize(("setup", "reason"), [
    ({"ends_in": 30 * MIN}, "ENDING_SOON"),
    ({"closed": True}, "MARKET_CLOSED"),
    (None, "NO_MARKET"),
])
def test_refusals_close_the_token_with_a_reason(env: SimpleNamespace, setup: dict | None, reason: str) -> None:
    if setup is not None:
        market(env, "7", "8", **setup)
    s = env.new()
    publish(env.r, "BUY", "7", "s7", env.clock.now)
    s.step()
    h = tok(env, "7")
    assert (h["state"], h["reason"]) == ("closed", reason)
    assert not env.r.sismember(keys.MD_SUBS, "7") and not env.r.exists(keys.lease("7"))
    assert env.r.zscore(keys.SCHED_PENDING, "7") is None
    assert len(events(env.r, reason, "7")) == 1
    assert env.r.hget(keys.SUMMARY, "tokens_activated") is None


def test_pending_token_refused_when_its_market_enters_the_sell_only_window(env: SimpleNamespace) -> None:
    market(env, "1", "2", ends_in=61 * MIN)
    s = env.new(max_active_tokens=1)
    publish(env.r, "BUY", "1", "a", env.clock.now - 10)
    publish(env.r, "BUY", "2", "b", env.clock.now)
    s.step()
    assert tok(env, "2")["state"] == "pending"
    env.clock.advance(2 * MIN)
    s.step()
    assert (tok(env, "2")["state"], tok(env, "2")["reason"]) == ("closed", "ENDING_SOON")


def activate(env: SimpleNamespace, s, t: str, position: str | None = None) -> None:
    market(env, t, t + "9")
    publish(env.r, "BUY", t, f"buy-{t}", env.clock.now)
    s.step()
    assert tok(env, t)["state"] == "active"
    if position is not None:
        env.r.hset(keys.tok(t), "position", position)


def test_sell_with_position_and_running_worker_goes_exiting(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5", "10")
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None
    publish(env.r, "SELL", "5", "sell-5", env.clock.now)
    s.step()
    assert (tok(env, "5")["state"], tok(env, "5")["reason"]) == ("exiting", "LEADER_SELL")
    assert env.r.hget(keys.lease("5"), "worker") == "w1", "the running worker keeps its lease"


def test_sell_with_position_and_no_worker_offers_exit_only(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5", "10")
    publish(env.r, "SELL", "5", "sell-5", env.clock.now)
    s.step()
    assert (tok(env, "5")["state"], tok(env, "5")["reason"]) == ("exit_only", "LEADER_SELL")
    assert env.r.hget(keys.lease("5"), "mode") == "exit_only"
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is not None
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None and g.mode == "exit_only"


def test_sell_without_position_is_ignored_and_counted(env: SimpleNamespace) -> None:
    s = env.new(max_active_tokens=1)
    activate(env, s, "5")
    market(env, "6", "69")
    publish(env.r, "BUY", "6", "buy-6", env.clock.now)
    publish(env.r, "SELL", "5", "sell-5", env.clock.now)
    publish(env.r, "SELL", "404", "sell-404", env.clock.now)
    publish(env.r, "SELL", "6", "sell-6", env.clock.now)
    s.step()
    assert tok(env, "5")["state"] == "active", "a flat active token is left alone"
    assert env.r.hget(keys.COUNTS, "IGNORED_NO_POSITION") == "3"
    assert not env.r.exists(keys.tok("404"))
    assert (tok(env, "6")["state"], tok(env, "6")["reason"]) == ("closed", "LEADER_SOLD_BEFORE_ENTRY")
    assert env.r.zcard(keys.SCHED_PENDING) == 0


def test_exit_only_task_always_leaves_the_queue_and_is_never_reoffered(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5", "3")
    publish(env.r, "SELL", "5", "sell-5", env.clock.now)
    s.step()
    assert tok(env, "5")["state"] == "exit_only"
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None and g.mode == "exit_only"
    env.r.zrem(keys.SCHED_OFFERS, "5")
    env.leases.fenced_hset(g, keys.tok("5"), {"state": "closed", "reason": "EXIT_ONLY_NOTHING_TO_SELL"}, env.clock.wall)
    env.leases.release(g, done=True)
    for _ in range(5):
        s.step()
        env.clock.advance(TTL)
    assert not env.r.sismember(keys.MD_SUBS, "5")
    assert env.r.zscore(keys.SCHED_OFFERS, "5") is None and not env.r.exists(keys.lease("5"))
    assert not env.r.sismember(keys.SCHED_TRACKED, "5")
    assert tok(env, "5")["state"] == "closed"
    assert len(events(env.r, "TOKEN_CLEANED", "5")) == 1
    assert events(env.r, "LEASE_EXPIRED_REOFFERED", "5") == [] and events(env.r, "LEASE_MISSING_REOFFERED", "5") == []


def test_exit_only_worker_dies_after_closing_lease_is_withdrawn_not_reoffered(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5", "3")
    publish(env.r, "SELL", "5", "sell-5", env.clock.now)
    s.step()
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None
    env.r.zrem(keys.SCHED_OFFERS, "5")
    env.leases.fenced_hset(g, keys.tok("5"), {"state": "closed", "reason": "EXIT_ONLY_DONE"}, env.clock.wall)
    s.step()
    assert env.r.hget(keys.lease("5"), "worker") == "w1", "a live lease is waited for"
    env.clock.advance(TTL + 1)
    s.step()
    s.step()
    assert not env.r.exists(keys.lease("5")) and env.r.zscore(keys.SCHED_OFFERS, "5") is None
    assert not env.r.sismember(keys.MD_SUBS, "5")
    assert env.leases.acquire("5", "w2", env.clock.wall, TTL) is None


def test_cooldown_reentry_after_the_cooldown_only(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5")
    g = env.leases.acquire("5", "w1", env.clock.wall, TTL)
    assert g is not None
    env.leases.fenced_hset(g, keys.tok("5"), {"state": "cooldown", "reason": "TAKE_PROFIT_DONE",
                                              "updated_ms": env.clock.now}, env.clock.wall)
    env.leases.release(g, done=True)
    s.step()
    assert tok(env, "5")["cooldown_until_ms"] == str(env.clock.now + 10 * MIN)
    env.clock.advance(5 * MIN)
    publish(env.r, "BUY", "5", "buy-early", env.clock.now)
    s.step()
    assert tok(env, "5")["state"] == "cooldown"
    assert len(events(env.r, "REENTRY_COOLDOWN", "5")) == 1
    env.clock.advance(5 * MIN + 1)
    publish(env.r, "BUY", "5", "buy-late", env.clock.now)
    s.step()
    assert (tok(env, "5")["state"], tok(env, "5")["reason"]) == ("active", "ACTIVATED")
    assert len(events(env.r, "REENTRY", "5")) == 1
    assert env.r.hget(keys.SUMMARY, "tokens_activated") == "2"
    assert env.r.hget(keys.lease("5"), "mode") == "maker"


def test_market_ended_is_never_refilled(env: SimpleNamespace) -> None:
    s = env.new(sell_only_window_s=60.0)
    env.gamma.add(make_market(("5", "59"), env.clock.now + 2 * MIN, condition_id="0xc5"))
    publish(env.r, "BUY", "5", "buy-5", env.clock.now)
    s.step()
    assert tok(env, "5")["state"] == "active"
    env.clock.advance(3 * MIN)
    s.step()
    assert (tok(env, "5")["state"], tok(env, "5")["reason"]) == ("closed", "MARKET_ENDED")
    s.step()
    assert not env.r.sismember(keys.MD_SUBS, "5") and not env.r.exists(keys.lease("5"))
    env.clock.advance(HOUR)
    publish(env.r, "BUY", "5", "buy-again", env.clock.now)
    s.step()
    assert (tok(env, "5")["state"], tok(env, "5")["reason"]) == ("closed", "MARKET_ENDED")
    assert len(events(env.r, "REENTRY_REFUSED", "5")) == 1


def test_buy_on_active_token_refreshes_leader_fields(env: SimpleNamespace) -> None:
    s = env.new()
    activate(env, s, "5")
    env.clock.advance(MIN)
    publish(env.r, "BUY", "5", "buy-2", env.clock.now, price="0.61")
    s.step()
    h = tok(env, "5")
    assert (h["state"], h["leader_price"], h["last_signal_id"], h["signal_ts_ms"]) == (
        "active", "0.61", "buy-2", str(env.clock.now))
    assert env.r.hget(keys.SUMMARY, "tokens_activated") == "1"


def test_gateway_book_helpers_do_not_disturb_activation(env: SimpleNamespace) -> None:
    s = env.new()
    gateway_ok(env.r, env.clock.wall)
    activate(env, s, "5")
    book(env.r, "5", env.clock.now, env.clock.wall)
    s.step()
    assert events(env.r, "FEED_NO_BOOK") == [] and tok(env, "5")["state"] == "active"
