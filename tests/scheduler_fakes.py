"""Test stand-ins for the scheduler: a tiny Gamma HTTP server answering real-shaped Market objects.

Markets are built from the real Gamma object in ``tests/fixtures/ra1nty/market_detail.json``
(``clobTokenIds``/``outcomes`` as JSON strings, ``orderMinSize``/``orderPriceMinTickSize`` numbers,
``endDate`` ISO), with the fields a test cares about replaced.
"""
from __future__ import annotations

import copy
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from libs.common.leases import Leases
from libs.common.clock import FakeClock
from redis import Redis
from typing import Iterator
from types import SimpleNamespace
import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ra1nty" / "market_detail.json"


def iso(ms: int) -> str:
    """ISO-8601 UTC (``Z``) of Unix ms, as Gamma writes ``endDate``."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_market(tokens: tuple[str, str], end_ms: int, *, condition_id: str = "0xcond", closed: bool = False,
                active: bool = True, tick: float = 0.01, min_size: float = 5, neg_risk: bool = False,
                question: str = "Bitcoin Up or Down - test") -> dict[str, Any]:
    """A copy of the real fixture Market with these tokens (Up, Down), end time and flags."""
    market = copy.deepcopy(json.loads(FIXTURE.read_text(encoding="utf-8")))
    market.update({"conditionId": condition_id, "clobTokenIds": json.dumps(list(tokens)),
                   "outcomes": json.dumps(["Up", "Down"]), "endDate": iso(end_ms), "closed": closed,
                   "active": active, "acceptingOrders": not closed, "orderPriceMinTickSize": tick,
                   "orderMinSize": min_size, "negRisk": neg_risk, "question": question,
                   "slug": f"test-{condition_id}"})
    return market


class FakeGamma:
    """Serves ``GET /gamma/markets?clob_token_ids=<id>`` on 127.0.0.1 (random port) from ``markets``.

    ``fail_next(n, status)`` makes the next n requests answer ``status``; ``requests`` counts calls.
    Use as a context manager; ``url`` is the ``PB_GAMMA_URL`` to give the scheduler.
    """

    def __init__(self) -> None:
        self.markets: list[dict[str, Any]] = []
        self.requests = 0
        self._fail: list[int] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                fake._serve(self)

            def log_message(self, *args: object) -> None:
                return None  # keep test output quiet; requests are counted instead

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/gamma"

    def add(self, market: dict[str, Any]) -> None:
        with self._lock:
            self.markets.append(market)

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail += [status] * n

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        with self._lock:
            self.requests += 1
            status = self._fail.pop(0) if self._fail else 200
            wanted = set(parse_qs(url.query).get("clob_token_ids", []))
            found = [m for m in self.markets if wanted & set(json.loads(m["clobTokenIds"]))]
        if url.path != "/gamma/markets":
            status, found = 404, []
        body = json.dumps(found if status == 200 else {"error": "injected"}).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self) -> "FakeGamma":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# ---- helpers shared by the scheduler tests ----
LEADER = "0x00000000000000000000000000000000000de111"


def publish(r: Any, side: str, token_id: str, signal_id: str, ts_ms: int, price: str = "0.5",
            size: str = "10", **over: str) -> str:
    """XADD one signal entry shaped as signal_ingest writes it (docs/contracts.md); returns the id."""
    from libs.common import keys

    fields = {"signal_id": signal_id, "account": LEADER, "side": side, "token_id": token_id,
              "condition_id": "0xcond", "size": size, "price": price, "ts_ms": str(ts_ms),
              "tx_hash": "0x" + "ab" * 32, "title": "t", "slug": "s", "outcome": "Up", **over}
    return str(r.xadd(keys.SIG_STREAM, {k: v for k, v in fields.items() if v is not None}))


def gateway_ok(r: Any, wall_ms: int) -> None:
    """Write a healthy ``pb:md:gateway`` hash (connected, updated now)."""
    from libs.common import keys

    r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "updated_ms": str(wall_ms)})


def book(r: Any, token_id: str, exch_ts_ms: int, wall_ms: int, status: str = "ok") -> None:
    """Write a book hash for ``token_id`` as the gateway would (top of book, times, status)."""
    from libs.common import keys

    r.hset(keys.md_book(token_id), mapping={"best_bid": "0.48", "best_ask": "0.52", "seq": "1",
                                             "exch_ts_ms": str(exch_ts_ms), "recv_ts_ms": str(wall_ms),
                                             "status": status})


LIVE_LIKE = {"sell_only_window_s": 3600.0, "inactive_warn_s": 1800.0, "inactive_cleanup_s": 3600.0,
             "reentry_cooldown_s": 600.0}


def make_scheduler(r: Any, clock: Any, gamma_url: str, instance: str = "scheduler-test", **settings: Any) -> Any:
    """A ``Scheduler`` on ``r`` with the live defaults' windows (30/60 min, 10 min cooldown) unless overridden."""
    from libs.common.journal import Journal
    from services.scheduler.config import SchedulerSettings
    from services.scheduler.gamma import GammaClient
    from services.scheduler.service import Scheduler

    cfg = SchedulerSettings(gamma_url=gamma_url, gamma_timeout_s=2.0, **{**LIVE_LIKE, **settings})
    return Scheduler(r, clock, Journal(r, "scheduler", clock), cfg, GammaClient(gamma_url, 2.0), instance)


def events(r: Any, reason: str | None = None, token_id: str | None = None) -> list[dict[str, str]]:
    """Journal entries (oldest first), optionally only one reason and/or token."""
    from libs.common import keys

    out = [f for _, f in r.xrange(keys.EVENTS)]
    return [f for f in out
            if (reason is None or f["reason"] == reason) and (token_id is None or f["token_id"] == token_id)]


@pytest.fixture()
def env(r: Redis) -> Iterator[SimpleNamespace]:
    """Shared scheduler test rig: ``r``, a FakeGamma ``gamma``, a FakeClock ``clock``, ``leases`` and
    ``new(**settings)`` building schedulers that are closed after the test."""
    with FakeGamma() as g:
        clock = FakeClock()
        made: list = []

        def new(**kw: object):  # type: ignore[no-untyped-def]
            s = make_scheduler(r, clock, g.url, **kw)
            made.append(s)
            return s

        yield SimpleNamespace(r=r, gamma=g, clock=clock, new=new, leases=Leases(r))
        for s in made:
            s.metadata.close()
