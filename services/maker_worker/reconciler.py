"""Reconciliation shell (SPEC S3.4 "reconciled on every lease takeover and periodically"): reads our
records and the venue, asks the pure ``reconcile`` module what differs, acts, and journals each drift
with a reason code and its size.

When:
- ``takeover`` -- in ``TokenTrader.prepare`` at every lease acquisition, after the takeover cancel and
  before the first quote. No order of the token is ours yet, so every open venue order on it is
  UNKNOWN and cancelled. Then ``takeover.Settler`` settles every order record from the venue's
  trades (fills at their prices, through the strategy) and compares the balance with the position
  those fills imply (POSITION_DRIFT error, ``venue_wins``, only as a last resort).
- ``periodic`` -- from the token's step every ``reconcile_interval_s`` (wall; ``Held.reconcile_due_wall_ms``).
  Orders: unknown venue orders are adopted (a PENDING record of ours with the same side, price, size
  whose id the venue does not know) or cancelled; records the venue does not list as open, or lists
  with more matched, are read by id through ``OrderDesk.poll_one``, the existing final-state path,
  so a fill is counted once (records already resolved by id elsewhere are left to that path:
  tracked PENDING ones, polled every step, and final ones whose trades the user channel awaits).
  Position: the strategy's position (+ shares settled but not redeemed)
  against the venue balance read after those actions; a difference is journaled POSITION_DRIFT
  (action ``journal_only``): the fill-derived position is NOT overwritten, because the balance moves
  before the fill events arrive (user channel latency, settlement) and replacing the position then
  would count those fills twice.
- ``requested`` -- at the token's next step, before it is quoted again, after ``request`` (e.g. the
  user channel reported a LIVE order of ours CANCELED that the strategy never cancelled: the venue
  cancelled it on its own, as when the exchange heartbeat lapses); the periodic run, journaled
  RECONCILED (source, open_orders on the venue, balance, position) once done.

Journal (all with ``token_id``): ORDER_UNKNOWN_CANCELED (warn: order_id, side, price, size, matched,
source), CANCEL_NOT_DONE / CANCEL_FAILED (``why`` ORDER_UNKNOWN), ORDER_ADOPTED (ours, venue, side,
price, size, matched, source), ORDER_RECORD_DRIFT (warn: order_id, why NOT_OPEN|MATCHED_BEHIND, side,
price, size, matched, venue_matched, outcome MATCHED|CANCELED|FAILED|ADOPTED|OPEN, filled),
POSITION_DRIFT (warn: redis, venue, diff = venue - redis, source, action), RECONCILE_FAILED (warn),
RECONCILED (source, open_orders, balance, position: a requested reconcile done).
Every cancel renews the lease first (the fence): LeaseLost propagates and nothing is sent.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Callable

import orjson
from redis import Redis

from libs.common import keys
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import Leases
from libs.common.venue import Venue, VenueError
from libs.common.venue_types import OrderState
from services.maker_worker.config import WorkerSettings
from services.maker_worker.models import ZERO, Event, Fill, OpenOrder, OrderGone, Posted
from services.maker_worker.orders import OrderDesk
from services.maker_worker.reconcile import OPEN, Adopt, Drift, PositionDrift, Resolve, order_diff, position_drift

if TYPE_CHECKING:
    from services.maker_worker.trading import Held

Apply = Callable[[Event], None]
REQUESTED = -1  # ``Held.reconcile_due_wall_ms`` of a token whose reconcile was asked for (``Reconciler.request``)


def parse_record(order_id: str, text: str, fence: int) -> OpenOrder | None:
    """The OpenOrder of a ``pb:orders`` record that is open (LIVE/PENDING) and written under ``fence``;
    None for any other record.

    Raises:
        ValueError: the record is not a JSON object with side, price, size (message names the value).
    """
    try:
        rec = orjson.loads(text)
        if not isinstance(rec, dict):
            raise ValueError("not an object")
        if rec.get("status") not in OPEN or str(rec.get("fence")) != str(fence):
            return None
        return OpenOrder(order_id, rec["side"], Decimal(rec["price"]), Decimal(rec["size"]),
                         str(rec.get("purpose", "")), int(rec.get("ts_ms") or 0),
                         Decimal(rec.get("matched") or "0"), rec["status"])
    except (orjson.JSONDecodeError, KeyError, TypeError, InvalidOperation, ValueError) as exc:
        raise ValueError(f"order record {order_id}={text[:200]!r}: {exc}") from None


def recorded_position(tok: dict[str, str]) -> Decimal | None:
    """``position`` + ``redeem_pending`` of ``pb:tok`` (shares the venue should hold); None if unusable."""
    try:
        return Decimal(tok.get("position") or "0") + Decimal(tok.get("redeem_pending") or "0")
    except InvalidOperation:
        return None


class Reconciler:
    """See the module docstring. ``user``: the token trader's UserEvents (orders it is already settling
    from the channel are not resolved twice); may be None."""

    def __init__(self, r: Redis, leases: Leases, venue: Venue, desk: OrderDesk, journal: Journal, clock: Clock,
                 settings: WorkerSettings, user: object = None) -> None:
        self.r, self.leases, self.venue, self.desk, self.journal, self.clock = r, leases, venue, desk, journal, clock
        self.ttl_ms, self.interval_ms = settings.lease_ttl_ms, int(settings.reconcile_interval_s * 1000)
        self.user = user

    def due(self, h: "Held", wall_ms: int) -> bool:
        """A periodic reconcile of ``h`` is due (reconciled, still held, interval elapsed)."""
        return h.state is not None and not h.released and not h.state.done and wall_ms >= h.reconcile_due_wall_ms

    def takeover(self, h: "Held", tok: dict[str, str]) -> None:
        """Cancel every open venue order of the token (fenced) and schedule the periodic run. The
        position is NOT taken from the balance here: ``takeover.Settler`` settles every order record
        from the venue's trades first and only then compares the balance (``tok`` is unused, kept for
        callers).

        Raises:
            VenueError: the listing failed (the caller retries at the next step).
            LeaseLost: the fence refused a cancel (nothing was sent).
        """
        token = h.grant.token_id
        self._act(h, order_diff([], self._open(token)), None, "takeover")
        h.reconcile_due_wall_ms = self.clock.wall_ms() + self.interval_ms

    def request(self, h: "Held") -> None:
        """Reconcile ``h`` at its next step, before the strategy quotes it again (module doc,
        ``requested``); journaled RECONCILED when done."""
        h.reconcile_due_wall_ms = REQUESTED

    def periodic(self, h: "Held", apply: Apply) -> None:
        """Reconcile orders then position (module doc). ``apply`` runs the strategy on one event.
        Venue failures are journaled RECONCILE_FAILED and retried after the interval.

        Raises:
            LeaseLost: the fence refused a write or a cancel.
        """
        assert h.state is not None
        requested = h.reconcile_due_wall_ms == REQUESTED
        h.reconcile_due_wall_ms = self.clock.wall_ms() + self.interval_ms
        token = h.grant.token_id
        try:
            records = self.records(h)
            venue_open = self._open(token)
            self._act(h, order_diff(records, venue_open), apply, "periodic")
            balance = self.venue.token_balance(token)
        except VenueError as exc:
            self.journal.record("RECONCILE_FAILED", token_id=token, level="warn", source="periodic",
                                error=exc.message[:200])
            return
        s = h.state
        self._position(token, position_drift(s.position + s.redeem_shares, balance), "periodic", "journal_only")
        if requested:
            self.journal.record("RECONCILED", token_id=token, source="requested", open_orders=len(venue_open),
                                balance=balance, position=s.position)

    def records(self, h: "Held") -> list[OpenOrder]:
        """Our open orders: those the strategy tracks, plus open ``pb:orders`` records of our fence
        (unreadable records are journaled ORDER_RECORD_MALFORMED and left out)."""
        assert h.state is not None
        out = list(h.state.orders)
        tracked = {o.order_id for o in out}
        for oid, text in self.r.hgetall(keys.orders(h.grant.token_id)).items():
            if oid in tracked or oid.startswith("intent:"):
                continue
            try:
                o = parse_record(oid, text, h.grant.fence)
            except ValueError as exc:
                self.journal.record("ORDER_RECORD_MALFORMED", token_id=h.grant.token_id, level="error",
                                    order_id=oid, detail=str(exc))
                continue
            if o is not None:
                out.append(o)
        return out

    def _open(self, token: str) -> list[OrderState]:
        """The venue's open orders on ``token``; rows naming another token are never ours to touch
        (one account serves every worker: another token's order belongs to its own lease holder).

        Raises:
            VenueError: the listing failed.
        """
        return [v for v in self.venue.open_orders(token) if v.token_id in ("", token)]

    # ---- actions ----
    def _act(self, h: "Held", d: Drift, apply: Apply | None, source: str) -> None:
        """Cancel unknown orders, then (with ``apply``: a reconciled token) adopt and resolve."""
        for v in d.cancel:
            self._cancel_unknown(h, v, source)
        if apply is None:
            return
        known = {a.record.order_id for a in d.adopt} | {x.record.order_id for x in d.resolve}
        known |= {o.order_id for o in h.state.orders} if h.state else set()
        busy = self._busy(h)
        for a in d.adopt:
            self._adopt(h, a, known, apply, source)
        for x in d.resolve:
            if x.record.order_id not in busy:
                self._resolve(h, x, known, apply)

    def _busy(self, h: "Held") -> set[str]:
        """Orders already being resolved by id elsewhere, left alone here: tracked PENDING ones (polled
        every step) and final ones the user channel is waiting for the trades of."""
        pending = {o.order_id for o in h.state.orders if o.status == "PENDING"} if h.state else set()
        return pending | set(getattr(self.user, "_awaiting", {}))

    def _cancel_unknown(self, h: "Held", v: OrderState, source: str) -> None:
        token = h.grant.token_id
        h.grant = self.leases.renew(h.grant, self.clock.wall_ms(), self.ttl_ms)  # fence first: LeaseLost sends nothing
        fields = {"order_id": v.id, "side": v.side, "price": v.price, "size": v.original_size,
                  "matched": v.size_matched, "source": source}
        try:
            res = self.venue.cancel(v.id)
        except VenueError as exc:
            self.journal.record("CANCEL_FAILED", token_id=token, level="error", why="ORDER_UNKNOWN",
                                error=exc.message[:200], **fields)
            return
        if v.id in res.canceled:
            self.journal.record("ORDER_UNKNOWN_CANCELED", token_id=token, level="warn", **fields)
        else:
            self.journal.record("CANCEL_NOT_DONE", token_id=token, level="warn", why="ORDER_UNKNOWN",
                                detail=res.not_canceled.get(v.id, ""), **fields)

    def _adopt(self, h: "Held", a: Adopt, known: set[str], apply: Apply, source: str) -> None:
        """Track ``a.venue`` instead of our PENDING record, once the venue confirms it has no order
        under our id; if it has one, that one is resolved and the listed order is unknown."""
        token, rec, v = h.grant.token_id, a.record, a.venue
        try:
            own = self.venue.get_order(rec.order_id)
        except VenueError as exc:
            self.journal.record("ORDER_POLL_FAILED", token_id=token, level="warn", order_id=rec.order_id,
                                error=exc.message[:200])
            return
        if own is not None:
            self._resolve(h, Resolve(rec, "NOT_OPEN"), known, apply)
            self._cancel_unknown(h, v, source)
            return
        self.desk.write(h.grant, rec, "FAILED")
        adopted = replace(rec, order_id=v.id, status="LIVE")
        self.desk.write(h.grant, replace(adopted, matched=v.size_matched), "LIVE")
        self.journal.record("ORDER_ADOPTED", token_id=token, ours=rec.order_id, venue=v.id, side=v.side,
                            price=v.price, size=v.original_size, matched=v.size_matched, source=source)
        self.desk._accepted(adopted, None, token)  # noqa: SLF001 - the desk's one place that counts a post
        events: list[Event] = [OrderGone(rec.order_id, "FAILED"), Posted(adopted)]
        if v.size_matched > 0:
            events.append(Fill(v.id, rec.side, rec.price, v.size_matched))
        for ev in events:
            apply(ev)

    def _resolve(self, h: "Held", x: Resolve, known: set[str], apply: Apply) -> None:
        """Read one record by id (``OrderDesk.poll_one``), journal ORDER_RECORD_DRIFT, apply its events."""
        o = x.record
        events = self.desk.poll_one(h.grant, o, known)
        gone = next((e.status for e in events if isinstance(e, OrderGone)), "")
        adopted = any(isinstance(e, Posted) for e in events)
        filled = sum((e.size for e in events if isinstance(e, Fill)), ZERO)
        self.journal.record("ORDER_RECORD_DRIFT", token_id=h.grant.token_id, level="warn", order_id=o.order_id,
                            why=x.why, side=o.side, price=o.price, size=o.size, matched=o.matched,
                            status=o.status, venue_matched="" if x.venue_matched is None else x.venue_matched,
                            outcome="ADOPTED" if adopted else (gone or "OPEN"), filled=filled)
        for ev in events:
            apply(ev)

    def _position(self, token: str, pd: PositionDrift | None, source: str, action: str) -> None:
        if pd is not None:
            self.journal.record("POSITION_DRIFT", token_id=token, level="warn", redis=pd.recorded, venue=pd.venue,
                                diff=pd.size, source=source, action=action)
