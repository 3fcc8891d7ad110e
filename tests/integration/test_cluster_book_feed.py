"""The workers' book feed on a real 3-master Redis Cluster: one read per slot (a single XREAD over
several tokens' streams is CROSSSLOT there), and a blocked wait sees a change on any slot at once."""
from __future__ import annotations

import threading
import time

from redis import RedisCluster
from redis.crc import key_slot

from libs.common import keys
from services.maker_worker.book_feed import BookFeed
from tests.cluster import cluster, rc  # noqa: F401 - pytest fixtures

TOKENS = [str(10**76 + i) for i in range(12)]


def _change(r: RedisCluster, token: str) -> None:
    r.xadd(keys.md_stream(token), {"seq": "1", "event": "price_change"})


def test_poll_sees_changes_on_every_node_once(rc: RedisCluster) -> None:  # noqa: F811
    assert len({rc.get_node_from_key(keys.md_stream(t)).name for t in TOKENS}) == 3
    _change(rc, TOKENS[0])  # before tracking: not a change
    feed = BookFeed(rc)
    for t in TOKENS:
        feed.track(t)
    assert feed.poll() == set()
    for t in TOKENS[::2]:
        _change(rc, t)
    assert feed.poll() == set(TOKENS[::2])
    assert feed.poll() == set()  # positions moved past what was seen
    feed.untrack(TOKENS[0])
    _change(rc, TOKENS[0])
    _change(rc, TOKENS[1])
    assert feed.wait(50) == {TOKENS[1]}


def test_wait_wakes_for_a_change_on_any_slot(rc: RedisCluster) -> None:  # noqa: F811
    feed = BookFeed(rc)
    for t in TOKENS:
        feed.track(t)
    assert feed.wait(60) == set()  # nothing changed: the whole block passes
    for target in (TOKENS[3], TOKENS[7], TOKENS[11]):
        timer = threading.Timer(0.05, _change, (rc, target))
        timer.start()
        started = time.monotonic()
        got = feed.wait(5_000)
        timer.join()
        assert got == {target}
        assert time.monotonic() - started < 2.5, "the wait did not end on the change"


def _same_slot_as(token: str) -> str:
    """Another token id whose md stream hashes to the same cluster slot as ``token``'s."""
    want = key_slot(keys.md_stream(token).encode())
    return next(str(n) for n in range(1, 10**6) if key_slot(keys.md_stream(str(n)).encode()) == want)


def test_a_token_tracked_into_a_slot_already_waited_on_is_seen(rc: RedisCluster) -> None:  # noqa: F811
    a = TOKENS[0]
    b = _same_slot_as(a)
    feed = BookFeed(rc)
    feed.track(a)
    assert feed.wait(30) == set()  # a read of a's slot is now outstanding
    feed.track(b)
    _change(rc, b)
    assert feed.wait(2_000) == {b}  # the slot's read was issued again with b in it
    feed.untrack(a)
    feed.untrack(b)
    assert feed.wait(10) == set() and feed.reads is not None and feed.reads.out == {}  # nothing left open


def test_poll_between_waits_never_moves_a_position_back(rc: RedisCluster) -> None:  # noqa: F811
    feed = BookFeed(rc)
    for t in TOKENS[:3]:
        feed.track(t)
    assert feed.wait(20) == set()  # reads outstanding with the old positions
    _change(rc, TOKENS[1])
    assert feed.poll() == {TOKENS[1]}
    seen = dict(feed.last_ids)
    feed.wait(200)  # the outstanding read returns the entry poll saw: at most a repeated notice
    assert feed.last_ids == seen
    _change(rc, TOKENS[2])
    assert TOKENS[2] in feed.wait(2_000)
    feed.close()
