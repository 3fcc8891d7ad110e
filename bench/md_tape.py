"""The md_gateway benchmark's tape and the process that plays it over a raw loopback WebSocket.

The tape: 1,000 tokens (500 two-sided markets) whose opening books are the real books of the 60 s
ENRICOBIGNOZZI capture (14 markets, reused round-robin under new token ids), then a random walk of
``price_change`` frames in the capture's exact wire format: one order changes one level of a
market, so each frame has two entries (YES at p, NO at 1-p, each with its token's ``best_bid`` and
``best_ask``), optionally preceded by the two ``best_bid_ask`` events as in the capture.

The tape server speaks just enough RFC 6455 by hand (a Python WebSocket server would cost more CPU
than the gateway it feeds on a 2-core machine): the upgrade, unmasked server frames, the client's
subscribe and text PINGs.
"""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "data" / "tapes" / "enrico-2026-09-24" / "frames.jsonl"
MICRO = 1_000_000
TS0 = 1_790_000_000_000


def fmt(v: int) -> str:
    """Micros -> shortest decimal string (the wire's style: "0.62", "5")."""
    q, r = divmod(v, MICRO)
    return str(q) if r == 0 else f"{q}.{r:06d}".rstrip("0")


def templates() -> list[tuple[dict[int, str], dict[int, str], int]]:
    """(YES bids, YES asks, tick) in micros for each market of the capture's opening dump."""
    first = json.loads(CAPTURE.read_text().splitlines()[0])["payload"]
    seen: set[str] = set()
    out = []
    for b in json.loads(first):
        if b["market"] in seen:
            continue
        seen.add(b["market"])
        side = {p: {int(round(float(lv["price"]) * MICRO)): lv["size"] for lv in b[p]} for p in ("bids", "asks")}
        out.append((side["bids"], side["asks"], int(round(float(b["tick_size"]) * MICRO))))
    return out


class Market:
    """A two-token market; NO's book mirrors YES's (NO bid at 1-p for every YES ask at p)."""

    def __init__(self, m: int, tmpl: tuple[dict[int, str], dict[int, str], int]) -> None:
        self.yes, self.no = str(10**76 + 2 * m), str(10**76 + 2 * m + 1)
        self.market = "0x%064x" % m
        self.bids, self.asks, self.tick = dict(tmpl[0]), dict(tmpl[1]), tmpl[2]

    def books(self) -> list[dict]:
        """The two ``book`` objects (YES, NO) of the market's current state, in the dump's format."""
        def obj(token: str, bids: dict[int, str], asks: dict[int, str]) -> dict:
            return {"market": self.market, "asset_id": token, "timestamp": str(TS0), "hash": "0" * 40,
                    "bids": [{"price": fmt(p), "size": bids[p]} for p in sorted(bids)],
                    "asks": [{"price": fmt(p), "size": asks[p]} for p in sorted(asks, reverse=True)],
                    "tick_size": fmt(self.tick), "event_type": "book", "last_trade_price": "0.500"}
        mirror = {MICRO - p: q for p, q in self.asks.items()}, {MICRO - p: q for p, q in self.bids.items()}
        return [obj(self.yes, self.bids, self.asks), obj(self.no, *mirror)]

    def step(self, rng: random.Random) -> tuple[bool, int, str]:
        """One random level change of YES that never crosses or empties a side: (is_bid, price, size)."""
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        bb, ba = max(self.bids, default=0), min(self.asks, default=MICRO)
        if is_bid:
            price = max(self.tick, min(bb + rng.randint(-3, 1) * self.tick, ba - self.tick))
        else:
            price = min(MICRO - self.tick, max(ba + rng.randint(-1, 3) * self.tick, bb + self.tick))
        delete = price in side and len(side) > 1 and rng.random() < 0.25
        size = "0" if delete else f"{rng.randint(1, 5000)}.{rng.randint(0, 99):02d}"
        if delete:
            del side[price]
        else:
            side[price] = size
        return is_bid, price, size

    def tops(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((best_bid, best_ask) of YES, of NO) as the wire reports them ("0"/"1" = empty side)."""
        bb, ba = max(self.bids, default=None), min(self.asks, default=None)
        yes = (fmt(bb) if bb else "0", fmt(ba) if ba else "1")
        no = (fmt(MICRO - ba) if ba else "0", fmt(MICRO - bb) if bb else "1")
        return yes, no


class Tape:
    """``opening``: token -> opening ``book`` object; ``markets`` (in their final state); ``frames``;
    ``entries``: price-change entries in the frames."""

    def __init__(self, opening: dict[str, dict], markets: list[Market], frames: list[bytes], entries: int) -> None:
        self.opening, self.markets, self.frames, self.entries = opening, markets, frames, entries


def synth_tape(n_tokens: int, n_frames: int, seed: int, bba: bool) -> Tape:
    """The benchmark tape (see the module docstring); deterministic for a seed."""
    rng, tmpls = random.Random(seed), templates()
    markets = [Market(m, tmpls[m % len(tmpls)]) for m in range(n_tokens // 2)]
    opening = {b["asset_id"]: b for m in markets for b in m.books()}
    frames: list[bytes] = []
    for i in range(n_frames):
        mk = rng.choice(markets)
        is_bid, price, size = mk.step(rng)
        (yb, ya), (nb, na) = mk.tops()
        ts = str(TS0 + 1 + i)  # unique per frame: the reader of run C finds the frame by it
        if bba:
            for tok, b, a in ((mk.yes, yb, ya), (mk.no, nb, na)):
                frames.append(json.dumps({"market": mk.market, "asset_id": tok, "best_bid": b, "best_ask": a,
                                          "spread": "0", "timestamp": ts, "event_type": "best_bid_ask"},
                                         separators=(", ", ":")).encode())
        entries = [{"asset_id": mk.yes, "price": fmt(price), "size": size, "side": "BUY" if is_bid else "SELL",
                    "hash": "%040x" % i, "best_bid": yb, "best_ask": ya},
                   {"asset_id": mk.no, "price": fmt(MICRO - price), "size": size, "side": "SELL" if is_bid else "BUY",
                    "hash": "%040x" % (i + 1), "best_bid": nb, "best_ask": na}]
        frames.append(json.dumps({"market": mk.market, "price_changes": entries, "timestamp": ts,
                                  "event_type": "price_change"}, separators=(", ", ":")).encode())
    return Tape(opening, markets, frames, 2 * n_frames)


def tape_token(frame: bytes) -> str:
    """The first token a frame names (both tokens of a market share a connection here)."""
    return frame[frame.index(b'"asset_id":"') + 12:].split(b'"', 1)[0].decode()


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(payload: bytes) -> bytes:
    """One unmasked server->client text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def read_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock`` (ConnectionError at EOF)."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("client went away")
        buf += chunk
    return buf


def read_client_frame(sock: socket.socket) -> bytes:
    """One masked client->server frame's payload (the subscribe message, PINGs)."""
    b0, b1 = read_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exact(sock, 8), "big")
    mask = read_exact(sock, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = read_exact(sock, n)
    return bytes(c ^ mask[i % 4] for i, c in enumerate(data))


class RawLink:
    """The tape server's side of one connection: HTTP upgrade by hand, then raw frames (a Python
    WebSocket server would cost more CPU than the gateway it feeds on a 2-core machine)."""

    def __init__(self, sock: socket.socket) -> None:
        import base64
        import hashlib

        self.sock, self.lock = sock, threading.Lock()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as any exchange feed: no Nagle delay
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.assets: list[str] = json.loads(read_client_frame(sock))["assets_ids"]

    def send(self, data: bytes) -> None:
        """Write raw frame bytes (one writer at a time)."""
        with self.lock:
            self.sock.sendall(data)

    def answer_pings(self) -> None:
        """Answer the gateway's text PINGs until the link closes (runs on its own thread)."""
        try:
            while True:
                if read_client_frame(self.sock) == b"PING":
                    self.send(ws_frame(b"PONG"))
        except (ConnectionError, OSError, ValueError):
            return  # the gateway closed the link: the run is over


def serve_tape(port: int, data_path: str, rate: float, n_conns: int, sends_path: str) -> None:
    """Tape server process: answer each subscribe with one dump frame; once ``n_conns`` links
    subscribed, send the frames (flat out in 64 KB writes when ``rate`` is 0, else one by one at
    ``rate`` price-change entries/s) to the link holding their tokens, recording the wall ns each
    price_change left; then answer PINGs until killed."""
    import pickle

    opening, frames = pickle.loads(Path(data_path).read_bytes())
    lsock = socket.create_server(("127.0.0.1", port))
    links, where = [], {}
    while len(links) < n_conns:
        link = RawLink(lsock.accept()[0])
        link.send(ws_frame(json.dumps([opening[t] for t in link.assets], separators=(",", ":")).encode() + b"\n"))
        links.append(link)
        where.update({t: link for t in link.assets})
        threading.Thread(target=link.answer_pings, daemon=True).start()
    time.sleep(1.0)  # the gateway applies the dumps
    sends = send_frames(frames, where, links, rate)
    Path(sends_path).write_text(json.dumps(sends))
    threading.Event().wait()


def send_frames(frames: list[bytes], where: dict[str, "RawLink"], links: list["RawLink"], rate: float) -> list[int]:
    """Send every frame to its link (in 100-frame writes when ``rate`` is 0, else one by one at ``rate``
    entries/s); returns the wall ns each price_change frame was sent."""
    sends: list[int] = []
    pending: dict[int, list[bytes]] = {id(x): [] for x in links}
    entries, t0 = 0, time.perf_counter()
    for f in frames:
        link, pc, data = where[tape_token(f)], b'"price_change"' in f, ws_frame(f)
        if not rate:
            pending[id(link)].append(data)
            if len(pending[id(link)]) >= 100:
                link.send(b"".join(pending[id(link)]))
                pending[id(link)].clear()
        else:
            wait = t0 + entries / rate - time.perf_counter()
            if pc and wait > 0:
                time.sleep(wait)
            link.send(data)
        if pc:
            sends.append(time.time_ns())
            entries += 2
    for link in links:
        link.send(b"".join(pending[id(link)]))
    return sends
