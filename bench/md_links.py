"""Links the md_gateway bench runs the gateway on besides its own ``ws.Link`` (same interface and
events as ``services.md_gateway.ws.Link``, so ``conns.Shards`` drives any of them): a link on
``websocket-client``, the websockets sync-client link the gateway used before, and a link with no socket.

``WsClientLink`` (``websocket-client``'s ``WebSocket``): one socket and one reader thread looping on
``recv_data_frame()``, which reassembles fragmented messages and answers control PINGs itself; sends
(PINGs, subscription changes) come from the service's main thread under the library's own lock
(``enable_multithread``). It lives here, not in the gateway: it moved 0.63x to 0.68x of ``ws.Link``'s
entries/s at 1.4x its CPU per entry (``bench/md_gateway.py`` docstring). Where the time goes: the
library reads each frame with two or three ``recv`` calls (2-byte header, length, payload) through its
own Python wrapper and builds an ``ABNF`` object per frame, where ``ws.Link`` reads up to 256 KB per
``recv`` and lets websockets' sans-I/O parser cut it into frames. It has no message size limit, so
``hard_limit`` is checked once a message arrived; UTF-8 is left to the parser's JSON decode.
"""
from __future__ import annotations

import logging
import queue
import socket
import struct
import threading
import time

import websocket

from libs.common.clock import Clock
from services.md_gateway.shards import initial_subscribe
from services.md_gateway.ws import LinkClosed, close_cause

log = logging.getLogger(__name__)

_DATA = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)


class SyncClientLink:
    """A market-channel link on websockets' sync client (``connect``/``recv``), same interface and
    events as ``ws.Link``: the older baseline of run B."""

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: queue.SimpleQueue,
                 *_: object, **__: object) -> None:
        self.conn_id, self.gen, self.url, self.assets, self.inbound = conn_id, gen, url, assets, inbound
        self.ws = None

    def start(self) -> None:
        """Connect and read on a thread of its own."""
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, text: str) -> None:
        """Send a text frame (PINGs, subscription changes)."""
        if self.ws is not None:
            self.ws.send(text)

    def abort(self) -> None:
        """Close the socket (the reader then reports the link closed)."""
        if self.ws is not None:
            self.ws.close_socket()

    def _run(self) -> None:
        from websockets.sync.client import connect

        from services.md_gateway.shards import initial_subscribe
        put, cid, gen = self.inbound.put, self.conn_id, self.gen
        try:
            with connect(self.url, compression=None, max_size=None, ping_interval=None) as ws:
                self.ws = ws
                ws.send(initial_subscribe(self.assets))
                put(("open", cid, gen, None, int(time.time() * 1000), 0))
                while True:
                    data = ws.recv(decode=False)
                    put(("frame", cid, gen, data, int(time.time() * 1000), time.perf_counter_ns()))
        except Exception as exc:  # noqa: BLE001 - the link's end is reported, as ws.Link does
            put(("closed", cid, gen, repr(exc), int(time.time() * 1000), 0))


class InProcessLink:
    """A link with no socket: 'opens' at once; the benchmark puts the frames on the queue itself."""

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: queue.SimpleQueue,
                 *_: object, **__: object) -> None:
        self.conn_id, self.gen, self.inbound = conn_id, gen, inbound

    def start(self) -> None:
        """Report the link open at once."""
        self.inbound.put(("open", self.conn_id, self.gen, None, int(time.time() * 1000), 0))

    def send(self, text: str) -> None:
        """Subscriptions and PINGs go nowhere."""
        return None

    def abort(self) -> None:
        """Nothing to close."""
        return None


class WsClientLink:
    """One ``websocket-client`` WebSocket to the market channel and the thread that reads it.

    Args: as :class:`services.md_gateway.ws.Link` (``conn_id``, ``gen``, ``url``, ``assets``,
        ``inbound``, ``clock``, ``connect_timeout_s``: connect + handshake deadline and the most a
        send may block; ``hard_limit``: bytes, a larger message ends the link with close code 1009).
    """

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: "queue.SimpleQueue[tuple]",
                 clock: Clock, connect_timeout_s: float, hard_limit: int = 64 * 1024 * 1024) -> None:
        self.conn_id, self.gen, self.url, self.assets = conn_id, gen, url, assets
        self.inbound, self.clock, self.connect_timeout_s = inbound, clock, connect_timeout_s
        self.hard_limit = hard_limit
        self.ws: websocket.WebSocket | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"md-wsc-{conn_id}-{gen}", daemon=True)

    def start(self) -> None:
        """Connect and read on the link's own thread."""
        self.thread.start()

    def send(self, text: str) -> None:
        """Send a text frame from the caller's thread.

        Raises:
            LinkClosed: the link is not open.
            OSError, websocket.WebSocketException: the send failed or blocked past ``connect_timeout_s``.
        """
        ws = self.ws
        if ws is None or not ws.connected:
            raise LinkClosed("link is not open")
        ws.send(text)

    def abort(self) -> None:
        """Shut the socket down (wakes the reader, which then reports ``closed``)."""
        self.stopping = True
        sock = self.ws.sock if self.ws is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed: the reader reports the end anyway
                log.debug("abort of a closed socket conn=%s err=%s", self.conn_id, exc)

    def _run(self) -> None:
        q, cid, gen = self.inbound, self.conn_id, self.gen
        try:
            self._open()
            if self.stopping:
                raise LinkClosed("aborted while connecting")
            self.send(initial_subscribe(self.assets))
            q.put(("open", cid, gen, None, self.clock.wall_ms(), 0))
            self._read()
        except Exception as exc:  # noqa: BLE001 - every end of a link is reported to the service
            q.put(("closed", cid, gen, close_cause(exc), self.clock.wall_ms(), 0))
        finally:
            if self.ws is not None:
                self.ws.shutdown()

    def _open(self) -> None:
        """Connect within ``connect_timeout_s``; then reads block without a timeout (liveness is the
        PING rule) and sends block at most ``connect_timeout_s``."""
        t = self.connect_timeout_s
        ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True,
                                 sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
        self.ws = ws
        ws.connect(self.url, timeout=t, suppress_origin=True)
        ws.settimeout(None)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(t), int(t % 1 * 1e6)))

    def _read(self) -> None:
        """Read until the link ends; queue each data message with its receipt stamps."""
        ws, put, cid, gen = self.ws, self.inbound.put, self.conn_id, self.gen
        assert ws is not None
        wall, perf, limit = self.clock.wall_ms, time.perf_counter_ns, self.hard_limit
        while True:
            op, frame = ws.recv_data_frame()
            if op in _DATA:
                data = frame.data
                if len(data) > limit:
                    ws.close(websocket.STATUS_MESSAGE_TOO_BIG, timeout=0)
                    raise LinkClosed(f"message of {len(data)} bytes above the limit {limit} (code=1009)")
                put(("frame", cid, gen, data, wall(), perf()))
            elif op == websocket.ABNF.OPCODE_CLOSE:
                raise LinkClosed(f"connection closed code={_close_code(frame.data)}")


def _close_code(payload: bytes) -> int:
    """The status code of a close frame's payload (0 when it has none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
