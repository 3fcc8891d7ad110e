#!/usr/bin/env python3
"""Convert the resolvedkit BTC 15-minute L2 sample into a polyband tape (frames, markets, meta, NOTICE).

Usage::

    python scripts/convert_resolvedkit.py ../shared/data/l2-resolvedkit-btc15m data/tapes/btc15m-2026-09-28
        [--levels 10] [--every-ms 5000]

Source (``l2-resolvedkit-btc15m/``, CC BY 4.0, Resolved Markets / resolvedkit 0.1.0): ``books.parquet``
(``market_id`` condition id, ``ts`` Unix ms, ``side`` UP/DOWN, ``bid_px``/``bid_sz`` and
``ask_px``/``ask_sz`` best first, top 20 levels, ~1 snapshot per outcome per second) and
``markets.parquet`` (``slug``, ``question``, ``category``, ``start_ts``/``end_ts`` ms, outcome names,
``payout_up``/``payout_down`` 1.0 or 0.0). Rules (also in data/README.md):

* Token ids: the data has none. ``token_id = str(int.from_bytes(sha256((condition_id.lower() + ":" +
  outcome).encode()).digest(), "big"))`` (a decimal uint256 string like real ids), outcome = the
  data's ``outcome_up`` / ``outcome_down`` name ("Up"/"Down"); ``token_ids[0]`` is Up.
* Optional thinning (the full data, 20 levels at ~1/s, is a 6.4 MB gz; the bundled tape is full):
  per token, a snapshot is kept when it is the token's first or its ``ts`` is at least
  ``--every-ms`` (default 0) after the token's last KEPT snapshot; a kept snapshot is cut to its
  best ``--levels`` (default 20: all) levels per side. Everything below applies to the kept
  snapshots; the defaults (``--levels 20 --every-ms 0``) convert everything.
* Numbers: a float price or size becomes ``Decimal(repr(x))`` rounded to 6 decimals (removes float
  artifacts such as 5.5600000000000005 -> 5.56), written without trailing zeros.
* Frames, in (ts, market start, Up before Down) order, ``recv_ms`` = ``ts``: a token's first
  snapshot is a ``book`` (compact JSON, wire field order, bids ascending / asks descending, best LAST,
  ``tick_size`` = the market tick, ``last_trade_price`` = the snapshot's mid with 3 decimals: the
  data has no trades). Each later snapshot that differs gives ONE ``price_change`` (current schema,
  ``", "`` separators) with exactly the level diffs: a new or resized level gives its new size, a
  level no longer in the snapshot gives ``"size":"0"`` (also when it merely fell out of the level
  window: the tape book is exactly the kept snapshot). Unchanged snapshots give no frame. Entry order:
  the side whose best price moves away (ask up) first, else bids first; within a side, sets
  before deletions (best first), so a side that stays non-empty never empties mid-frame. Each
  entry's ``best_bid``/``best_ask`` is the top after it ("0"/"1" for an empty side); all entries of
  a frame share one ``hash`` (the token's book after the frame; sha1 of a fixed string, which keeps
  the gz small: per-entry random hashes would triple it).
* Tick: 0.01 if it divides every price of every snapshot whose best bid and ask both lie strictly
  inside (0.04, 0.96), else 0.001 (0.01 for all 18 markets). 3-decimal prices appear only while a
  top is at or beyond 0.04/0.96, where Polymarket's tick flips to 0.001 (TapeBooks reproduces the
  flip); ``book`` frames carry the market tick. Minimum order size "5" (Polymarket's on these markets).
* Resolution: a ``market_resolved`` frame (custom feature event, compact JSON) with the winner from
  the payouts (payout 1.0) at ``recv_ms`` = the market's ``end_ts``, after any snapshot of the same
  ms (the data has no resolution time). Fees: ``schedule_for_category(category)`` (crypto: 0.07).
Output is byte-reproducible (gzip mtime 0, sorted input, hashes are sha1 of fixed strings).
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import orjson
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from libs.common.fees import schedule_for_category  # noqa: E402

COMPACT, WIRE = (",", ":"), (", ", ":")
Q6 = Decimal("0.000001")
BAND = (Decimal("0.04"), Decimal("0.96"))
LICENCE = ('CC BY 4.0, "Polymarket order books sample, Resolved Markets (resolvedkit 0.1.0), CC BY 4.0"; '
           "data (c) Resolved Markets (Elcara LLC-FZ); see NOTICE")
Book = dict[str, dict[Decimal, Decimal]]  # {"BUY": bids, "SELL": asks}, price -> size


class ConversionError(ValueError):
    """The source cannot be converted; the message names the row and the value."""


def fmt(value: Decimal) -> str:
    """Decimal as a wire string without exponent or trailing zeros (0.50 -> "0.5")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@functools.lru_cache(maxsize=None)
def num(x: float) -> Decimal:
    """A parquet float as an exact Decimal rounded to 6 decimals (cached: values repeat a lot)."""
    return Decimal(repr(float(x))).quantize(Q6).normalize()


def sha1_hex(text: str) -> str:
    """40 lowercase hex characters (the wire ``hash`` format)."""
    return hashlib.sha1(text.encode()).hexdigest()


def token_id_for(condition_id: str, outcome: str) -> str:
    """The documented token id rule (module doc)."""
    return str(int.from_bytes(hashlib.sha256((condition_id.lower() + ":" + outcome).encode()).digest(), "big"))


def snapshot(row: dict[str, Any]) -> Book:
    """One source row as {side: {price: size}}; raises on a repeated price or a non-positive size."""
    book: Book = {}
    for side, px, sz in (("BUY", "bid_px", "bid_sz"), ("SELL", "ask_px", "ask_sz")):
        levels = {num(p): num(s) for p, s in zip(row[px], row[sz])}
        if len(levels) != len(row[px]) or len(row[px]) != len(row[sz]) or any(s <= 0 for s in levels.values()):
            raise ConversionError(f"{row['market_id']} ts {row['ts']} {row['side']}: bad {side} levels")
        book[side] = levels
    return book


def top(book: Book) -> tuple[str, str]:
    """(best bid, best ask) as wire strings, "0"/"1" for an empty side."""
    return (fmt(max(book["BUY"])) if book["BUY"] else "0", fmt(min(book["SELL"])) if book["SELL"] else "1")


def market_tick(rows: list[dict[str, Any]]) -> Decimal:
    """0.01 if every price of every in-band snapshot (best bid and ask strictly inside (0.04, 0.96)) is a
    multiple of it, else 0.001."""
    for row in rows:
        bids, asks = row["bid_px"], row["ask_px"]
        if bids and asks and BAND[0] < num(bids[0]) and num(asks[0]) < BAND[1]:
            if any(num(p) % Decimal("0.01") for p in bids + asks):
                return Decimal("0.001")
    return Decimal("0.01")


def market_entry(m: dict[str, Any], tick: Decimal) -> dict[str, Any]:
    """Our markets.json object for one markets.parquet row."""
    cid, outcomes = m["market_id"].lower(), [m["outcome_up"], m["outcome_down"]]
    return {"condition_id": cid, "question": m["question"], "slug": m["slug"],
            "token_ids": [token_id_for(cid, o) for o in outcomes], "outcomes": outcomes,
            "start_ms": int(m["start_ts"]), "end_ms": int(m["end_ts"]), "tick_size": fmt(tick),
            "min_order_size": "5", "neg_risk": False, "synthetic_condition_id": False,
            "fee_schedule": schedule_for_category(m["category"]).as_json()}


def book_frame(cid: str, token: str, ts: int, book: Book, tick: str) -> str:
    """The ``book`` event of a token's first snapshot (compact JSON, wire field order)."""
    bid, ask = top(book)
    sides = [x for x in (book["BUY"] and max(book["BUY"]), book["SELL"] and min(book["SELL"])) if x]
    mid = sum(sides) / len(sides) if sides else Decimal("0.5")
    bids = [{"price": fmt(p), "size": fmt(s)} for p, s in sorted(book["BUY"].items())]
    asks = [{"price": fmt(p), "size": fmt(s)} for p, s in sorted(book["SELL"].items(), reverse=True)]
    obj = {"market": cid, "asset_id": token, "timestamp": str(ts),
           "hash": sha1_hex(f"book:{token}:{ts}:{bid}:{ask}:{len(bids)}:{len(asks)}"), "bids": bids, "asks": asks,
           "tick_size": tick, "event_type": "book", "last_trade_price": str(mid.quantize(Decimal("0.001")))}
    return json.dumps(obj, separators=COMPACT)


def level_diffs(old: Book, new: Book) -> list[tuple[str, Decimal, Decimal]]:
    """(side, price, new size) turning ``old`` into ``new``, ordered as the module doc says."""
    per_side = {}
    for side in ("BUY", "SELL"):
        o, n = old[side], new[side]
        sets = [(side, p, s) for p, s in sorted(n.items(), reverse=side == "BUY") if o.get(p) != s]
        dels = [(side, p, Decimal(0)) for p in sorted(o, reverse=side == "BUY") if p not in n]
        per_side[side] = sets + dels
    old_ask, new_ask = top(old)[1], top(new)[1]
    asks_first = Decimal(new_ask) > Decimal(old_ask)
    return per_side["SELL"] + per_side["BUY"] if asks_first else per_side["BUY"] + per_side["SELL"]


def price_change_frame(cid: str, token: str, ts: int, old: Book, new: Book) -> str | None:
    """One current-schema ``price_change`` with the diffs of ``old`` -> ``new`` (None when equal)."""
    changes = level_diffs(old, new)
    if not changes:
        return None
    work: Book = {"BUY": dict(old["BUY"]), "SELL": dict(old["SELL"])}
    entries, book_hash = [], sha1_hex(f"pc:{token}:{ts}:{len(changes)}")
    for side, price, size in changes:
        if size == 0:
            work[side].pop(price, None)
        else:
            work[side][price] = size
        bid, ask = top(work)
        entries.append({"asset_id": token, "price": fmt(price), "size": fmt(size), "side": side,
                        "hash": book_hash, "best_bid": bid, "best_ask": ask})
    obj = {"market": cid, "price_changes": entries, "timestamp": str(ts), "event_type": "price_change"}
    return json.dumps(obj, separators=WIRE)


def resolved_frame(m: dict[str, Any], winner_index: int | None) -> str:
    """The ``market_resolved`` event of a market at its ``end_ms`` (fields as reference/polymarket-api.md)."""
    cid = m["condition_id"]
    mid = str(int(cid[2:18], 16))
    winner = m["token_ids"][winner_index] if winner_index is not None else ""
    outcome = m["outcomes"][winner_index] if winner_index is not None else ""
    obj = {"event_type": "market_resolved", "id": mid, "question": m["question"], "market": cid, "slug": m["slug"],
           "description": m["question"], "assets_ids": m["token_ids"], "outcomes": m["outcomes"],
           "winning_asset_id": winner, "winning_outcome": outcome,
           "event_message": {"id": mid, "ticker": m["slug"], "slug": m["slug"], "title": m["question"],
                             "description": m["question"]},
           "timestamp": str(m["end_ms"]), "tags": ["crypto"]}
    return json.dumps(obj, separators=COMPACT)


def winner_of(row: dict[str, Any]) -> int | None:
    """0 (Up) or 1 (Down) from the payouts; None unless exactly one payout is 1.0 and the other 0.0."""
    pays = (row["payout_up"], row["payout_down"])
    return {(1.0, 0.0): 0, (0.0, 1.0): 1}.get(pays)


def thin(rows: list[dict[str, Any]], levels: int, every_ms: int) -> list[dict[str, Any]]:
    """The kept snapshots (module doc: thinning), each cut to ``levels`` levels per side, in order."""
    last: dict[tuple[str, str], int] = {}
    out = []
    for r in rows:
        key = (r["market_id"], r["side"])
        if key in last and r["ts"] < last[key] + every_ms:
            continue
        last[key] = r["ts"]
        out.append({**r, **{f: r[f][:levels] for f in ("bid_px", "bid_sz", "ask_px", "ask_sz")}})
    return out


def read_source(src: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(markets rows by start_ts, book rows in frame order: ts, market start, Up before Down)."""
    mrows = sorted(pq.read_table(src / "markets.parquet").to_pylist(), key=lambda r: (r["start_ts"], r["market_id"]))
    start = {r["market_id"]: r["start_ts"] for r in mrows}
    rows = pq.read_table(src / "books.parquet").to_pylist()
    unknown = {r["market_id"] for r in rows} - set(start)
    if unknown:
        raise ConversionError(f"books.parquet: market_id {sorted(unknown)[0]!r} not in markets.parquet")
    rows.sort(key=lambda r: (r["ts"], start[r["market_id"]], r["side"] != "UP"))
    return mrows, rows


class Converter:
    """Source rows -> (recv_ms, payload) lines, keeping each token's last snapshot and the counters."""

    def __init__(self, mrows: list[dict[str, Any]], markets: list[dict[str, Any]]) -> None:
        self.by_id = {r["market_id"]: (r, m) for r, m in zip(mrows, markets)}
        self.state: dict[str, Book] = {}
        self.counts = {"rows_in": 0, "rows_unchanged_skipped": 0, "rows_before_start": 0, "rows_after_end": 0,
                       "crossed_snapshots": 0, "one_sided_snapshots": 0, "price_change_entries": 0}
        self.by_type: dict[str, int] = {}

    def frame(self, row: dict[str, Any]) -> str | None:
        """The frame one source row emits (None when the snapshot equals the token's previous one)."""
        c = self.counts
        c["rows_in"] += 1
        _, m = self.by_id[row["market_id"]]
        token = m["token_ids"][0 if row["side"] == "UP" else 1]
        ts, new = int(row["ts"]), snapshot(row)
        c["rows_before_start"] += ts < m["start_ms"]
        c["rows_after_end"] += ts >= m["end_ms"]
        c["crossed_snapshots"] += bool(new["BUY"] and new["SELL"] and max(new["BUY"]) >= min(new["SELL"]))
        c["one_sided_snapshots"] += not (new["BUY"] and new["SELL"])
        old = self.state.get(token)
        self.state[token] = new
        if old is None:
            return self.count("book", book_frame(m["condition_id"], token, ts, new, m["tick_size"]))
        text = price_change_frame(m["condition_id"], token, ts, old, new)
        if text is None:
            c["rows_unchanged_skipped"] += 1
            return None
        c["price_change_entries"] += text.count('"asset_id"')
        return self.count("price_change", text)

    def count(self, kind: str, text: str) -> str:
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        return text

    def lines(self, rows: list[dict[str, Any]], mrows: list[dict[str, Any]]) -> Iterator[tuple[int, str]]:
        """Every (recv_ms, payload): snapshots, and each resolution after the snapshots of its ms."""
        markets = [m for _, m in self.by_id.values()]  # markets.parquet order (= mrows)
        ends, k = sorted((m["end_ms"], i) for i, m in enumerate(markets)), 0
        for row in rows:
            while k < len(ends) and ends[k][0] < row["ts"]:
                yield ends[k][0], self.resolution(mrows[ends[k][1]], markets[ends[k][1]])
                k += 1
            text = self.frame(row)
            if text is not None:
                yield int(row["ts"]), text
        for end_ms, i in ends[k:]:
            yield end_ms, self.resolution(mrows[i], markets[i])

    def resolution(self, mrow: dict[str, Any], market: dict[str, Any]) -> str:
        return self.count("market_resolved", resolved_frame(market, winner_of(mrow)))


def write_tape(path: Path, lines: Iterator[tuple[int, str]]) -> tuple[int, int | None, int | None]:
    """Write tape lines deterministically (gzip mtime 0, level 9); returns (frames, first_ms, last_ms)."""
    count, first, last = 0, None, None
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for recv_ms, payload in lines:
            count += 1
            first = recv_ms if first is None else first
            last = recv_ms
            gz.write(orjson.dumps({"seq": count, "recv_ms": recv_ms, "payload": payload}) + b"\n")
    return count, first, last


def warnings_for(conv: Converter, mrows: list[dict[str, Any]], markets: list[dict[str, Any]]) -> list[str]:
    """Human-readable caveats of the source and the conversion."""
    c, out = conv.counts, ["the source has no token ids: they are derived as sha256(condition_id:outcome) "
                           "(synthetic, never valid on Polymarket)",
                           "the source has no trades: no last_trade_price frames; book last_trade_price is the mid",
                           "the source has no resolution time: market_resolved is placed at each market's end_ms"]
    gaps = [f"{a['slug']} -> {b['slug']}" for a, b in zip(markets, markets[1:]) if b["start_ms"] != a["end_ms"]]
    if gaps:
        out.append(f"{len(gaps)} gap(s) between consecutive markets (a window missing from the sample): {', '.join(gaps)}")
    if c["rows_before_start"] or c["rows_after_end"]:
        out.append(f"{c['rows_before_start']} snapshots fall before their market's start_ms (the book trades before "
                   f"the window opens) and {c['rows_after_end']} at or after end_ms (kept; a replay resolves the "
                   "market at end_ms and its later frames change only the tape book)")
    if c["crossed_snapshots"]:
        out.append(f"{c['crossed_snapshots']} snapshots are crossed or locked (best bid >= best ask), kept as recorded")
    if c["one_sided_snapshots"]:
        out.append(f"{c['one_sided_snapshots']} snapshots have an empty side (best_bid \"0\"/best_ask \"1\" in entries)")
    missing = [r["slug"] for r in mrows if winner_of(r) is None]
    if missing:
        out.append(f"{len(missing)} markets have no clear payout and resolve with no winner: {', '.join(missing)}")
    return out


def convert(src: Path, outdir: Path, levels: int = 20, every_ms: int = 0) -> dict[str, Any]:
    """Run the conversion; returns the meta (also written into tape_meta.json)."""
    outdir.mkdir(parents=True, exist_ok=True)
    mrows, all_rows = read_source(src)
    rows = thin(all_rows, levels, every_ms)
    by_market: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_market.setdefault(r["market_id"], []).append(r)
    markets = [market_entry(m, market_tick(by_market.get(m["market_id"], []))) for m in mrows]
    conv = Converter(mrows, markets)
    frames, first_ms, last_ms = write_tape(outdir / "frames.jsonl.gz", conv.lines(rows, mrows))
    (outdir / "markets.json").write_text(json.dumps(markets, indent=1) + "\n")
    shutil.copyfile(src / "NOTICE", outdir / "NOTICE")
    summary = {"markets": len(markets), "tokens": len(conv.state), "frames": frames, **conv.counts,
               "frames_by_type": conv.by_type}
    sources = {name: hashlib.sha256((src / name).read_bytes()).hexdigest() for name in ("books.parquet", "markets.parquet")}
    thinned = [] if len(rows) == len(all_rows) and levels >= 20 else [
        f"THINNED: {len(rows)} of {len(all_rows)} snapshots kept (one per token per >= {every_ms} ms), "
        f"each cut to its best {levels} levels per side"]
    meta = {"source": f"{src.name}/books.parquet + markets.parquet", "source_sha256": sources, "licence": LICENCE,
            "converter": "scripts/convert_resolvedkit.py", "levels": levels, "every_ms": every_ms,
            "source_rows": len(all_rows), "rows": conv.counts["rows_in"], "frames": frames,
            "first_recv_ms": first_ms, "last_recv_ms": last_ms,
            "source_first_ms": rows[0]["ts"] if rows else None, "source_last_ms": rows[-1]["ts"] if rows else None,
            "markets": len(markets), "summary": summary,
            "warnings": thinned + warnings_for(conv, mrows, markets)}
    (outdir / "tape_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the summary; warnings go to stderr."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder with books.parquet, markets.parquet and NOTICE")
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--levels", type=int, default=20, help="levels kept per side (the source has 20)")
    ap.add_argument("--every-ms", type=int, default=0, help="min ms between a token's kept snapshots")
    args = ap.parse_args(argv)
    if args.levels < 1 or args.every_ms < 0:
        ap.error("--levels must be >= 1 and --every-ms >= 0")
    meta = convert(args.src, args.outdir, args.levels, args.every_ms)
    for warning in meta["warnings"]:
        print(f"warning: {args.src.name}: {warning}", file=sys.stderr)
    print(json.dumps(meta["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
