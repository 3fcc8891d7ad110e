"""The shard connections as the service's main thread sees them: plan, links, keepalive, reconnects.

Decisions use the pure rules of ``shards`` (who goes where) and ``ws`` (liveness, backoff); this
class carries them out on :class:`~services.md_gateway.ws.Link` objects and tells the core which
tokens are live. A link is replaced by giving the shard a new generation (unique for the process,
also across shards closed and re-created), so late events of an old link are ignored.
Journal reasons: ``WS_CONNECT``, ``WS_CONNECT_FAILED`` and ``WS_DISCONNECT`` (with cause),
``WS_RECONNECT`` (scheduled, with delay), ``WS_HALF_OPEN``, ``WS_SEND_FAILED``, ``WS_CLOSE``.
"""
from __future__ import annotations

import itertools
import queue
import random
from typing import Callable

from libs.common.clock import Clock
from services.md_gateway import shards
from services.md_gateway.config import GatewaySettings
from services.md_gateway.core import Core
from services.md_gateway.ws import CONNECTING, DOWN, OPEN, ConnState, Link, backoff_ms, liveness

Note = Callable[..., None]  # note(REASON, level=..., **fields): journals one event


class Shards:
    """All market-channel connections of one gateway (main thread only).

    Args:
        settings: gateway settings (URL, cap, PING/PONG, backoff, connect timeout).
        inbound: queue the links put frames on.
        clock: wall time for keepalive and backoff.
        core: told which tokens are live when links open and close.
        note: journal function.
        rng: jitter source (seeded in tests).
        link_factory: builds a link (tests may substitute).
    """

    def __init__(self, settings: GatewaySettings, inbound: "queue.SimpleQueue[tuple]", clock: Clock, core: Core,
                 note: Note, rng: random.Random, link_factory: Callable[..., Link] = Link) -> None:
        self.s, self.inbound, self.clock, self.core, self.note, self.rng = settings, inbound, clock, core, note, rng
        self.link_factory = link_factory
        self.conns: dict[int, ConnState] = {}
        self.links: dict[int, Link] = {}
        self._gens = itertools.count(1)  # link generations, unique across shards and their re-creations
        self.reconnects = 0
        self.last_pong_ms = 0
        self.ping_ms = int(settings.ping_interval_s * 1000)
        self.pong_ms = int(settings.pong_timeout_s * 1000)

    # ------------------------------------------------------------ plan
    def replan(self, wanted: set[str], now_ms: int) -> None:
        """Re-shard for ``wanted``; subscribe/unsubscribe on open links, open or close links as needed."""
        new = shards.plan({cid: c.assets for cid, c in self.conns.items()}, wanted, self.s.max_assets_per_connection)
        for cid in [c for c in self.conns if c not in new]:
            self._close(cid, "no tokens left")
        for cid, assets in new.items():
            c = self.conns.setdefault(cid, ConnState(cid, retry_at_ms=now_ms))
            c.assets = set(assets)
            if c.status == OPEN:
                self._sync_subscription(c, now_ms)

    def _sync_subscription(self, c: ConnState, now_ms: int) -> None:
        add, drop = sorted(c.assets - c.subscribed), sorted(c.subscribed - c.assets)
        try:
            if drop:
                self.links[c.conn_id].send(shards.unsubscribe_op(drop))
            if add:
                self.links[c.conn_id].send(shards.subscribe_op(add))
        except Exception as exc:  # noqa: BLE001 - a failed send ends the link; it is replaced
            self.note("WS_SEND_FAILED", level="warn", conn=c.conn_id, error=f"{type(exc).__name__}: {exc}"[:200])
            self._lost(c, now_ms, "send failed")
            return
        c.subscribed = set(c.assets)
        self.core.set_live(add, True, now_ms)

    def _close(self, cid: int, why: str) -> None:
        c = self.conns.pop(cid)
        link = self.links.pop(cid, None)
        if link is not None:
            link.abort()
        self.note("WS_CLOSE", conn=cid, why=why, gen=c.gen)

    def close_all(self) -> None:
        """Abort every link (service stop)."""
        for cid in list(self.conns):
            self._close(cid, "stopping")

    # ------------------------------------------------------------ link events
    def on_open(self, cid: int, gen: int, now_ms: int) -> None:
        """A link finished its handshake and sent the initial subscribe."""
        c = self.conns.get(cid)
        if c is None or c.gen != gen:
            return
        c.status, c.opened_ms, c.next_ping_ms, c.ping_sent_ms = OPEN, now_ms, now_ms + self.ping_ms, 0
        self.note("WS_CONNECT", conn=cid, gen=gen, assets=len(c.subscribed), url=self.s.ws_market_url)
        self.core.set_live(sorted(c.subscribed & c.assets), True, now_ms)
        self._sync_subscription(c, now_ms)

    def on_closed(self, cid: int, gen: int, cause: str, now_ms: int) -> None:
        """A link ended (error, server close, or our abort)."""
        c = self.conns.get(cid)
        if c is not None and c.gen == gen:
            self._lost(c, now_ms, cause)

    def on_pong(self, c: ConnState, now_ms: int) -> None:
        """A ``PONG`` arrived: the link is alive both ways; the backoff starts over."""
        c.ping_sent_ms, c.last_pong_ms, c.attempt = 0, now_ms, 0
        self.last_pong_ms = now_ms

    def _lost(self, c: ConnState, now_ms: int, cause: str) -> None:
        was_open = c.status == OPEN
        link = self.links.pop(c.conn_id, None)
        if link is not None:
            link.abort()
        c.gen = next(self._gens)  # anything the old link still reports is ignored
        c.status, c.attempt = DOWN, c.attempt + 1
        delay = backoff_ms(c.attempt, int(self.s.backoff_min_s * 1000), int(self.s.backoff_max_s * 1000),
                           self.rng.random())
        c.retry_at_ms = now_ms + delay
        if was_open:
            self.core.set_live(sorted(c.subscribed), False, now_ms)
        if was_open:
            self.note("WS_DISCONNECT", level="warn", conn=c.conn_id, cause=cause, tokens_resynced=len(c.subscribed))
        else:
            self.note("WS_CONNECT_FAILED", level="warn", conn=c.conn_id, cause=cause, url=self.s.ws_market_url)
        self.note("WS_RECONNECT", conn=c.conn_id, attempt=c.attempt, delay_ms=delay)

    # ------------------------------------------------------------ timers
    def tick(self, now_ms: int) -> None:
        """Open due links, send due PINGs, replace links that missed their PONG deadline."""
        for c in list(self.conns.values()):
            if c.status == DOWN and now_ms >= c.retry_at_ms:
                self._connect(c)
                continue
            state = liveness(c, now_ms, self.ping_ms, self.pong_ms)
            if state == "dead":
                self.note("WS_HALF_OPEN", level="warn", conn=c.conn_id, silent_ms=now_ms - c.ping_sent_ms,
                          last_rx_ms=c.last_rx_ms)
                self._lost(c, now_ms, "no PONG before the deadline (half-open)")
            elif state == "ping":
                self._ping(c, now_ms)

    def _ping(self, c: ConnState, now_ms: int) -> None:
        try:
            self.links[c.conn_id].send("PING")
        except Exception as exc:  # noqa: BLE001 - a failed send ends the link; it is replaced
            self.note("WS_SEND_FAILED", level="warn", conn=c.conn_id, error=f"{type(exc).__name__}: {exc}"[:200])
            self._lost(c, now_ms, "PING send failed")
            return
        c.next_ping_ms = now_ms + self.ping_ms
        c.ping_sent_ms = c.ping_sent_ms or now_ms

    def _connect(self, c: ConnState) -> None:
        if c.gen > 0:
            self.reconnects += 1
        c.gen = next(self._gens)
        c.status, c.subscribed = CONNECTING, set(c.assets)
        link = self.link_factory(c.conn_id, c.gen, self.s.ws_market_url, sorted(c.assets), self.inbound,
                                 self.clock, self.s.connect_timeout_s, hard_limit=16 * self.s.max_frame_bytes)
        self.links[c.conn_id] = link
        link.start()

    # ------------------------------------------------------------ reporting
    def state(self) -> str:
        """``connected`` (every shard open; also when nothing is wanted), ``down`` (none open) or ``connecting``."""
        n_open = sum(1 for c in self.conns.values() if c.status == OPEN)
        if n_open == len(self.conns):
            return "connected"
        return "down" if n_open == 0 else "connecting"

    def subscribed(self) -> set[str]:
        """Tokens subscribed on open links."""
        out: set[str] = set()
        for c in self.conns.values():
            if c.status == OPEN:
                out |= c.subscribed
        return out
