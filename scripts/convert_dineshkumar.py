#!/usr/bin/env python3
"""Convert the Dinesh Gopalakrishnan quote sweep (one week, top of book every ~2 min) into a polyband tape.

Usage::

    python scripts/convert_dineshkumar.py ../shared/data/quotes-dineshkumar-2026-07 data/tapes/week-2026-07 [--markets 600]

Source (parquet, read with pyarrow): ``quotes/dt=*/data_0.parquet`` (``ts`` UTC timestamp without zone, ``slug``,
``bid``/``ask`` probabilities in [0, 1], null when a side is empty), ``markets.parquet`` (``slug, question,
category``) and ``labels.parquet`` (``slug, y`` 1 = YES / 0 = NO, ``source`` api | convergence).
Writes a quote tape (libs/common/quote_tape.py: ``OUTDIR/quotes.csv.gz``, ``resolutions.json``, expanded to
market-channel frames at load time), ``markets.json``, ``tape_meta.json`` and copies ``LICENSE``/``NOTICE``;
deletes a stale ``frames.jsonl[.gz]`` in OUTDIR.

Rules:

* Rows. A row is KEPT when bid and ask are both present and 0 < bid < ask < 1; rows with a missing side
  (empty book side), crossed or locked (bid >= ask) or out-of-range prices are DROPPED and counted in the
  warnings. Prices are the shortest decimal of the float (``Decimal(repr(x))``). ``recv_ms`` = ``ts`` in ms.
* Labels. Only ``source == "api"`` labels are resolutions; ``convergence`` labels (inferred from prices,
  biased per the upstream README) and slugs with conflicting or non-0/1 labels are ambiguous: skipped, counted.
* Selection. Among markets with an api label, the ``--markets N`` with the most QUOTE CHANGES (kept rows whose
  (bid, ask) differs from the market's previous kept row) in the week, ties by slug ascending.
* Tokens. Each market is binary, outcomes ``["Yes", "No"]``; the quoted bid/ask belong to "Yes". The "No" book
  mirrors it: bid_no = 1 - ask_yes, ask_no = 1 - bid_yes. ``condition_id = "0x" + sha256(slug)``
  (``synthetic_condition_id: true``); ``token_id = str(int.from_bytes(sha256((condition_id.lower() + ":" +
  outcome).encode()).digest(), "big"))``.
* Sizes. The source has no depth: every level is a synthetic ``LEVEL_SIZE`` (500) shares, one level per side.
* Markets. ``start_ms`` = first kept quote; ``end_ms`` = last kept quote + ``POLL_MS`` (120000, the sweep
  interval). tick_size "0.001" if any kept price of the market is not a multiple of 0.01, else "0.01";
  min_order_size "5"; neg_risk false; ``fee_schedule`` = ``schedule_for_category(category)`` from
  markets.parquet; ``question``/``slug`` from markets.parquet.
* Quote lines. ``quotes.csv.gz`` holds a market's first kept row and every later kept row whose (bid, ask)
  changed, as ``ts_ms,market index,bid,ask`` (Yes token, prices ``fmt``), in (ts_ms, slug) order;
  ``resolutions.json`` holds each market's winner, ``end_ms`` and tags ([category]). The frames below
  are built from them at load time by libs/common/quote_tape.py (one implementation).
* Frames (compact JSON, wire field order). A market's first kept row: ONE frame holding a JSON array of two
  ``book`` objects (Yes, No; bids ascending, asks descending, best last; ``last_trade_price`` = the mid with 3
  decimals, the source has no trades). A later kept row whose (bid, ask) changed: ONE ``price_change`` frame
  with the entries of both tokens (Yes first). Per side a moved price gives "set new level" then "delete old
  level" (size "0"); the side whose price worsens goes first so no book is empty or crossed mid-frame;
  ``best_bid``/``best_ask`` of an entry are the token's top right after it. Unchanged rows give no frame.
  ``hash`` = sha1 of ``"<token>:<best bid>:<best ask>"`` (the token's book after the frame; all entries of a
  token in a frame share it). At ``end_ms`` a ``market_resolved`` frame names the winner (y = 1: Yes).
  Frames are ordered by (recv_ms, slug, kind); ``seq`` is 1...

Licence of the source data: CC BY 4.0, Polymarket Order Book Dataset (2026), Dinesh Gopalakrishnan.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from libs.common.fees import schedule_for_category  # noqa: E402
from libs.common.quote_tape import (HEADER, LEVEL_SIZE, OUTCOMES, QUOTES_FILE, RESOLUTIONS_FILE,  # noqa: E402
                                    condition_id_for, fmt, quote_frames, token_id_for)

LICENCE = "CC BY 4.0, Polymarket Order Book Dataset (2026), Dinesh Gopalakrishnan"
POLL_MS = 120_000  # the broad sweep polled every ~2 minutes (upstream README)
CENT = Decimal("0.01")
DEFAULT_MARKETS = 600  # quotes.csv.gz size budget ~6 MB


@dataclass(frozen=True)
class Market:
    """One selected market: slug, source question/category, winner index (0 Yes, 1 No), kept quotes
    ``[(ts_ms, bid_yes, ask_yes)]`` in time order."""

    slug: str
    question: str
    category: str
    winner: int
    quotes: list[tuple[int, Decimal, Decimal]]

    @property
    def condition_id(self) -> str:
        return condition_id_for(self.slug)

    @property
    def token_ids(self) -> list[str]:
        return [token_id_for(self.condition_id, o) for o in OUTCOMES]


# ---- reading and selection ----
def read_quotes(src: Path) -> pa.Table:
    """All quote rows (ts, slug, bid, ask) of every ``quotes/dt=*/data_0.parquet``, in file order."""
    files = sorted((src / "quotes").glob("dt=*/data_0.parquet"))
    return pa.concat_tables([pq.read_table(f, columns=["ts", "slug", "bid", "ask"]) for f in files])


def kept_mask(t: pa.Table) -> pa.ChunkedArray:
    """True for rows with both sides and 0 < bid < ask < 1."""
    both = pc.and_(pc.is_valid(t["bid"]), pc.is_valid(t["ask"]))
    ok = pc.and_(pc.and_(pc.greater(t["bid"], 0), pc.less(t["ask"], 1)), pc.less(t["bid"], t["ask"]))
    return pc.fill_null(pc.and_(both, ok), False)


def drop_counts(t: pa.Table) -> dict[str, int]:
    """Dropped-row counts by reason (missing side, crossed or locked, out of range)."""
    missing = pc.or_(pc.is_null(t["bid"]), pc.is_null(t["ask"]))
    crossed = pc.fill_null(pc.greater_equal(t["bid"], t["ask"]), False)
    kept = kept_mask(t)
    return {"missing_side": pc.sum(missing).as_py() or 0, "crossed_or_locked": pc.sum(crossed).as_py() or 0,
            "out_of_range": (pc.sum(pc.invert(kept)).as_py() or 0) - (pc.sum(pc.or_(missing, crossed)).as_py() or 0)}


def change_counts(kept: pa.Table) -> dict[str, int]:
    """Quote changes per slug: kept rows whose (bid, ask) differs from the slug's previous kept row."""
    t = kept.sort_by([("slug", "ascending"), ("ts", "ascending")]).combine_chunks()
    n = t.num_rows
    s, b, a = (t[c].chunk(0) if t[c].num_chunks else t[c] for c in ("slug", "bid", "ask"))
    same = pc.equal(s.slice(1), s.slice(0, n - 1))
    moved = pc.or_(pc.not_equal(b.slice(1), b.slice(0, n - 1)), pc.not_equal(a.slice(1), a.slice(0, n - 1)))
    flags = pc.cast(pc.and_(same, moved), pa.int64())
    g = pa.table({"slug": s.slice(1), "c": flags}).group_by("slug").aggregate([("c", "sum")])
    counts = dict.fromkeys(pc.unique(s).to_pylist(), 0)
    counts.update(zip(g["slug"].to_pylist(), g["c_sum"].to_pylist()))
    return counts


def read_labels(src: Path) -> tuple[dict[str, int], dict[str, str]]:
    """(api labels slug -> y, ambiguous slug -> reason) from labels.parquet."""
    lab = pq.read_table(src / "labels.parquet").to_pylist()
    seen: dict[str, set[tuple[Any, Any]]] = {}
    for row in lab:
        seen.setdefault(row["slug"], set()).add((row["y"], row["source"]))
    good, bad = {}, {}
    for slug, vals in seen.items():
        api = {y for y, source in vals if source == "api"}
        if len(api) == 1 and next(iter(api)) in (0, 1):
            good[slug] = next(iter(api))
        else:
            bad[slug] = "conflicting or non-0/1 api labels" if api else "convergence label only (not authoritative)"
    return good, bad


def select(counts: dict[str, int], labels: dict[str, int], n: int) -> list[str]:
    """The ``n`` labelled slugs with the most quote changes, ties by slug."""
    return sorted((s for s in counts if s in labels), key=lambda s: (-counts[s], s))[:n]


def market_rows(kept: pa.Table, slugs: list[str]) -> dict[str, list[tuple[int, Decimal, Decimal]]]:
    """Kept quotes ``(ts_ms, bid, ask)`` of the chosen slugs, in (ts, file) order."""
    t = kept.filter(pc.is_in(kept["slug"], value_set=pa.array(slugs)))
    t = t.sort_by([("slug", "ascending"), ("ts", "ascending")])
    out: dict[str, list[tuple[int, Decimal, Decimal]]] = {s: [] for s in slugs}
    ts = pc.cast(t["ts"], pa.int64()).to_pylist()
    for us, slug, bid, ask in zip(ts, t["slug"].to_pylist(), t["bid"].to_pylist(), t["ask"].to_pylist()):
        out[slug].append((us // 1000, Decimal(repr(bid)), Decimal(repr(ask))))
    return out


def market_info(src: Path) -> dict[str, tuple[str, str]]:
    """slug -> (question, category) from markets.parquet."""
    t = pq.read_table(src / "markets.parquet", columns=["slug", "question", "category"])
    return {s: (q or s, c or "") for s, q, c in zip(*(t[c].to_pylist() for c in ("slug", "question", "category")))}


# ---- frames ----
def tick_of(m: Market) -> str:
    """ "0.001" when any kept price of the market is off the 0.01 grid, else "0.01"."""
    return "0.001" if any(p % CENT for _, b, a in m.quotes for p in (b, a)) else "0.01"


def changes(m: Market) -> list[tuple[int, Decimal, Decimal]]:
    """The market's first kept quote and every later one whose (bid, ask) differs from the previous."""
    return [q for k, q in enumerate(m.quotes) if k == 0 or q[1:] != m.quotes[k - 1][1:]]


def write_quotes(path: Path, markets: list[Market]) -> int:
    """Write ``quotes.csv.gz`` (gzip mtime 0; lines in (ts_ms, slug) order); returns the quote lines."""
    rows = sorted((ts, m.slug, i, bid, ask) for i, m in enumerate(markets) for ts, bid, ask in changes(m))
    text = "".join(f"{ts},{i},{fmt(bid)},{fmt(ask)}\n" for ts, _, i, bid, ask in rows)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write((HEADER + "\n" + text).encode())
    return len(rows)


def resolution_entry(m: Market) -> dict[str, Any]:
    """The resolutions.json object of one market (winner from labels.parquet, at ``end_ms``)."""
    return {"condition_id": m.condition_id, "winning_outcome": OUTCOMES[m.winner],
            "resolved_ms": m.quotes[-1][0] + POLL_MS, "tags": [m.category] if m.category else []}


def frame_stats(outdir: Path) -> dict[str, Any]:
    """Frame counts (total, by event type) and first/last recv_ms of the written tape, by expanding it."""
    by_type: dict[str, int] = {}
    n, first, last = 0, None, None
    for _, frame in quote_frames(outdir):
        assert not isinstance(frame, str)
        head = frame.payload[:40]
        kind = "book" if head.startswith("[") else "market_resolved" if "market_resolved" in head else "price_change"
        by_type[kind] = by_type.get(kind, 0) + 1
        n, first, last = n + 1, frame.recv_ms if first is None else first, frame.recv_ms
    return {"frames": n, "frames_by_type": by_type, "first_recv_ms": first, "last_recv_ms": last}


def market_entry(m: Market) -> dict[str, Any]:
    """The markets.json object of one market."""
    return {"condition_id": m.condition_id, "question": m.question, "slug": m.slug, "token_ids": m.token_ids,
            "outcomes": list(OUTCOMES), "start_ms": m.quotes[0][0], "end_ms": m.quotes[-1][0] + POLL_MS,
            "tick_size": tick_of(m), "min_order_size": "5", "neg_risk": False, "synthetic_condition_id": True,
            "fee_schedule": schedule_for_category(m.category).as_json()}


# ---- driver ----
def load_markets(src: Path, n: int, quotes: pa.Table | None = None) -> tuple[list[Market], dict[str, Any]]:
    """The selected markets and the selection statistics (``quotes``: an already read ``read_quotes(src)``)."""
    quotes = read_quotes(src) if quotes is None else quotes
    drops = drop_counts(quotes)
    kept = quotes.filter(kept_mask(quotes))
    counts = change_counts(kept)
    labels, ambiguous = read_labels(src)
    slugs = select(counts, labels, n)
    info, rows = market_info(src), market_rows(kept, slugs)
    markets = [Market(s, info.get(s, (s, ""))[0], info.get(s, (s, ""))[1], 1 - labels[s], rows[s]) for s in slugs]
    stats = {"source_rows": quotes.num_rows, "source_markets": pc.count_distinct(quotes["slug"]).as_py(),
             "kept_rows": kept.num_rows, "dropped_rows": drops, "markets_with_kept_rows": len(counts),
             "qualifying_markets": sum(1 for s in counts if s in labels),
             "ambiguous_label_markets": sum(1 for s in counts if s in ambiguous),
             "unlabelled_markets": sum(1 for s in counts if s not in labels and s not in ambiguous),
             "selected_changes": sum(counts[s] for s in slugs),
             "min_selected_changes": min((counts[s] for s in slugs), default=0),
             "data_first_ms": pc.min(quotes["ts"]).value // 1000, "data_last_ms": pc.max(quotes["ts"]).value // 1000}
    return markets, stats


def warnings_for(stats: dict[str, Any], markets: list[Market]) -> list[str]:
    """Human-readable caveats of the conversion."""
    d = stats["dropped_rows"]
    late = sum(1 for m in markets if m.quotes[-1][0] >= stats["data_last_ms"] - 3_600_000)
    return [f"dropped source rows (all markets): {d['missing_side']} with a missing side, {d['crossed_or_locked']} "
            f"crossed or locked (bid >= ask), {d['out_of_range']} other out of range",
            f"{stats['ambiguous_label_markets']} quoted markets skipped: label not authoritative "
            f"(convergence only or conflicting); {stats['unlabelled_markets']} have no label",
            "SYNTHETIC: sizes (500 shares, one level per side), token ids, condition ids, hashes; the No book is "
            "the mirror of the Yes quote; last_trade_price is the mid (the source has no trades)",
            f"{late} markets are quoted until the last hour of the data (collector outage at 2026-07-17 17:26:09): "
            "their end_ms is the end of the recording, not the real close; resolutions are from labels.parquet",
            "prices jump between polls (~2 min apart): no intermediate moves are on the tape"]


def convert(src: Path, outdir: Path, n: int, quotes: pa.Table | None = None) -> dict[str, Any]:
    """Run the conversion; returns tape_meta (also written). ``quotes`` may pass ``read_quotes(src)``."""
    outdir.mkdir(parents=True, exist_ok=True)
    markets, stats = load_markets(src, n, quotes)
    for stale in ("frames.jsonl", "frames.jsonl.gz"):  # an older frames file would win over quotes.csv.gz
        (outdir / stale).unlink(missing_ok=True)
    lines = write_quotes(outdir / QUOTES_FILE, markets)
    (outdir / "markets.json").write_text(json.dumps([market_entry(m) for m in markets], indent=1) + "\n")
    (outdir / RESOLUTIONS_FILE).write_text(json.dumps([resolution_entry(m) for m in markets], indent=1) + "\n")
    for name in ("LICENSE", "NOTICE"):
        shutil.copyfile(src / name, outdir / name)
    meta = {"source": "quotes-dineshkumar-2026-07 (quotes/dt=*/data_0.parquet, markets.parquet, labels.parquet)",
            "licence": LICENCE, "converter": "scripts/convert_dineshkumar.py", "format": "quote tape "
            "(libs/common/quote_tape.py): quotes.csv.gz + resolutions.json, expanded to frames at load time",
            "selection": f"the {n} api-labelled markets with the most quote changes, ties by slug",
            "level_size": fmt(LEVEL_SIZE), "poll_ms": POLL_MS, "rows": sum(len(m.quotes) for m in markets),
            "quote_lines": lines, **frame_stats(outdir), "markets": len(markets),
            "tokens": 2 * len(markets), "summary": stats, "warnings": warnings_for(stats, markets)}
    (outdir / "tape_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the quotes-dineshkumar-2026-07 folder")
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--markets", type=int, default=DEFAULT_MARKETS, help="how many markets to keep")
    args = ap.parse_args(argv)
    if args.markets <= 0:
        ap.error(f"--markets must be > 0, got {args.markets}")
    meta = convert(args.src, args.outdir, args.markets)
    for warning in meta["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps({k: meta[k] for k in ("markets", "rows", "frames", "frames_by_type", "summary")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
