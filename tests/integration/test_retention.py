"""Retention against a real Redis (services/scheduler/retention_store.py): what goes, what must stay."""
from __future__ import annotations

import json

from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from services.scheduler.retention import DAY_MS, RetentionRules
from services.scheduler.retention_store import Retention
from services.scheduler.signals import SignalConsumer

ACCT = "0x" + "ab" * 20
NOW = 1_800_000_000_000  # market and wall "now" of the tests
OLD = NOW - 8 * DAY_MS  # past the 7-day windows
RULES = RetentionRules(signals_ms=7 * DAY_MS, tokens_ms=7 * DAY_MS, services_wall_ms=DAY_MS, risk_days=30,
                       lookback_ms=120_000, batch=1000)


def make(r: Redis, rules: RetentionRules = RULES) -> tuple[Retention, FakeClock]:
    clock = FakeClock(now=NOW, wall=NOW)
    return Retention(r, Journal(r, "scheduler", clock), rules), clock


def events(r: Redis, reason: str) -> list[dict[str, str]]:
    return [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == reason]


def signal(n: int, ts_ms: int) -> dict[str, str]:
    return {"signal_id": f"{ACCT}:0xtx{n}:fp:1", "account": ACCT, "side": "BUY", "token_id": "t",
            "price": "0.5", "size": "5", "ts_ms": str(ts_ms)}


def publish(r: Redis, n: int, ts_ms: int) -> str:
    """One signal entry with an explicit (old) stream id: its age is ``ts_ms`` on the stream's clock."""
    return r.xadd(keys.SIG_STREAM, signal(n, ts_ms), id=f"{ts_ms}-{n}")


def consume(r: Redis, c: SignalConsumer, count: int, finish: bool = True) -> list[str]:
    """Deliver ``count`` entries to consumer ``c``; record each as done and ack it (``finish``)."""
    got = r.xreadgroup(keys.SIG_GROUP, c.consumer, {keys.SIG_STREAM: ">"}, count=count)[0][1]
    for sid, f in got:
        assert c.begin(sid, f["signal_id"]) == "apply"
        if finish:
            c.finish(sid, f["signal_id"])
    return [sid for sid, _ in got]


def stream_ids(r: Redis) -> list[str]:
    return [i for i, _ in r.xrange(keys.SIG_STREAM)]


def test_signal_trim_keeps_pending_and_undelivered_entries(r: Redis) -> None:
    ret, clock = make(r)
    c = SignalConsumer(r, "sched-1", Journal(r, "scheduler", clock))
    c.ensure_group()
    ids = [publish(r, n, OLD + n) for n in range(6)]
    consume(r, c, 2)  # 0, 1 done and acked
    pending = consume(r, c, 1, finish=False)  # 2 delivered, not acked (a crash mid-effect)
    consume(r, c, 1)  # 3 done; 4 and 5 never delivered
    r.hset(keys.sig_cursor(ACCT), "ts", str(OLD // 1000))  # keeps the done entries: the index stays visible
    res = ret.run(NOW, NOW)
    assert res.counts["signals"] == 2
    assert stream_ids(r) == ids[2:], "a pending entry or anything after it was trimmed"
    assert pending == [ids[2]]
    indexed = dict(r.zrange(keys.SIG_DONE_AT, 0, -1, withscores=True))
    assert indexed == {signal(0, 0)["signal_id"]: OLD, signal(1, 0)["signal_id"]: OLD + 1}
    c.finish(ids[2], signal(2, 0)["signal_id"])  # the redelivered entry completes
    consume(r, c, 2)
    ret.run(NOW, NOW)
    assert stream_ids(r) == ids[5:], "entries up to the last delivered one go; the last one is the MINID"
    trimmed = [e for e in events(r, "RETENTION_TRIMMED") if e.get("signals")]
    assert [e["signals"] for e in trimmed] == ["2", "3"]


def test_signal_trim_respects_age_undelivered_and_batch(r: Redis) -> None:
    ret, clock = make(r, RetentionRules(signals_ms=7 * DAY_MS, batch=2))
    c = SignalConsumer(r, "sched-1", Journal(r, "scheduler", clock))
    c.ensure_group()
    publish(r, 0, OLD)
    publish(r, 1, OLD + 1)
    publish(r, 2, OLD + 2)
    young = publish(r, 3, NOW - DAY_MS)
    assert ret.run(NOW, NOW).counts["signals"] == 0, "nothing delivered: nothing may go"
    consume(r, c, 4)
    assert ret.run(NOW, NOW).counts["signals"] == 2  # one batch
    assert ret.run(NOW, NOW).counts["signals"] == 1
    assert ret.run(NOW, NOW).counts["signals"] == 0
    assert stream_ids(r) == [young], "an entry younger than the window was trimmed"


def done_setup(r: Redis) -> tuple[Retention, SignalConsumer, list[str]]:
    ret, clock = make(r)
    c = SignalConsumer(r, "sched-1", Journal(r, "scheduler", clock))
    c.ensure_group()
    ids = [publish(r, n, OLD + n) for n in range(3)]
    consume(r, c, 3)
    return ret, c, ids


def test_done_entries_go_only_past_the_horizon_and_the_cursor(r: Redis) -> None:
    ret, c, ids = done_setup(r)
    r.hset(keys.sig_cursor(ACCT), mapping={"ts": str((OLD + 2) // 1000), "gen": "3"})
    res = ret.run(NOW, NOW)
    assert res.counts["signals"] == 2  # entry 2 is the last delivered: it stays
    # signal 0 and 1 were traded in the cursor's own second: a re-poll may list them again
    assert r.hlen(keys.SIG_DONE) == 3 and res.counts["done"] == 0
    r.hset(keys.sig_cursor(ACCT), "ts", str(NOW // 1000))  # the leader traded again since
    res = ret.run(NOW, NOW)
    assert res.counts["done"] == 2
    assert r.hkeys(keys.SIG_DONE) == [signal(2, 0)["signal_id"]]  # its stream entry still exists
    assert r.zcard(keys.SIG_DONE_AT) == 0


def test_done_entry_within_the_horizon_keeps_idempotency(r: Redis) -> None:
    ret, c, ids = done_setup(r)
    young_now = OLD + 7 * DAY_MS  # a day earlier: the signals are only 7 days old
    res = ret.run(young_now, NOW)  # entries 0, 1 trimmed and indexed; the cursor is missing (lost)
    assert res.counts["signals"] == 2 and res.counts["done"] == 0 and r.hlen(keys.SIG_DONE) == 3
    # the same fill published again (e.g. a lost cursor) is still recognised as a duplicate
    sid = r.xadd(keys.SIG_STREAM, signal(0, OLD))
    assert c.begin(sid, signal(0, 0)["signal_id"]) == "duplicate"
    long = RetentionRules(signals_ms=7 * DAY_MS, lookback_ms=30 * DAY_MS)
    ret_long, _ = make(r, long)
    assert ret_long.run(NOW, NOW).counts["done"] == 0, "deleted inside the first-run lookback"
    assert ret.run(NOW, NOW).counts["done"] == 2


def seed_token(r: Redis, t: str, *, state: str = "closed", updated_ms: int = OLD, position: str = "0",
               order_status: str = "MATCHED") -> None:
    r.hset(keys.tok(t), mapping={"state": state, "reason": "TAKE_PROFIT_DONE", "updated_ms": str(updated_ms),
                                 "position": position, "last_fill_ms": str(updated_ms - 5)})
    r.hset(keys.orders(t), "o1", json.dumps({"id": "o1", "side": "BUY", "status": order_status}))
    r.hset(keys.fills(t), "tr:o1", json.dumps({"trade_id": "tr", "size": "5"}))
    r.xadd(keys.user_stream(t), {"kind": "trade"})
    r.hset(keys.md_book(t), mapping={"seq": "9", "best_bid": "0.5"})
    r.xadd(keys.md_stream(t), {"seq": "9"})
    r.set(keys.fence(t), 4)
    r.sadd(keys.TOKENS, t)
    r.hset(keys.SCHED_HEALTH, t, "{}")
    r.hset(keys.USER_SEEN, t, str(updated_ms))
    r.hset(keys.MD_TICK, t, "0.01")
    r.hset(keys.RISK_EXPOSURE, t, "4:0:0")
    r.hset(keys.RISK_UPNL, t, "0")


def record_keys(r: Redis, t: str) -> int:
    return int(r.exists(*keys.token_record_keys(t)))


def test_token_records_go_only_when_finished_unheld_flat_and_old(r: Redis) -> None:
    gone = ["t-closed", "t-cooldown", "t-resolved"]
    for t, st in zip(gone, ("closed", "cooldown", "resolved")):
        seed_token(r, t, state=st)
    seed_token(r, "t-leased")
    r.hset(keys.lease("t-leased"), mapping={"worker": "", "fence": "4", "mode": "maker", "expires_ms": "0"})
    seed_token(r, "t-open", order_status="LIVE")
    seed_token(r, "t-holding", position="2.5")
    seed_token(r, "t-tracked")
    r.sadd(keys.SCHED_TRACKED, "t-tracked")
    seed_token(r, "t-active", state="active")
    seed_token(r, "t-recent", updated_ms=NOW - 6 * DAY_MS)
    r.hset(keys.RISK_EXPOSURE, "t-holding", "4:1250000:2500000")
    ret, _ = make(r)
    res = ret.run(NOW, NOW)
    assert res.counts["tokens"] == 3 and res.counts["token_keys"] == 3 * 6  # no lease key
    assert dict(res.kept) == {"LEASE": 1, "OPEN_ORDERS": 1, "SHARES": 1, "IN_USE": 1, "STATE": 1, "RECENT": 1}
    for t in gone:
        assert record_keys(r, t) == 0, t
        assert r.get(keys.fence(t)) == "4", "the fence counter must never go back"
        for h in (keys.SCHED_HEALTH, keys.USER_SEEN, keys.MD_TICK, keys.RISK_EXPOSURE, keys.RISK_UPNL):
            assert not r.hexists(h, t), (h, t)
    for t in ("t-leased", "t-open", "t-holding", "t-tracked", "t-active", "t-recent"):
        assert record_keys(r, t) == (7 if t == "t-leased" else 6), f"{t}: a record still needed was deleted"
        assert r.hexists(keys.USER_SEEN, t) and r.sismember(keys.TOKENS, t)
    assert r.hget(keys.RISK_EXPOSURE, "t-holding") == "4:1250000:2500000"
    assert sorted(r.smembers(keys.TOKENS)) == ["t-active", "t-holding", "t-leased", "t-open", "t-recent",
                                               "t-tracked"]
    (ev,) = events(r, "RETENTION_TRIMMED")
    assert ev["tokens"] == "3" and ev["kept_lease"] == "1" and ev["kept_open_orders"] == "1"
    assert r.hget(keys.COUNTS, "RETENTION_TRIMMED") == "1"


def test_tokens_kept_while_the_journal_still_tells_about_them(r: Redis) -> None:
    seed_token(r, "t1")
    r.xadd(keys.EVENTS, {"ts_ms": str(OLD - DAY_MS), "reason": "ACTIVATED", "token_id": "t1"})
    ret, _ = make(r)
    res = ret.run(NOW, NOW)
    assert res.counts["tokens"] == 0 and record_keys(r, "t1") == 6  # the report would miss its records
    r.delete(keys.EVENTS)  # the capped journal moved past it
    assert ret.run(NOW, NOW).counts["tokens"] == 1 and record_keys(r, "t1") == 0


def test_services_workers_and_risk_days(r: Redis) -> None:
    r.zadd(keys.SERVICES, {"dead-svc": NOW - 2 * DAY_MS, "live-svc": NOW - 1000})
    r.zadd(keys.WORKERS, {"dead-w": NOW - DAY_MS - 1, "live-w": NOW - DAY_MS + 1})
    r.hset(keys.RISK_DAILY_PNL, mapping={"2026-11-01": "-5", "2027-01-14": "3", "2027-01-15": "1"})
    ret, _ = make(r)
    res = ret.run(NOW, NOW)  # NOW is 2027-01-15
    assert (res.counts["services"], res.counts["workers"], res.counts["risk_days"]) == (1, 1, 1)
    assert r.zrange(keys.SERVICES, 0, -1) == ["live-svc"] and r.zrange(keys.WORKERS, 0, -1) == ["live-w"]
    assert sorted(r.hkeys(keys.RISK_DAILY_PNL)) == ["2027-01-14", "2027-01-15"]


def test_a_failing_part_is_journaled_and_counted_and_the_rest_still_runs(r: Redis) -> None:
    r.set(keys.SIG_STREAM, "not a stream")
    seed_token(r, "t1")
    ret, _ = make(r)
    res = ret.run(NOW, NOW)
    assert "WRONGTYPE" in res.failed["signals"] and res.counts["tokens"] == 1
    (ev,) = events(r, "RETENTION_FAILED")
    assert ev["part"] == "signals" and ev["level"] == "error"
    assert r.hget(keys.ERRORS, "RETENTION_FAILED") == "1"


def test_passes_run_every_interval_from_the_scheduler_step(r: Redis, env) -> None:  # noqa: ANN001
    sched = env.new(retention_interval_s=60)
    env.clock.now = env.clock.wall = NOW
    seed_token(r, "t1")
    sched.step()
    assert sched.retention.passes == 1 and record_keys(r, "t1") == 0
    env.clock.advance(59_000)
    sched.step()
    assert sched.retention.passes == 1
    env.clock.advance(1_000)
    sched.step()
    assert sched.retention.passes == 2
    off = env.new(retention_interval_s=0, instance="scheduler-off")
    off.step()
    assert off.retention.passes == 0


def test_orphan_ledger_is_kept_and_leftovers_of_an_unknown_token_go(r: Redis) -> None:
    r.sadd(keys.TOKENS, "t-orphan", "t-leftover")
    r.hset(keys.fills("t-orphan"), "tr:o1", "{}")  # a fill ledger without its token hash: someone should look
    r.hset(keys.md_book("t-leftover"), "seq", "3")
    r.xadd(keys.md_stream("t-leftover"), {"seq": "3"})
    ret, _ = make(r)
    res = ret.run(NOW, NOW)
    assert res.kept["ORPHAN_LEDGER"] == 1 and r.exists(keys.fills("t-orphan"))
    assert res.counts["tokens"] == 1 and record_keys(r, "t-leftover") == 0
    assert r.smembers(keys.TOKENS) == {"t-orphan"}
