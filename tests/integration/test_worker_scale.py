"""maker_worker at scale (issue 10: 200 active tokens on one box): a step's Redis round trips do not
grow with the tokens held (leases renewed, user streams read, books read in batches), and a long
step yields to pushed book changes instead of making them wait for every other token."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from redis import Redis
from redis.connection import AbstractConnection

from libs.common import keys
from libs.common.leases import Grant, LeaseLost, Leases
from services.maker_worker import service
from tests.worker_fakes import Rig, gateway_publish

D = Decimal


def holding(r: Redis, n: int) -> tuple[Rig, list[str]]:
    """A worker holding ``n`` tokens, each with its entry BUY resting at 0.41 (book 0.40/0.45)."""
    rig = Rig(r, max_leases=100)
    tokens = [str(10**70 + i) for i in range(n)]
    for t in tokens:
        rig.offer(t)
        gateway_publish(r, rig.venue, t, "0.40", "0.45", rig.clock.wall_ms())
    rig.step(n=3)
    assert len(rig.worker.held) == n and len(rig.venue.live()) == n
    return rig, tokens


def round_trips(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> int:
    """Redis round trips of one steady-state worker step."""
    trips = [0]
    real = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        trips[0] += 1
        real(self, command, check_health)

    rig.clock.advance(250)
    rig.r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": rig.clock.wall_ms()})
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    rig.worker.step()
    monkeypatch.undo()
    return trips[0]


def test_round_trips_of_a_step_do_not_grow_with_the_tokens_held(r: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    small = round_trips(holding(r, 5)[0], monkeypatch)
    r.flushdb()
    big_rig, tokens = holding(r, 40)
    before = {t: int(r.hget(keys.lease(t), "expires_ms") or 0) for t in tokens}
    big = round_trips(big_rig, monkeypatch)
    assert big == small and big <= 12, f"{small} round trips for 5 tokens, {big} for 40"
    after = {t: int(r.hget(keys.lease(t), "expires_ms") or 0) for t in tokens}
    assert all(after[t] > before[t] for t in tokens), "every lease is still renewed at every step"


def test_renew_many_renews_in_one_round_trip_and_reports_each_lost_lease(r: Redis) -> None:
    leases = Leases(r)
    grants: list[Grant] = []
    for t in ("11", "12", "13"):
        leases.offer(t, "maker", 1000)
        g = leases.acquire(t, "w1", 1000, 10_000)
        assert g is not None
        grants.append(g)
    leases.release(grants[1], done=True)  # lost: no lease any more
    out = leases.renew_many(grants, 5000, 10_000)
    assert isinstance(out[0], Grant) and out[0].expires_ms == 15_000 and out[0].mode == "maker"
    assert isinstance(out[1], LeaseLost) and out[1].token_id == "12"
    assert isinstance(out[2], Grant) and int(r.hget(keys.lease("13"), "expires_ms") or 0) == 15_000


@pytest.mark.parametrize("pushed", [True, False])
def test_a_long_step_yields_to_a_pushed_change(r: Redis, monkeypatch: pytest.MonkeyPatch, pushed: bool) -> None:
    rig, tokens = holding(r, 6)
    if pushed:
        rig.worker.idle(0, threading.Event())  # the wall-time loop's idle: pushes are on from now
    monkeypatch.setattr(service, "YIELD_S", 0.0)  # look at the streams after every token
    seen: list[tuple[str, str]] = []
    step, quote = rig.worker.trader.step, rig.worker.trader.quote

    def stepping(h, *a, **kw):  # type: ignore[no-untyped-def]
        seen.append(("step", h.grant.token_id))
        step(h, *a, **kw)
        if h.grant.token_id == tokens[0]:  # the gateway publishes while the step is at the first token
            gateway_publish(r, rig.venue, tokens[-1], "0.42", "0.45", rig.clock.wall_ms())

    def quoting(h, *a, **kw):  # type: ignore[no-untyped-def]
        seen.append(("quote", h.grant.token_id))
        quote(h, *a, **kw)

    monkeypatch.setattr(rig.worker.trader, "step", stepping)
    monkeypatch.setattr(rig.worker.trader, "quote", quoting)
    order = list(rig.worker.held)
    assert order[0] == tokens[0] and order[-1] == tokens[-1]
    rig.clock.advance(250)
    rig.r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": rig.clock.wall_ms()})
    rig.worker.step()
    assert not rig.events("BOOK_SEQ_BACKWARDS"), "the step's own read of that book is not older than the push"
    if pushed:
        assert seen.index(("quote", tokens[-1])) == 1  # right after the first token's step, before the others
        assert [o.price for o in rig.venue.live(tokens[-1])] == [D("0.43")]
    else:  # the back-test (never idle): a change waits for the next step, as it did before
        assert ("quote", tokens[-1]) not in seen
        assert [o.price for o in rig.venue.live(tokens[-1])] == [D("0.41")]
