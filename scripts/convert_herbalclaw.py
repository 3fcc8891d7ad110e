#!/usr/bin/env python3
"""Convert one herbalclaw L1 SQLite capture (``btc_hf_*.db.gz``) into a polyband replay tape.

Usage::

    python scripts/convert_herbalclaw.py SRC.db.gz OUTDIR [--default-depth 100]

Writes ``OUTDIR/frames.jsonl.gz`` (tape), ``OUTDIR/markets.json`` and ``OUTDIR/tape_meta.json`` and
prints a summary JSON on stdout. Warnings go to stderr and into ``tape_meta.json``.

Source: ``markets(timestamp = window start s, asset, slug, created_at, up_token_id, down_token_id)``
and ``price_updates(id, timestamp_ms, market_ts, asset, side up|down|YES|NO, bid, ask, mid (integers in
millionths), spread_bps, bid_depth, ask_depth (shares), source)``.

Rules:

* Markets. Each ``markets`` row is one condition with two tokens: ``up_token_id`` (outcome "Up",
  index 0) and ``down_token_id`` ("Down", index 1); side ``up``/``YES`` is the Up token, ``down``/``NO``
  the Down token. ``start_ms`` = window start * 1000, ``end_ms`` = start_ms + 300000 (5-minute
  markets), tick_size "0.01", min_order_size "5", neg_risk false. The db has no condition id, so
  ``condition_id = "0x" + sha256(slug).hexdigest()`` with ``synthetic_condition_id: true``.
  question = "<Asset name> Up or Down - <slug>", e.g. "Bitcoin Up or Down - btc-updown-5m-1771358700".
* Prices. Millionths are converted exactly with Decimal (520000 -> "0.52"). A value within 1e-4 of
  a 0.01 tick is snapped to the tick (counted in ``roundings``, e.g. 339999 -> "0.34"); any other
  off-tick value is kept exact (counted in ``off_tick_kept``). Every row must then satisfy
  0 < bid < ask < 1, else the conversion stops with an error naming the row.
* Sizes. ``bid_depth``/``ask_depth`` become the L1 level sizes (rounded to 6 decimals, the token
  precision). A depth that is 0, null, negative or missing is replaced by ``--default-depth``
  (counted per value in ``default_depth_used``).
* Frames. Rows are processed in (timestamp_ms, id) order. A token's first row emits one ``book``
  frame: a single compact JSON object with the wire field order ``market, asset_id, timestamp, hash,
  bids, asks, tick_size, event_type, last_trade_price``, one bid level (bid, bid size) and one ask
  level (ask, ask size); ``last_trade_price`` is the row's mid with 3 decimals (the source records
  no trades). A later row whose bid, ask or sizes equal the token's current L1 is skipped
  (``rows_unchanged_skipped``). Otherwise the row emits, with the same ``timestamp``:
  a ``best_bid_ask`` frame (only when the best bid or ask moved), then one ``price_change`` frame
  (current schema, ``price_changes[]``). Both use the captured separators ``", "`` and ``":"``.
* price_change entries. Per side: an unchanged price with a new size gives one entry (new total);
  a moved price gives two entries: set the new level, then delete the old one (size "0"), so a side
  is never empty mid-frame. The side whose price worsens (bid down, ask up) goes first, so the book
  is never crossed mid-frame. Applying the entries in order yields exactly the row's bid and ask.
  ``best_bid``/``best_ask`` in each entry are the top of book right after THAT entry, as on the
  wire (Polymarket: "best_bid/best_ask are the top of book after the change" of the entry).
* Hashes are 40 lowercase hex: sha1 of a deterministic string (token, timestamp, level).
* Tape line: ``{"seq": N (1..), "recv_ms": row timestamp_ms, "payload": "<frame text>"}``.
* ``pinned_extremes`` counts tokens whose bid was 0.01 and ask 0.99 in every row. The 2026-02-17_PM
  file recorded the WORST levels (bids[0]/asks[0]) instead of the best, so its prices never move;
  this is reported loudly on stderr and in ``tape_meta.json``.

Licence of the source data: MIT as stated in the README of herbalclaw/polymarket-data-collector.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import orjson

LICENCE = ("MIT as stated in the README of herbalclaw/polymarket-data-collector "
           "(the repository has no LICENSE file)")
NOTICE = """This tape was converted by polyband (scripts/convert_herbalclaw.py) from a SQLite capture
published in https://github.com/herbalclaw/polymarket-data-collector (data/raw/).

Licence of the source data: MIT, as stated in the README of herbalclaw/polymarket-data-collector
("## License" section: "MIT"). The repository has no LICENSE file and names no copyright holder;
the copyright belongs to the author(s) of herbalclaw/polymarket-data-collector.

The frames here are DERIVED: the source holds polled level-1 prices and depths, which were turned
into market-channel book / best_bid_ask / price_change frames; hashes, frame layout and
last_trade_price (the source mid) are synthetic. See tape_meta.json for the conversion summary.
"""
TICK = Decimal("0.01")
SNAP = Decimal("0.0001")
SIZE_QUANTUM = Decimal("0.000001")
MILLION = Decimal(1_000_000)
WINDOW_MS = 300_000
PIN_BID, PIN_ASK = Decimal("0.01"), Decimal("0.99")
ASSET_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "XRP": "XRP"}
SIDE_INDEX = {"up": 0, "yes": 0, "down": 1, "no": 1}
WIRE = (", ", ":")  # separators of price_change / best_bid_ask frames in real captures
COMPACT = (",", ":")  # separators of book frames


class ConversionError(ValueError):
    """The source db violates a rule; the message names the row, field and value."""


@dataclass(frozen=True)
class L1:
    """Top of book of one token: prices in (0, 1), sizes in shares."""

    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


@dataclass
class Stats:
    """Counters printed in the summary."""

    rows_in: int = 0
    rows_unchanged_skipped: int = 0
    default_depth_used: int = 0
    roundings: int = 0
    off_tick_kept: int = 0
    frames_by_type: dict[str, int] = field(default_factory=dict)


def fmt(value: Decimal) -> str:
    """Wire decimal string without trailing zeros or exponent: 0.50 -> "0.5", 100 -> "100"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def sha1_hex(text: str) -> str:
    """40 lowercase hex characters, no 0x (the wire `hash` format)."""
    return hashlib.sha1(text.encode()).hexdigest()


def to_price(raw: Any, stats: Stats, where: str) -> Decimal:
    """Millionths -> exact Decimal; snap to the 0.01 tick when within 1e-4 of it."""
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ConversionError(f"{where}: price {raw!r} is not an integer number of millionths")
    exact = Decimal(raw) / MILLION
    tick = exact.quantize(TICK)
    if tick == exact:
        return tick
    if abs(tick - exact) <= SNAP:
        stats.roundings += 1
        return tick
    stats.off_tick_kept += 1
    return exact


def to_size(raw: Any, default: Decimal, stats: Stats) -> Decimal:
    """Depth in shares (6 decimals); 0, null, negative or non-numeric -> the default depth."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        size = Decimal(repr(float(raw))).quantize(SIZE_QUANTUM)
        if size > 0:
            return size
    stats.default_depth_used += 1
    return default


def condition_id_for(slug: str) -> str:
    """Synthetic condition id: "0x" + sha256(slug)."""
    return "0x" + hashlib.sha256(slug.encode()).hexdigest()


def market_entry(row: sqlite3.Row) -> dict[str, Any]:
    """Our markets.json object for one herbalclaw ``markets`` row."""
    start_ms = int(row["timestamp"]) * 1000
    name = ASSET_NAMES.get(str(row["asset"]).upper(), str(row["asset"]))
    return {"condition_id": condition_id_for(row["slug"]), "question": f"{name} Up or Down - {row['slug']}",
            "slug": row["slug"], "token_ids": [row["up_token_id"], row["down_token_id"]],
            "outcomes": ["Up", "Down"], "start_ms": start_ms, "end_ms": start_ms + WINDOW_MS,
            "tick_size": "0.01", "min_order_size": "5", "neg_risk": False, "synthetic_condition_id": True}


def book_frame(cid: str, token: str, ts: int, l1: L1, mid: Decimal) -> str:
    """One ``book`` object in the dumped wire field order, compact JSON."""
    obj = {"market": cid, "asset_id": token, "timestamp": str(ts),
           "hash": sha1_hex(f"book:{token}:{ts}:{l1.bid}:{l1.bid_size}:{l1.ask}:{l1.ask_size}"),
           "bids": [{"price": fmt(l1.bid), "size": fmt(l1.bid_size)}],
           "asks": [{"price": fmt(l1.ask), "size": fmt(l1.ask_size)}],
           "tick_size": "0.01", "event_type": "book", "last_trade_price": str(mid.quantize(Decimal("0.001")))}
    return json.dumps(obj, separators=COMPACT)


def bba_frame(cid: str, token: str, ts: int, l1: L1) -> str:
    """One ``best_bid_ask`` event with the captured separators."""
    obj = {"market": cid, "asset_id": token, "best_bid": fmt(l1.bid), "best_ask": fmt(l1.ask),
           "spread": fmt(l1.ask - l1.bid), "timestamp": str(ts), "event_type": "best_bid_ask"}
    return json.dumps(obj, separators=WIRE)


def side_changes(side: str, old_p: Decimal, old_s: Decimal, new_p: Decimal,
                 new_s: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """Level updates (side, price, new total size) turning one L1 side into another."""
    if old_p == new_p:
        return [] if old_s == new_s else [(side, new_p, new_s)]
    return [(side, new_p, new_s), (side, old_p, Decimal(0))]


def price_change_frame(cid: str, token: str, ts: int, old: L1, new: L1) -> str:
    """One current-schema ``price_change``; entries ordered so no side empties or crosses mid-frame,
    each carrying the top of book right after it."""
    bids = side_changes("BUY", old.bid, old.bid_size, new.bid, new.bid_size)
    asks = side_changes("SELL", old.ask, old.ask_size, new.ask, new.ask_size)
    changes = asks + bids if new.ask > old.ask else bids + asks
    levels = {"BUY": {old.bid: old.bid_size}, "SELL": {old.ask: old.ask_size}}
    entries = []
    for i, (side, price, size) in enumerate(changes):
        if size == 0:
            levels[side].pop(price, None)
        else:
            levels[side][price] = size
        entries.append({"asset_id": token, "price": fmt(price), "size": fmt(size), "side": side,
                        "hash": sha1_hex(f"pc:{token}:{ts}:{i}:{side}:{price}:{size}"),
                        "best_bid": fmt(max(levels["BUY"])), "best_ask": fmt(min(levels["SELL"]))})
    obj = {"market": cid, "price_changes": entries, "timestamp": str(ts), "event_type": "price_change"}
    return json.dumps(obj, separators=WIRE)


class Converter:
    """Turns source rows into tape frames, keeping each token's L1 state and the counters."""

    def __init__(self, markets: list[dict[str, Any]], market_ts: list[int], default_depth: Decimal) -> None:
        self.by_ts = {ts: m for ts, m in zip(market_ts, markets)}
        self.default_depth = default_depth
        self.stats = Stats()
        self.state: dict[str, L1] = {}
        self.pinned: dict[str, bool] = {}
        self.first_prices: dict[str, tuple[Decimal, Decimal]] = {}
        self.last_prices: dict[str, tuple[Decimal, Decimal]] = {}
        self.moved: set[str] = set()  # tokens whose bid or ask changed at least once
        self.source_ms: list[int] = []  # first and last source timestamp_ms
        self.rows_outside_window = 0

    def row_l1(self, row: sqlite3.Row) -> L1:
        """Validated L1 of one source row."""
        where = f"price_updates id {row['id']}"
        bid, ask = to_price(row["bid"], self.stats, where), to_price(row["ask"], self.stats, where)
        if not (0 < bid < ask < 1):
            raise ConversionError(f"{where}: needs 0 < bid < ask < 1, got bid {bid} ask {ask}")
        return L1(bid, ask, to_size(row["bid_depth"], self.default_depth, self.stats),
                  to_size(row["ask_depth"], self.default_depth, self.stats))

    def token_of(self, row: sqlite3.Row) -> tuple[dict[str, Any], str]:
        """(market entry, token id) of a source row."""
        market = self.by_ts.get(row["market_ts"])
        if market is None:
            raise ConversionError(f"price_updates id {row['id']}: market_ts {row['market_ts']!r} not in markets")
        index = SIDE_INDEX.get(str(row["side"]).lower())
        if index is None:
            raise ConversionError(f"price_updates id {row['id']}: side {row['side']!r} is not up/down/YES/NO")
        return market, market["token_ids"][index]

    def track(self, token: str, market: dict[str, Any], ts: int, new: L1) -> None:
        """Update the bookkeeping behind the warnings (pinned, carry-over, window, time span)."""
        self.pinned[token] = self.pinned.get(token, True) and (new.bid, new.ask) == (PIN_BID, PIN_ASK)
        self.first_prices.setdefault(token, (new.bid, new.ask))
        self.last_prices[token] = (new.bid, new.ask)
        self.source_ms = [self.source_ms[0] if self.source_ms else ts, ts]
        if not market["start_ms"] <= ts < market["end_ms"]:
            self.rows_outside_window += 1

    def frames(self, row: sqlite3.Row) -> list[str]:
        """The frames one source row emits (possibly none)."""
        self.stats.rows_in += 1
        market, token = self.token_of(row)
        ts, new, cid = int(row["timestamp_ms"]), self.row_l1(row), market["condition_id"]
        self.track(token, market, ts, new)
        old = self.state.get(token)
        self.state[token] = new
        if old is None:
            mid = Decimal(row["mid"]) / MILLION if isinstance(row["mid"], int) else (new.bid + new.ask) / 2
            return [book_frame(cid, token, ts, new, mid)]
        if old == new:
            self.stats.rows_unchanged_skipped += 1
            return []
        if (old.bid, old.ask) == (new.bid, new.ask):
            return [price_change_frame(cid, token, ts, old, new)]
        self.moved.add(token)
        return [bba_frame(cid, token, ts, new), price_change_frame(cid, token, ts, old, new)]


def read_db(src: Path, workdir: Path) -> sqlite3.Connection:
    """Open the gzip-compressed SQLite db (decompressed into ``workdir``)."""
    db = workdir / src.name.removesuffix(".gz")
    with gzip.open(src, "rb") as fin, open(db, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return con


def source_rows(con: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Price updates in (timestamp_ms, id) order."""
    yield from con.execute("SELECT id, timestamp_ms, market_ts, side, bid, ask, mid, bid_depth, ask_depth "
                           "FROM price_updates ORDER BY timestamp_ms, id")


def write_tape(path: Path, lines: Iterator[tuple[int, str]]) -> tuple[int, int | None, int | None]:
    """Write tape lines deterministically (gzip mtime 0); returns (frames, first_ms, last_ms)."""
    count, first, last = 0, None, None
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for recv_ms, payload in lines:
            count += 1
            first = recv_ms if first is None else first
            last = recv_ms
            gz.write(orjson.dumps({"seq": count, "recv_ms": recv_ms, "payload": payload}) + b"\n")
    return count, first, last


def frame_lines(conv: Converter, con: sqlite3.Connection) -> Iterator[tuple[int, str]]:
    """(recv_ms, payload) for every frame, counting frames by event type."""
    by_type = conv.stats.frames_by_type
    for row in source_rows(con):
        for payload in conv.frames(row):
            kind = orjson.loads(payload)["event_type"]
            by_type[kind] = by_type.get(kind, 0) + 1
            yield int(row["timestamp_ms"]), payload


def carried_over(conv: Converter, markets: list[dict[str, Any]]) -> list[str]:
    """Slugs of markets whose first prices equal the previous market's last prices for both tokens
    although the prices later move (a recorder artifact: the new window briefly shows stale prices)."""
    out = []
    for prev, market in zip(markets, markets[1:]):
        pairs = list(zip(prev["token_ids"], market["token_ids"]))
        if all(old in conv.last_prices and new in conv.first_prices
               and conv.last_prices[old] == conv.first_prices[new] and new in conv.moved for old, new in pairs):
            out.append(market["slug"])
    return out


def warnings_for(conv: Converter, markets: list[dict[str, Any]]) -> list[str]:
    """Human-readable warnings about the source."""
    out = []
    stale = carried_over(conv, markets)
    if stale:
        out.append(f"{len(stale)} markets open with the previous market's last bid/ask on both tokens before "
                   f"moving (likely stale recorder data at window start): {', '.join(stale)}")
    pinned = sorted(t for t, p in conv.pinned.items() if p)
    if pinned:
        out.append(f"PINNED PRICES: {len(pinned)} of {len(conv.pinned)} tokens show bid 0.01 and ask 0.99 in "
                   "every row: the recorder stored the WORST levels (bids[0]/asks[0]) instead of the best, so "
                   "prices never move. Use this tape for market-end and size-change exercise only.")
    silent = [m["slug"] for m in markets if not any(t in conv.state for t in m["token_ids"])]
    if silent:
        out.append(f"{len(silent)} markets have no price updates: {', '.join(silent)}")
    moves = conv.stats.frames_by_type.get("best_bid_ask", 0)
    if moves * 100 < conv.stats.rows_in:
        out.append(f"prices rarely move: {moves} best bid/ask changes in {conv.stats.rows_in} rows "
                   f"({len(conv.moved)} of {len(conv.state)} tokens ever move after their first book)")
    if conv.rows_outside_window:
        out.append(f"{conv.rows_outside_window} rows fall outside their market's [start_ms, end_ms) window")
    if conv.stats.default_depth_used:
        out.append(f"{conv.stats.default_depth_used} depth values were 0/null and replaced by the default depth "
                   f"{fmt(conv.default_depth)} shares (sizes are not real)")
    if conv.stats.roundings:
        out.append(f"{conv.stats.roundings} price values within 1e-4 of a tick were snapped to the 0.01 tick")
    return out


def convert(src: Path, outdir: Path, default_depth: Decimal) -> dict[str, Any]:
    """Run the conversion; returns the summary (also written into tape_meta.json)."""
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        con = read_db(src, Path(tmp))
        rows = list(con.execute("SELECT timestamp, asset, slug, up_token_id, down_token_id "
                                "FROM markets ORDER BY timestamp"))
        markets = [market_entry(r) for r in rows]
        conv = Converter(markets, [int(r["timestamp"]) for r in rows], default_depth)
        frames, first_ms, last_ms = write_tape(outdir / "frames.jsonl.gz", frame_lines(conv, con))
        con.close()
    (outdir / "markets.json").write_text(json.dumps(markets, indent=1) + "\n")
    (outdir / "NOTICE").write_text(NOTICE)
    s = conv.stats
    summary = {"markets": len(markets), "tokens": len(conv.state), "frames": frames, "rows_in": s.rows_in,
               "rows_unchanged_skipped": s.rows_unchanged_skipped, "default_depth_used": s.default_depth_used,
               "roundings": s.roundings, "off_tick_kept": s.off_tick_kept,
               "pinned_extremes": sum(conv.pinned.values()), "frames_by_type": s.frames_by_type}
    meta = {"source": f"{src.parent.name}/{src.name}", "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "licence": LICENCE, "converter": "scripts/convert_herbalclaw.py", "default_depth": fmt(default_depth),
            "rows": s.rows_in, "frames": frames, "first_recv_ms": first_ms, "last_recv_ms": last_ms,
            "source_first_ms": conv.source_ms[0] if conv.source_ms else None,
            "source_last_ms": conv.source_ms[-1] if conv.source_ms else None,
            "markets": len(markets), "summary": summary, "warnings": warnings_for(conv, markets)}
    (outdir / "tape_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="herbalclaw btc_hf_*.db.gz")
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--default-depth", type=Decimal, default=Decimal(100), help="shares used when depth is 0/null")
    args = ap.parse_args(argv)
    if args.default_depth <= 0:
        ap.error(f"--default-depth must be > 0, got {args.default_depth}")
    meta = convert(args.src, args.outdir, args.default_depth)
    for warning in meta["warnings"]:
        loud = "!!! WARNING" if warning.startswith("PINNED") else "warning"
        print(f"{loud}: {args.src.name}: {warning}", file=sys.stderr)
    print(json.dumps(meta["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
