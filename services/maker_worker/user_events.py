"""Orders tracked to their final state from the user channel (SPEC S3.4), REST polling as fallback.

Each held token reads its ``pb:user:{token}`` stream (written by user_feed) from the last entry id it
handled (``Held.user_id``; "0-0" at lease acquisition, so nothing published before the takeover is
missed) and turns the entries into the strategy events polling produced:

- ``order`` entry of a tracked order: PENDING -> ``OrderLive``; MATCHED/CANCELED -> ``OrderGone``.
  When the venue reports more matched than our trades account for yet, the OrderGone waits for
  those trades (the strategy must not see its entry gone with no fill, or it would buy again); if
  they do not come within ``AWAIT_TRADES_MS`` (wall) the order is read once by REST instead.
- ``trade`` entry: a fill, recorded ONCE per (trade id, order id) in ``pb:fills:{token}`` through the
  fence, at the TRADE's price. Every order we sent on the token moves the position (tracked, or any
  ``pb:orders`` record, whatever its fence: the takeover no longer takes the position from the
  balance, it settles earlier holders' orders from their trades, ``takeover.Settler``). A fill
  counts what exceeds the size already accounted for its order (``fill_accounting.trade_count``: a REST
  poll that saw ``size_matched`` grow, or earlier trades), so polling, the channel and a takeover's
  trade listing can alternate without counting a share twice. A trade of an order we have no record
  of is only logged (``counted`` 0); the takeover and close checks adopt such orders.
- a trade FAILED after it was counted is journaled ``FILL_FAILED_AFTER_MATCH`` (error).

REST polling (``OrderDesk.poll``) runs only while the feed's ``pb:user:feed`` is not healthy
(``feed_ok``); with the channel up only PENDING orders (outcome of a POST unknown) are polled.
Ledger value: JSON ``{trade_id, order_id, side, price, size, status, counted, fence, ts_ms, source, role,
fee_rate_bps, fee, rebate}``: ``role`` OUR order's MAKER|TAKER ("" unknown), ``fee_rate_bps`` as the
trade sent it, ``fee`` pUSD paid and ``rebate`` pUSD maker rebate estimate (paid daily by Polymarket,
not per fill) of the whole trade (``fill_accounting`` "Fees"; 0 once FAILED). A ``pb:tok`` fee field that
is malformed is journaled FEE_SCHEDULE_INVALID (error), a TAKER trade whose rate differs from it
FEE_RATE_MISMATCH (warn), a fee that cannot be computed FEE_ROLE_UNKNOWN / FEE_UNCOMPUTABLE (warn).
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable

import orjson
from redis import Redis

from libs.common import keys
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import Leases
from services.maker_worker.models import ZERO, Event, Fill, OpenOrder, OrderGone, OrderLive
from services.maker_worker.orders import OrderDesk
from services.maker_worker.fill_accounting import bps_mismatch, fill_fees, ledger_accounted, trade_count, trade_schedule
from services.maker_worker.tokens import FEE_FIELDS, TokenMetaError, fee_schedule

if TYPE_CHECKING:
    from services.maker_worker.trading import Held

BATCH = 200  # stream entries handled per token per step
HEALTH_CACHE_MS = 200  # the feed's health hash is read at most this often (wall)
FINAL = ("MATCHED", "CANCELED")
SETTLEMENT_RANK = {"MATCHED": 0, "RETRYING": 1, "MINED": 2, "CONFIRMED": 3, "FAILED": 4}  # only moves forward
AWAIT_TRADES_MS = 3000  # how long a final order waits for its trades before one REST read settles it


def feed_ok(health: dict[str, str], wall_ms: int, stale_ms: int) -> bool:
    """The channel can be trusted: connected, no backfill pending, status written within ``stale_ms``."""
    try:
        updated = int(health.get("updated_ms") or 0)
    except ValueError:
        return False
    return (health.get("state") == "connected" and health.get("connected") == "1"
            and health.get("backfill_pending") != "1" and wall_ms - updated <= stale_ms)


def fill_size(new_total: Decimal, accounted: Decimal) -> Decimal:
    """Shares a trade adds to the position: its order's traded total (ledger, with this trade) beyond
    what was already accounted for that order."""
    return max(ZERO, new_total - accounted)


def _dec(fields: dict[str, str], name: str) -> Decimal:
    try:
        return Decimal(fields.get(name) or "0")
    except InvalidOperation:
        return ZERO


class UserEvents:
    """The consumer of one worker (module doc). ``stale_ms``: how old ``pb:user:feed`` may be."""

    def __init__(self, r: Redis, leases: Leases, desk: OrderDesk, journal: Journal, clock: Clock,
                 stale_ms: int) -> None:
        self.r, self.leases, self.desk, self.journal, self.clock = r, leases, desk, journal, clock
        self.stale_ms = stale_ms
        self._health: tuple[int, bool] = (-HEALTH_CACHE_MS, False)
        self.polled = 0  # REST order polls made (fallback and PENDING resolution)
        # order id -> (token, final status, venue matched, since wall ms): final orders awaiting their trades
        self._awaiting: dict[str, tuple[str, str, Decimal, int]] = {}
        self.feed_gen = ""  # the feed's ``reconnects`` as last read ("" = not read yet)
        # a LIVE order of ours the venue cancelled on its own (heartbeat expiry, an operator, the
        # exchange): the trader sets this to ``Reconciler.request`` so orders and position are
        # reconciled before the token is quoted again
        self.on_external_cancel: Callable[["Held"], None] = lambda h: None

    def channel_up(self) -> bool:
        """``feed_ok`` of the feed's health hash, read at most every HEALTH_CACHE_MS; also notes the
        feed's ``reconnects`` count as ``feed_gen`` (a change = the channel reconnected: fills made
        while it was down are settled from the venue, ``takeover.Settler.sweep``)."""
        wall = self.clock.wall_ms()
        if wall - self._health[0] >= HEALTH_CACHE_MS:
            health = self.r.hgetall(keys.USER_FEED)
            self._health = (wall, feed_ok(health, wall, self.stale_ms))
            self.feed_gen = health.get("reconnects", "")
        return self._health[1]

    def sync(self, h: "Held", apply: Callable[[Event], None], entries: list | None = None) -> None:
        """Apply the token's new stream entries, then poll REST (all orders when the channel is not
        trusted, else only PENDING ones). ``apply`` runs the strategy on one event. ``entries``: the
        stream read after ``h.user_id`` (``pending_read``) when the caller batched it; None reads here."""
        token = h.grant.token_id
        if entries is None:
            entries = self.r.xrange(keys.user_stream(token), min=f"({h.user_id}", count=BATCH)
        for entry_id, fields in entries:
            for ev in self.events(h, fields):
                apply(ev)
            h.user_id = entry_id
        assert h.state is not None
        self._settle_overdue(h, apply)
        if not self.channel_up():
            self.polled += len(h.state.orders)
            for ev in self.desk.poll(h.grant, h.state):
                apply(ev)
            return
        known = {o.order_id for o in h.state.orders}
        for o in [o for o in h.state.orders if o.status == "PENDING"]:
            self.polled += 1
            for ev in self.desk.poll_one(h.grant, o, known):
                apply(ev)

    @staticmethod
    def pending_read(pipe: Any, h: "Held") -> None:
        """Queue on ``pipe`` the read ``sync`` would make for ``h`` (one round trip for many tokens)."""
        pipe.xrange(keys.user_stream(h.grant.token_id), min=f"({h.user_id}", count=BATCH)

    def events(self, h: "Held", fields: dict[str, str]) -> list[Event]:
        """Strategy events of one stream entry, against the token's current state."""
        if fields.get("kind") == "order":
            return self.on_order(h, fields)
        if fields.get("kind") == "trade":
            return self.on_trade(h, fields)
        self.journal.record("USER_EVENT_MALFORMED", token_id=h.grant.token_id, level="error",
                            detail=f"kind={fields.get('kind')!r}", fields=str(fields)[:300])
        return []

    def on_order(self, h: "Held", f: dict[str, str]) -> list[Event]:
        """OrderLive for a PENDING order the venue knows; OrderGone when final (module doc)."""
        assert h.state is not None
        o = next((x for x in h.state.orders if x.order_id == f.get("order_id")), None)
        if o is None:
            return []
        events: list[Event] = []
        status, token = f.get("status", ""), h.grant.token_id
        if o.status == "PENDING":
            self.journal.record("ORDER_OUTCOME_RESOLVED", token_id=token, order_id=o.order_id, status=status,
                                source=f.get("source", ""))
            self.desk._accepted(o, None, token)  # noqa: SLF001 - the desk's one place that counts a post
            self.desk.write(h.grant, o, "LIVE")
            events.append(OrderLive(o.order_id))
        if status in FINAL:
            venue_matched = _dec(f, "size_matched")
            if venue_matched > o.matched:
                self._awaiting[o.order_id] = (token, status, venue_matched, self.clock.wall_ms())
                return events
            self.desk.write(h.grant, o, status)
            events.append(OrderGone(o.order_id, status))
            if status == "CANCELED" and o.status == "LIVE":  # ours are gone from state before this arrives
                self.journal.record("ORDER_CANCELED_BY_VENUE", token_id=token, level="warn", order_id=o.order_id,
                                    side=o.side, price=o.price)
                self.on_external_cancel(h)
        return events

    def _settle_overdue(self, h: "Held", apply: Callable[[Event], None]) -> None:
        """Final orders whose trades did not arrive in time: one REST read each (``poll_one``)."""
        assert h.state is not None
        tracked = {o.order_id: o for o in h.state.orders}
        wall = self.clock.wall_ms()
        for oid, (token, _status, _matched, since) in list(self._awaiting.items()):
            o = tracked.get(oid)
            if token != h.grant.token_id:
                continue
            if o is None:
                self._awaiting.pop(oid, None)
                continue
            if wall - since >= AWAIT_TRADES_MS:
                self._awaiting.pop(oid, None)
                self.polled += 1
                self.journal.record("USER_TRADES_LATE", token_id=h.grant.token_id, level="warn", order_id=oid)
                for ev in self.desk.poll_one(h.grant, o, set(tracked)):
                    apply(ev)

    def on_trade(self, h: "Held", f: dict[str, str]) -> list[Event]:
        """A Fill at the trade's price, once per (trade id, order id); see module doc."""
        token, oid, tid = h.grant.token_id, f.get("order_id", ""), f.get("trade_id", "")
        ledger = self._ledger(token)
        key, status = f"{tid}:{oid}", f.get("trade_status", "")
        if key in ledger:
            return self._status_change(h, key, ledger[key], status)
        size, wall = _dec(f, "size"), self.clock.wall_ms()
        owned, rec_status, rec_fence = self._owned(h, oid)
        counted = ZERO
        if owned is not None and status != "FAILED":
            prior = ledger_accounted(ledger.values(), oid, rec_fence)
            counted = trade_count(prior, owned.matched, size)
            owned = replace(owned, matched=max(owned.matched, prior))
        rec = {**{k: f.get(k, "") for k in ("trade_id", "order_id", "side", "price", "ts_ms", "source")},
               "side": owned.side if owned is not None else f.get("side", ""), "size": str(size),
               "status": status, "counted": str(counted), "ours": "1" if owned is not None else "0",
               "fence": str(h.grant.fence),
               **self._fee_fields(token, f, ZERO if status == "FAILED" else size)}
        self.leases.fenced_hset(h.grant, keys.fills(token), {key: orjson.dumps(rec).decode()}, wall)
        if owned is None or counted <= 0:
            return []
        events: list[Event] = [Fill(oid, owned.side, _dec(f, "price"), counted)]
        after = replace(owned, matched=owned.matched + counted)
        waiting = self._awaiting.get(oid)
        if rec_status:
            self.desk.write(h.grant, after, rec_status)
        elif waiting is not None and after.matched >= waiting[2]:
            self._awaiting.pop(oid, None)
            self.desk.write(h.grant, after, waiting[1])
            events.append(OrderGone(oid, waiting[1]))
        return events

    def _fee_fields(self, token: str, f: dict[str, str], size: Decimal) -> dict[str, str]:
        """``role``, ``fee_rate_bps``, ``fee``, ``rebate`` of a new ledger entry (module doc)."""
        role, bps = f.get("role", ""), f.get("fee_rate_bps", "")
        tok = {k: v or "" for k, v in zip(FEE_FIELDS, self.r.hmget(keys.tok(token), list(FEE_FIELDS)))}
        try:
            schedule = fee_schedule(tok)
        except TokenMetaError as exc:
            self.journal.record("FEE_SCHEDULE_INVALID", token_id=token, level="error", detail=str(exc)[:300])
            schedule = None
        if bps_mismatch(schedule, bps, role):
            self.journal.record("FEE_RATE_MISMATCH", token_id=token, level="warn", trade_id=f.get("trade_id", ""),
                                fee_rate_bps=bps, tok_fee_rate=tok.get("fee_rate", ""))
        fee, rebate, problem = fill_fees(trade_schedule(schedule, bps), role, size, _dec(f, "price"))
        if problem:
            self.journal.record(problem, token_id=token, level="warn", trade_id=f.get("trade_id", ""),
                                order_id=f.get("order_id", ""), role=role, fee_rate_bps=bps)
        return {"role": role, "fee_rate_bps": bps, "fee": fee, "rebate": rebate}

    def _ledger(self, token: str) -> dict[str, dict]:
        """``pb:fills:{token}`` decoded; an unreadable value is journaled (FILL_RECORD_MALFORMED) and
        skipped, so one bad record cannot stall the token's stream."""
        out: dict[str, dict] = {}
        for key, text in self.r.hgetall(keys.fills(token)).items():
            try:
                rec = orjson.loads(text)
            except orjson.JSONDecodeError:
                rec = None
            if isinstance(rec, dict):
                out[key] = {k: str(v) for k, v in rec.items()}
            else:
                self.journal.record("FILL_RECORD_MALFORMED", token_id=token, level="error", key=key, value=text[:200])
        return out

    def _owned(self, h: "Held", oid: str) -> tuple[OpenOrder | None, str, str]:
        """``(order, "", our fence)`` for a tracked order; ``(order, record status, record fence)`` from
        the ``pb:orders`` record of any other order we sent on the token (this lease's or an earlier
        holder's); ``(None, "", "")`` when there is no usable record."""
        assert h.state is not None
        o = next((x for x in h.state.orders if x.order_id == oid), None)
        if o is not None:
            return o, "", str(h.grant.fence)
        text = self.r.hget(keys.orders(h.grant.token_id), oid)
        if not text:
            return None, "", ""
        try:
            rec = orjson.loads(text)
            status = str(rec.get("status") or "MATCHED")
            return OpenOrder(oid, rec["side"], Decimal(rec["price"]), Decimal(rec["size"]), str(rec.get("purpose", "")),
                             int(rec.get("ts_ms") or 0), Decimal(rec.get("matched") or "0"),
                             status), status, str(rec.get("fence", ""))
        except (orjson.JSONDecodeError, KeyError, ValueError, InvalidOperation, TypeError, AttributeError):
            self.journal.record("ORDER_RECORD_MALFORMED", token_id=h.grant.token_id, level="error", order_id=oid,
                                value=str(text)[:200])
            return None, "", ""

    def _status_change(self, h: "Held", key: str, rec: dict, status: str) -> list[Event]:
        """A later settlement status of a known fill: record it; FAILED after counting is an error."""
        old = SETTLEMENT_RANK.get(rec.get("status", ""), -1)
        if SETTLEMENT_RANK.get(status, -1) <= old or old == SETTLEMENT_RANK["FAILED"]:
            return []
        rec = {**rec, "status": status, **({"fee": "0", "rebate": "0"} if status == "FAILED" else {})}
        self.leases.fenced_hset(h.grant, keys.fills(h.grant.token_id), {key: orjson.dumps(rec).decode()},
                                self.clock.wall_ms())
        if status == "FAILED" and _dec(rec, "counted") > 0:
            self.journal.record("FILL_FAILED_AFTER_MATCH", token_id=h.grant.token_id, level="error",
                                trade_id=rec.get("trade_id"), order_id=rec.get("order_id"), size=rec.get("counted"))
        return []
