"""md_gateway under faults (issue 3, second "done when"): a cut connection, a half-open one, a changed
subscription set, a missed dump and silent drift. After each, the Redis books equal the REST ``/book``
within the verify interval, and a reader never sees a seq go backwards.

Each test starts from 16 of the capture's 28 tokens subscribed over two shards (10 tokens per
connection at most) with 30 frames played. Time moves only by ``gw.advance``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from tests.md_fakes import FakeMarket, Harness, SeqWatcher, books_equal_rest, capture_payloads, wait_for

VERIFY_MS = 120_000


@dataclass
class Env:
    r: Redis
    fake: FakeMarket
    gw: Harness
    watcher: SeqWatcher
    first: list[str]
    later: list[str]

    def equal(self, tokens: list[str], what: str) -> None:
        wait_for(lambda: not books_equal_rest(self.r, self.fake, tokens), 10, what)

    def finish(self) -> None:
        assert self.watcher.finish() == [] and self.watcher.reads > 3


@pytest.fixture()
def env(r: Redis, redis_url: str) -> Iterator[Env]:
    fake = FakeMarket(capture_payloads()).start()
    tokens = sorted(fake.books)
    r.sadd(keys.MD_SUBS, *tokens[:16])
    gw = Harness(r, fake, max_assets_per_connection=10).start()
    watcher = SeqWatcher(redis_url, tokens)
    watcher.start()
    e = Env(r, fake, gw, watcher, tokens[:16], tokens[16:])
    try:
        wait_for(gw.settled, 10, "two shards open")
        assert len(gw.links()) == 2
        fake.play(30)
        e.equal(e.first, "books after 30 frames")
        yield e
    finally:
        watcher.finish()
        gw.close()
        fake.stop()


def test_a_cut_connection_is_reconnected_and_its_dump_resyncs_the_books(env: Env) -> None:
    env.fake.drop()
    wait_for(lambda: all(c.status == "down" for c in env.gw.links()), 5, "the cut noticed")
    assert all(env.r.hget(keys.md_book(t), "status") == "resync" for t in env.first)
    env.fake.play(20)  # missed by the gateway
    env.gw.advance(600)  # first reconnect waits 250..500 ms
    wait_for(env.gw.settled, 10, "reconnected")
    env.equal(env.first, "books after the cut")
    assert env.gw.count("WS_DISCONNECT") == 2 and env.gw.svc.shards.reconnects == 2
    env.finish()


def test_a_half_open_connection_is_found_by_its_missing_pong_and_replaced(env: Env) -> None:
    env.fake.silence()  # sockets stay open but nothing more arrives; only the PONG deadline can tell
    env.fake.play(20)
    env.gw.advance(10_000)
    wait_for(lambda: all(c.ping_sent_ms for c in env.gw.links()), 5, "PINGs sent")
    env.gw.advance(19_999)
    wait_for(lambda: env.fake.pings >= 4, 5, "PINGs keep going out while waiting")
    assert env.gw.count("WS_HALF_OPEN") == 0 and env.gw.settled() is False
    env.gw.advance(1)
    wait_for(lambda: env.gw.count("WS_HALF_OPEN") == 2, 5, "half-open detected")
    env.gw.advance(600)
    wait_for(env.gw.settled, 10, "replaced the half-open links")
    env.equal(env.first, "books after the half-open links were replaced")
    env.finish()


def test_subscription_changes_mid_stream_and_a_missing_dump_falls_back_to_rest(env: Env) -> None:
    gone, arriving, no_dump = env.first[:4], env.later[:8], env.later[8:]
    env.r.srem(keys.MD_SUBS, *gone)
    env.r.sadd(keys.MD_SUBS, *arriving)
    env.gw.advance(600)
    wanted = env.first[4:] + arriving
    wait_for(lambda: env.fake.subscribed() == set(wanted), 10, "the fake sees the new subscription set")
    env.fake.play(20)
    env.equal(wanted, "books after the subscription change")
    assert sorted(len(c.assets) for c in env.gw.links()) == [10, 10]
    assert all(env.r.hget(keys.md_book(t), "status") == "resync" for t in gone)

    env.fake.skip_dump = set(no_dump)  # a third shard whose dump never comes
    env.r.sadd(keys.MD_SUBS, *no_dump)
    env.gw.advance(600)
    wait_for(lambda: set(no_dump) <= env.fake.subscribed(), 10, "subscribed without a dump")
    assert books_equal_rest(env.r, env.fake, no_dump) == no_dump
    env.gw.advance(2_000)  # snapshot_grace_s
    env.equal(wanted + no_dump, "REST snapshots for the tokens without a dump")
    assert all(env.r.hget(keys.md_book(t), "source") == "rest" for t in no_dump) and len(env.gw.links()) == 3
    env.fake.play()
    env.equal(wanted + no_dump, "books at the end of the tape")
    status = env.gw.status()
    assert status["wanted"] == "24" and status["subscribed"] == "24" and status["with_book"] == "24"
    assert status["missing_book"] == "0" and status["missing_subscription"] == "0"
    env.finish()


def test_quiet_drift_is_found_and_repaired_by_the_verify_round(env: Env) -> None:
    env.fake.play()
    env.equal(env.first, "books at the end of the tape")
    env.gw.advance(VERIFY_MS)  # round 1: tokens quiet since the start (none: every token had its dump)
    wait_for(lambda: env.gw.count("VERIFY_ROUND") == 1, 5, "the first verify round")
    wait_for(env.gw.settled, 5, "the PONG after the jump")
    victim, other = env.first[0], env.first[1]
    env.fake.set_level(victim, "BUY", env.fake.books[victim].best()[0], "777", send=False)
    assert books_equal_rest(env.r, env.fake, [victim]) == [victim]
    env.gw.advance(VERIFY_MS)  # round 2: every token has been quiet since round 1
    env.equal(env.first, "the drift repaired by the verify round")
    assert env.r.hget(keys.md_book(victim), "source") == "rest" and env.gw.count("BOOK_DRIFT") == 1
    wait_for(lambda: env.gw.svc.core.counts["verified"] >= 15, 5, "the other books verified")
    assert env.r.hget(keys.md_book(other), "min_order_size") == "5"  # learnt from REST: a publish
    seq = int(env.r.hget(keys.md_book(other), "seq"))
    wait_for(env.gw.settled, 5, "the PONG after the second jump")
    env.gw.advance(VERIFY_MS)  # round 3: nothing changed; the quiet books are stamped
    wait_for(lambda: env.r.hget(keys.md_book(other), "verified_ts_ms") == str(env.gw.clock.wall_ms()), 5,
             "verified_ts_ms stamped on a quiet book")
    assert int(env.r.hget(keys.md_book(other), "seq")) == seq  # a stamp is not a book change
    env.finish()
