"""REST side of the core: when to ask ``GET /book`` and what its answer does (no I/O).

* Snapshots: a token that is ``resync`` on a live connection gets a REST snapshot when its
  ``snap_due_ms`` passes (at once after a tick size change or a crossed book; ``grace_ms`` after a
  connection opened without its WS dump; ``rest_retry_ms`` after a failure).
* Verify ("quiet is not stale", SPEC S2.2): every verify interval, live ``ok`` tokens that were quiet
  since the last round (no WS message, or no change of their published top of book: traffic on
  deeper levels never refreshes ``recv_ts_ms``, so readers would find such a book stale) are compared
  level by level with REST. Equal: ``verified_ts_ms`` is stamped. Different: ``BOOK_DRIFT`` is
  journaled and the REST book replaces ours (``source=rest``). Level changes applied while the
  request is in flight are kept (up to ``buffer_max``) and replayed on the REST book when not older
  than it (the resync rule); if that equals our book the token is verified, else the verify is void
  (``verify_busy``: the two books may be from different moments), as it is after a WS ``book`` or
  too many changes in flight. A cross-check mismatch asks for a verify at once, and so
  does a token's first WS snapshot: ``min_order_size`` is only in REST ``/book``; it (and the tick
  size) is adopted from any REST answer, even a void verify.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from services.md_gateway import schemas as s
from services.md_gateway.book import Book
from services.md_gateway.state import OK, Publish, TokenState, price_str

if TYPE_CHECKING:
    from services.md_gateway.core import Core


class RestRules:
    """Mixin of :class:`~services.md_gateway.core.Core` holding its REST decisions."""

    def due_rest(self: "Core", now_ms: int) -> list[tuple[str, str]]:
        """``(token, why)`` REST requests to send now: snapshots due, then cross-check verifies.
        Marks them in flight (one request per token at a time). Cheap: looks only at tokens without a
        book and at cross-check failures, so the shell may call it every step."""
        out = []
        for t in self.unbooked:
            st = self.tokens[t]
            if st.live and st.snap_due_ms and now_ms >= st.snap_due_ms and not st.rest_why:
                st.rest_why, st.rest_msgs = "snapshot", st.msgs
                out.append((t, "snapshot"))
        for t in self.verify_now:
            st = self.tokens.get(t)
            if st is not None and st.live and st.status == OK and not st.rest_why:
                st.rest_why, st.rest_msgs, st.inflight = "verify", st.msgs, []
                out.append((t, "verify"))
        self.verify_now.clear()
        return out

    def verify_round(self: "Core", quiet_since_ms: int) -> list[str]:
        """Tokens to check against REST (marked in flight): live, ``ok``, no request in flight, and
        quiet since ``quiet_since_ms`` (wall ms): no WS message, or no published top change."""
        out = []
        for st in self.tokens.values():
            if (st.live and st.status == OK and not st.rest_why
                    and min(st.last_msg_ms, st.top_ms) < quiet_since_ms):
                st.rest_why, st.rest_msgs, st.inflight = "verify", st.msgs, []
                out.append(st.token_id)
        return out

    def rest_failed(self: "Core", token_id: str, now_ms: int, reason: str, detail: str) -> None:
        """A REST request for ``token_id`` failed; a snapshot is retried after ``rest_retry_ms``."""
        self.counts["rest_failed"] += 1
        self.notes.append(("REST_BOOK_FAILED", "warn", token_id, {"code": reason, "detail": detail[:300]}))
        st = self.tokens.get(token_id)
        if st is not None:
            st.rest_why, st.inflight = "", None
            if st.status != OK:
                st.snap_due_ms = now_ms + self.rest_retry_ms

    def apply_rest(self: "Core", snap: s.BookSnap, now_ms: int) -> None:
        """A REST ``/book`` answer for a request from ``due_rest``/``verify_round`` (``now_ms`` wall)."""
        st = self.tokens.get(snap.token_id)
        if st is None:
            return
        why, st.rest_why = st.rest_why, ""
        held, st.inflight = st.inflight, None
        self.counts["rest_ok"] += 1
        if not st.live:
            return  # the connection went down meanwhile: its reconnect brings a new snapshot
        if st.status != OK:
            if st.discard_next:
                st.discard_next, st.snap_due_ms = False, now_ms
                return
            self._install(st, snap, "rest", "rest", now_ms)
        elif why == "verify":
            self._verify(st, snap, now_ms, held)

    def _verify(self: "Core", st: TokenState, snap: s.BookSnap, now_ms: int,
                held: list[s.LevelChange] | None) -> None:
        """Compare our book with REST (``held``: level changes applied while the request was in flight)."""
        learned = self._learn(st, snap)
        busy = st.msgs != st.rest_msgs
        if busy and (held is None or not _same_replayed(st.book, snap, held)):
            self.counts["verify_busy"] += 1  # WS changed the book meanwhile: no fair comparison
            if learned:
                self.out.append(Publish(st.token_id, False, "rest", learned))
            return
        if busy or st.book.same_levels(snap.bids, snap.asks):
            self.counts["verified"] += 1
            if learned:
                self.out.append(Publish(st.token_id, False, "rest", learned + ["verified_ts_ms", str(now_ms)]))
            else:
                self.stamps.append((st.token_id, now_ms))
            return
        self.counts["drift"] += 1
        ours, rest_top = st.book.top(), Book().replace(snap.bids, snap.asks)
        self.notes.append(("BOOK_DRIFT", "warn", st.token_id, {
            "ours": f"{price_str(ours.bid)}/{price_str(ours.ask)}",
            "rest": f"{price_str(rest_top.bid)}/{price_str(rest_top.ask)}",
            "levels_ours": len(st.book.bids) + len(st.book.asks), "levels_rest": len(snap.bids) + len(snap.asks)}))
        self._install(st, snap, "drift", "rest", now_ms)

    def _learn(self: "Core", st: TokenState, snap: s.BookSnap) -> list[str]:
        """Market facts only REST tells (``min_order_size``) or that a missed event changed (tick
        size): adopt them; returns the hash fields that changed."""
        fields: list[str] = []
        if snap.min_order_size and snap.min_order_size != st.min_order_size:
            st.min_order_size = snap.min_order_size
            fields += ["min_order_size", snap.min_order_size]
        if snap.tick_size is not None and snap.tick_size != st.tick:
            st.tick = snap.tick_size
            fields += ["tick_size", price_str(snap.tick_size)]
        return fields


def _same_replayed(ours: Book, snap: s.BookSnap, held: list[s.LevelChange]) -> bool:
    """True when ``snap`` with the ``held`` changes not older than it (``ts_ms >= snap.ts_ms``, in
    order) replayed on top holds exactly the levels of ``ours``."""
    theirs = Book()
    theirs.replace(snap.bids, snap.asks)
    for ch in held:
        if ch.ts_ms >= snap.ts_ms:
            theirs.set_level(ch.is_bid, ch.price, ch.size)
    return ours.bids == theirs.bids and ours.asks == theirs.asks
