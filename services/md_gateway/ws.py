"""Market-channel connections: pure liveness and backoff rules, and the thread that reads one socket.

Keepalive (``reference/polymarket-api.md`` 1.1): the client sends the *text* frame ``PING`` every
10 s and the server answers ``PONG``. A connection whose oldest unanswered PING is older than the
PONG timeout is dead even if the socket looks open (a half-open TCP connection never errors on
read): it is aborted and replaced. Reconnects wait an exponential backoff with equal jitter.

A :class:`Link` is one socket and one reader thread. The thread connects, lets the websockets
library's sans-I/O ``ClientProtocol`` do the handshake and the framing (control frames, close
handshake, size limit), sends the initial subscribe, then reads the socket itself: each ``recv``
is fed to the protocol and every data message it yields goes on the shared ``inbound`` queue as
``("frame", conn_id, gen, bytes, recv_wall_ms, recv_perf_ns)``, bracketed by ``("open", ...)`` and
``("closed", conn_id, gen, cause, wall_ms, 0)``. Everything else (PINGs, subscribe/unsubscribe,
abort) is driven by the service's single main thread, which sends through the same protocol under
the link's lock.

Why not the websockets sync client: it runs a second thread per connection and hands every frame
across a Condition to the caller's thread; with one more hand-off to the main thread that cost
about 20 us of CPU per price-change entry, more than parsing and publishing it
(``bench/md_gateway.py``, run B).
"""
from __future__ import annotations

import logging
import queue
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

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

RECV_BYTES = 256 * 1024  # one recv: up to this much of what the kernel holds (many frames when busy)


class LinkClosed(Exception):
    """The link ended: server close frame (with its code), EOF, protocol error, or our abort."""


class Link:
    """One WebSocket to the market channel and the thread that reads it.

    Args:
        conn_id, gen: identify the shard and this link's generation in every queued event.
        url: ``ws://`` or ``wss://`` market channel URL.
        assets: tokens sent in the initial subscribe.
        inbound: queue shared with the service.
        clock: wall time stamped on each frame (``recv_ts_ms``).
        connect_timeout_s: TCP + TLS + handshake deadline, and the most a send may block (a full
            send buffer means the peer stopped reading); reads have no timeout (liveness is the
            PING rule).
        hard_limit: a message above this many bytes ends the link (close code 1009); messages
            between ``max_frame_bytes`` and this are delivered and rejected by the parser instead.
    """

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: "queue.SimpleQueue[tuple]",
                 clock: Clock, connect_timeout_s: float, hard_limit: int = 64 * 1024 * 1024) -> None:
        self.conn_id, self.gen, self.url, self.assets = conn_id, gen, url, assets
        self.inbound, self.clock, self.connect_timeout_s = inbound, clock, connect_timeout_s
        self.hard_limit = hard_limit
        self.sock: socket.socket | None = None
        self.proto: ClientProtocol | None = None
        self.lock = threading.Lock()  # the protocol object is not thread-safe: reader vs main thread
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"md-ws-{conn_id}-{gen}", daemon=True)

    def start(self) -> None:
        """Connect and read on the link's own thread."""
        self.thread.start()

    def send(self, text: str) -> None:
        """Send a text frame from the caller's thread.

        Raises:
            LinkClosed: the link is not open.
            OSError: the send failed or blocked past ``connect_timeout_s``.
        """
        with self.lock:
            proto = self.proto
            if proto is None or proto.state is not State.OPEN:
                raise LinkClosed("link is not open")
            proto.send_text(text.encode())
            self._write(proto)

    def abort(self) -> None:
        """Shut the socket down (wakes the reader, which then reports ``closed``)."""
        self.stopping = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed: the reader reports the end anyway
                log.debug("abort of a closed socket conn=%s err=%s", self.conn_id, exc)

    def _write(self, proto: ClientProtocol) -> None:
        """Write what the protocol wants sent (caller holds ``lock``); ``b""`` means half-close."""
        sock = self.sock
        for data in proto.data_to_send():
            if sock is None:
                return
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)

    def _run(self) -> None:
        q, cid, gen = self.inbound, self.conn_id, self.gen
        try:
            early = self._open()
            if self.stopping:
                raise LinkClosed("aborted while connecting")
            self.send(self.opening())
            q.put(("open", cid, gen, None, self.clock.wall_ms(), 0))
            self._read(early)
        except Exception as exc:  # noqa: BLE001 - every end of a link is reported to the service
            q.put(("closed", cid, gen, close_cause(exc), self.clock.wall_ms(), 0))
        finally:
            if self.sock is not None:
                self.sock.close()

    def opening(self) -> str:
        """The first message sent once the socket is open: the market channel's subscribe."""
        return initial_subscribe(self.assets)

    def _open(self) -> list:
        """TCP (+ TLS for ``wss://``) and the opening handshake within ``connect_timeout_s``; returns
        the frames that arrived with the handshake response."""
        uri = parse_uri(self.url)
        deadline = time.monotonic() + self.connect_timeout_s
        sock = socket.create_connection((uri.host, uri.port), timeout=self.connect_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if uri.secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
        self.sock = sock
        proto = ClientProtocol(uri, max_size=self.hard_limit)
        with self.lock:
            self.proto = proto
            proto.send_request(proto.connect())
            self._write(proto)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(RECV_BYTES)
            events = self._feed(proto, data)
            if proto.handshake_exc is not None:
                raise proto.handshake_exc
            if events and isinstance(events[0], Response):
                break
            if not data:
                raise LinkClosed("connection closed during the handshake")
        sock.settimeout(None)
        send_timeout = struct.pack("ll", int(self.connect_timeout_s), int(self.connect_timeout_s % 1 * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, send_timeout)
        return events[1:]

    def _feed(self, proto: ClientProtocol, data: bytes) -> list:
        """Give ``data`` (b"" = EOF) to the protocol, send what it answers (PONGs, close echo)."""
        with self.lock:
            if data:
                proto.receive_data(data)
            else:
                proto.receive_eof()
            events = proto.events_received()
            self._write(proto)
        return events

    def _read(self, early: list) -> None:
        """Read until the link ends; queue each data message with the receipt stamps of the ``recv``
        that completed it (every frame of one read arrived at the same moment)."""
        sock, proto = self.sock, self.proto
        assert sock is not None and proto is not None
        wall, perf = self.clock.wall_ms, time.perf_counter_ns
        parts: list[bytes] = []  # fragments of a message in progress
        self._deliver(early, parts, wall(), perf())
        while proto.state is State.OPEN:
            data = sock.recv(RECV_BYTES)
            self._deliver(self._feed(proto, data), parts, wall(), perf())
            if not data:
                break
        raise LinkClosed(self._why_closed(proto))

    def _deliver(self, events: list, parts: list[bytes], wall_ms: int, perf_ns: int) -> None:
        """Queue each complete data message of ``events`` (``parts`` carries a fragmented one over)."""
        put, cid, gen = self.inbound.put, self.conn_id, self.gen
        for ev in events:
            op = ev.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                parts.append(bytes(ev.data))
                if ev.fin:
                    put(("frame", cid, gen, parts[0] if len(parts) == 1 else b"".join(parts), wall_ms, perf_ns))
                    parts.clear()

    @staticmethod
    def _why_closed(proto: ClientProtocol) -> str:
        if proto.close_rcvd is not None:
            return f"connection closed code={proto.close_rcvd.code}"
        if proto.parser_exc is not None:
            return f"protocol error: {type(proto.parser_exc).__name__}: {proto.parser_exc}"
        return "connection closed code=0 (EOF)"
