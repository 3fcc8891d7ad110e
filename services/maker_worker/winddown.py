"""What a worker does with a token it gives up at SIGTERM (``Worker.shutdown``): cancel only OUR open
orders, one by one and each after a fenced lease renew, then read their final fills.

``cancel_token`` is never used here: the token may already belong to a new holder whose orders it
would cancel too (issue 7 item 6).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from libs.common import keys
from libs.common.leases import LeaseLost
from libs.common.venue import VenueError
from services.maker_worker.models import Cancel, MarketView
from services.maker_worker.trading import Held, TokenTrader

if TYPE_CHECKING:
    from services.maker_worker.service import Worker


def market_of(h: Held) -> MarketView:
    """The last market view of ``h`` (a book-less one when the token never had a step)."""
    assert h.state is not None
    return h.market or MarketView(None, None, h.state.tick_size, h.state.min_order_size, h.state.end_ms, False)


def cancel_ours(trader: TokenTrader, h: Held) -> int:
    """Cancel every open order this holder tracks, or has recorded under its fence (fenced, one by
    one); returns how many cancels were sent. A token still waiting for its takeover clean-up
    (state None) is left to the next holder, which cancels the whole token after the grace period.

    Raises:
        LeaseLost: the lease went away between two cancels (the rest are not sent).
        VenueError: a cancel failed.
    """
    if h.state is None:
        return 0
    tracked = [Cancel(o.order_id, "SHUTDOWN") for o in h.state.orders]
    trader.execute(h, list(tracked), market_of(h))
    known = {c.order_id for c in tracked}
    n = len(tracked)
    for oid in recorded_open(trader, h.grant.token_id, h.grant.fence):
        if oid not in known:
            h.grant = trader.leases.renew(h.grant, trader.clock.wall_ms(), trader.s.lease_ttl_ms)
            trader.venue.cancel(oid)
            n += 1
    return n


def recorded_open(trader: TokenTrader, token: str, fence: int) -> list[str]:
    """Ids of PENDING/LIVE records of ``token`` written under ``fence`` (not ``intent:`` placeholders);
    an unreadable record is journaled (ORDER_RECORD_MALFORMED) and skipped."""
    out = []
    for oid, text in trader.r.hgetall(keys.orders(token)).items():
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError:
            trader.journal.record("ORDER_RECORD_MALFORMED", token_id=token, level="error", order_id=oid,
                                  value=text[:200])
            continue
        if rec.get("status") in ("PENDING", "LIVE") and str(rec.get("fence")) == str(fence) \
                and not oid.startswith("intent:"):
            out.append(oid)
    return out


def final_poll(trader: TokenTrader, h: Held) -> None:
    """Read the final state of every order the strategy tracks and apply its fills."""
    if h.state is None:
        return
    market = market_of(h)
    for ev in trader.desk.poll(h.grant, h.state):
        trader.apply(h, ev, market)


def shutdown(w: "Worker") -> None:
    """SIGTERM: for each held token, cancel OUR open orders one by one (each after a fenced lease
    renew), record final fills, release the lease (not done). A token whose lease is gone gets
    nothing sent to the venue and no Redis write (SHUTDOWN_SKIPPED_NOT_HOLDER): its new holder owns
    it, and ``cancel_token`` would cancel the new holder's orders too."""
    total, tokens = 0, 0
    for token, h in list(w.held.items()):
        try:
            h.grant = w.leases.renew(h.grant, w.clock.wall_ms(), w.s.lease_ttl_ms)
            total += cancel_ours(w.trader, h)
            tokens += 1
            final_poll(w.trader, h)
            w.desk.close_records(h.grant)
            w.risk.sync(h)  # what is left: the position (the next holder recomputes it)
            hand_back(w, h)
        except VenueError as exc:
            w.journal.record("SHUTDOWN_CANCEL_FAILED", token_id=token, level="error", error=exc.message[:200])
            hand_back(w, h)
        except LeaseLost as exc:
            w.journal.record("SHUTDOWN_SKIPPED_NOT_HOLDER", token_id=token, level="warn", fence=exc.fence,
                             why=exc.why, worker=w.id)
        w.drop(token)
    w.journal.record("SHUTDOWN_CANCEL", tokens=tokens, canceled=total, worker=w.id)
    w.r.zrem(keys.WORKERS, w.id)


def hand_back(w: "Worker", h: Held) -> None:
    """Release (not done) and put the token back on the offers index for another worker."""
    if w.leases.release(h.grant, done=False):
        w.r.zadd(keys.SCHED_OFFERS, {h.grant.token_id: w.clock.wall_ms()})
