"""Account-wide risk across N workers (SPEC S3.4 "Risk"; issue 7 item 6) on a real Redis: the exposure
ledger script, the exposure cap held by 3 workers trading one FakeVenue, the per-token position cap,
and the daily loss limit on realized + marked-to-market P&L."""
from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.exposure import Entry, ExposureLedger, StaleFence
from libs.common.venue import PostOnlyCross
from services.maker_worker.models import Place
from tests.worker_fakes import T, FakeVenue, Rig, hold

D = Decimal
TOKENS = [f"{n}{T[6:]}"[:len(T)] for n in range(100001, 100007)]


def venue_exposure(venue: FakeVenue) -> Decimal:
    """True exposure from the venue alone: per token, shares held x average BUY cost + live BUY
    remainder x price (exact Decimal)."""
    total = D(0)
    for token in {o.token_id for o in venue.orders.values()}:
        buys = [o for o in venue.orders.values() if o.token_id == token and o.side == "BUY"]
        bought = sum((o.matched for o in buys), D(0))
        if bought > 0:
            total += venue.balances.get(token, D(0)) * sum((o.matched * o.price for o in buys), D(0)) / bought
        total += sum(((o.size - o.matched) * o.price for o in buys if o.status == "LIVE"), D(0))
    return total


def ledger_total(r: Redis) -> Decimal:
    return D(sum(e.exposure_micro for e in ExposureLedger(r).entries().values())) / 1_000_000


def publish(r: Redis, venue: FakeVenue, clock: FakeClock, token: str, bid: D, ask: D) -> None:
    """Move the venue book and publish it fresh in Redis as the gateway would."""
    venue.set_book(token, str(bid), str(ask))
    wall = clock.wall_ms()
    r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": wall})
    r.hset(keys.md_book(token), mapping={"best_bid": str(bid), "best_ask": str(ask), "status": "ok",
                                         "recv_ts_ms": wall, "tick_size": "0.01", "min_order_size": "5"})


def test_ledger_reserve_is_atomic_under_concurrent_workers_and_fenced(r: Redis) -> None:
    cap, need = 10_000_000, (1_000_000, 2_000_000)  # cap 10 USD, each reservation 1 USD
    granted: list[str] = []

    def worker(n: int) -> None:
        ledger = ExposureLedger(Redis(connection_pool=r.connection_pool))
        for i in range(10):
            if ledger.reserve(f"t{n}-{i}", 1, (0, 0), need, cap, 10**9).ok:
                granted.append(f"t{n}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(granted) == 10 and ledger_total(r) == D(10)  # 40 tries, exactly cap / need granted
    ledger, held = ExposureLedger(r), granted[0]  # which tokens won depends on the threads' order
    out = ledger.reserve(held, 1, (1_000_000, 2_000_000), need, cap, 10**9)
    assert not out.ok and out.reason == "EXPOSURE_CAP" and (out.committed_micro, out.limit) == (cap, cap)
    ledger.sync(held, 2, (0, 0), 0)  # a new holder (fence 2) recomputed the token: released
    with pytest.raises(StaleFence):
        ledger.sync(held, 1, (5_000_000, 1), None)  # the old holder cannot write over it
    assert ledger.entries()[held].exposure_micro == 0 and ledger_total(r) == D(9)


def test_three_workers_never_exceed_the_account_wide_cap(r: Redis) -> None:
    cap = D(12)  # an entry is 10 shares at ~0.50 = ~5 USD: two fit, the third does not
    clock, venue, rnd = FakeClock(), FakeVenue(), random.Random(7)
    rigs = [Rig(r, f"w{i}", venue=venue, clock=clock, max_exposure_usd=cap, max_leases=2) for i in range(3)]
    for token in TOKENS:
        rigs[0].offer(token)
    samples: list[Decimal] = []
    for rig in rigs:  # each worker takes two tokens; no book yet, so nobody quotes
        rig.worker.step()
    assert all(len(rig.worker.held) == 2 for rig in rigs) and venue.posted == []

    def sample() -> None:
        samples.append(venue_exposure(venue))
        assert samples[-1] <= cap, f"venue exposure {samples[-1]} above the cap {cap}"
        assert ledger_total(r) >= samples[-1], "the ledger understates what the venue holds"

    for rnd_no in range(60):
        clock.advance(250)
        for token in TOKENS:
            bid = D(rnd.choice(["0.47", "0.48", "0.49", "0.50", "0.51"]))
            publish(r, venue, clock, token, bid, bid + D(rnd.choice(["0.01", "0.02"])))
        for o in venue.live():
            if o.side == "BUY" and rnd.random() < 0.08:
                venue.fill(o.id, min(o.size - o.matched, D(rnd.choice([2, 5, 10]))))
        for rig in rigs:  # all workers re-quote on the same push, from their last step's view: they race
            rig.worker.on_books([t for t in TOKENS if t in rig.worker.held])
            sample()
        for rig in rigs:
            rig.worker.step()
            sample()
    refused = rigs[0].events("EXPOSURE_CAP")
    assert refused, "no entry was refused by the account-wide reservation"
    assert all(D(e["committed_usd"]) + D(e["need_usd"]) > cap for e in refused)
    assert max(samples) > cap / 2, "the run never came near the cap: the test proves nothing"
    holders = {r.hget(keys.lease(o.token_id), "worker") for o in venue.posted if o.side == "BUY"}
    assert len(holders) >= 2, "entries of several workers must have competed for the cap"


def test_position_cap_counts_held_shares_plus_open_buys_not_one_order(r: Redis) -> None:
    rig = Rig(r, max_position=D(15))
    hold(rig)  # 10 shares held at 0.50, a take-profit SELL resting
    h = rig.worker.held[T]
    assert h.state is not None and h.market is not None and h.state.position == D(10)
    calls = len(rig.venue.calls)
    rig.worker.trader.execute(h, [Place("BUY", D("0.50"), D(6), "entry")], h.market)  # 10 + 6 > 15
    assert rig.venue.calls[calls:] == [], "a refused entry must not even be signed"
    (ev,) = rig.events("POSITION_CAP")
    assert (D(ev["shares"]), D(ev["need_shares"]), D(ev["max_position"])) == (D(10), D(6), D(15))
    rig.worker.trader.execute(h, [Place("BUY", D("0.50"), D(5), "entry")], h.market)  # 10 + 5 <= 15: sent
    assert rig.venue.posted[-1].side == "BUY" and rig.venue.posted[-1].size == D(5)
    rig.worker.risk.sync(h)
    assert rig.worker.risk.ledger.entries()[T].shares_micro == 15_000_000  # position + open BUY remainder
    rig.worker.trader.execute(h, [Place("BUY", D("0.50"), D(5), "entry")], h.market)  # 15 + 5 > 15
    assert sum(1 for o in rig.venue.posted if o.side == "BUY") == 2


def test_marked_to_market_losses_of_two_workers_together_halt_trading(r: Redis) -> None:
    clock, venue = FakeClock(), FakeVenue()
    a = Rig(r, "wa", venue=venue, clock=clock, daily_loss_limit_usd=D("0.3"), max_leases=1)
    b = Rig(r, "wb", venue=venue, clock=clock, daily_loss_limit_usd=D("0.3"), max_leases=1)
    for rig, token in ((a, TOKENS[0]), (b, TOKENS[1])):
        rig.offer(token)
        publish(r, venue, clock, token, D("0.50"), D("0.51"))
        rig.worker.step()
        venue.fill(venue.live(token)[0].id)  # 10 shares at 0.50
    for token in TOKENS[:2]:
        publish(r, venue, clock, token, D("0.48"), D("0.49"))  # each worker: -0.20 unrealized, alone < limit
    clock.advance(250)
    a.worker.step()
    a.worker.step()
    b.worker.step()  # each step has seen one -0.20 mark at most when it checked
    assert not r.exists(keys.HALT), "one worker's own mark must not halt"
    assert r.hgetall(keys.RISK_UPNL) == {TOKENS[0]: "-200000", TOKENS[1]: "-200000"}
    assert not r.hgetall(keys.RISK_DAILY_PNL), "nothing was realized: the halt comes from the marks"
    clock.advance(250)
    a.worker.step()
    assert r.get(keys.HALT).startswith("DAILY_LOSS_LIMIT day_pnl_mtm=-0.4")
    (ev,) = a.events("HALT_DAILY_LOSS")
    assert (D(ev["unrealized"]), D(ev["realized"]), D(ev["limit"])) == (D("-0.4"), D(0), D("0.3"))
    for _ in range(2):
        clock.advance(250)
        a.worker.step()
        b.worker.step()
    assert len(a.events("HALT_CANCEL_ALL")) == 2  # both workers cancelled all their orders once
    assert not [o for o in venue.live() if o.side == "BUY"], "no entry while halted"


def test_reservation_is_released_on_rejection_and_becomes_position_exposure_on_fill(r: Redis) -> None:
    rig = Rig(r)
    ledger = ExposureLedger(r)
    rig.offer()
    rig.set_book("0.50", "0.51")
    rig.venue.fail_next("post_signed", PostOnlyCross(400, "invalid post-only order: order crosses book"))
    rig.step()
    assert rig.venue.posted == [] and ledger.entries()[T].exposure_micro == 0  # rejected: released
    rig.step(n=2)
    (buy,) = rig.venue.live(T)
    assert ledger.entries()[T] == Entry(1, 5_000_000, 10_000_000)  # 10 x 0.50 reserved
    rig.venue.fill(buy.id, D(4))
    rig.step()
    assert ledger.entries()[T].exposure_micro == 5_000_000  # 4 held x 0.50 + 6 open x 0.50: unchanged
    rig.venue.fill(buy.id)
    rig.step(n=2)
    assert ledger.entries()[T].exposure_micro == 5_000_000 and ledger.entries()[T].shares_micro == 10_000_000
    assert r.hget(keys.RISK_UPNL, T) is None  # marked at bid 0.50 = avg entry: nothing unrealized
    rig.set_book("0.49", "0.51")
    rig.step()
    assert r.hget(keys.RISK_UPNL, T) == "-100000"  # 10 x (0.49 - 0.50)
