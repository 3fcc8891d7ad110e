"""Book changes pushed to maker_worker (issue 3: "workers are pushed changes (blocking stream reads)
instead of polling", "workers see no seq go backwards"). Books are published with md_gateway's own
Publisher (book_publish.lua), so seq and stream entries are exactly what production writes.

Between steps the worker blocks in ``idle`` on its tokens' md streams; these tests never call
``step`` after the first one, so only a pushed change can explain a re-quote."""
from __future__ import annotations

import threading
from decimal import Decimal

from redis import Redis

from libs.common import keys
from tests.worker_fakes import T, Rig, gateway_publish

D = Decimal


def publish(rig: Rig, bid: str, ask: str) -> int:
    """md_gateway publishes a new top of book for T (the venue's book moves with it); returns the seq."""
    return gateway_publish(rig.r, rig.venue, T, bid, ask, rig.clock.wall_ms())


def entered(r: Redis) -> Rig:
    """A worker holding T with its entry BUY resting at 0.41 (book 0.40/0.45, seq 1)."""
    rig = Rig(r)
    rig.offer()
    publish(rig, "0.40", "0.45")
    rig.book = ("0.40", "0.45")
    rig.step()
    assert [o.price for o in rig.venue.live(T)] == [D("0.41")]
    return rig


def test_a_pushed_bid_move_reprices_the_entry_without_a_step(r: Redis) -> None:
    rig = entered(r)
    stop = threading.Event()
    post = rig.venue.post_signed

    def post_and_stop(*args, **kw):  # type: ignore[no-untyped-def]
        ack = post(*args, **kw)
        stop.set()  # the re-quote happened: end the idle wait early
        return ack

    rig.venue.post_signed = post_and_stop  # type: ignore[method-assign]
    threading.Timer(0.2, lambda: publish(rig, "0.43", "0.45")).start()  # arrives while the worker blocks
    rig.worker.idle(30.0, stop)  # without the push this blocks 30 s and places nothing
    assert stop.is_set()
    assert [(o.side, o.price) for o in rig.venue.live(T)] == [("BUY", D("0.44"))]
    assert rig.venue.posted[0].status == "CANCELED"


def test_a_push_whose_seq_was_already_acted_on_changes_nothing(r: Redis) -> None:
    rig = entered(r)
    publish(rig, "0.40", "0.45")  # seq 2: same prices
    rig.step()  # the step reads seq 2 itself
    calls = len(rig.venue.calls)
    rig.worker.on_books([T])  # a late wake-up for the entry the step already saw
    assert len(rig.venue.calls) == calls


def test_a_book_whose_seq_went_backwards_is_not_traded_on(r: Redis) -> None:
    rig = entered(r)
    seq = publish(rig, "0.40", "0.45")
    rig.step()
    # A stale or rebuilt Redis shows an older book: lower seq, and a bid that is not the market's.
    r.hset(keys.md_book(T), mapping={"seq": str(seq - 1), "best_bid": "0.30"})
    rig.venue.set_book(T, "0.42", "0.45")  # REST has the truth
    rig.worker.on_books([T])
    (ev,) = rig.events("BOOK_SEQ_BACKWARDS")
    assert ev["level"] == "error" and ev["seq"] == str(seq - 1) and ev["last_seq"] == str(seq)
    assert [o.price for o in rig.venue.live(T)] == [D("0.43")]  # priced from REST (0.42 + tick), not 0.30
    assert r.hget(keys.ERRORS, "BOOK_SEQ_BACKWARDS") == "1"
    publish(rig, "0.42", "0.45")  # the gateway goes on from the lower seq: accepted again
    rig.worker.on_books([T])
    assert len(rig.events("BOOK_SEQ_BACKWARDS")) == 1 and rig.worker.held[T].book_source == "redis"


def test_a_released_token_is_no_longer_watched(r: Redis) -> None:
    rig = entered(r)
    assert keys.md_stream(T) in rig.worker.feed.last_ids
    rig.worker.drop(T)
    assert rig.worker.feed.last_ids == {} and rig.worker.feed.wait(50) == set()
