"""A fake Polymarket market channel (WebSocket) + REST ``/book`` for md_gateway tests.

Deliberately naive and independent of the gateway's code: books are dicts of Decimal price ->
(price text, size text), rebuilt from the recorded frames. ``play(n)`` applies the next ``n`` tape
frames to the books and sends each, as recorded, to every connection subscribed to one of its
assets; a subscribe is answered with a dump (ONE array frame of ``book`` objects) built from the
books at that moment. One lock orders dumps and frames, so a dump is always followed by every later
change. Controls: ``drop()`` cuts every connection (TCP shutdown, no close frame), ``silence()`` makes
the current connections half-open (open, but nothing is sent and PINGs go unanswered), ``inject()``
sends a raw frame, ``set_level(..., send=False)`` changes a book without telling anyone (drift).
"""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlparse

from redis import Redis
from redis.exceptions import RedisError
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from libs.common.runtime import run_loop
from services.md_gateway.config import GatewaySettings
from services.md_gateway.service import GatewayService

Side = dict[Decimal, tuple[str, str]]


class FakeBook:
    """One token's book as the fake exchange holds it."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.market, self.token = obj["market"], obj["asset_id"]
        self.bids: Side = {Decimal(lv["price"]): (lv["price"], lv["size"]) for lv in obj["bids"]}
        self.asks: Side = {Decimal(lv["price"]): (lv["price"], lv["size"]) for lv in obj["asks"]}
        self.tick_size, self.ts = obj.get("tick_size", "0.01"), obj["timestamp"]
        self.last_trade = obj.get("last_trade_price", "0.5")

    def set(self, side: str, price: str, size: str) -> None:
        book = self.bids if side == "BUY" else self.asks
        if Decimal(size) == 0:
            book.pop(Decimal(price), None)
        else:
            book[Decimal(price)] = (price, size)

    def best(self) -> tuple[str, str]:
        """(best bid, best ask) as decimal strings, "" for an empty side."""
        bid = self.bids[max(self.bids)][0] if self.bids else ""
        ask = self.asks[min(self.asks)][0] if self.asks else ""
        return bid, ask

    def levels(self, side: Side, descending: bool) -> list[dict[str, str]]:
        return [{"price": side[k][0], "size": side[k][1]} for k in sorted(side, reverse=descending)]

    def ws_object(self) -> dict[str, Any]:
        return {"market": self.market, "asset_id": self.token, "timestamp": self.ts, "hash": "0" * 40,
                "bids": self.levels(self.bids, False), "asks": self.levels(self.asks, True),
                "tick_size": self.tick_size, "event_type": "book", "last_trade_price": self.last_trade}

    def rest_object(self) -> dict[str, Any]:
        obj = self.ws_object()
        del obj["event_type"]
        obj.update({"min_order_size": "5", "neg_risk": False})
        return obj


class _Client:
    def __init__(self, conn: ServerConnection) -> None:
        self.conn, self.assets, self.silent, self.subscribes = conn, set(), False, 0


def frame_assets(payload: str) -> tuple[set[str], list[tuple[str, str, str, str]], list[dict[str, Any]]]:
    """(assets a frame mentions, its level changes (token, side, price, size), its book objects)."""
    data = json.loads(payload)
    objs = data if isinstance(data, list) else [data]
    assets, changes, books = set(), [], []
    for o in objs:
        kind = o.get("event_type")
        if kind == "price_change":
            for e in o.get("price_changes", []):
                assets.add(e["asset_id"])
                changes.append((e["asset_id"], e["side"], e["price"], e["size"]))
        elif kind == "book":
            books.append(o)
            assets.add(o["asset_id"])
        elif "asset_id" in o:
            assets.add(o["asset_id"])
    return assets, changes, books


class FakeMarket:
    """The fake exchange: ``ws_url`` (market channel) and ``http_url`` (REST ``/book``)."""

    def __init__(self, payloads: list[str]) -> None:
        self.payloads, self.pos = payloads, 0
        self.books: dict[str, FakeBook] = {}
        self.clients: list[_Client] = []
        self.lock = threading.RLock()
        self.pings = 0
        self.rest_fail = 0  # answer the next n REST requests with 500
        self.received: list[str] = []
        self.skip_dump: set[str] = set()  # tokens left out of dumps (the gateway must fall back to REST)
        if payloads and payloads[0].lstrip().startswith("["):
            self.play_into_books_only(1)

    # ---- lifecycle
    def start(self) -> "FakeMarket":
        self.ws_server = serve(self._handle, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None)
        self.ws_port = self.ws_server.socket.getsockname()[1]
        threading.Thread(target=self.ws_server.serve_forever, daemon=True).start()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws/market"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def stop(self) -> None:
        self.drop()
        self.ws_server.shutdown()
        self.http.shutdown()
        self.http.server_close()

    # ---- tape
    def play_into_books_only(self, n: int) -> None:
        for payload in self.payloads[self.pos:self.pos + n]:
            self._apply(payload)
        self.pos += n

    def _apply(self, payload: str) -> set[str]:
        assets, changes, books = frame_assets(payload)
        for b in books:
            self.books[b["asset_id"]] = FakeBook(b)
        for token, side, price, size in changes:
            if token in self.books:
                self.books[token].set(side, price, size)
        return assets

    def play(self, n: int | None = None) -> int:
        """Apply and send the next ``n`` frames (all that are left when None); returns how many."""
        with self.lock:
            todo = self.payloads[self.pos:] if n is None else self.payloads[self.pos:self.pos + n]
            for payload in todo:
                assets = self._apply(payload)
                for c in list(self.clients):
                    if not c.silent and c.assets & assets:
                        self._send(c, payload)
            self.pos += len(todo)
            return len(todo)

    def set_level(self, token: str, side: str, price: str, size: str, send: bool) -> None:
        """Change one level; with ``send`` also emit a current-schema ``price_change`` for it."""
        with self.lock:
            book = self.books[token]
            book.set(side, price, size)
            if send:
                bid, ask = book.best()
                entry = {"asset_id": token, "price": price, "size": size, "side": side, "hash": "1" * 40,
                         "best_bid": bid or "0", "best_ask": ask or "1"}
                self.inject(json.dumps({"market": book.market, "price_changes": [entry],
                                        "timestamp": str(int(book.ts) + 1), "event_type": "price_change"}))

    # ---- controls
    def inject(self, text: str) -> None:
        """Send a raw frame to every connection that is not silent."""
        with self.lock:
            for c in list(self.clients):
                if not c.silent:
                    self._send(c, text)

    def drop(self) -> None:
        """Cut every connection (TCP shutdown, no close frame)."""
        with self.lock:
            for c in list(self.clients):
                try:
                    c.conn.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already gone: nothing to cut
            self.clients.clear()

    def silence(self) -> None:
        """Make every current connection half-open: it stays open but nothing more is sent."""
        with self.lock:
            for c in self.clients:
                c.silent = True

    def connections(self) -> int:
        with self.lock:
            return sum(1 for c in self.clients if not c.silent)

    def subscribed(self) -> set[str]:
        with self.lock:
            return set().union(*[c.assets for c in self.clients if not c.silent]) if self.clients else set()

    def rest_book(self, token: str) -> dict[str, Any]:
        with self.lock:
            return self.books[token].rest_object()

    # ---- websocket side
    def _send(self, c: _Client, text: str) -> None:
        try:
            c.conn.send(text)
        except (ConnectionClosed, OSError):
            self.clients = [x for x in self.clients if x is not c]

    def _dump(self, c: _Client, tokens: list[str]) -> None:
        books = [self.books[t].ws_object() for t in tokens if t in self.books and t not in self.skip_dump]
        if books and not c.silent:
            self._send(c, json.dumps(books, separators=(",", ":")) + "\n")

    def _on_message(self, c: _Client, text: str) -> None:
        if text == "PING":
            self.pings += 1
            if not c.silent:
                self._send(c, "PONG")
            return
        msg = json.loads(text)
        self.received.append(text)
        with self.lock:
            assets = list(msg.get("assets_ids", []))
            if msg.get("operation") == "unsubscribe":
                c.assets -= set(assets)
                return
            c.assets |= set(assets)
            c.subscribes += 1
            if msg.get("initial_dump", True) is not False:
                self._dump(c, assets)

    def _handle(self, conn: ServerConnection) -> None:
        c = _Client(conn)
        with self.lock:
            self.clients.append(c)
        try:
            for text in conn:
                self._on_message(c, text if isinstance(text, str) else text.decode())
        except ConnectionClosed:
            pass  # the gateway (or drop()) ended it
        finally:
            with self.lock:
                self.clients = [x for x in self.clients if x is not c]

    # ---- REST side
    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                url = urlparse(self.path)
                token = parse_qs(url.query).get("token_id", [""])[0]
                if url.path != "/book":
                    return self._reply(404, {"error": "not found"})
                if fake.rest_fail > 0:
                    fake.rest_fail -= 1
                    return self._reply(500, {"error": "injected"})
                if token not in fake.books:
                    return self._reply(404, {"error": "No orderbook exists for the requested token id"})
                self._reply(200, fake.rest_book(token))

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        return Handler


# ---------------------------------------------------------------- harness for gateway tests
CAPTURE = Path(__file__).resolve().parents[1] / "data" / "tapes" / "enrico-2026-09-24" / "frames.jsonl"


def capture_payloads() -> list[str]:
    """The 60 s raw capture's frame texts (the repo's byte-exact copy)."""
    path = CAPTURE
    return [json.loads(line)["payload"] for line in path.read_text().splitlines() if line.strip()]


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or ``timeout`` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def dec(text: str | None) -> Decimal | None:
    return None if text in (None, "") else Decimal(text)


def redis_top(r: Redis, token: str) -> tuple[Decimal | None, ...]:
    h = r.hgetall(keys.md_book(token))
    return tuple(dec(h.get(f)) for f in ("best_bid", "bid_size", "best_ask", "ask_size"))


def rest_top(fake: FakeMarket, token: str) -> tuple[Decimal | None, ...]:
    b = fake.rest_book(token)
    bid, ask = (b["bids"][-1] if b["bids"] else None), (b["asks"][-1] if b["asks"] else None)
    return (dec(bid["price"]) if bid else None, dec(bid["size"]) if bid else None,
            dec(ask["price"]) if ask else None, dec(ask["size"]) if ask else None)


def books_equal_rest(r: Redis, fake: FakeMarket, tokens: Iterable[str]) -> list[str]:
    """Tokens whose Redis book is not ``ok`` or differs from the fake's REST ``/book`` top (empty = all equal)."""
    bad = []
    for t in tokens:
        if r.hget(keys.md_book(t), "status") != "ok" or redis_top(r, t) != rest_top(fake, t):
            bad.append(t)
    return bad


class Harness:
    """A GatewayService on a FakeClock, stepped by ``run_loop`` on a background thread.

    Time moves only through ``advance(ms)``; waiting for I/O uses ``wait_for`` deadlines.
    """

    def __init__(self, r: Redis, fake: FakeMarket, **overrides: Any) -> None:
        values: dict[str, Any] = {"mode": "paper", "ws_market_url": fake.ws_url, "clob_url": fake.http_url,
                                  "ping_interval_s": 10.0, "pong_timeout_s": 20.0, "verify_interval_s": 120.0,
                                  "backoff_min_s": 0.5, "backoff_max_s": 5.0, "snapshot_grace_s": 2.0,
                                  "subs_poll_s": 0.5, "rest_retry_s": 1.0}
        values.update(overrides)
        self.r, self.fake = r, fake
        self.clock = FakeClock()
        self.settings = GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]
        self.journal = Journal(r, "md_gateway", self.clock)
        self.svc = GatewayService(self.settings, r, self.clock, self.journal, "md_gateway-test", rng=random.Random(3))
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=run_loop, args=(self.svc.step, self.stop_flag, self.clock, 0.0005,
                                                              self.journal), daemon=True)

    def start(self) -> "Harness":
        self.svc.start()
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop_flag.set()
        self.thread.join(10)
        self.svc.stop()

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    def status(self) -> dict[str, str]:
        """``pb:md:gateway`` freshly written: moves time past the status interval and waits for the write."""
        self.advance(1000)
        now = str(self.clock.wall_ms())
        wait_for(lambda: self.r.hget(keys.MD_GATEWAY, "updated_ms") == now, 5, "pb:md:gateway update")
        return self.r.hgetall(keys.MD_GATEWAY)

    def count(self, reason: str) -> int:
        return int(self.r.hget(keys.COUNTS, reason) or 0)

    def links(self) -> list[Any]:
        return list(self.svc.shards.conns.values())

    def settled(self) -> bool:
        """Every shard open with no PING awaiting its PONG (safe to jump the clock far ahead)."""
        links = self.links()
        return bool(links) and all(c.status == "open" and not c.ping_sent_ms for c in links)


class SeqWatcher(threading.Thread):
    """A reader that, while running, checks that no book seq and no stream seq ever goes backwards."""

    def __init__(self, redis_url: str, tokens: list[str]) -> None:
        super().__init__(daemon=True)
        self.redis_url, self.tokens = redis_url, tokens
        self.stop_flag = threading.Event()
        self.violations: list[str] = []
        self.reads = 0

    def run(self) -> None:
        client = Redis.from_url(self.redis_url, decode_responses=True)
        try:
            self._watch(client)
        except RedisError as exc:  # a reader that cannot read proves nothing: fail the test
            self.violations.append(f"reader failed: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def _watch(self, client: Redis) -> None:
        seen: dict[str, int] = {}
        stream_seq: dict[str, int] = {}
        ids = {keys.md_stream(t): "0-0" for t in self.tokens}
        while not self.stop_flag.is_set():
            pipe = client.pipeline(transaction=False)
            for t in self.tokens:
                pipe.hget(keys.md_book(t), "seq")
            for t, v in zip(self.tokens, pipe.execute()):
                if v is not None:
                    if int(v) < seen.get(t, 0):
                        self.violations.append(f"hash {t} seq {v} < {seen[t]}")
                    seen[t] = int(v)
            for stream, entries in client.xread(ids, block=20) or []:
                for entry_id, fields in entries:
                    ids[stream] = entry_id
                    if int(fields["seq"]) <= stream_seq.get(stream, 0):
                        self.violations.append(f"stream {stream} seq {fields['seq']} after {stream_seq[stream]}")
                    stream_seq[stream] = int(fields["seq"])
            self.reads += 1

    def finish(self) -> list[str]:
        self.stop_flag.set()
        self.join(10)
        return self.violations
