"""Settlement shell of a resolved market: performs the strategy's ``Redeem`` intent (SPEC S7:
"settlement at a market's resolution payout"; "resolved positions are redeemed automatically").

The pure part is in ``exits`` (``settle``, ``on_redeemed``, ``on_redeem_failed``): it books the
settlement P&L (position x (payout - avg_entry), Decimal) and decides retries. This shell, for one
``Redeem``:

1. on the first attempt persists the settlement through the fence (``pb:tok`` position 0,
   ``realized_pnl``, ``redeem_pending`` = settled shares, ``settled_pnl``, ``payout``), journals
   SETTLED and adds the P&L to the day's realized P&L (``pb:risk:daily_pnl``, halt past the limit);
2. calls ``Venue.redeem(condition_id)`` -> ``RedeemResult`` (paper: the venue pays shares x payout in
   pUSD and removes the shares; live: the SDK through the relayer);
3. feeds ``Redeemed`` (state CONFIRMED) or ``RedeemFailed`` (an exception, another state, no
   condition id) back into the strategy, persists its state again (fenced), counts ``redeemed`` in
   ``pb:summary`` on success, and executes what the strategy decided (the ``resolved`` REDEEMED or
   ``failed`` REDEEM_FAILED transition and the lease release, or a REDEEM_FAILED note and a retry
   after backoff).
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from libs.common import keys
from libs.common.venue import Venue, VenueError
from services.maker_worker import risk, strategy
from services.maker_worker.models import Event, MarketView, Redeem, Redeemed, RedeemFailed
from services.maker_worker.tokens import position_fields

if TYPE_CHECKING:
    from services.maker_worker.trading import Held, TokenTrader

ALREADY = "already-redeemed"  # tx_id of a Redeemed found already done (no shares left on the venue)


def attempt(venue: Venue, condition_id: str, token_id: str) -> Event:
    """One redeem, as an event: Redeemed when the venue CONFIRMED it, else RedeemFailed(reason).

    A redeem pays every position of the condition, so when the account held both outcomes, the first
    token's redeem also redeems the other one. The token's venue balance is read first: 0 shares left
    means already redeemed (by such a sibling redeem, or by an earlier attempt whose answer was lost):
    Redeemed with tx_id "already-redeemed" and payout_usd None (paid in that other redeem).
    """
    if not condition_id:
        return RedeemFailed("NO_CONDITION_ID: pb:tok has no condition_id")
    try:
        if venue.token_balance(token_id) <= 0:
            return Redeemed(condition_id, ALREADY, None)
        res = venue.redeem(condition_id)
    except VenueError as exc:
        return RedeemFailed(f"VENUE_ERROR: {exc.message}")
    if res.state != "CONFIRMED":
        return RedeemFailed(f"REDEEM_{res.state}: tx_id={res.tx_id}")
    return Redeemed(res.condition_id or condition_id, res.tx_id, res.payout_usd)


def perform(trader: "TokenTrader", h: "Held", intent: Redeem, market: MarketView) -> None:
    """Carry out ``intent`` for the held token ``h`` (see the module docstring). Raises LeaseLost."""
    assert h.state is not None
    token = h.grant.token_id
    h.grant = trader.leases.renew(h.grant, trader.clock.wall_ms(), trader.s.lease_ttl_ms)  # fence first
    if intent.first:
        trader.leases.fenced_hset(h.grant, keys.tok(token), position_fields(h.state), trader.clock.wall_ms())
        trader.journal.record("SETTLED", token_id=token, shares=intent.shares, payout=intent.payout, pnl=intent.pnl,
                              avg_entry=h.state.avg_entry, realized_pnl=h.state.realized_pnl)
        book_day_pnl(trader, token, intent.pnl)
    ev = attempt(trader.venue, h.state.condition_id, token)
    h.state, intents = strategy.step(h.state, market, ev, trader.clock.now_ms(), trader.params)
    trader.leases.fenced_hset(h.grant, keys.tok(token), position_fields(h.state), trader.clock.wall_ms())
    if isinstance(ev, Redeemed) and ev.tx_id != ALREADY:
        trader.journal.bump("redeemed")
    trader.execute(h, intents, market)


def book_day_pnl(trader: "TokenTrader", token: str, pnl: Decimal) -> None:
    """Add a settlement's P&L to the shared day P&L; halt new entries past the daily loss limit."""
    if pnl == 0:
        return
    total = risk.add_realized(trader.r, pnl, trader.clock.now_ms())
    limit = trader.s.daily_loss_limit_usd
    if risk.loss_limit_hit(total, limit) and risk.set_halt(trader.r, f"DAILY_LOSS_LIMIT day_pnl={total} limit={limit}"):
        trader.journal.record("HALT_DAILY_LOSS", token_id=token, level="error", day_pnl=total, limit=limit)
