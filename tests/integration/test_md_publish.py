"""md_gateway book_publish.lua and the Publisher, on a real Redis: seq only increases (also across a
gateway restart and a Redis restart), every top change lands in the stream in order."""
from __future__ import annotations

import pytest
from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys
from services.md_gateway.publish import Publisher
from services.md_gateway.state import Publish
from tests.conftest import RedisServer

T = "7087"


def top(bid: str, ask: str, ts: int) -> list[str]:
    return ["best_bid", bid, "best_ask", ask, "bid_size", "10", "ask_size", "5", "exch_ts_ms", str(ts),
            "recv_ts_ms", str(ts + 1), "source", "ws"]


def test_each_publish_bumps_seq_and_top_changes_go_to_the_stream(r: Redis) -> None:
    pub = Publisher(r, maxlen=1000)
    pub.add([Publish(T, True, "book", top("0.4", "0.6", 1) + ["status", "ok", "tick_size", "0.01"]),
             Publish(T, False, "last_trade_price", ["last_trade_price", "0.5"]),
             Publish(T, True, "price_change", top("0.41", "0.6", 2))], [(T, 99)], [(T, "0.001")])
    assert pub.flush() == 3
    h = r.hgetall(keys.md_book(T))
    assert h["seq"] == "3" and h["best_bid"] == "0.41" and h["last_trade_price"] == "0.5"
    assert h["status"] == "ok" and h["verified_ts_ms"] == "99" and r.hget(keys.MD_TICK, T) == "0.001"
    entries = r.xrange(keys.md_stream(T))
    assert [e[1] for e in entries] == [
        {"seq": "1", "best_bid": "0.4", "best_ask": "0.6", "bid_size": "10", "ask_size": "5", "exch_ts_ms": "1",
         "recv_ts_ms": "2", "event": "book"},
        {"seq": "3", "best_bid": "0.41", "best_ask": "0.6", "bid_size": "10", "ask_size": "5", "exch_ts_ms": "2",
         "recv_ts_ms": "3", "event": "price_change"}]


def test_seq_survives_a_new_gateway_and_a_script_flush(r: Redis) -> None:
    first = Publisher(r, 1000)
    first.add([Publish(T, True, "book", top("0.4", "0.6", 1))], [], [])
    first.flush()
    r.script_flush()  # a restarted Redis has no scripts: SCRIPT LOAD ahead of the EVALSHAs covers it
    second = Publisher(r, 1000)
    second.add([Publish(T, True, "price_change", top("0.42", "0.6", 2))], [], [])
    second.flush()
    assert r.hget(keys.md_book(T), "seq") == "2" and second.failed == []


def test_the_stream_is_capped(r: Redis) -> None:
    pub = Publisher(r, maxlen=10)
    pub.add([Publish(T, True, "price_change", top(f"0.{i % 90 + 10}", "0.99", i)) for i in range(500)], [], [])
    pub.flush()
    assert r.xlen(keys.md_stream(T)) < 200 and r.hget(keys.md_book(T), "seq") == "500"


def test_a_refused_publish_is_reported_and_the_others_still_apply(r: Redis) -> None:
    r.set(keys.md_book("bad"), "not a hash")
    pub = Publisher(r, 1000)
    pub.add([Publish("bad", True, "book", top("0.4", "0.6", 1)), Publish(T, True, "book", top("0.4", "0.6", 1))],
            [], [])
    pub.flush()
    assert [p.token_id for p, _ in pub.failed] == ["bad"] and "WRONGTYPE" in pub.failed[0][1]
    assert r.hget(keys.md_book(T), "seq") == "1"


def test_publishes_wait_out_a_redis_outage_and_arrive_in_order(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=1)
    pub = Publisher(client, 1000)
    pub.add([Publish(T, True, "book", top("0.40", "0.6", 1))], [], [])
    pub.flush()
    redis_server.stop()  # SIGTERM: Redis writes its append-only file before exiting
    pub.add([Publish(T, True, "price_change", top(p, "0.6", i)) for i, p in enumerate(("0.41", "0.42"), 2)], [], [])
    with pytest.raises(RedisError):
        pub.flush()
    assert len(pub.pending) == 2
    redis_server.start()  # appendonly: the hash and its seq come back
    pub.add([Publish(T, True, "price_change", top("0.43", "0.6", 4))], [], [])
    assert pub.flush() == 3
    bids = [e[1]["best_bid"] for e in client.xrange(keys.md_stream(T))]
    seqs = [int(e[1]["seq"]) for e in client.xrange(keys.md_stream(T))]
    assert bids == ["0.40", "0.41", "0.42", "0.43"] and seqs == sorted(seqs) and seqs[-1] == 4
    client.close()


def test_a_backlog_past_its_cap_is_dropped_and_flagged_for_a_full_republish(r: Redis) -> None:
    pub = Publisher(r, 1000, max_pending=3)
    pub.add([Publish(T, True, "price_change", top("0.4", "0.6", i)) for i in range(3)], [], [])
    assert not pub.overflowed and len(pub.pending) == 3
    pub.add([Publish(T, True, "price_change", top("0.41", "0.6", 9))], [], [])
    assert pub.overflowed and pub.pending == []
