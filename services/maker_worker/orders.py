"""Order I/O of one worker: the fencing checkpoint, venue calls, ``pb:orders:{token}`` records, and the
strategy events their outcomes produce.

Order of a placement (reliability-notes S0/S1/S3): sign (the EIP-712 hash is the order id) ->
``fenced_hset`` the intent (status PENDING) into ``pb:orders:{token}`` -- refused with LeaseLost when
our lease is gone, and then nothing is sent -> POST -> record LIVE or FAILED. A timeout or 5xx leaves
the outcome unknown: the record stays PENDING and is resolved by ``get_order(id)``; the order is
never re-signed with a new salt. Fills are read from ``size_matched`` growth and priced at the
order's own limit price (a crossing exit may in truth fill better).
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import orjson
from redis import Redis

from libs.common import keys, metrics
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import Grant, Leases
from libs.common.venue import (
    InsufficientBalance, PostOnlyCross, RateLimited, Venue, VenueError, VenueUnavailable,
)
from services.maker_worker.models import (
    Balance, Event, Fill, OpenOrder, OrderGone, OrderLive, Place, Posted, Rejected, TokenState,
)
from services.maker_worker.fill_accounting import final_status
from services.maker_worker.strategy import new_order

NOT_FOUND_LIMIT = 3  # a PENDING order unknown to the venue this many polls in a row never reached it


def reject_kind(exc: VenueError) -> tuple[str, str, str]:
    """(Rejected.kind, journal reason, level) for a refused POST."""
    if isinstance(exc, InsufficientBalance):
        return "INSUFFICIENT_BALANCE", "INSUFFICIENT_BALANCE", "error"
    if isinstance(exc, PostOnlyCross):
        return "POST_ONLY_CROSS", "POST_ONLY_REJECTED", "warn"
    if isinstance(exc, RateLimited):
        return "RATE_LIMITED", "RATE_LIMITED", "warn"
    if isinstance(exc, VenueUnavailable):
        return "UNAVAILABLE", "VENUE_UNAVAILABLE", "warn"
    return "REJECTED", "ORDER_REJECTED", "error"


class OrderDesk:
    """Places, cancels and polls orders for the tokens a worker holds.

    Args:
        r: decoded Redis client; leases: fenced writes; venue: the exchange; journal, clock.
    Raises (from every method that writes): LeaseLost when the fence refuses a record.
    """

    def __init__(self, r: Redis, leases: Leases, venue: Venue, journal: Journal, clock: Clock) -> None:
        self.r, self.leases, self.venue, self.journal, self.clock = r, leases, venue, journal, clock
        self._misses: dict[str, int] = {}
        self._poll_failing: set[str] = set()

    def write(self, grant: Grant, o: OpenOrder, status: str) -> None:
        """Record ``o`` in ``pb:orders:{token}`` under its id, through the fence."""
        rec = {"id": o.order_id, "side": o.side, "price": str(o.price), "size": str(o.size),
               "matched": str(o.matched), "status": status, "fence": grant.fence, "ts_ms": o.placed_ms,
               "purpose": o.purpose}
        self.leases.fenced_hset(grant, keys.orders(grant.token_id), {o.order_id: orjson.dumps(rec).decode()},
                                self.clock.wall_ms())

    def place(self, grant: Grant, p: Place, tick: Decimal, neg_risk: bool,
              data_age_ms: int | None = None, book_seq: int | None = None) -> list[Event]:
        """Sign, checkpoint, post ``p``; returns Posted (LIVE or PENDING) or Rejected (+ Balance).
        ``data_age_ms``: age (wall ms) of the book the decision used, journaled on ORDER_POSTED;
        ``book_seq``: the seq of the new Redis book this order reacts to (journaled when given: the
        scale bench joins it to the md stream entry, bench/scale.py)."""
        token, now = grant.token_id, self.clock.now_ms()
        try:
            signed = self.venue.sign_limit(token, p.side, p.price, p.size, tick, neg_risk)
        except VenueError as exc:
            return self._rejected(p, exc, token, "")
        order = new_order(p, signed.order_id, now, "PENDING")
        self.write(grant, order, "PENDING")  # the fencing checkpoint: LeaseLost here sends nothing
        try:
            ack = self.venue.post_signed(signed, p.post_only)
        except VenueUnavailable as exc:
            self.journal.record("ORDER_OUTCOME_UNKNOWN", token_id=token, level="warn", order_id=order.order_id,
                                side=p.side, price=p.price, size=p.size, error=exc.message[:200])
            return [Posted(order)]
        except VenueError as exc:
            self.write(grant, order, "FAILED")
            return self._rejected(p, exc, token, order.order_id)
        if ack.order_id != order.order_id:
            self.journal.record("ORDER_ID_MISMATCH", token_id=token, level="warn", ours=order.order_id,
                                venue=ack.order_id)
            self.write(grant, order, "FAILED")
            order = new_order(p, ack.order_id, now)
        self.write(grant, order, "LIVE")
        self._accepted(order, p.post_only, token, data_age_ms, book_seq)
        return [Posted(new_order(p, order.order_id, now))]

    def _accepted(self, o: OpenOrder, post_only: bool | None, token: str, data_age_ms: int | None = None,
                  book_seq: int | None = None) -> None:
        """Journal ORDER_POSTED (+ TAKE_PROFIT_POSTED) and count it (``post_only`` None = not known here)."""
        extra = {"book_seq": book_seq} if book_seq else {}
        self.journal.record("ORDER_POSTED", token_id=token, order_id=o.order_id, side=o.side, price=o.price,
                            size=o.size, purpose=o.purpose, post_only=post_only, data_age_ms=data_age_ms, **extra)
        if o.purpose == "take_profit":
            self.journal.record("TAKE_PROFIT_POSTED", token_id=token, order_id=o.order_id, price=o.price, size=o.size)
        self.journal.bump("orders_posted")
        metrics.WORKER_ORDERS.labels(o.side, "posted", o.purpose).inc()
        if o.side == "SELL":
            self.journal.bump("sells_posted")

    def _rejected(self, p: Place, exc: VenueError, token: str, order_id: str) -> list[Event]:
        kind, reason, level = reject_kind(exc)
        metrics.WORKER_ORDERS.labels(p.side, "rejected", reason).inc()
        self.journal.record(reason, token_id=token, level=level, order_id=order_id, side=p.side, price=p.price,
                            size=p.size, purpose=p.purpose, status=exc.status, error=exc.message[:200])
        events: list[Event] = []
        if kind == "INSUFFICIENT_BALANCE" and p.side == "SELL":
            events += self.refresh_balance(token)
        return events + [Rejected(p.side, p.size, p.purpose, kind)]

    def refresh_balance(self, token: str) -> list[Event]:
        """``update_balance_allowance`` then read the token balance; [Balance] or [] (journaled) on failure."""
        try:
            self.venue.refresh_balance(token)
            shares = self.venue.token_balance(token)
        except VenueError as exc:
            self.journal.record("BALANCE_REFRESH_FAILED", token_id=token, level="error", error=exc.message[:200])
            return []
        self.journal.record("BALANCE_REFRESHED", token_id=token, shares=shares)
        return [Balance(shares)]

    def cancel(self, grant: Grant, o: OpenOrder, why: str, data_age_ms: int | None = None) -> list[Event]:
        """Cancel ``o`` then read its final state (a fill racing the cancel is still counted);
        ``data_age_ms`` (wall ms, the decision's book age) is journaled on ORDER_CANCELED."""
        token = grant.token_id
        try:
            res = self.venue.cancel(o.order_id)
        except VenueError as exc:
            self.journal.record("CANCEL_FAILED", token_id=token, level="error", order_id=o.order_id, why=why,
                                error=exc.message[:200])
            return []
        events = self.poll_one(grant, o)
        gone = any(isinstance(e, OrderGone) for e in events)
        if not gone and o.order_id in res.canceled:
            self.write(grant, o, "CANCELED")
            events.append(OrderGone(o.order_id, "CANCELED"))
            gone = True
        if gone:
            metrics.WORKER_ORDERS.labels(o.side, "canceled", why).inc()
        self.journal.record("ORDER_CANCELED" if gone else "CANCEL_NOT_DONE", token_id=token,
                            level="info" if gone else "warn", order_id=o.order_id, side=o.side, price=o.price,
                            why=why, detail=res.not_canceled.get(o.order_id, ""), data_age_ms=data_age_ms)
        return events

    def poll(self, grant: Grant, state: TokenState) -> list[Event]:
        """Fills and final states of every order the strategy tracks."""
        events: list[Event] = []
        known = {o.order_id for o in state.orders}
        for o in state.orders:
            events += self.poll_one(grant, o, known)
        return events

    def poll_one(self, grant: Grant, o: OpenOrder, known: set[str] | None = None) -> list[Event]:
        """Events from one ``get_order``: OrderLive (pending resolved), Fill (size_matched grew), OrderGone."""
        token = grant.token_id
        try:
            vs = self.venue.get_order(o.order_id)
        except VenueError as exc:
            if o.order_id not in self._poll_failing:
                self._poll_failing.add(o.order_id)
                self.journal.record("ORDER_POLL_FAILED", token_id=token, level="warn", order_id=o.order_id,
                                    error=exc.message[:200])
            return []
        self._poll_failing.discard(o.order_id)
        if vs is None:
            return self._not_found(grant, o, known or {o.order_id})
        events: list[Event] = []
        if o.status == "PENDING":
            self.journal.record("ORDER_OUTCOME_RESOLVED", token_id=token, order_id=o.order_id, status=vs.status)
            self._accepted(o, None, token)
            events.append(OrderLive(o.order_id))
        delta = vs.size_matched - o.matched
        if delta > 0:
            events.append(Fill(o.order_id, o.side, o.price, delta))
        matched = max(o.matched, vs.size_matched)
        if vs.status in ("MATCHED", "CANCELED"):
            self.write(grant, replace(o, matched=matched), vs.status)
            events.append(OrderGone(o.order_id, vs.status))
        elif delta > 0 or o.status == "PENDING":
            self.write(grant, replace(o, matched=matched), "LIVE")
        return events

    def _not_found(self, grant: Grant, o: OpenOrder, known: set[str]) -> list[Event]:
        token = grant.token_id
        if o.status == "PENDING":
            adopted = self._adopt(grant, o, known)
            if adopted:
                return adopted
            n = self._misses.get(o.order_id, 0) + 1
            self._misses[o.order_id] = n
            if n < NOT_FOUND_LIMIT:
                return []
            self._misses.pop(o.order_id, None)
            self.write(grant, o, "FAILED")
            self.journal.record("ORDER_NEVER_ARRIVED", token_id=token, level="warn", order_id=o.order_id, polls=n)
            return [OrderGone(o.order_id, "FAILED")]
        self.write(grant, o, "CANCELED")
        self.journal.record("ORDER_VANISHED", token_id=token, level="error", order_id=o.order_id)
        return [OrderGone(o.order_id, "CANCELED")]

    def _adopt(self, grant: Grant, o: OpenOrder, known: set[str]) -> list[Event]:
        """A PENDING order unknown under our hash may live under another id: look in ``open_orders`` for
        an untracked order of the same side, price and size and track that one instead."""
        try:
            live = self.venue.open_orders(grant.token_id)
        except VenueError as exc:
            self.journal.record("ORDER_POLL_FAILED", token_id=grant.token_id, level="warn", order_id=o.order_id,
                                error=exc.message[:200])
            return []
        match = next((v for v in live if v.id not in known and v.side == o.side and v.price == o.price
                      and v.original_size == o.size), None)
        if match is None:
            return []
        self.write(grant, o, "FAILED")
        adopted = replace(o, order_id=match.id, status="LIVE")
        self.write(grant, adopted, "LIVE")
        self.journal.record("ORDER_ADOPTED", token_id=grant.token_id, ours=o.order_id, venue=match.id)
        self._accepted(adopted, None, grant.token_id)
        return [OrderGone(o.order_id, "FAILED"), Posted(adopted)]

    def close_records(self, grant: Grant) -> int:
        """After our cancels (shutdown): give every PENDING/LIVE record of the token the venue's own final
        status (``fill_accounting.final_status``: MATCHED/CANCELED, FAILED for a POST that never arrived),
        never a blind CANCELED. ``matched`` is left as it is, so the next holder's settlement still
        counts any fill no event reported (``takeover.Settler``); a record the venue still lists LIVE, or
        that cannot be read, stays open for that holder's clean-up. Returns how many records changed."""
        changed = {}
        for oid, text in self.r.hgetall(keys.orders(grant.token_id)).items():
            try:
                rec = orjson.loads(text)
            except orjson.JSONDecodeError:
                self.journal.record("ORDER_RECORD_MALFORMED", token_id=grant.token_id, level="error",
                                    order_id=oid, value=text[:200])
                continue
            if not isinstance(rec, dict) or rec.get("status") not in ("PENDING", "LIVE") or oid.startswith("intent:"):
                continue
            try:
                status, _why = final_status(str(rec["status"]), self.venue.get_order(oid))
            except VenueError as exc:
                self.journal.record("ORDER_POLL_FAILED", token_id=grant.token_id, level="warn", order_id=oid,
                                    error=exc.message[:200])
                continue
            if status != rec["status"]:
                changed[oid] = orjson.dumps({**rec, "status": status}).decode()
        if changed:
            self.leases.fenced_hset(grant, keys.orders(grant.token_id), changed, self.clock.wall_ms())
        return len(changed)
