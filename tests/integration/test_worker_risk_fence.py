"""Fence before every cancel (SPEC S2; issue 7 item 6): a worker whose lease passed to another sends
NOTHING to the venue for that token -- not at SIGTERM shutdown, not in halt's cancel-all, not in a
re-quote's cancel -- and writes none of its Redis records; the account-wide exposure entry of the
token is the new holder's recomputed truth, which the old holder cannot overwrite."""
from __future__ import annotations

from decimal import Decimal

import pytest
from redis import Redis

from libs.common import keys
from libs.common.exposure import ExposureLedger
from libs.common.leases import LeaseLost
from tests.worker_fakes import T, Rig

D = Decimal
SENDS = ("cancel", "cancel_token", "post_signed", "sign_limit")


def taken_over(r: Redis) -> tuple[Rig, Rig]:
    """w-old quotes a BUY, stalls past its lease; w-new takes over, cancels the token, quotes its own."""
    old = Rig(r, "w-old")
    old.offer()
    old.set_book("0.50", "0.51")
    old.step()
    old.clock.advance(10_001)
    r.zadd(keys.SCHED_OFFERS, {T: old.clock.wall_ms()})
    new = Rig(r, "w-new", venue=old.venue, clock=old.clock)
    new.book = old.book
    new.step()
    new.step(ms=5_000)  # past the old lease + http timeout: clean-up, reconcile, quote
    assert new.events("TAKEOVER_CANCELED") and len(new.venue.live(T)) == 1
    assert T in old.worker.held, "the old worker has not noticed yet"
    return old, new


def sends_since(rig: Rig, n: int) -> list[tuple[str, tuple[object, ...]]]:
    return [c for c in rig.venue.calls[n:] if c[0] in SENDS]


def test_shutdown_of_a_superseded_worker_sends_nothing_and_touches_no_record(r: Redis) -> None:
    old, new = taken_over(r)
    (theirs,) = new.venue.live(T)
    records, calls = r.hgetall(keys.orders(T)), len(old.venue.calls)
    old.worker.shutdown()
    assert old.venue.calls[calls:] == [], "the superseded worker talked to the venue"
    assert theirs.status == "LIVE" and r.hgetall(keys.orders(T)) == records
    (ev,) = old.events("SHUTDOWN_SKIPPED_NOT_HOLDER")
    assert ev["fence"] == "1" and r.hget(keys.lease(T), "worker") == "w-new"


def test_shutdown_of_the_holder_cancels_its_own_orders_one_by_one_not_the_token(r: Redis) -> None:
    _, new = taken_over(r)
    (ours,) = new.venue.live(T)
    calls = len(new.venue.calls)
    new.worker.shutdown()
    sent = sends_since(new, calls)
    assert sent == [("cancel", (ours.id,))], sent  # never cancel_token: it would hit others' orders
    assert ours.status == "CANCELED" and r.zscore(keys.SCHED_OFFERS, T) is not None
    assert ExposureLedger(r).entries()[T].exposure_micro == 0, "the cancelled entry still counts against the cap"


def test_halt_cancel_all_of_a_superseded_worker_sends_nothing(r: Redis) -> None:
    old, new = taken_over(r)
    (theirs,) = new.venue.live(T)
    r.set(keys.HALT, "manual")
    calls = len(old.venue.calls)
    old.worker.step()
    assert sends_since(old, calls) == [] and theirs.status == "LIVE"
    assert T not in old.worker.held and old.events("LEASE_LOST")


def test_requote_cancel_of_a_superseded_worker_is_fenced(r: Redis) -> None:
    old, new = taken_over(r)
    (theirs,) = new.venue.live(T)
    new.set_book("0.47", "0.48")  # the old worker's BUY at 0.50 no longer fits: it wants to re-price
    calls = len(old.venue.calls)
    old.worker.on_books([T])
    assert sends_since(old, calls) == [] and theirs.status == "LIVE"
    (ev,) = old.events("LEASE_LOST")
    assert ev["fence"] == "1" and T not in old.worker.held


def test_takeover_overwrites_the_dead_holders_exposure_and_the_old_holder_cannot_write_it_back(r: Redis) -> None:
    old, new = taken_over(r)
    ledger = ExposureLedger(r)
    (theirs,) = new.venue.live(T)
    entry = ledger.entries()[T]
    assert entry.fence == 2 and entry.exposure_micro == int(theirs.price * theirs.size * 1_000_000)
    stale = old.worker.held[T]  # the old worker wakes with its stale state (a BUY the venue cancelled)
    assert stale.state is not None and stale.state.orders
    old.worker.risk.forget(T)
    with pytest.raises(LeaseLost):
        old.worker.risk.sync(stale)  # what its step would write: refused by the ledger's fence
    old.worker.on_books([T])
    old.worker.step()
    assert ledger.entries()[T] == entry, "the old holder overwrote the new holder's exposure"
