"""What a worker does with a token it gives up at SIGTERM (``Worker.shutdown``): cancel only OUR open
orders, one by one and each after a fenced lease renew, then read their final fills.

``cancel_token`` is never used here: the token may already belong to a new holder whose orders it
would cancel too (issue 7 item 6).
"""
from __future__ import annotations

import orjson

from libs.common import keys
from services.maker_worker.models import Cancel, MarketView
from services.maker_worker.trading import Held, TokenTrader


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
