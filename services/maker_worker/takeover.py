"""Every fill the venue made is in our books (issue 11 items 1 and 2): the shell that settles a token's
orders from the venue's own record. Rules are pure in ``fill_accounting``.

``sweep`` (at every lease acquisition, before any quote; before a close whose check failed):
1. every trade the venue lists on the token (``Venue.trades(token, after_ms)``, from our oldest
   record) goes through ``UserEvents.on_trade``: recorded once per ``trade_id:order_id`` in
   ``pb:fills:{token}`` and, for what no earlier poll or trade accounted, a ``Fill`` at the TRADE's
   price through the strategy (position, average entry, realized P&L follow). Each is journaled
   ``FILL_RECOVERED`` (warn: trade_id, order_id, side, price, size, source). A trade of an order we
   have no record of is adopted first (record written from ``get_order``, ``ORDER_UNKNOWN_FILLED``).
2. every ``pb:orders`` record the strategy does not track that is still PENDING/LIVE, or whose fills
   step 1 just found, is read by id and gets its final status from the venue
   (``fill_accounting.final_status``; journaled ORDER_SETTLED / ORDER_STILL_LIVE / ORDER_VANISHED /
   ORDER_NEVER_ARRIVED with sizes), never a blind CANCELED. ``size_matched`` beyond every trade seen
   counts at the order's price (``FILL_WITHOUT_TRADE``, warn).

``takeover`` = sweep, then the venue balance must equal the position implied by the fills
(``position + redeem_shares``): otherwise ``POSITION_DRIFT`` (error; redis, venue, diff, source
takeover, action venue_wins) and the balance becomes the position -- the last resort, never silent.

``may_close`` (before a Transition to closed/cooldown/resolved): open venue orders we do not track, or a
balance our fills do not explain, block the close: ``CLOSE_DRIFT`` (warn: state, why, position, venue,
diff, open_orders), unknown orders cancelled (fenced), fills recovered by a sweep, any drift left
``POSITION_DRIFT`` (error, source close, venue_wins), the state re-opened (``CLOSE_DEFERRED``) so the
strategy decides again on the corrected books. A venue failure defers the close (``CLOSE_CHECK_FAILED``).
Raises LeaseLost (fenced writes) and, from ``sweep``/``takeover``, VenueError.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Callable

import orjson

from libs.common import keys
from libs.common.venue import VenueError
from libs.common.venue_types import TradeFill
from services.maker_worker.models import Event, Fill, OpenOrder, Transition
from services.maker_worker.fill_accounting import (
    OPEN, ZERO, close_check, dec, final_status, ledger_accounted, trades_after_ms,
)
from services.maker_worker.tokens import position_fields

if TYPE_CHECKING:
    from services.maker_worker.trading import Held, TokenTrader

Apply = Callable[[Event], None]


def trade_fields(t: TradeFill) -> dict[str, str]:
    """A venue trade as a ``pb:user`` trade entry (the shape ``UserEvents.on_trade`` reads), with the
    trade's ``role`` (MAKER|TAKER) and ``fee_rate_bps`` so recovered fills book their fees too."""
    return {"kind": "trade", "trade_id": t.trade_id, "order_id": t.order_id, "side": t.side, "price": str(t.price),
            "size": str(t.size), "trade_status": t.status.upper(), "ts_ms": str(t.ts_ms), "source": "venue",
            "role": t.role, "fee_rate_bps": t.fee_rate_bps}


class Settler:
    """See the module docstring; one per TokenTrader (uses its venue, desk, user events and journal)."""

    def __init__(self, trader: "TokenTrader") -> None:
        self.t = trader

    # ---- records ----
    def records(self, token: str) -> dict[str, dict]:
        """``pb:orders:{token}`` decoded (``intent:`` placeholders and unreadable values left out)."""
        out: dict[str, dict] = {}
        for oid, text in self.t.r.hgetall(keys.orders(token)).items():
            try:
                rec = orjson.loads(text)
            except orjson.JSONDecodeError:
                rec = None
            if isinstance(rec, dict) and not oid.startswith("intent:"):
                out[oid] = rec
        return out

    def sweep(self, h: "Held", apply: Apply, source: str, always: bool = False) -> Decimal:
        """Steps 1-2 of the module doc; returns the shares recovered. Without ``always`` a token with no
        order record lists no trades (nothing of ours can have filled)."""
        token = h.grant.token_id
        recs = self.records(token)
        if not recs and not always:
            return ZERO
        trades = self.t.venue.trades(token, trades_after_ms(int(r.get("ts_ms") or 0) for r in recs.values()))
        recovered, touched = ZERO, set()
        for tr in sorted(trades, key=lambda x: (x.ts_ms, x.trade_id)):
            if tr.token_id not in ("", token):
                continue
            if tr.order_id not in recs:
                self._adopt(h, tr, source)
                recs[tr.order_id] = {}
            for ev in self.t.user.on_trade(h, trade_fields(tr)):
                if isinstance(ev, Fill):
                    recovered += ev.size
                    touched.add(ev.order_id)
                    self.t.journal.record("FILL_RECOVERED", token_id=token, level="warn", trade_id=tr.trade_id,
                                          order_id=ev.order_id, side=ev.side, price=ev.price, size=ev.size,
                                          source=source)
                apply(ev)
        return recovered + self._finalize(h, touched, apply, source)

    def _adopt(self, h: "Held", tr: TradeFill, source: str) -> None:
        """Write a record for a filled order of the token we have none of (read by id; from the trade
        when the venue does not know it), so its fills count once like any of ours (ORDER_UNKNOWN_FILLED).
        One account serves every worker and a token has one holder at a time: a fill on it is ours."""
        v = self.t.venue.get_order(tr.order_id)
        size = v.original_size if v is not None else tr.size
        status = v.status if v is not None else "MATCHED"
        o = OpenOrder(tr.order_id, "BUY" if tr.side == "BUY" else "SELL", v.price if v else tr.price, size,
                      "unknown", tr.ts_ms, ZERO, status)
        self.t.desk.write(h.grant, o, status)
        self.t.journal.record("ORDER_UNKNOWN_FILLED", token_id=h.grant.token_id, level="warn", order_id=o.order_id,
                              side=o.side, price=o.price, size=o.size, status=status, source=source)

    def _finalize(self, h: "Held", touched: set[str], apply: Apply, source: str) -> Decimal:
        """Step 2: final status (and unseen matched size) of untracked open or just-filled records."""
        assert h.state is not None
        token, extra = h.grant.token_id, ZERO
        tracked = {o.order_id for o in h.state.orders}
        ledger = self.t.user._ledger(token)  # noqa: SLF001 - the one decoder of pb:fills
        for oid, rec in self.records(token).items():
            if oid in tracked or (rec.get("status") not in OPEN and oid not in touched):
                continue
            vs = self.t.venue.get_order(oid)
            status, why = final_status(str(rec.get("status")), vs)
            accounted = max(dec(rec.get("matched")), ledger_accounted(ledger.values(), oid, str(rec.get("fence", ""))))
            o = OpenOrder(oid, rec.get("side", "BUY"), dec(rec.get("price")), dec(rec.get("size")),
                          str(rec.get("purpose", "")), int(rec.get("ts_ms") or 0), accounted, status)
            delta = (vs.size_matched - accounted) if vs is not None else ZERO
            if delta > 0:
                extra += delta
                o = replace(o, matched=vs.size_matched)  # type: ignore[union-attr]
                self.t.journal.record("FILL_WITHOUT_TRADE", token_id=token, level="warn", order_id=oid, side=o.side,
                                      price=o.price, size=delta, matched=o.matched, source=source)
            self.t.desk.write(h.grant, o, status)
            self.t.journal.record(why, token_id=token, level="info" if why == "ORDER_SETTLED" else "warn",
                                  order_id=oid, side=o.side, price=o.price, size=o.size, matched=o.matched,
                                  status=status, was=rec.get("status", ""), fence=rec.get("fence", ""), source=source)
            if delta > 0:
                apply(Fill(oid, o.side, o.price, delta))
        return extra

    # ---- takeover ----
    def takeover(self, h: "Held", tok: dict[str, str], apply: Apply) -> None:
        """Sweep, then check the balance against the fill-derived position (module doc)."""
        assert h.state is not None
        recovered = self.sweep(h, apply, "takeover")
        balance = self.t.venue.token_balance(h.grant.token_id)
        self._position(h, balance, "takeover", {"recorded": tok.get("position", ""), "recovered": recovered})

    def _position(self, h: "Held", balance: Decimal, source: str, info: dict) -> bool:
        """POSITION_DRIFT (error, venue_wins) and the balance as position when they differ; True if so."""
        assert h.state is not None
        s, token = h.state, h.grant.token_id
        implied = s.position + s.redeem_shares
        if implied == balance:
            return False
        self.t.journal.record("POSITION_DRIFT", token_id=token, level="error", redis=implied, venue=balance,
                              diff=balance - implied, source=source, action="venue_wins", **info)
        pos = max(ZERO, balance - s.redeem_shares)
        avg = s.avg_entry if s.avg_entry > 0 or pos == 0 else (s.leader_price or ZERO)
        h.state = replace(s, position=pos, avg_entry=avg)
        self.t.leases.fenced_hset(h.grant, keys.tok(token), position_fields(h.state), self.t.clock.wall_ms())
        return True

    # ---- close guard ----
    def may_close(self, h: "Held", tr: Transition, apply: Apply) -> bool:
        """True when the venue agrees with our books (module doc); else resolve the drift, re-open the
        state and return False (the caller skips the transition and the release)."""
        assert h.state is not None
        token, s = h.grant.token_id, h.state
        try:
            check = close_check(s.position + s.redeem_shares, self.t.venue.token_balance(token),
                                self.t.venue.open_orders(token), {o.order_id for o in s.orders}, token)
        except VenueError as exc:
            self.t.journal.record("CLOSE_CHECK_FAILED", token_id=token, level="warn", state=tr.state, why=tr.reason,
                                  error=exc.message[:200])
            h.state = replace(s, done=False)
            return False
        if check.ok:
            return True
        self.t.journal.record("CLOSE_DRIFT", token_id=token, level="warn", state=tr.state, why=tr.reason,
                              position=check.expected, venue=check.venue, diff=check.diff,
                              open_orders=len(check.unexplained), orders=",".join(v.id for v in check.unexplained))
        h.state = replace(s, done=False)  # re-opened: the strategy applies the recovered fills
        try:
            for v in check.unexplained:
                self.t.reconciler._cancel_unknown(h, v, "close")  # noqa: SLF001 - fenced cancel + journal
            self.sweep(h, apply, "close", always=True)
            self._position(h, self.t.venue.token_balance(token), "close", {"why": tr.reason})
        except VenueError as exc:
            self.t.journal.record("CLOSE_CHECK_FAILED", token_id=token, level="warn", state=tr.state, why=tr.reason,
                                  error=exc.message[:200])
        assert h.state is not None
        self.t.journal.record("CLOSE_DEFERRED", token_id=token, level="warn", state=tr.state, why=tr.reason,
                              position=h.state.position)
        return False
