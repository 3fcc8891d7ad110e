"""Leases and fencing seen from maker_worker (SPEC S2 invariants): a worker whose lease was taken over
places nothing more, the new holder waits out the old lease and cancels before quoting, SIGTERM
cancels orders and hands tokens back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import ReplayClock, publish_replay_clock
from libs.common.leases import LeaseLost
from services.maker_worker.models import Place
from tests.conftest import REPO
from tests.worker_fakes import T, Rig

D = Decimal


def test_lost_lease_stops_the_old_worker_and_the_new_holder_cancels_before_quoting(r: Redis) -> None:
    old = Rig(r, "w-old")
    old.offer()
    old.set_book("0.50", "0.51")
    old.step()
    (old_order,) = old.venue.live(T)
    old_grant = old.worker.held[T].grant

    # w-old stalls (no renew) past its TTL; the scheduler re-offers the expired lease.
    old.clock.advance(10_001)
    r.zadd(keys.SCHED_OFFERS, {T: old.clock.wall_ms()})
    new = Rig(r, "w-new", venue=old.venue, clock=old.clock)
    new.book = old.book
    new.step()
    grant = new.worker.held[T].grant
    assert grant.fence > old_grant.fence and grant.prev_worker == "w-old"
    assert old.venue.live(T) == [old_order]  # still waiting: old expiry + http timeout not reached
    assert not any(name == "cancel_token" for name, _ in old.venue.calls)
    new.step(ms=5_000)  # past prev_expires_ms + http_timeout (5 s)
    assert ("cancel_token", (T,)) in old.venue.calls
    assert old_order.status == "CANCELED"
    live = old.venue.live(T)
    assert len(live) == 1 and live[0].id != old_order.id
    assert new.events("TAKEOVER_CANCELED")

    # w-old wakes up: its fenced write is refused, so it sends nothing to the venue.
    posted_before = len(old.venue.posted)
    with pytest.raises(LeaseLost):
        old.worker.desk.place(old_grant, Place("BUY", D("0.50"), D(10), "entry"), D("0.01"), False)
    old.step()
    assert len(old.venue.posted) == posted_before
    assert T not in old.worker.held and old.events("LEASE_LOST")


def test_fenced_intent_is_written_before_the_post(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    seen: list[str] = []
    post = rig.venue.post_signed

    def spy(order, post_only):  # type: ignore[no-untyped-def]
        seen.append(r.hget(keys.orders(T), order.order_id) or "")
        return post(order, post_only)

    rig.venue.post_signed = spy  # type: ignore[method-assign]
    rig.step()
    assert len(seen) == 1 and '"status":"PENDING"' in seen[0]


def test_shutdown_cancels_orders_and_hands_the_token_back(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    assert len(rig.venue.live(T)) == 1
    rig.worker.shutdown()
    assert rig.venue.live(T) == []
    (ev,) = rig.events("SHUTDOWN_CANCEL")
    assert ev["canceled"] == "1" and ev["tokens"] == "1"
    lease = r.hgetall(keys.lease(T))
    assert lease and lease["worker"] == ""  # unheld, for another worker
    assert r.zscore(keys.SCHED_OFFERS, T) is not None  # and findable again
    assert all(x["status"] == "CANCELED" for x in rig.records())
    assert r.zscore(keys.WORKERS, "w1") is None


def test_sigterm_stops_the_process_cleanly_within_seconds(redis_url: str, r: Redis) -> None:
    publish_replay_clock(r, ReplayClock(int(time.time() * 1000), 1_700_000_000_000, 1.0))
    env = {**os.environ, "PB_REDIS_URL": redis_url, "PB_MODE": "paper", "PB_WORKER_ID": "w-proc",
           "PB_CLOB_URL": "http://127.0.0.1:9", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "services.maker_worker"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while r.zscore(keys.WORKERS, "w-proc") is None:
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "SHUTDOWN_CANCEL"]
    assert events and events[0]["worker"] == "w-proc"


def test_sigterm_while_waiting_for_the_replay_clock_exits_quickly(redis_url: str, r: Redis) -> None:
    env = {**os.environ, "PB_REDIS_URL": redis_url, "PB_MODE": "paper", "PB_CLOB_URL": "http://127.0.0.1:9",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "services.maker_worker"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not any(c.get("name") == "maker_worker" for c in r.client_list()):
            assert proc.poll() is None and time.monotonic() < deadline, "worker did not connect"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_lease_is_taken_before_the_venue_accepts_the_worker(r: Redis) -> None:
    """The first trading call must not pay for authentication (deriving API credentials took half a
    second against the venue, 50 s of a 100x replay): the worker connects first and takes no lease
    until that works, journaling the failure once rather than every step."""
    from libs.common.venue import VenueUnavailable

    rig = Rig(r)
    rig.venue.fail_next("connect", VenueUnavailable(0, "ConnectError: refused"), count=3)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step(n=3)
    assert T not in rig.worker.held and not rig.venue.posted
    assert [e["attempts"] for e in rig.events("VENUE_CONNECT_FAILED")] == ["1"]
    rig.step()
    assert rig.events("VENUE_CONNECTED")[0]["attempts"] == "4"
    assert T in rig.worker.held and len(rig.venue.live(T)) == 1
    assert [name for name, _ in rig.venue.calls].count("connect") == 4
