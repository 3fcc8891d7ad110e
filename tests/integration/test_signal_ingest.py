"""signal_ingest against a real Redis and a fake data-api over HTTP (SPEC S2.1), through the
data-api v2 (``/v2/trades`` cursor pages, the default) and v1 (``/trades``, the fallback).
Tests that do not name a version run with both (the ``version`` fixture)."""
from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any, Iterator

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from libs.common.settings import load_settings
from services.signal_ingest.config import IngestSettings, LeaderTarget
from services.signal_ingest.data_api import DataApi
from services.signal_ingest.service import SignalIngest
from tests.signal_fakes import FakeDataApi

ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
T0 = 1_700_000_000  # FakeClock's default market time, in seconds


def row(ts: int, size: Any = 10, tx: str = "0xaa", price: Any = 0.5, **extra: Any) -> dict[str, Any]:
    return {"proxyWallet": ACC, "side": "BUY", "asset": "123456", "conditionId": "0xcond", "size": size,
            "price": price, "timestamp": ts, "title": "T", "slug": "s", "outcome": "Up", "outcomeIndex": 0,
            "name": "gabagool22", "transactionHash": tx, **extra}


@pytest.fixture(params=["v2", "v1"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def fake() -> Iterator[FakeDataApi]:
    with FakeDataApi() as f:
        yield f


class Rig:
    """A service on FakeClock + fake data-api + real Redis."""

    def __init__(self, r: Redis, fake: FakeDataApi, version: str = "v2", **overrides: Any) -> None:
        self.r, self.fake, self.clock = r, fake, FakeClock()
        opts: dict[str, Any] = {"leaders": [LeaderTarget(account=ACC)], "data_api_url": fake.url,
                                "poll_interval_s": 1.0, "lookback_s": 3600, "data_api_version": version,
                                **overrides}
        self.settings = load_settings(IngestSettings, **opts)
        self.api = DataApi(self.settings.data_api_url, 5.0)
        self.svc = SignalIngest(r, self.settings, self.clock, Journal(r, "signal_ingest", self.clock), self.api,
                                "signal_ingest-test", random.Random(7))

    def poll(self) -> None:
        self.clock.advance(int(self.settings.poll_interval_s * 1000))
        self.svc.step()

    def stream(self) -> list[dict[str, str]]:
        return [f for _, f in self.r.xrange(keys.SIG_STREAM)]

    def dead(self) -> list[dict[str, str]]:
        return [f for _, f in self.r.xrange(keys.SIG_DEAD)]

    def cursor(self) -> dict[str, str]:
        return self.r.hgetall(keys.sig_cursor(ACC))

    def reasons(self) -> Counter[str]:
        return Counter(f["reason"] for _, f in self.r.xrange(keys.EVENTS))


@pytest.fixture()
def rig(r: Redis, fake: FakeDataApi, version: str) -> Iterator[Rig]:
    g = Rig(r, fake, version)
    yield g
    g.api.close()


def test_identical_rows_are_published_as_separate_fills_exactly_once_across_polls(rig: Rig) -> None:
    rig.fake.add(ACC, [row(T0 - 10), row(T0 - 10), row(T0 - 5, size=3)])
    rig.poll()
    assert [s["size"] for s in rig.stream()] == ["10", "10", "3"]
    rig.poll()  # same rows again: nothing new
    assert len(rig.stream()) == 3
    rig.fake.add(ACC, [row(T0 - 5, size=3), row(T0 - 5, size=3)])  # two more identical fills, same second
    rig.poll()
    s = rig.stream()
    assert [x["size"] for x in s] == ["10", "10", "3", "3", "3"]
    assert len({x["signal_id"] for x in s}) == 5
    assert [x["signal_id"].rsplit(":", 1)[1] for x in s[2:]] == ["1", "2", "3"]
    assert rig.r.hget(keys.SUMMARY, "signals") == "5"
    assert rig.reasons()["SIGNAL_PUBLISHED"] == 5
    assert rig.cursor()["ts"] == str(T0 - 5)


def test_signal_fields_follow_the_contract(rig: Rig, version: str) -> None:
    rig.fake.add(ACC, ['{"proxyWallet":"%s","side":"sell","asset":"77","conditionId":"0xc","size":4.20,'
                       '"price":0.5699998232997013,"timestamp":%d,"title":"Q?","slug":"q","outcome":"No",'
                       '"transactionHash":"0xt"}' % (ACC, T0)])
    rig.poll()
    [s] = rig.stream()
    assert s["signal_id"].startswith(f"{ACC}:0xt:") and s["signal_id"].endswith(":1")
    assert {k: v for k, v in s.items() if k != "signal_id"} == {
        "account": ACC, "side": "SELL", "token_id": "77", "condition_id": "0xc", "size": "4.2",
        "price": "0.5699998232997013", "ts_ms": str(T0 * 1000), "tx_hash": "0xt", "title": "Q?", "slug": "q",
        "outcome": "No"}
    q = rig.fake.requests[0]  # maker fills of a leader count too: the taker-only default is turned off
    assert q["user"] == ACC and q["taker_only" if version == "v2" else "takerOnly"] == "false"
    assert q["_path"] == ("/data-api/v2/trades" if version == "v2" else "/data-api/trades")


def test_v1_reads_newest_first_widening_until_the_cursor(r: Redis, fake: FakeDataApi) -> None:
    g = Rig(r, fake, "v1", page_size=3)
    fake.add(ACC, [row(T0 - 100 + i, tx=f"0x{i}") for i in range(20)])
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == [f"0x{i}" for i in range(20)]  # oldest first
    assert [(q["limit"], q["offset"]) for q in fake.requests] == [("3", "0"), ("12", "0"), ("48", "0")]
    fake.requests.clear()
    fake.add(ACC, [row(T0 - 50, tx=f"0xn{i}") for i in range(4)])
    g.poll()
    assert len(g.stream()) == 24
    assert [q["limit"] for q in fake.requests] == ["3", "12"]  # the 2nd read holds rows older than the cursor
    fake.requests.clear()
    g.poll()
    # 4 rows share the cursor second: a full read of 3 of them cannot prove there are no more
    assert [q["limit"] for q in fake.requests] == ["3", "12"] and len(g.stream()) == 24
    g.api.close()


def test_v2_follows_cursor_pages_until_a_page_reaches_the_cursor(r: Redis, fake: FakeDataApi) -> None:
    g = Rig(r, fake, "v2", page_size=3)
    fake.add(ACC, [row(T0 - 100 + i, tx=f"0x{i}") for i in range(8)])
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == [f"0x{i}" for i in range(8)]  # oldest first
    assert [(q["limit"], q.get("cursor")) for q in fake.requests] == [("3", None), ("3", "c5"), ("3", "c2")]
    fake.requests.clear()
    fake.add(ACC, [row(T0 - 50, tx=f"0xn{i}") for i in range(4)])
    g.poll()
    assert [s["tx_hash"] for s in g.stream()][8:] == [f"0xn{i}" for i in range(4)]
    assert [q.get("cursor") for q in fake.requests] == [None, "c9"]  # page 2 holds rows older than the cursor
    fake.requests.clear()
    g.poll()
    # 4 rows share the cursor second: a page of 3 of them cannot prove there are no more
    assert [q.get("cursor") for q in fake.requests] == [None, "c9"] and len(g.stream()) == 12
    fake.rows[ACC] = fake.rows[ACC][-2:]  # only two fills left, both at the cursor second
    fake.requests.clear()
    g.poll()  # a short last page (no next_cursor) ends the poll; nothing is re-published
    assert [q.get("cursor") for q in fake.requests] == [None] and len(g.stream()) == 12
    g.api.close()


def test_v2_bad_page_envelope_is_journaled_and_leaves_the_cursor(r: Redis, fake: FakeDataApi) -> None:
    g = Rig(r, fake, "v2")
    fake.add(ACC, [row(T0 - 5, tx="0x1")])
    g.poll()
    before = g.cursor()
    fake.add(ACC, [row(T0 - 4, tx="0x2")])
    real = fake.page_v2
    fake.page_v2 = lambda *a: b'[{"not": "an envelope"}]'  # type: ignore[method-assign]
    g.poll()
    assert g.cursor() == before and g.reasons()["BAD_RESPONSE"] == 1
    fake.page_v2 = real  # type: ignore[method-assign]
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == ["0x1", "0x2"]
    g.api.close()


def test_switching_version_keeps_exactly_once(r: Redis, fake: FakeDataApi) -> None:
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 9, tx="0x1"), row(T0 - 5, tx="0x2")])
    a = Rig(r, fake, "v1")
    a.poll()
    fake.add(ACC, [row(T0 - 5, tx="0x2"), row(T0 - 3, tx="0x3")])  # one more identical fill at the cursor second
    b = Rig(r, fake, "v2")  # the operator switches v1 -> v2 on the same cursor
    b.poll()
    c = Rig(r, fake, "v1")  # ... and back
    c.poll()
    assert [s["tx_hash"] for s in c.stream()] == ["0x1", "0x1", "0x2", "0x2", "0x3"]
    for g in (a, b, c):
        g.api.close()


def test_page_limit_hit_is_journaled(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, page_size=2, max_pages=2)
    fake.add(ACC, [row(T0 - 100 + i, tx=f"0x{i}") for i in range(7)])
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == ["0x3", "0x4", "0x5", "0x6"]
    assert g.reasons()["PAGE_LIMIT_HIT"] == 1
    g.api.close()


def test_rows_arriving_while_a_poll_reads_are_neither_lost_nor_duplicated(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, page_size=2)
    fake.add(ACC, [row(T0 - 100 + i, tx=f"0x{i}") for i in range(5)])
    extra = iter([row(T0 - 40, tx="0xlate1"), row(T0 - 40, tx="0xlate1"), row(T0 - 39, tx="0xlate2")])

    def grow(q: dict[str, str]) -> None:  # a new fill lands just before each read
        nxt = next(extra, None)
        if nxt is not None:
            fake.add(ACC, [nxt])
    fake.on_request = grow
    for _ in range(4):
        g.poll()
    txs = [s["tx_hash"] for s in g.stream()]
    assert txs == [f"0x{i}" for i in range(5)] + ["0xlate1", "0xlate1", "0xlate2"]
    g.api.close()


def test_first_run_records_now_and_ignores_history(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, lookback_s=0)
    fake.add(ACC, [row(T0 - 30), row(T0 - 1), row(T0)])
    g.svc.step()  # market now = T0 s exactly
    assert g.stream() == []
    ev = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "FIRST_RUN_CURSOR"]
    assert len(ev) == 1 and ev[0]["skipped"] == "3" and ev[0]["cursor_ts"] == str(T0)
    assert g.cursor()["ts"] == str(T0)
    fake.add(ACC, [row(T0), row(T0 + 2, tx="0xnew")])
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == ["0xaa", "0xnew"]  # the 2nd fill at T0 is new
    assert g.reasons()["FIRST_RUN_CURSOR"] == 1
    g.api.close()


def test_first_run_lookback_publishes_recent_history_only(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, lookback_s=60)
    fake.add(ACC, [row(T0 - 120, tx="0xold"), row(T0 - 59, tx="0xrecent")])
    g.svc.step()
    assert [s["tx_hash"] for s in g.stream()] == ["0xrecent"]
    [ev] = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "FIRST_RUN_CURSOR"]
    assert (ev["cursor_ts"], ev["skipped"], ev["published"]) == (str(T0 - 60), "1", "1")
    g.api.close()


def test_first_run_cursor_is_stored_even_without_rows(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, lookback_s=0)
    g.svc.step()
    assert g.cursor()["ts"] == str(T0)
    g.clock.advance(60_000)  # a fill made after the first poll but before "now" of a later first run
    fake.add(ACC, [row(T0 + 30, tx="0xmid")])
    g.svc.step()
    assert [s["tx_hash"] for s in g.stream()] == ["0xmid"]
    g.api.close()


def test_min_size_skips_and_counts_small_fills(r: Redis, fake: FakeDataApi, version: str) -> None:
    g = Rig(r, fake, version, leaders=[LeaderTarget(account=ACC, min_size=Decimal(5))])
    fake.add(ACC, [row(T0 - 3, size=4.99, tx="0xsmall"), row(T0 - 2, size=5, tx="0xok")])
    g.poll()
    g.poll()
    assert [s["tx_hash"] for s in g.stream()] == ["0xok"]
    assert g.dead() == []
    assert g.reasons()["BELOW_MIN_SIZE"] == 1
    g.api.close()


def test_malformed_rows_are_dead_lettered_once_and_never_stop_the_poller(rig: Rig, version: str) -> None:
    rig.poll()  # first run (undated rows present then would count as history)
    rig.fake.add(ACC, [row(T0 - 9, price=1.5, tx="0xbadprice"), '{"side": "BUY", "timestamp": "soon"}',
                       "[1, 2]", row(T0 - 8, tx="0xgood")])
    rig.poll()
    rig.poll()
    dead = rig.dead()
    assert sorted((d["reason"], d["field"], d["value"]) for d in dead) == sorted([
        ("BAD_PRICE", "price", "1.5"), ("BAD_TOKEN_ID", "token_id" if version == "v2" else "asset", "None"),
        ("ROW_NOT_OBJECT", "row", "[1,2]")])
    assert all(d["account"] == ACC and d["raw"] for d in dead)
    assert [s["tx_hash"] for s in rig.stream()] == ["0xgood"]
    errors = rig.r.hgetall(keys.ERRORS)
    assert errors == {"BAD_PRICE": "1", "BAD_TOKEN_ID": "1", "ROW_NOT_OBJECT": "1"}
    rig.fake.add(ACC, [row(T0 - 2, tx="0xlater")])
    rig.poll()
    assert [s["tx_hash"] for s in rig.stream()] == ["0xgood", "0xlater"] and len(rig.dead()) == 3


@pytest.mark.parametrize("status,reason", [(429, "HTTP_429"), (500, "HTTP_5XX"), (503, "HTTP_5XX")])
def test_failed_poll_does_not_advance_the_cursor(rig: Rig, status: int, reason: str) -> None:
    rig.fake.add(ACC, [row(T0 - 5, tx="0x1")])
    rig.poll()
    before = rig.cursor()
    rig.fake.add(ACC, [row(T0 - 4, tx="0x2")])
    rig.fake.fail_next(status, retry_after="3" if status == 429 else None)
    rig.poll()
    assert rig.cursor() == before and len(rig.stream()) == 1
    assert rig.reasons()[reason] == 1
    if status == 429:
        assert rig.svc.backoff_until_ms - rig.clock.wall_ms() >= 3000  # Retry-After honoured
        rig.poll()
        assert len(rig.stream()) == 1, "polled during the backoff"
        rig.clock.advance(3000)
    rig.poll()
    assert [s["tx_hash"] for s in rig.stream()] == ["0x1", "0x2"]


def test_429_backoff_grows_and_stops_the_whole_round(r: Redis, fake: FakeDataApi, version: str) -> None:
    other = "0x00000000000000000000000000000000000de111"
    g = Rig(r, fake, version, leaders=[LeaderTarget(account=ACC), LeaderTarget(account=other)], backoff_max_s=60)
    fake.fail_next(429, count=3)
    waits = []
    for _ in range(3):
        fake.requests.clear()
        g.clock.advance(120_000)
        g.svc.step()
        assert len(fake.requests) == 1  # the second leader is not polled into a 429
        waits.append(g.svc.backoff_until_ms - g.clock.wall_ms())
    assert waits[0] < waits[1] < waits[2]
    g.api.close()


def test_token_bucket_paces_requests(r: Redis, fake: FakeDataApi, version: str) -> None:
    other = "0x00000000000000000000000000000000000de111"
    g = Rig(r, fake, version, page_size=1, rate_limit_per_10s=2,
            leaders=[LeaderTarget(account=ACC), LeaderTarget(account=other)])
    fake.add(ACC, [row(T0 - 100 + i, tx=f"0x{i}") for i in range(6)])
    start = g.clock.wall_ms()
    g.svc.step()
    assert len(g.stream()) == 6
    n = len(fake.requests)  # v1: limits 1, 4, 16 for ACC; v2: 6 pages of 1; then 1 for the other leader
    assert n == (7 if version == "v2" else 4) and g.clock.wall_ms() - start >= (n - 2) * 5000  # 2 at once, then one per 5 s
    g.api.close()


def crash_after_commit(svc: SignalIngest) -> None:
    real = svc.store.commit

    def commit(*a: Any, **kw: Any) -> Any:
        real(*a, **kw)
        raise ConnectionError("process died right after the publish")
    svc.store.commit = commit  # type: ignore[method-assign]


def crash_before_commit(svc: SignalIngest) -> None:
    def commit(*a: Any, **kw: Any) -> Any:
        raise ConnectionError("process died right before the publish")
    svc.store.commit = commit  # type: ignore[method-assign]


@pytest.mark.parametrize("crash", [crash_before_commit, crash_after_commit])
def test_crash_around_the_publish_neither_loses_nor_duplicates(r: Redis, fake: FakeDataApi, crash: Any,
                                                               version: str) -> None:
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 9, tx="0x1"), row(T0 - 8, price=2, tx="0xbad"),
                   row(T0 - 8, tx="0x3")])
    g = Rig(r, fake, version)
    crash(g.svc)
    with pytest.raises(ConnectionError):
        g.poll()
    g.api.close()
    fake.add(ACC, [row(T0 - 8, tx="0x3"), row(T0 - 7, tx="0x2")])  # one more identical fill at the cursor second
    g2 = Rig(r, fake, version)  # the restarted process
    g2.poll()
    g2.poll()
    assert [s["tx_hash"] for s in g2.stream()] == ["0x1", "0x1", "0x3", "0x3", "0x2"]
    assert len({s["signal_id"] for s in g2.stream()}) == 5
    assert [d["reason"] for d in g2.dead()] == ["BAD_PRICE"]
    assert r.hget(keys.SUMMARY, "signals") == "5"  # counted in the same atomic step as the publish
    g2.api.close()


def test_a_stale_instance_cannot_publish_over_a_newer_cursor(r: Redis, fake: FakeDataApi) -> None:
    fake.add(ACC, [row(T0 - 9, tx="0x1")])
    a, b = Rig(r, fake), Rig(r, fake)
    stored = a.svc.store.load(ACC)
    b.poll()
    from services.signal_ingest.cursor import make_rows, plan_first_run
    p = plan_first_run(T0 - 3600, make_rows([row(T0 - 9, tx="0x1")]))
    res = a.svc.store.commit(ACC, 0 if stored is None else stored.gen, p.cursor, [{"signal_id": "dup"}], [])
    assert not res.ok and res.gen == 1
    assert [s["tx_hash"] for s in a.stream()] == ["0x1"]
    a.api.close()
    b.api.close()


def test_polls_only_when_due_and_heartbeats_every_step(rig: Rig) -> None:
    rig.svc.step()
    n = len(rig.fake.requests)
    rig.clock.advance(500)
    rig.svc.step()
    assert len(rig.fake.requests) == n  # 0.5 s < poll_interval_s
    assert rig.r.hget(keys.service("signal_ingest-test"), "last_ms") == str(rig.clock.wall_ms())
    rig.clock.advance(500)
    rig.svc.step()
    assert len(rig.fake.requests) == n + 1


def test_publish_refused_before_any_write_when_a_key_has_the_wrong_type(rig: Rig) -> None:
    rig.fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 8, price=2, tx="0xbad")])
    rig.r.set(keys.SIG_DEAD, "not a stream")  # the dead-letter XADD would fail after the signal XADD
    rig.poll()
    assert rig.r.xlen(keys.SIG_STREAM) == 0 and rig.cursor() == {}
    assert rig.r.hget(keys.ERRORS, "PUBLISH_REFUSED") == "1"
    rig.r.delete(keys.SIG_DEAD)
    rig.poll()
    assert [s["tx_hash"] for s in rig.stream()] == ["0x1"] and len(rig.dead()) == 1


def test_redis_killed_and_restarted_after_a_publish_keeps_exactly_once(redis_server: Any, fake: FakeDataApi, version: str) -> None:
    r = Redis.from_url(redis_server.url, decode_responses=True)
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 9, tx="0x1")])
    g = Rig(r, fake, version)
    g.poll()
    redis_server.stop(kill=True)
    redis_server.start()  # same port and AOF directory
    r2 = Redis.from_url(redis_server.url, decode_responses=True)
    g2 = Rig(r2, fake, version)
    fake.add(ACC, [row(T0 - 9, tx="0x1"), row(T0 - 5, tx="0x2")])
    g2.poll()
    g2.poll()
    assert [s["tx_hash"] for s in g2.stream()] == ["0x1", "0x1", "0x1", "0x2"]
    for c in (g, g2):
        c.api.close()
    r.close()
    r2.close()
