"""maker_worker risk paths against a real Redis and the FakeVenue: balance rejects (the legacy sell
loop), dust, halt, daily loss limit, exposure cap."""
from __future__ import annotations

from decimal import Decimal

from redis import Redis

from libs.common import keys
from libs.common.venue import InsufficientBalance
from tests.worker_fakes import T, Rig, hold

D = Decimal


def test_insufficient_balance_keeps_the_reduced_size_and_ends_failed_after_n(r: Redis) -> None:
    rig = Rig(r, max_balance_failures=3)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    rig.venue.fill(rig.venue.live(T)[0].id)
    rig.venue.balances[T] = D(7)  # the venue holds fewer shares than our fills say
    rig.venue.fail_next("post_signed", InsufficientBalance(400, "not enough balance / allowance"), 3)
    rig.step(n=6)
    sizes = [a[3] for name, a in rig.venue.calls if name == "post_signed" and a[1] == "SELL"]
    assert sizes == [D(10), D(7), D(7)]  # reduced once, never expanded back, not retried forever
    assert ("refresh_balance", (T,)) in rig.venue.calls
    tok = rig.tok()
    assert tok["state"] == "failed" and tok["reason"] == "BALANCE_FAILURES"
    assert not r.exists(keys.lease(T))
    assert int(r.hget(keys.ERRORS, "INSUFFICIENT_BALANCE") or 0) == 3


def test_remainder_below_minimum_is_dust_recorded_once_and_closed(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    rig.venue.fill(rig.venue.live(T)[0].id)
    rig.venue.balances[T] = D(3)
    rig.step(n=5)
    sells = [a for name, a in rig.venue.calls if name == "post_signed" and a[1] == "SELL"]
    assert len(sells) == 1  # one failed attempt, then the 3 shares left are dust
    assert rig.tok()["state"] == "closed" and rig.tok()["reason"] == "DUST_REMAINDER"
    assert len(rig.events("DUST_REMAINDER")) == 2  # the note (sizes) and the transition, once each
    assert rig.events("DUST_REMAINDER")[0]["sellable"] == "3.00"


def test_halt_cancels_all_and_blocks_entries_until_deleted(r: Redis) -> None:
    rig = Rig(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step()
    r.set(keys.HALT, "manual")
    rig.step(n=3)
    assert rig.venue.live(T) == [] and len(rig.events("HALT_CANCEL_ALL")) == 1
    r.delete(keys.HALT)
    rig.step()
    assert len(rig.venue.live(T)) == 1


def test_daily_loss_limit_sets_halt(r: Redis) -> None:
    rig = Rig(r, daily_loss_limit_usd=D("0.5"))
    hold(rig)
    rig.set_book("0.44", "0.45")
    rig.step()
    rig.step(ms=5_000)  # 0.44 crosses: 10 shares sold 0.06 below entry, -0.60 realized
    rig.step()  # the fill is read from the venue
    assert r.get(keys.HALT).startswith("DAILY_LOSS_LIMIT")
    assert rig.events("HALT_DAILY_LOSS")


def test_exposure_cap_blocks_entries_once_journaled(r: Redis) -> None:
    rig = Rig(r, max_exposure_usd=D(3))
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.step(n=3)
    assert rig.venue.posted == []
    (ev,) = rig.events("ENTRY_BLOCKED")
    assert ev["why"] == "EXPOSURE_CAP"
