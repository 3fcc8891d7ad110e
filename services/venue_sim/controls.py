"""WebSocket connection control for both channels: the registry of connections, their bounded
outboxes and writer threads, the half-open ("silence") switch, and the ``/_sim/ws/*`` test controls.

Test controls (JSON, on the venue's HTTP server; docs/contracts.md "Paper venue"):
- ``POST /_sim/ws/drop`` (optional ``{"abrupt": true}``: cut the TCP connection without a close
  frame; optional ``{"channel": "user"|"market"}``: only that channel's connections) closes every
  market and user connection now;
- ``POST /_sim/ws/silence {"seconds": s}``: for ``s`` wall seconds the sockets stay open but
  nothing at all is sent (frames are discarded, PINGs go unanswered), as on a half-open connection;
- ``POST /_sim/ws/inject {"text": "..."}``: send a raw text frame to every market connection;
- ``GET /_sim/ws/state``: connections, subscriptions, frames sent, replay position, and
  ``requests``: HTTP requests served by route (``"GET /data/order/<order_id>": n``), so a test can
  tell how often clients polled orders (also ``GET /_sim/requests``).
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter, deque
from typing import Any, Callable

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from websockets.exceptions import ConnectionClosed

from services.venue_sim.replay import Recorder

log = logging.getLogger(__name__)


class Silence:
    """The half-open switch shared by every connection; ``wall_ms`` gives wall ms."""

    def __init__(self, wall_ms: Callable[[], int]) -> None:
        self._wall_ms = wall_ms
        self.until_wall_ms = 0

    def start(self, seconds: float) -> int:
        """Be silent for ``seconds`` (wall) from now; returns the wall ms it ends (0 s ends it)."""
        self.until_wall_ms = self._wall_ms() + int(seconds * 1000)
        return self.until_wall_ms

    def active(self) -> bool:
        """True while nothing may be sent."""
        return self._wall_ms() < self.until_wall_ms


class Outbox:
    """A bounded FIFO of outgoing text frames for one connection (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.closed = False
        self._items: deque[str] = deque()
        self._cv = threading.Condition()

    def offer(self, text: str) -> bool:
        """Queue ``text``; False only when the outbox is full (a closed outbox discards it)."""
        with self._cv:
            if self.closed:
                return True
            if len(self._items) >= self.limit:
                return False
            self._items.append(text)
            self._cv.notify()
            return True

    def take(self, timeout: float | None = None) -> str | None:
        """The next frame, or None once closed (or after ``timeout`` seconds with nothing queued)."""
        with self._cv:
            self._cv.wait_for(lambda: self._items or self.closed, timeout)
            return self._items.popleft() if self._items and not self.closed else None

    def close(self) -> None:
        """Discard everything queued and wake the writer."""
        with self._cv:
            self.closed = True
            self._items.clear()
            self._cv.notify_all()

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)


class Conn:
    """One WebSocket connection (``ws`` is a websockets sync ServerConnection): its outbox, writer
    thread, counters and subscription (market: ``assets``/``custom``; user: ``api_key``/``markets``)."""

    _ids = itertools.count(1)

    def __init__(self, ws: Any, kind: str, queue_max: int, silence: Silence) -> None:
        self.id, self.ws, self.kind, self.silence = next(Conn._ids), ws, kind, silence
        self.outbox = Outbox(queue_max)
        self.assets: set[str] = set()
        self.custom = False
        self.subscribed = False
        self.api_key = ""
        self.markets: set[str] = set()
        self.sent = 0
        self.discarded_silent = 0

    def start_writer(self) -> None:
        """Start the thread that sends the outbox's frames (and discards them while silenced)."""
        threading.Thread(target=self._write_loop, name=f"ws-{self.kind}-{self.id}", daemon=True).start()

    def _write_loop(self) -> None:
        while not self.outbox.closed:
            text = self.outbox.take(1.0)
            if text is None:
                continue
            if self.silence.active():
                self.discarded_silent += 1
                continue
            try:
                self.ws.send(text)
                self.sent += 1
            except (ConnectionClosed, OSError) as exc:
                log.info("ws send ended conn=%d kind=%s err=%s", self.id, self.kind, type(exc).__name__)
                self.outbox.close()

    def offer(self, text: str) -> bool:
        """Queue a frame; False when the outbox is full."""
        return self.outbox.offer(text)

    def close(self, code: int = 1001, reason: str = "", abrupt: bool = False) -> None:
        """Close without blocking the caller: a close handshake, or (``abrupt``) cut the TCP socket."""
        self.outbox.close()

        def run() -> None:
            try:
                self.ws.close_socket() if abrupt else self.ws.close(code, reason)
            except (ConnectionClosed, OSError) as exc:
                log.info("ws close conn=%d err=%s", self.id, type(exc).__name__)
        threading.Thread(target=run, name=f"ws-close-{self.id}", daemon=True).start()

    def info(self) -> dict[str, Any]:
        """JSON-able view for ``/_sim/ws/state``."""
        return {"id": self.id, "kind": self.kind, "subscribed": self.subscribed, "assets": sorted(self.assets),
                "custom_feature_enabled": self.custom, "markets": sorted(self.markets), "sent": self.sent,
                "queued": len(self.outbox), "discarded_silent": self.discarded_silent}


class Hub:
    """The connections of one channel (``kind``) and the session loop every connection runs."""

    kind = "?"

    def __init__(self, clock: Any, journal: Recorder, silence: Silence, queue_max: int) -> None:
        self.clock, self.journal, self.silence, self.queue_max = clock, journal, silence, queue_max
        self._lock = threading.Lock()
        self._conns: dict[int, Conn] = {}
        self.counts = {"accepted": 0, "overflow_closed": 0, "idle_closed": 0, "bad_messages": 0, "dropped": 0}

    def connections(self) -> list[Conn]:
        """The open connections now."""
        with self._lock:
            return list(self._conns.values())

    def attach(self, ws: Any, start_writer: bool = True) -> Conn:
        """Register a new connection and start its writer (``start_writer`` False: the caller drains
        ``conn.outbox`` itself, as the in-process back-test does)."""
        conn = Conn(ws, self.kind, self.queue_max, self.silence)
        with self._lock:
            self._conns[conn.id] = conn
            self.counts["accepted"] += 1
        if start_writer:
            conn.start_writer()
        return conn

    def detach(self, conn: Conn) -> None:
        """Forget ``conn`` and stop its writer."""
        with self._lock:
            self._conns.pop(conn.id, None)
        conn.outbox.close()

    def _offer(self, conn: Conn, text: str) -> None:
        if not conn.offer(text):
            self.counts["overflow_closed"] += 1
            self.journal.record("WS_CLIENT_OVERFLOW", level="warn", channel=self.kind, conn=conn.id,
                                queue_max=self.queue_max)
            self.detach(conn)
            conn.close(1013, "client too slow", abrupt=True)

    def bad_message(self, conn: Conn, text: str, reason: str) -> None:
        """Count and journal a client message the channel cannot use (``WS_BAD_CLIENT_MESSAGE``)."""
        self.counts["bad_messages"] += 1
        self.journal.record("WS_BAD_CLIENT_MESSAGE", level="warn", channel=self.kind, conn=conn.id,
                            detail=reason, text=text[:200])

    def drop_all(self, abrupt: bool = False) -> int:
        """Close every connection now; returns how many."""
        conns = self.connections()
        for conn in conns:
            self.detach(conn)
            conn.close(1001, "dropped by /_sim/ws/drop", abrupt)
        self.counts["dropped"] += len(conns)
        return len(conns)

    def state(self) -> dict[str, Any]:
        """Counters and connections of this channel."""
        conns = [c.info() for c in self.connections()]
        return {**self.counts, "connections": len(conns), "frames_sent": sum(c["sent"] for c in conns),
                "detail": conns}

    def session(self, ws: Any, idle_s: float, on_text: Callable[[Conn, str], None]) -> None:
        """Serve one connection until it closes: ``PING`` -> ``PONG`` (unless silenced), other text to
        ``on_text``; closed after ``idle_s`` wall seconds without any message from the client."""
        conn = self.attach(ws)
        try:
            while True:
                try:
                    msg = ws.recv(timeout=idle_s)
                except TimeoutError:
                    self.counts["idle_closed"] += 1
                    self.journal.record("WS_IDLE_CLOSED", channel=self.kind, conn=conn.id, idle_s=idle_s)
                    self.detach(conn)
                    ws.close(1001, "no PING")
                    return
                except ConnectionClosed:
                    return
                text = msg if isinstance(msg, str) else msg.decode("utf-8", "replace")
                if text.strip() == "PING":
                    if not self.silence.active():
                        self._offer(conn, "PONG")
                    continue
                self._handle(conn, text, on_text)
        finally:
            self.detach(conn)


    def _handle(self, conn: Conn, text: str, on_text: Callable[[Conn, str], None]) -> None:
        try:
            on_text(conn, text)
        except Exception as exc:  # noqa: BLE001 - journaled; one message must not end the session
            log.exception("event WS_HANDLER_FAILED channel=%s conn=%d", self.kind, conn.id)
            self.journal.record("WS_HANDLER_FAILED", level="error", channel=self.kind, conn=conn.id,
                                error=f"{type(exc).__name__}: {exc}"[:300], text=text[:200])


def _bad(field: str, value: Any) -> ResponseReturnValue:
    return jsonify({"error": f"field {field!r} has bad value {str(value)[:80]!r}"}), 400


class RequestCounts:
    """HTTP requests served, by ``"<METHOD> <route rule>"`` (thread-safe; unmatched paths by path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self) -> None:
        """Flask ``before_app_request`` hook: count the current request."""
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        with self._lock:
            self._counts[f"{request.method} {rule}"] += 1

    def snapshot(self) -> dict[str, int]:
        """Counts so far, by route."""
        with self._lock:
            return dict(sorted(self._counts.items()))


def make_blueprint(market: Any, user: Hub, silence: Silence, replay_state: Callable[[], dict[str, Any]]) -> Blueprint:
    """The ``/_sim/ws/*`` controls (module doc) over the ``market`` (MarketHub) and ``user`` hubs."""
    bp = Blueprint("sim_ws", __name__)
    requests = RequestCounts()
    bp.before_app_request(requests.count)

    @bp.post("/_sim/ws/drop")
    def drop() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        abrupt = bool(body.get("abrupt", False)) if isinstance(body, dict) else False
        channel = body.get("channel", "") if isinstance(body, dict) else ""
        if channel not in ("", "user", "market"):
            return _bad("channel", channel)
        n = (market.drop_all(abrupt) if channel != "user" else 0) + (user.drop_all(abrupt) if channel != "market" else 0)
        log.info("event WS_DROPPED connections=%d abrupt=%s channel=%s", n, abrupt, channel or "all")
        return jsonify({"dropped": n, "abrupt": abrupt, **({"channel": channel} if channel else {})})

    @bp.get("/_sim/requests")
    def requests_() -> ResponseReturnValue:
        return jsonify(requests.snapshot())

    @bp.post("/_sim/ws/silence")
    def silence_() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
            return _bad("seconds", seconds)
        until = silence.start(float(seconds))
        log.info("event WS_SILENCED seconds=%s until_wall_ms=%d", seconds, until)
        return jsonify({"silent_until_wall_ms": until})

    @bp.post("/_sim/ws/inject")
    def inject() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return _bad("text", text)
        return jsonify({"sent_to": market.inject(text)})

    @bp.get("/_sim/ws/state")
    def state() -> ResponseReturnValue:
        return jsonify({"market": market.state(), "user": user.state(), "replay": replay_state(),
                        "silent": silence.active(), "silent_until_wall_ms": silence.until_wall_ms,
                        "requests": requests.snapshot()})

    return bp
