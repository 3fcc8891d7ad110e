"""A requested reconcile (``Reconciler.request``: e.g. the venue cancelled a LIVE order of ours on its own)
runs at the token's next step, before the strategy quotes again, and is journaled RECONCILED; against a
real Redis and the FakeVenue."""
from __future__ import annotations

from redis import Redis

from services.maker_worker.reconciler import REQUESTED
from tests.worker_fakes import Rig, T, entered


def test_requested_reconcile_runs_at_the_next_step_and_is_journaled(r: Redis) -> None:
    rig = Rig(r)
    buy = entered(rig)
    h = rig.worker.held[T]
    rig.step(n=2)
    assert rig.events("RECONCILED") == [], "no reconcile journaled unless asked for"
    rig.worker.trader.reconciler.request(h)
    assert h.reconcile_due_wall_ms == REQUESTED
    rig.step()
    (ev,) = rig.events("RECONCILED")
    assert (ev["token_id"], ev["source"], ev["open_orders"]) == (T, "requested", "1")
    assert h.reconcile_due_wall_ms > rig.clock.wall_ms(), "the next one is periodic again"
    assert buy.status == "LIVE"
    rig.step(n=2)
    assert len(rig.events("RECONCILED")) == 1
