"""md_gateway defects of issue 10, through the service and a real Redis ("done when"): a 1,000-level
nested frame between good frames of one batch, and a change arriving during a token's first REST
snapshot, each leave the published book equal to the truth.

The service runs on a FakeClock and is driven by ``pump()`` (the back-test's step); its WebSocket link
and REST fetcher are stubs, so the order of frames, REST requests and answers is the test's own."""
from __future__ import annotations

import json
import queue
import random
from typing import Any

from redis import Redis

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from services.md_gateway.config import GatewaySettings
from services.md_gateway.service import GatewayService

T = "7" * 20
MARKET = "0x" + "ab" * 32


class StubLink:
    """A link that opens at once (``open`` on the queue) and records what the service sends."""

    def __init__(self, conn_id: int, gen: int, url: str, assets: list[str], inbound: "queue.SimpleQueue[tuple]",
                 clock: FakeClock, *_args: Any, **_kwargs: Any) -> None:
        self.conn_id, self.gen, self.inbound, self.clock, self.sent = conn_id, gen, inbound, clock, []

    def start(self) -> None:
        self.inbound.put(("open", self.conn_id, self.gen, None, self.clock.wall_ms(), 0))

    def send(self, text: str) -> None:
        self.sent.append(text)

    def abort(self) -> None:
        return None


class StubRest:
    """Records REST requests; the test answers them when it wants."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def request(self, token_id: str, urgent: bool = False) -> None:  # noqa: ARG002
        self.requests.append(token_id)


class Gateway:
    """A GatewayService with one token subscribed on one open stub link."""

    def __init__(self, r: Redis) -> None:
        self.clock, self.rest = FakeClock(), StubRest()
        settings = GatewaySettings(_env_file=None, mode="paper", ws_market_url="ws://stub", clob_url="http://stub",
                                   snapshot_grace_s=2.0, verify_interval_s=600.0)  # type: ignore[call-arg]
        self.svc = GatewayService(settings, r, self.clock, Journal(r, "md_gateway", self.clock), "md_gateway-t",
                                  rng=random.Random(1), link_factory=StubLink, rest=self.rest)  # type: ignore[arg-type]
        r.sadd(keys.MD_SUBS, T)
        self.svc.pump()  # reads the subscription, opens the link
        self.svc.pump()  # the link's "open"
        (self.conn,) = self.svc.shards.conns.values()

    def frames(self, *objs: object) -> None:
        """Queue frames as one batch (nothing is handled until ``pump``)."""
        for obj in objs:
            data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            self.svc.inbound.put(("frame", self.conn.conn_id, self.conn.gen, data, self.clock.wall_ms(), 0))

    def rest_answer(self, body: dict[str, Any]) -> None:
        self.svc.inbound.put(("rest", T, 200, json.dumps(body).encode(), self.clock.wall_ms(), 0))


def levels(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"price": p, "size": q} for p, q in pairs]


def book(ts: int, bids: list[dict[str, str]], asks: list[dict[str, str]], **extra: str) -> dict[str, Any]:
    return {"event_type": "book", "asset_id": T, "market": MARKET, "timestamp": str(ts), "bids": bids,
            "asks": asks, "tick_size": "0.01", **extra}


def change(ts: int, price: str, size: str, side: str = "BUY") -> dict[str, Any]:
    return {"event_type": "price_change", "market": MARKET, "timestamp": str(ts),
            "price_changes": [{"asset_id": T, "price": price, "size": size, "side": side, "hash": "h"}]}


def published(r: Redis) -> tuple[str, str, str, str]:
    h = r.hgetall(keys.md_book(T))
    return h["status"], h["best_bid"], h["best_ask"], h["bid_size"]


def test_a_deeply_nested_frame_costs_nothing_else_of_its_batch(r: Redis) -> None:
    gw = Gateway(r)
    gw.frames([book(100, levels(("0.39", "5"), ("0.40", "10")), levels(("0.60", "7")))])
    gw.svc.pump()
    assert published(r) == ("ok", "0.4", "0.6", "10")
    deep = b'{"event_type":"price_change","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    gw.frames(change(200, "0.41", "3"), deep, b"[" * 1000 + b"]" * 1000, change(300, "0.42", "4"),
              change(301, "0.59", "2", "SELL"))
    assert gw.svc.pump() == 5
    assert published(r) == ("ok", "0.42", "0.59", "4")  # every good frame of the batch applied
    c = gw.svc.counts
    assert (c["parse_errors"], c["rejects"], c["reject:PARSE_INTERNAL_ERROR"]) == (2, 2, 2)
    events = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "PARSE_INTERNAL_ERROR"]
    assert [(f["value"], f["text"][:33]) for f in events] == [("RecursionError", deep[:33].decode()),
                                                            ("RecursionError", "[" * 33)]
    assert all(f["level"] == "error" for f in events)


def test_a_change_during_the_first_rest_snapshot_is_replayed_on_it(r: Redis) -> None:
    gw = Gateway(r)
    gw.frames(b"x" * 10)  # (the dump never comes: a bad frame stands for it)
    gw.svc.pump()
    assert published(r)[0] == "resync" and gw.rest.requests == []
    gw.clock.advance(2000)  # snapshot_grace_s
    gw.svc.pump()
    assert gw.rest.requests == [T]
    gw.frames(change(500, "0.41", "3"), change(501, "0.39", "0"), change(300, "0.38", "9"))  # while REST is away
    gw.svc.pump()
    assert published(r)[0] == "resync"
    gw.rest_answer({**book(400, levels(("0.38", "9"), ("0.39", "5"), ("0.40", "10")), levels(("0.60", "7"))),
                    "min_order_size": "5"})  # taken before the first two changes, after the third
    gw.svc.pump()
    h = r.hgetall(keys.md_book(T))
    assert published(r) == ("ok", "0.41", "0.6", "3") and h["source"] == "rest"
    assert gw.svc.core.tokens[T].book.bids == {410_000: 3_000_000, 400_000: 10_000_000, 380_000: 9_000_000}
    assert gw.svc.core.counts["buffered"] == 3
