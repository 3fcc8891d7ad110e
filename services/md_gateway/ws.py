"""Market-channel connections: pure liveness and backoff rules, and the thread that reads one socket.

Keepalive (``reference/polymarket-api.md`` 1.1): the client sends the *text* frame ``PING`` every
10 s and the server answers ``PONG``. A connection whose oldest unanswered PING is older than the
PONG timeout is dead even if the socket looks open (a half-open TCP connection never errors on
read): it is aborted and replaced. Reconnects wait an exponential backoff with equal jitter.

A :class:`Link` is one socket and one reader thread. The thread connects (the websockets library does the
handshake), sends the initial subscribe, then reads messages with the websockets library and
puts every received data frame on the shared ``inbound`` queue as
``("frame", conn_id, gen, bytes, recv_wall_ms, recv_perf_ns)``, bracketed by ``("open", ...)`` and
``("closed", conn_id, gen, cause, wall_ms, 0)``. Everything else (PINGs, subscribe/unsubscribe,
abort) is driven by the service's single main thread; the websockets library's ``send`` is thread-safe, so
the main thread may send while the reader thread receives.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from libs.common.clock import Clock
from services.md_gateway.shards import initial_subscribe

DOWN, CONNECTING, OPEN = "down", "connecting", "open"


@dataclass
class ConnState:
    """One shard: its tokens and link state (times are wall ms)."""

    conn_id: int
    assets: set[str] = field(default_factory=set)  # assigned by the shard plan
    subscribed: set[str] = field(default_factory=set)  # announced to the server on the current link
    status: str = DOWN
    gen: int = 0  # link generation (0 = never connected); events of other generations are ignored
    attempt: int = 0  # failed links in a row (backoff exponent); reset by a PONG
    retry_at_ms: int = 0
    opened_ms: int = 0
    next_ping_ms: int = 0
    ping_sent_ms: int = 0  # oldest PING not answered yet (0 = none)
    last_pong_ms: int = 0
    last_rx_ms: int = 0


def liveness(c: ConnState, now_ms: int, ping_ms: int, pong_timeout_ms: int) -> str:
    """``dead`` (a PING unanswered past the timeout), ``ping`` (one is due) or ``ok``."""
    if c.status != OPEN:
        return "ok"
    if c.ping_sent_ms and now_ms - c.ping_sent_ms >= pong_timeout_ms:
        return "dead"
    return "ping" if now_ms >= c.next_ping_ms else "ok"


def backoff_ms(attempt: int, min_ms: int, max_ms: int, u: float) -> int:
    """Delay before reconnect number ``attempt`` (>= 1): half of ``min(max, min * 2**(attempt-1))``
    fixed plus that half times ``u`` in [0, 1) ("equal jitter", so that shards do not reconnect in step)."""
    cap = min(max_ms, min_ms * 2 ** min(max(attempt - 1, 0), 30))
    return int(cap / 2 + cap / 2 * u)


def close_cause(exc: BaseException) -> str:
    """A short, loggable reason for a link that ended with ``exc``."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


log = logging.getLogger(__name__)


class LinkClosed(Exception):
    """The server closed the WebSocket (close frame); ``code`` is its status code (0 if none)."""


class Link:
    """One WebSocket to the market channel and the thread that reads it.

    Args:
        conn_id, gen: identify the shard and this link's generation in every queued event.
        url: ``ws://`` or ``wss://`` market channel URL.
        assets: tokens sent in the initial subscribe.
        inbound: queue shared with the service.
        clock: wall time stamped on each frame (``recv_ts_ms``).
        connect_timeout_s: TCP + handshake timeout; reads have none (liveness is the PING rule).
        hard_limit: a frame above this many bytes ends the link ; frames
            between ``max_frame_bytes`` and this are delivered and rejected by the parser instead.
    """

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: "queue.SimpleQueue[tuple]",
                 clock: Clock, connect_timeout_s: float, hard_limit: int = 64 * 1024 * 1024) -> None:
        self.conn_id, self.gen, self.url, self.assets = conn_id, gen, url, assets
        self.inbound, self.clock, self.connect_timeout_s = inbound, clock, connect_timeout_s
        self.hard_limit = hard_limit
        self.ws: ClientConnection | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"md-ws-{conn_id}-{gen}", daemon=True)

    def start(self) -> None:
        """Connect and read on the link's own thread."""
        self.thread.start()

    def send(self, text: str) -> None:
        """Send a text frame from the caller's thread.

        Raises:
            LinkClosed, websockets.exceptions.ConnectionClosed, OSError: the link is not open or the send failed.
        """
        ws = self.ws
        if ws is None:
            raise LinkClosed("link is not open")
        ws.send(text)

    def abort(self) -> None:
        """Shut the socket down (wakes the reader, which then reports ``closed``)."""
        self.stopping = True
        ws = self.ws
        if ws is not None:
            try:
                ws.socket.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed: the reader reports the end anyway
                log.debug("abort of a closed socket conn=%s err=%s", self.conn_id, exc)

    def _run(self) -> None:
        q, cid, gen = self.inbound, self.conn_id, self.gen
        ws = None
        try:
            ws = connect(self.url, open_timeout=self.connect_timeout_s, compression=None, max_size=self.hard_limit,
                         ping_interval=None, close_timeout=1)
            self.ws = ws
            if self.stopping:
                raise LinkClosed("aborted while connecting")
            ws.send(initial_subscribe(self.assets))
            q.put(("open", cid, gen, None, self.clock.wall_ms(), 0))
            self._read(ws)
        except Exception as exc:  # noqa: BLE001 - every end of a link is reported to the service
            q.put(("closed", cid, gen, close_cause(exc), self.clock.wall_ms(), 0))
        finally:
            if ws is not None:
                ws.close_socket()

    def _read(self, ws: ClientConnection) -> None:
        """Read messages with the websockets library (it answers server pings, reassembles fragments
        and enforces ``hard_limit``); queue each with its receipt stamps until the link closes."""
        put, cid, gen = self.inbound.put, self.conn_id, self.gen
        wall, perf = self.clock.wall_ms, time.perf_counter_ns
        recv = ws.recv
        try:
            while True:
                data = recv(decode=False)
                put(("frame", cid, gen, data, wall(), perf()))
        except ConnectionClosed as exc:
            raise LinkClosed(f"connection closed code={exc.rcvd.code if exc.rcvd else 0}") from exc
