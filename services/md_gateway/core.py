"""The gateway's functional core: per-token book state and what to publish, with no I/O.

``Core`` consumes typed events (``schemas``), REST snapshots and subscription changes, all stamped
with wall ms by the shell, and accumulates its outputs for the shell to carry out:

* ``out``: :class:`Publish` records, one per change of a token's Redis hash (one ``book_publish.lua``
  call each, in order). ``stream=True`` when the top of book (best prices or their sizes) changed;
  every such change is published, none is coalesced away.
* ``notes``: journal entries ``(REASON, level, token_id, fields)``; ``stamps``: ``(token, wall ms)``
  verified by REST with no change (an HSET of ``verified_ts_ms`` only, no seq bump: nothing in the
  book changed); ``ticks``: ``(token, tick_size)`` announced by ``tick_size_change``.

Book status (contract ``pb:md:book:{token}``): ``ok``, or ``resync`` while the book is unknown
(before the first snapshot, after a disconnect, a ``tick_size_change``, a crossed book, a resync
buffer overflow). A ``resync`` publish empties ``best_bid``/``best_ask``. WS level changes that
arrive while a book is ``resync`` (awaiting its first snapshot, or resyncing) are buffered and
replayed on top of a REST snapshot when their timestamp is not older than the snapshot's (a level
change carries the level's new total, so replaying one the snapshot already holds is harmless). A
crossed book is never published: a change that crosses the book inside a frame is held back, and if
the book is still crossed at the end of the frame the token is resynced from REST (a cross that a
later entry of the same frame undoes is an intermediate state).
"""
from __future__ import annotations

from services.md_gateway import schemas as s
from services.md_gateway.book import EMPTY_TOP
from services.md_gateway.core_rest import RestRules
from services.md_gateway.state import OK, RESYNC, Publish, TokenState, price_str, top_fields
from services.md_gateway.units import fmt_micros


class Core(RestRules):
    """Books and decisions for the subscribed tokens.

    Args:
        grace_ms: wait this long after a connection opens (or a token is subscribed) for the WS
            snapshot before asking REST for one.
        rest_retry_ms: wait after a failed REST snapshot before retrying.
        buffer_max: level changes held per token during a resync before the buffer is dropped and
            the snapshot re-requested.
    """

    def __init__(self, grace_ms: int = 5000, rest_retry_ms: int = 2000, buffer_max: int = 10_000) -> None:
        self.grace_ms, self.rest_retry_ms, self.buffer_max = grace_ms, rest_retry_ms, buffer_max
        self.tokens: dict[str, TokenState] = {}
        self.out: list[Publish] = []
        self.notes: list[tuple[str, str, str, dict[str, object]]] = []
        self.stamps: list[tuple[str, int]] = []
        self.ticks: list[tuple[str, str]] = []
        self.verify_now: set[str] = set()
        self.unbooked: set[str] = set()  # tokens whose status is not ok
        self._allowed: set[str] | None = None  # tokens of the connection whose frame is being applied
        self.counts: dict[str, int] = dict.fromkeys(
            ("entries", "unwanted", "xcheck", "xcheck_mismatch", "crossed", "resyncs", "drift", "verified",
             "verify_busy", "buffered", "rest_ok", "rest_failed", "snapshots"), 0)

    # ------------------------------------------------------------ subscriptions
    def add(self, token_id: str, now_ms: int) -> None:
        """Start tracking ``token_id``: publish it as ``resync`` until its first snapshot."""
        if token_id in self.tokens:
            return
        st = TokenState(token_id)
        self.tokens[token_id] = st
        self.unbooked.add(token_id)
        fields = top_fields(EMPTY_TOP, 0, now_ms) + ["status", RESYNC]
        self.out.append(Publish(token_id, True, "subscribed", fields))

    def remove(self, token_id: str, now_ms: int) -> None:
        """Stop tracking ``token_id``; its hash is left ``resync`` (nobody keeps it current any more)."""
        st = self.tokens.pop(token_id, None)
        self.unbooked.discard(token_id)
        if st is not None:
            self.out.append(Publish(token_id, st.top != EMPTY_TOP, "unsubscribed",
                                    top_fields(EMPTY_TOP, 0, now_ms) + ["status", RESYNC]))

    def set_live(self, token_ids: list[str], live: bool, now_ms: int) -> None:
        """A connection carrying ``token_ids`` opened (``live``) or closed.

        Opened: a snapshot dump is expected; tokens without a book get a REST snapshot after
        ``grace_ms``. Closed: their books are no longer current and go to ``resync``.
        """
        for t in token_ids:
            st = self.tokens.get(t)
            if st is None:
                continue
            st.live = live
            if live:
                if st.status != OK:
                    st.snap_due_ms = now_ms + self.grace_ms
            elif st.status == OK:
                self._resync(st, "disconnect", now_ms, 0, rest_now=False)

    # ------------------------------------------------------------ WS events
    def apply_frame(self, events: list[s.Event], recv_ms: int, recv_ns: int = 0,
                    allowed: set[str] | None = None) -> None:
        """Apply the events of one frame in wire order (``recv_ms``: wall ms the frame arrived).

        ``allowed``: tokens subscribed on the connection the frame came from. Events for other tokens
        are skipped (counted ``unwanted``): a market event can reach every connection subscribed to one
        of its tokens, and each token must be read from its own connection only, in that connection's
        order, never twice.
        """
        self._allowed = allowed
        crossed: dict[str, int] = {}
        touched: set[str] = set()
        for ev in events:
            if type(ev) is s.LevelChange:
                st = self._level(ev, recv_ms, recv_ns)
                if st is not None:
                    if st.crossed:
                        crossed[st.token_id] = ev.ts_ms
                    elif crossed:
                        crossed.pop(st.token_id, None)
                    if st.bba is not None:
                        touched.add(st.token_id)
            else:
                self._other(ev, recv_ms, recv_ns)
        if crossed:
            self._end_crossed(crossed, recv_ms)
        for t in touched:
            self._check_bba(t)

    def _level(self, ev: s.LevelChange, recv_ms: int, recv_ns: int) -> TokenState | None:
        """Apply one level change; publish the new top unless unchanged or crossed."""
        self.counts["entries"] += 1
        st = self._mine(ev.token_id)
        if st is None:
            return None
        st.msgs += 1
        st.last_msg_ms = recv_ms
        if st.status != OK:
            self._hold(st, ev, recv_ms)
            return None
        st.book.set_level(ev.is_bid, ev.price, ev.size)
        held = st.inflight
        if held is not None:  # a verify is in flight: keep the change for its replay (too many: void)
            if len(held) < self.buffer_max:
                held.append(ev)
            else:
                st.inflight = None
        top = st.book.top()
        st.crossed = top.crossed
        if st.crossed:
            return st
        if top != st.top:
            st.top, st.top_ms = top, recv_ms
            self.out.append(Publish(st.token_id, True, "price_change",
                                    top_fields(top, ev.ts_ms, recv_ms) + ["source", "ws"], recv_ns))
        if ev.expect is not None:
            self._xcheck(st, ev.expect[0], ev.expect[1], "price_change")
        return st

    def _hold(self, st: TokenState, ev: s.LevelChange, now_ms: int) -> None:
        """Keep a change that arrived while the book awaits a snapshot (the first one or a resync's),
        for replay on top of that snapshot."""
        if st.buffer is None:
            return
        if len(st.buffer) >= self.buffer_max:
            # Changes are being lost: restart holding now and want a snapshot newer than this moment.
            self.notes.append(("BOOK_RESYNC_BUFFER_FULL", "warn", st.token_id, {"held": self.buffer_max}))
            st.buffer = []
            st.discard_next = bool(st.rest_why)
            st.snap_due_ms = now_ms
        st.buffer.append(ev)
        self.counts["buffered"] += 1

    def _end_crossed(self, crossed: dict[str, int], recv_ms: int) -> None:
        for t, ts in crossed.items():
            st = self.tokens[t]
            top = st.book.top()
            self.counts["crossed"] += 1
            self.notes.append((s.CROSSED, "warn", t, {"best_bid": price_str(top.bid), "best_ask": price_str(top.ask)}))
            self._resync(st, "crossed", recv_ms, ts, rest_now=True)

    def _mine(self, token_id: str) -> TokenState | None:
        """The token's state if it is tracked and subscribed on the current frame's connection."""
        st = self.tokens.get(token_id)
        if st is None or (self._allowed is not None and token_id not in self._allowed):
            self.counts["unwanted"] += 1
            return None
        return st

    def _other(self, ev: s.Event, recv_ms: int, recv_ns: int) -> None:
        if type(ev) is s.BookSnap:
            self._book(ev, recv_ms, recv_ns)
        elif type(ev) is s.BestBidAsk:
            st = self._mine(ev.token_id)
            if st is not None and st.status == OK:
                st.bba = (ev.bid, ev.ask, ev.ts_ms)
                if (st.top.bid, st.top.ask) == (ev.bid, ev.ask):
                    self._check_bba(ev.token_id)
        elif type(ev) is s.TickSizeChange:
            self._tick(ev, recv_ms)
        elif type(ev) is s.LastTrade:
            self._last_trade(ev, recv_ms)
        elif type(ev) is s.Resolved:
            self._resolved(ev, recv_ms)

    def _book(self, ev: s.BookSnap, recv_ms: int, recv_ns: int) -> None:
        st = self._mine(ev.token_id)
        if st is None:
            return
        st.msgs += 1
        st.last_msg_ms = recv_ms
        st.buffer, st.inflight = None, None  # (a verify in flight is void: the book was replaced)
        st.discard_next = False
        self._install(st, ev, "book", "ws", recv_ms, recv_ns)

    def _tick(self, ev: s.TickSizeChange, recv_ms: int) -> None:
        st = self._mine(ev.token_id)
        if st is None:
            return
        st.msgs += 1
        st.tick = ev.new_tick
        self.ticks.append((ev.token_id, fmt_micros(ev.new_tick)))
        self.notes.append(("TICK_SIZE_CHANGE", "info", ev.token_id, {"new_tick_size": fmt_micros(ev.new_tick)}))
        self._resync(st, "tick_size_change", recv_ms, ev.ts_ms, rest_now=True)

    def _last_trade(self, ev: s.LastTrade, recv_ms: int) -> None:
        st = self._mine(ev.token_id)
        if st is not None and ev.price != st.last_trade:
            st.last_trade = ev.price
            self.out.append(Publish(ev.token_id, False, "last_trade_price", ["last_trade_price", ev.price]))

    def _resolved(self, ev: s.Resolved, recv_ms: int) -> None:
        """Per token of ours: ``resolved=1`` and ``payout`` ("1" winner, "0" loser, "" no known winner:
        journaled RESOLVED_NO_WINNER, warn) in one publish (no stream entry: the top did not change)."""
        for t in ev.token_ids:
            if t in self.tokens and (self._allowed is None or t in self._allowed):
                pay = ev.payout(t)
                fields: dict[str, object] = {"market": ev.market, "winner": ev.winner, "payout": pay}
                self.notes.append(("MARKET_RESOLVED", "info", t, fields))
                if pay == "":
                    self.notes.append(("RESOLVED_NO_WINNER", "warn", t, {"market": ev.market, "winner": ev.winner}))
                self.out.append(Publish(t, False, "market_resolved", ["resolved", "1", "payout", pay]))

    # ------------------------------------------------------------ cross-checks
    def _check_bba(self, token_id: str) -> None:
        st = self.tokens[token_id]
        if st.bba is not None and not st.crossed:
            bid, ask, _ = st.bba
            st.bba = None
            self._xcheck(st, bid, ask, "best_bid_ask")

    def _xcheck(self, st: TokenState, bid: int | None, ask: int | None, source: str) -> None:
        self.counts["xcheck"] += 1
        if (st.top.bid, st.top.ask) != (bid, ask):
            self.counts["xcheck_mismatch"] += 1
            self.verify_now.add(st.token_id)
            self.notes.append(("BOOK_XCHECK_MISMATCH", "warn", st.token_id,
                               {"source": source, "reported": f"{price_str(bid)}/{price_str(ask)}",
                                "ours": f"{price_str(st.top.bid)}/{price_str(st.top.ask)}"}))

    # ------------------------------------------------------------ snapshots and resyncs
    def _install(self, st: TokenState, snap: s.BookSnap, event: str, source: str, recv_ms: int,
                 recv_ns: int = 0) -> None:
        """Replace the book with ``snap`` (+ held changes not older than it) and publish it whole."""
        st.book.replace(snap.bids, snap.asks)
        for ch in st.buffer or ():
            if ch.ts_ms >= snap.ts_ms:
                st.book.set_level(ch.is_bid, ch.price, ch.size)
        st.buffer, st.bba = None, None
        top = st.book.top()
        st.market = snap.market or st.market
        st.tick = snap.tick_size if snap.tick_size is not None else st.tick
        st.min_order_size = snap.min_order_size or st.min_order_size
        st.last_trade = snap.last_trade or st.last_trade
        if top.crossed:
            self.counts["crossed"] += 1
            self.notes.append((s.CROSSED, "warn", st.token_id, {"source": source, "best_bid": price_str(top.bid),
                                                                "best_ask": price_str(top.ask)}))
            self._resync(st, "crossed", recv_ms, snap.ts_ms, rest_now=source == "ws")
            if source != "ws":
                st.snap_due_ms = recv_ms + self.rest_retry_ms
            return
        self.counts["snapshots"] += 1
        changed = top != st.top
        st.status, st.snap_due_ms, st.top, st.crossed, st.top_ms = OK, 0, top, False, recv_ms
        self.unbooked.discard(st.token_id)
        if source != "rest" and not st.min_order_size:
            self.verify_now.add(st.token_id)  # one REST look for min_order_size, which the WS never sends
        self.out.append(Publish(st.token_id, changed, event, self._snapshot_fields(st, snap.ts_ms, recv_ms, source),
                                recv_ns))

    @staticmethod
    def _snapshot_fields(st: TokenState, exch_ms: int, recv_ms: int, source: str) -> list[str]:
        """Every hash field of a freshly installed book (a REST book also counts as verified)."""
        fields = top_fields(st.top, exch_ms, recv_ms) + ["source", source, "status", OK, "market", st.market,
                                                         "tick_size", price_str(st.tick),
                                                         "min_order_size", st.min_order_size,
                                                         "last_trade_price", st.last_trade]
        return fields + ["verified_ts_ms", str(recv_ms)] if source == "rest" else fields

    def _resync(self, st: TokenState, why: str, now_ms: int, exch_ms: int, rest_now: bool) -> None:
        """Drop the book (status resync, empty top) and, if ``rest_now``, ask REST for a snapshot."""
        self.counts["resyncs"] += 1
        if why != "disconnect":  # a disconnect is journaled once for all its tokens (WS_DISCONNECT)
            self.notes.append(("BOOK_RESYNC", "warn", st.token_id, {"why": why}))
        st.book.clear()
        st.status, st.buffer, st.bba, st.crossed, st.inflight = RESYNC, [], None, False, None
        self.unbooked.add(st.token_id)
        st.snap_due_ms = now_ms if rest_now else 0
        changed = st.top != EMPTY_TOP
        st.top = EMPTY_TOP
        fields = top_fields(EMPTY_TOP, exch_ms, now_ms) + ["status", RESYNC, "tick_size", price_str(st.tick)]
        self.out.append(Publish(st.token_id, changed, why, fields))

    def republish_all(self, now_ms: int) -> list[Publish]:
        """Every token's current state as publishes (after queued publishes had to be dropped)."""
        out = []
        for st in self.tokens.values():
            if st.status == OK:
                fields = self._snapshot_fields(st, 0, now_ms, "ws")
            else:
                fields = top_fields(EMPTY_TOP, 0, now_ms) + ["status", RESYNC]
            out.append(Publish(st.token_id, True, "republish", fields))
        return out

    def take(self) -> list[Publish]:
        """The publishes accumulated so far (and forget them)."""
        out, self.out = self.out, []
        return out

