"""A tiny fake of data-api ``GET /trades`` and ``GET /v2/trades`` for signal_ingest tests (a real
HTTP server on loopback).

Rows are kept per user in the order added (oldest first) and served NEWEST FIRST, honouring
``limit`` and ``offset`` (v1) or ``limit`` and ``cursor`` (v2: ``{"data", "pagination"}`` envelope,
keys of object rows renamed to snake_case with ``asset`` -> ``token_id``, values byte for byte; the
cursor counts rows from the oldest, so pages do not shift when rows are added). A row is given as a dict (encoded with ``json``) or as raw JSON text
(served byte for byte, e.g. a real line of a leader file). With ``clock`` (a callable returning
market ms), a row is served only once its ``timestamp`` (s) is in the past, so rows appear over
time; rows without a usable timestamp are always served. ``fail_next`` makes the next requests
answer an error status (429 with ``Retry-After``, 500, ...);
``on_request`` lets a test change the rows between two requests (e.g. while a client pages).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlparse


@dataclass
class _Row:
    ts: int | None
    text: bytes


def _ts_of(text: bytes) -> int | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    ts = obj.get("timestamp") if isinstance(obj, dict) else None
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


_KEY = re.compile(rb'"([A-Za-z][A-Za-z0-9]*)"(\s*:)')


def v2_text(text: bytes) -> bytes:
    """A v1 row's JSON text with v2 key names (``asset`` -> ``token_id``, camelCase -> snake_case)."""
    def rename(m: re.Match[bytes]) -> bytes:
        key = b"token_id" if m.group(1) == b"asset" else re.sub(rb"(?<=[a-z0-9])([A-Z])", rb"_\1", m.group(1)).lower()
        return b'"' + key + b'"' + m.group(2)
    return _KEY.sub(rename, text)


class FakeDataApi:
    """Start with ``start()`` (or as a context manager); ``url`` is the data-api base URL."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self.clock = clock
        self.rows: dict[str, list[_Row]] = {}
        self.requests: list[dict[str, str]] = []
        self.failures: list[tuple[int, str | None]] = []
        self.on_request: Callable[[dict[str, str]], None] | None = None  # called before each answer
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/data-api"

    def start(self) -> "FakeDataApi":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeDataApi":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, user: str, rows: Iterable[dict[str, Any] | str | bytes]) -> None:
        """Append rows (oldest first) to ``user``'s list."""
        with self.lock:
            out = self.rows.setdefault(user.lower(), [])
            for row in rows:
                if isinstance(row, dict):
                    row = json.dumps(row)
                text = row.encode() if isinstance(row, str) else row
                out.append(_Row(_ts_of(text), text))

    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None) -> None:
        """The next ``count`` requests answer ``status`` (with ``Retry-After`` when given)."""
        with self.lock:
            self.failures += [(status, retry_after)] * count

    def page(self, user: str, limit: int, offset: int) -> bytes:
        """The body ``GET /trades`` returns now."""
        chosen = self.visible(user)[offset:offset + limit]
        return b"[" + b",".join(r.text for r in chosen) + b"]"

    def visible(self, user: str) -> list[_Row]:
        """``user``'s rows served now, newest first."""
        now = self.clock() if self.clock else None
        with self.lock:
            rows = [r for r in self.rows.get(user.lower(), []) if now is None or r.ts is None or r.ts * 1000 <= now]
        return list(reversed(rows))

    def page_v2(self, user: str, limit: int, cursor: str | None) -> bytes:
        """The body ``GET /v2/trades`` returns now (cursor ``c<rows left to the oldest>``)."""
        rows = self.visible(user)
        start = 0 if cursor is None else max(0, len(rows) - int(cursor[1:]))
        chosen, left = rows[start:start + limit], len(rows) - start - limit
        nxt = f'"c{left}"' if left > 0 else "null"
        return (b'{"data":[' + b",".join(v2_text(r.text) for r in chosen) + b'],"pagination":{"has_more":'
                + (b"true" if left > 0 else b"false") + b',"next_cursor":' + nxt.encode() + b"}}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                if fake.on_request is not None:
                    fake.on_request(q)
                with fake.lock:
                    fake.requests.append({**q, "_path": u.path})
                    fail = fake.failures.pop(0) if fake.failures else None
                if fail is not None:
                    hdr = {"Retry-After": fail[1]} if fail[1] else {}
                    self._send(fail[0], json.dumps({"error": f"fake status {fail[0]}"}).encode(), hdr)
                    return
                if u.path not in ("/data-api/trades", "/data-api/v2/trades") or "user" not in q:
                    self._send(400, b'{"error": "bad request"}')
                elif u.path == "/data-api/v2/trades":
                    self._send(200, fake.page_v2(q["user"], int(q.get("limit", "100")), q.get("cursor")))
                else:
                    self._send(200, fake.page(q["user"], int(q.get("limit", "100")), int(q.get("offset", "0"))))

        return Handler
