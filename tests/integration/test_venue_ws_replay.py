"""venue_sim WebSocket channels over real sockets, with the real engine, REST app and a real Redis:
the enrico 60 s capture replayed at high speed, subscriptions, PING/PONG, our orders in the books,
the user channel, and the /_sim/ws controls (drop, silence, inject, state), idle and slow clients."""
from __future__ import annotations

import json
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.clob_types import OrderArgsV2, OrderPayload, OrderType, PartialCreateOrderOptions
from redis import Redis
from websocket import WebSocket, WebSocketConnectionClosedException, WebSocketTimeoutException, create_connection

from libs.common import keys
from libs.common.tapes import load_markets, read_tape
from services.venue_sim.__main__ import Venue
from services.venue_sim.config import VenueSettings

REPO = Path(__file__).resolve().parents[2]
ENRICO = REPO / "data" / "tapes" / "enrico-2026-09-24"
BTC_AM = REPO / "data" / "tapes" / "btc5m-2026-02-18-am"  # the default tape: 5-minute markets that end
FRAMES = list(read_tape(ENRICO / "frames.jsonl"))
TOKENS = [t for m in load_markets(ENRICO / "markets.json") for t in m.token_ids]
KEY = "0x" + "4f" * 32  # throwaway signing key
OPEN: list[WebSocket] = []  # client sockets of the running test, closed before the venue stops


def full_id(prefix: str) -> str:
    return next(t for t in TOKENS if t.startswith(prefix))


A, A_PAIR = full_id("1805475964"), full_id("3559990704")  # the busiest pair of the capture
B, C = full_id("1683825659"), full_id("8281032795")  # the pair that moves from frame 23 on


@pytest.fixture()
def make_venue(r: Redis, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Venue]]:
    """Build and start venues on free ports; by default the replay waits 10 min (tests drive it with
    ``venue.replay.advance_to``)."""
    venues: list[Venue] = []

    def build(**over: Any) -> Venue:
        fields: dict[str, Any] = {"tape": ENRICO, "leader_files": [], "venue_http_port": 0, "venue_ws_port": 0,
                                  "redis_url": redis_url, "audit_log": tmp_path / "audit.jsonl",
                                  "start_delay_ms": 600_000, **over}
        venue = Venue(VenueSettings(**fields), r)
        venue.start()
        venues.append(venue)
        return venue
    yield build
    for ws in OPEN:
        ws.close(timeout=1)
        ws.shutdown()  # also the sockets the server closed: the server waits for the TCP close
    OPEN.clear()
    for venue in venues:
        venue.stop()


def connect(venue: Venue, path: str = "/ws/market", timeout: float = 5.0) -> WebSocket:
    ws = create_connection(f"ws://127.0.0.1:{venue.ws_port}{path}", timeout=timeout)
    OPEN.append(ws)
    return ws


def subscribe(ws: WebSocket, assets: list[str], custom: bool = True) -> None:
    ws.send(json.dumps({"assets_ids": assets, "type": "market", "initial_dump": True, "custom_feature_enabled": custom}))


def recv_n(ws: WebSocket, n: int, timeout: float = 10.0, skip_pong: bool = True) -> list[str]:
    """The next ``n`` frames (PONGs skipped), failing after ``timeout`` seconds."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        text = ws.recv()
        if not (skip_pong and text == "PONG"):
            out.append(text)
        assert time.monotonic() < deadline + 0.5, f"only {len(out)} of {n} frames"
    return out


def quiet(ws: WebSocket, seconds: float = 0.3) -> list[str]:
    """Frames arriving within ``seconds`` (expecting none)."""
    ws.settimeout(seconds)
    got = []
    try:
        while True:
            got.append(ws.recv())
    except WebSocketTimeoutException:
        return got


def assert_closed(ws: WebSocket, timeout: float = 3.0) -> None:
    """The server closed ``ws`` (a close frame, or a cut connection) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            text = ws.recv()
        except (WebSocketConnectionClosedException, ConnectionError):
            return
        except WebSocketTimeoutException:
            break
        if text == "" and not ws.connected:
            return
    raise AssertionError("the connection is still open")


def wait_until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def http(venue: Venue) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{venue.http_port}", timeout=5)


def best_pairs(texts: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Every (best_bid, best_ask) reported per asset, in order (price_change entries and best_bid_ask)."""
    pairs: dict[str, list[tuple[str, str]]] = {}
    for text in texts:
        data = orjson.loads(text)
        for ev in data if isinstance(data, list) else [data]:
            for e in ev.get("price_changes", []) + ([ev] if ev.get("event_type") == "best_bid_ask" else []):
                if "best_bid" in e:
                    pairs.setdefault(e["asset_id"], []).append((e["best_bid"], e["best_ask"]))
    return pairs


def test_high_speed_replay_reaches_the_client_byte_exact_and_in_order(make_venue: Callable[..., Venue], r: Redis) -> None:
    venue = make_venue(speed=30.0, start_delay_ms=1200)
    clock = r.hgetall(keys.CLOCK)
    assert int(clock["epoch_tape_ms"]) == FRAMES[0].recv_ms and float(clock["speed"]) == 30.0
    ws = connect(venue)
    subscribe(ws, TOKENS)
    assert recv_n(ws, 1)[0] == "[]\n"  # one array frame; no book before the tape's first frame
    got = recv_n(ws, 40)
    ws.send("PING")
    got += recv_n(ws, len(FRAMES) - 40, skip_pong=False)
    got = [t for t in got if t != "PONG"] + [t for t in quiet(ws, 0.5) if t != "PONG"]
    assert got == [f.payload for f in FRAMES]  # every frame, exact bytes, in order
    assert best_pairs(got) == best_pairs([f.payload for f in FRAMES])
    assert sum(len(v) for v in best_pairs(got).values()) == 160  # 102 price-change entries + 58 best_bid_ask
    state = wait_until(lambda: (s := http(venue).get("/_sim/ws/state").json())["replay"]["done"] and s)
    assert state["replay"]["frames_applied"] == len(FRAMES) and state["replay"]["bad_lines"] == 0
    assert state["market"]["connections"] == 1 and state["market"]["frames_in"] == len(FRAMES)

    late = connect(venue)
    subscribe(late, [A, B, "404"], custom=False)
    dump = recv_n(late, 1)[0]
    books = orjson.loads(dump)
    assert dump.endswith("\n") and [b["asset_id"] for b in books] == [A, B]  # only assets with a book
    for b in books:
        assert list(b) == ["market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "event_type",
                           "last_trade_price"]
        bids, asks = [float(x["price"]) for x in b["bids"]], [float(x["price"]) for x in b["asks"]]
        assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # best LAST
    assert {(e["asset_id"], e["best_bid"], e["best_ask"]) for e in [_last_entry(A), _last_entry(B)]} == {
        (b["asset_id"], b["bids"][-1]["price"], b["asks"][-1]["price"]) for b in books}


def _last_entry(asset: str) -> dict[str, str]:
    entries = [e for f in FRAMES[1:] for e in orjson.loads(f.payload).get("price_changes", []) if e["asset_id"] == asset]
    return entries[-1]


def test_dynamic_subscribe_and_unsubscribe_change_what_arrives(make_venue: Callable[..., Venue]) -> None:
    venue = make_venue()
    ws = connect(venue)
    subscribe(ws, [A], custom=False)
    assert recv_n(ws, 1) == ["[]\n"]
    venue.replay.advance_to(FRAMES[0].recv_ms)  # the tape's own dump, filtered to A
    assert [b["asset_id"] for b in orjson.loads(recv_n(ws, 1)[0])] == [A]
    cut = 21  # frames 2..22 (index 1..21): A/A_PAIR price changes and best_bid_ask
    venue.replay.advance_to(FRAMES[cut].recv_ms)
    expected = [f for f in FRAMES[1:cut + 1] if A in f.payload and '"price_change"' in f.payload]
    got = recv_n(ws, len(expected)) + quiet(ws)
    assert len(got) == len(expected) and all(A_PAIR not in t for t in got)  # the pair's entries are cut out
    assert [orjson.loads(t)["price_changes"][0]["asset_id"] for t in got] == [A] * len(expected)

    ws.send(json.dumps({"operation": "subscribe", "assets_ids": [B]}))
    assert [b["asset_id"] for b in orjson.loads(recv_n(ws, 1)[0])] == [B]
    ws.send(json.dumps({"operation": "unsubscribe", "assets_ids": [A]}))
    ws.send(json.dumps({"operation": "subscribe", "assets_ids": [C]}))
    assert [b["asset_id"] for b in orjson.loads(recv_n(ws, 1)[0])] == [C]
    venue.replay.advance_to(FRAMES[-1].recv_ms)
    rest = [f for f in FRAMES[cut + 1:] if (B in f.payload or C in f.payload) and '"price_change"' in f.payload]
    got = recv_n(ws, len(rest)) + quiet(ws)
    assert len(rest) > 0 and len(got) == len(rest)
    assert all(A not in t for t in got)
    assert {e["asset_id"] for t in got for e in orjson.loads(t)["price_changes"]} <= {B, C}


def test_our_orders_show_in_the_market_channel_and_the_user_channel(make_venue: Callable[..., Venue], r: Redis) -> None:
    venue = make_venue()
    venue.replay.advance_to(FRAMES[0].recv_ms)
    tape_bid, tape_ask = venue.books.tape_top(A)
    assert (str(tape_bid), str(tape_ask)) == ("0.61", "0.66")
    client = ClobClient(f"http://127.0.0.1:{venue.http_port}", chain_id=137, key=KEY)
    creds = client.create_or_derive_api_key()
    client.set_api_creds(creds)
    market, user = connect(venue), connect(venue, "/ws/user")
    subscribe(market, [A])
    assert len(orjson.loads(recv_n(market, 1)[0])) == 1
    user.send(json.dumps({"auth": {"apiKey": creds.api_key, "secret": creds.api_secret,
                                   "passphrase": creds.api_passphrase}, "markets": [], "type": "user"}))
    user.send("PING")
    assert recv_n(user, 1, skip_pong=False) == ["PONG"]

    opts = PartialCreateOrderOptions(tick_size="0.01")
    placed = client.create_and_post_order(OrderArgsV2(token_id=A, price=0.62, size=5, side="BUY"), opts,
                                          OrderType.GTC, post_only=True)
    assert placed["status"] == "live"
    bba, change = (orjson.loads(t) for t in recv_n(market, 2))
    assert (bba["event_type"], bba["best_bid"], bba["best_ask"]) == ("best_bid_ask", "0.62", "0.66")
    entry = change["price_changes"][0]
    assert (entry["price"], entry["size"], entry["side"], entry["best_bid"]) == ("0.62", "5", "BUY", "0.62")
    order = orjson.loads(recv_n(user, 1)[0])
    assert (order["event_type"], order["type"], order["id"], order["owner"]) == ("order", "PLACEMENT", placed["orderID"], creds.api_key)
    assert client.get_order_book(A)["bids"][-1] == {"price": "0.62", "size": "5"}

    client.cancel_order(OrderPayload(orderID=placed["orderID"]))
    bba, change = (orjson.loads(t) for t in recv_n(market, 2))
    assert bba["best_bid"] == "0.61" and change["price_changes"][0]["size"] == "0"
    assert orjson.loads(recv_n(user, 1)[0])["type"] == "CANCELLATION"

    taken = client.create_and_post_order(OrderArgsV2(token_id=A, price=0.66, size=5, side="BUY"), opts, OrderType.GTC)
    assert taken["status"] == "matched"
    frames = [orjson.loads(t) for t in recv_n(market, 2) + quiet(market)]
    trade = next(f for f in frames if f["event_type"] == "last_trade_price")
    assert (trade["price"], trade["size"], trade["side"], trade["fee_rate_bps"]) == ("0.66", "5", "BUY", "0")
    after = frames[frames.index(trade) + 1]
    assert after["event_type"] == "book" and after["asset_id"] == A and after["last_trade_price"] == "0.66"
    user_events = [orjson.loads(t) for t in recv_n(user, 1) + quiet(user)]
    assert any(e["event_type"] == "trade" and e["size"] == "5" for e in user_events)


def test_market_end_cancels_our_orders_then_resolves_to_the_token_above_half(make_venue: Callable[..., Venue],
                                                                            tmp_path: Path) -> None:
    venue = make_venue(tape=BTC_AM)
    first = load_markets(BTC_AM / "markets.json")[0]
    up, down = first.token_ids
    ws = connect(venue)
    subscribe(ws, [up, down])
    assert recv_n(ws, 1) == ["[]\n"]
    venue.replay.advance_to(first.end_ms - 1)
    assert [orjson.loads(t)["asset_id"] for t in recv_n(ws, 2)] == [up, down]  # the tape's two books
    assert venue.books.tape_top(up) == (D("0.52"), D("0.53"))  # mid 0.525: Up wins
    client = ClobClient(f"http://127.0.0.1:{venue.http_port}", chain_id=137, key=KEY)
    client.set_api_creds(client.create_or_derive_api_key())
    client.create_and_post_order(OrderArgsV2(token_id=up, price=0.5, size=5, side="BUY"),
                                 PartialCreateOrderOptions(tick_size="0.01"), OrderType.GTC, post_only=True)
    assert orjson.loads(recv_n(ws, 1)[0])["price_changes"][0]["size"] == "5"
    venue.replay.advance_to(first.end_ms)
    cancel, resolved = (orjson.loads(t) for t in recv_n(ws, 2))
    assert cancel["price_changes"][0]["size"] == "0"  # the engine cancelled it before the resolution
    assert (resolved["event_type"], resolved["winning_asset_id"], resolved["winning_outcome"]) == \
        ("market_resolved", up, "Up")
    assert resolved["market"] == first.condition_id and resolved["assets_ids"] == [up, down]
    assert client.get_open_orders() == []
    audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in audit][-2:] == ["market_end", "cancel"] and audit[-1]["reason"] == "MARKET_ENDED"


def test_user_channel_refuses_unknown_keys(make_venue: Callable[..., Venue], r: Redis) -> None:
    venue = make_venue()
    user = connect(venue, "/ws/user")
    user.send(json.dumps({"auth": {"apiKey": "nope", "secret": "x", "passphrase": "y"}, "type": "user"}))
    assert_closed(user)
    assert wait_until(lambda: r.hget(keys.COUNTS, "WS_AUTH_FAILED")) == "1"


def test_ping_inject_silence_state_and_drop(make_venue: Callable[..., Venue], r: Redis) -> None:
    venue = make_venue()
    api = http(venue)
    ws, other = connect(venue), connect(venue, "/ws/user")
    subscribe(ws, [A, B], custom=False)
    assert recv_n(ws, 1) == ["[]\n"]
    ws.send("PING")
    assert recv_n(ws, 1, skip_pong=False) == ["PONG"]
    assert api.post("/_sim/ws/inject", json={"text": '{"event_type": "book", "asset_id": '}).json() == {"sent_to": 1}
    assert recv_n(ws, 1) == ['{"event_type": "book", "asset_id": ']  # raw, malformed on purpose
    ws.send("{bad json")
    assert wait_until(lambda: r.hget(keys.COUNTS, "WS_BAD_CLIENT_MESSAGE")) == "1"
    state = api.get("/_sim/ws/state").json()
    assert state["market"]["connections"] == 1 and state["user"]["connections"] == 1
    assert state["market"]["detail"][0]["assets"] == sorted([A, B]) and state["market"]["frames_sent"] >= 3

    assert api.post("/_sim/ws/silence", json={"seconds": "long"}).status_code == 400
    assert api.post("/_sim/ws/silence", json={"seconds": 0.8}).status_code == 200
    ws.send("PING")
    api.post("/_sim/ws/inject", json={"text": "lost"})
    assert quiet(ws, 0.4) == []  # half-open: socket open, nothing at all sent, PING unanswered
    wait_until(lambda: not api.get("/_sim/ws/state").json()["silent"])
    ws.send("PING")
    assert recv_n(ws, 1, skip_pong=False) == ["PONG"]

    assert api.post("/_sim/ws/drop").json()["dropped"] == 2
    for sock in (ws, other):
        assert_closed(sock)
    assert wait_until(lambda: api.get("/_sim/ws/state").json()["market"]["connections"] == 0)
    again = connect(venue)  # the venue keeps accepting after a drop
    subscribe(again, [A])
    assert recv_n(again, 1) == ["[]\n"]
    assert api.post("/_sim/ws/drop", json={"abrupt": True}).json() == {"dropped": 1, "abrupt": True}
    assert_closed(again)


def test_idle_connections_are_closed_but_pinging_ones_stay(make_venue: Callable[..., Venue]) -> None:
    venue = make_venue(ws_idle_timeout_s=0.5)
    idle, alive = connect(venue), connect(venue)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        alive.send("PING")
        assert recv_n(alive, 1, skip_pong=False) == ["PONG"]
        time.sleep(0.1)  # the client's PING cadence (wall time is what is under test here)
    assert_closed(idle, timeout=1)
    assert venue.market.counts["idle_closed"] == 1


def test_a_slow_client_is_closed_without_stalling_the_others(make_venue: Callable[..., Venue]) -> None:
    venue = make_venue(ws_queue_max=20)
    api = http(venue)
    _slow, fast = connect(venue), connect(venue)  # ``_slow`` never reads
    big = "x" * 512_000
    for _ in range(8):
        for _ in range(15):
            api.post("/_sim/ws/inject", json={"text": big})
        assert len(recv_n(fast, 15, timeout=10)) == 15
        if venue.market.counts["overflow_closed"]:
            break
    assert venue.market.counts["overflow_closed"] == 1
    assert len(venue.market.connections()) == 1
    fast.send("PING")
    assert recv_n(fast, 1, skip_pong=False) == ["PONG"]
