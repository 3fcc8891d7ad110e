"""user_feed against the in-process paper venue (real sockets, engine, REST) and a real Redis: the
authenticated channel, our orders and trades in ``pb:user:{token}``, PING/PONG and a half-open link,
a cut channel and the REST backfill that recovers what happened while it was down, and a malformed
message that is counted and journaled without killing the link. Deadlines, no sleeps to wait."""
from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest
from pydantic import SecretStr
from redis import Redis

from libs.common import keys, runtime
from libs.common.clock import SystemClock
from libs.common.journal import Journal
from libs.common.tapes import load_markets, read_tape
from libs.common.venue import VenueClient
from services.user_feed.config import UserFeedSettings
from services.user_feed.service import UserFeed
from services.venue_sim.__main__ import Venue
from services.venue_sim.config import VenueSettings

REPO = Path(__file__).resolve().parents[2]
ENRICO = REPO / "data" / "tapes" / "enrico-2026-09-24"
FRAMES = list(read_tape(ENRICO / "frames.jsonl"))
A = next(t for m in load_markets(ENRICO / "markets.json") for t in m.token_ids if t.startswith("1805475964"))
KEY = SecretStr("0x" + "4f" * 32)  # throwaway signing key


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


@pytest.fixture()
def rig(r: Redis, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A venue at the tape's first frame, a venue client of our account, and a feed running in a thread."""
    venue = Venue(VenueSettings(tape=ENRICO, leader_files=[], venue_http_port=0, venue_ws_port=0, redis_url=redis_url,
                                audit_log=tmp_path / "audit.jsonl", start_delay_ms=600_000), r)
    venue.start()
    venue.replay.advance_to(FRAMES[0].recv_ms)
    url = f"http://127.0.0.1:{venue.http_port}"
    client = VenueClient(url, KEY, wallet_type="EOA")
    settings = UserFeedSettings(redis_url=redis_url, clob_url=url, ws_user_url=f"ws://127.0.0.1:{venue.ws_port}/ws/user",
                                private_key=KEY, ping_interval_s=0.3, pong_timeout_s=1.0, backoff_min_s=0.6,
                                backoff_max_s=1.0, http_timeout_s=5.0)
    clock = SystemClock()
    feed = UserFeed(settings, r, clock, Journal(r, "user_feed", clock), "user_feed-test",
                    VenueClient(url, KEY, wallet_type="EOA"))
    stop = threading.Event()
    thread = threading.Thread(target=runtime.run_loop, args=(feed.step, stop, clock, 0.001), daemon=True)
    thread.start()
    try:
        yield {"venue": venue, "client": client, "feed": feed, "api": httpx.Client(base_url=url, timeout=5),
               "audit": tmp_path / "audit.jsonl"}
    finally:
        stop.set()
        thread.join(5)
        feed.close()
        client.close()
        venue.stop()


def entries(r: Redis, token: str) -> list[dict[str, str]]:
    return [f for _, f in r.xrange(keys.user_stream(token))]


def health(r: Redis) -> dict[str, str]:
    return r.hgetall(keys.USER_FEED)


def post(client: VenueClient, price: str, post_only: bool) -> str:
    signed = client.sign_limit(A, "BUY", D(price), D(5), D("0.01"), False)
    client.post_signed(signed, post_only)
    return signed.order_id


def test_orders_and_trades_reach_the_token_stream_and_a_cut_channel_loses_nothing(rig: dict[str, Any], r: Redis) -> None:
    wait_until(lambda: health(r).get("connected") == "1" and health(r).get("backfills") == "1", what="first backfill")
    resting = post(rig["client"], "0.62", post_only=True)
    got = wait_until(lambda: [e for e in entries(r, A) if e.get("order_id") == resting], what="PLACEMENT entry")
    assert got[0]["kind"] == "order" and got[0]["status"] == "LIVE" and got[0]["source"] == "ws"
    taker = post(rig["client"], "0.66", post_only=False)
    trade = wait_until(lambda: [e for e in entries(r, A) if e.get("kind") == "trade" and e["order_id"] == taker],
                       what="trade entry")[0]
    assert (trade["side"], trade["price"], trade["size"], trade["source"]) == ("BUY", "0.66", "5", "ws")
    assert trade["trade_status"] in ("MATCHED", "MINED", "CONFIRMED")
    wait_until(lambda: int(health(r).get("last_pong_ms") or 0) > 0, what="a PONG")
    def settled() -> set[str] | None:
        rig["venue"].engine.sweep()  # the venue process sweeps periodically; here the test does
        st = {e["trade_status"] for e in entries(r, A) if e.get("trade_id") == trade["trade_id"]}
        return st if {"MINED", "CONFIRMED"} <= st else None
    statuses = wait_until(settled, what="settlement updates")
    assert statuses == {"MATCHED", "MINED", "CONFIRMED"}, "each settlement step of the trade is forwarded"

    # cut only the user channel; a trade happens while it is down; the backfill publishes it
    r.sadd(keys.SCHED_TRACKED, A)
    assert rig["api"].post("/_sim/ws/drop", json={"channel": "user"}).json()["dropped"] == 1
    wait_until(lambda: health(r).get("connected") == "0", what="disconnect seen")
    missed = post(rig["client"], "0.66", post_only=False)
    rest = wait_until(lambda: [e for e in entries(r, A) if e.get("order_id") == missed and e["source"] == "rest"],
                      what="backfilled trade")
    audit = [orjson.loads(line) for line in rig["audit"].read_bytes().splitlines()]
    fills = {(a["trade_id"], D(a["size"])) for a in audit if a["kind"] == "fill" and a["order_id"] == missed}
    assert fills and {(e["trade_id"], D(e["size"])) for e in rest} == fills, "every fill of the outage, by trade id"
    h = wait_until(lambda: health(r) if health(r).get("backfills") == "2" else None, what="second backfill")
    assert int(h["reconnects"]) >= 1 and h["backfill_pending"] == "0" and h["connected"] == "1"
    assert int(r.hget(keys.USER_SEEN, A)) > 0


def test_a_malformed_message_is_counted_and_journaled_and_the_link_lives_on(rig: dict[str, Any], r: Redis) -> None:
    feed: UserFeed = rig["feed"]
    wait_until(lambda: health(r).get("connected") == "1", what="connected")
    feed.inbound.put(("frame", 0, feed.conn.gen, b'{"event_type": "order", "id": "x", "price": "abc"}',
                      int(time.time() * 1000), 0))
    wait_until(lambda: health(r).get("parse_errors") == "1", what="parse error counted")
    (ev,) = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "USER_FEED_PARSE_ERROR"]
    assert '"price": "abc"' in ev["text"]
    resting = post(rig["client"], "0.62", post_only=True)
    wait_until(lambda: [e for e in entries(r, A) if e.get("order_id") == resting], what="events still flow")
    assert health(r)["reconnects"] == "0"


def test_a_half_open_link_is_detected_by_the_pong_deadline_and_replaced(rig: dict[str, Any], r: Redis) -> None:
    wait_until(lambda: health(r).get("connected") == "1", what="connected")
    rig["api"].post("/_sim/ws/silence", json={"seconds": 1.5})
    wait_until(lambda: r.hget(keys.COUNTS, "USER_FEED_PONG_TIMEOUT"), what="PONG timeout")
    wait_until(lambda: health(r).get("connected") == "1" and int(health(r)["reconnects"]) >= 1
               and health(r)["backfills"] == "2", timeout=15, what="reconnected and backfilled")
