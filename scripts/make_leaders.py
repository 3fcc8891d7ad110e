#!/usr/bin/env python3
"""Write the bundled leader files (data-api ``GET /trades`` rows, one per line, ``_meta`` first).

Usage::

    python scripts/make_leaders.py [--source ../shared/data/leader-gabagool22/activity_all_sorted.jsonl.gz]
                                   [--out data/leaders]

1. ``gabagool22.jsonl.gz`` (real): the ``type == "TRADE"`` rows of the source ``/activity`` file whose
   ``timestamp`` (Unix s) lies in the first 6 hours of the file, i.e. in [t0, t0 + 21600) where t0 is
   the timestamp of the file's first row. Every row is kept in source order, including rows identical
   in every field (they are separate fills). ``type`` and ``usdcSize`` are dropped, the other fields
   are kept and put in ``/trades`` field order; numbers stay JSON numbers with the exact source text
   (checked row by row). ``LICENSE-gabagool22`` is copied from the source folder.

2. ``demo-synthetic.jsonl`` (SYNTHETIC, wallet ...de111) drawn from the default tape
   ``btc5m-2026-02-18-am``, and ``demo-synthetic-long.jsonl`` (SYNTHETIC, wallet ...de112) drawn
   from the long tape ``btc5m-2026-02-17-pm``, both by this rule:

   for each market, at window start + 45 s the leader BUYs 10 shares of the cheaper outcome (the
   token with the lower best ask as the book stands at that moment; on a tie the first outcome) at
   that best ask; at window start + 200 s it SELLs 10 shares of the same token at the best bid as
   the book stands then.

   Precisely: "as the book stands" is the book after applying every tape frame whose recv_ms is <=
   that moment. A leg whose token has no book yet at that moment (the recording of the market began
   later) or that falls after the tape's last frame is omitted. timestamp = floor(moment / 1000) (seconds). The tape's prices rarely move, so
   the rule is fixed in time rather than tied to the next update (which would put both legs of a
   market on the same update). "Cheaper outcome" rather than a fixed "Up": on this tape every Up
   token only rises after its first seconds, so a leader always buying Up would never see a maker
   BUY filled behind it; the cheaper side is a common contrarian leader pattern.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from libs.common.tapes import MarketMeta, load_markets, read_tape_dir  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DEFAULT_SOURCE = SHARED / "leader-gabagool22" / "activity_all_sorted.jsonl.gz"
WALLET = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
DEMO_NAME = "synthetic-demo-leader"
# (file, tape it is drawn from, wallet): one synthetic leader per BTC tape, same rule.
DEMOS = (("demo-synthetic.jsonl", "btc5m-2026-02-18-am", "0x00000000000000000000000000000000000de111"),
         ("demo-synthetic-long.jsonl", "btc5m-2026-02-17-pm", "0x00000000000000000000000000000000000de112"))
WINDOW_S = 6 * 3600
BUY_AFTER_MS, SELL_AFTER_MS, DEMO_SIZE = 45_000, 200_000, 10
RULE = ('for each market, at window start + 45 s the leader BUYs 10 shares of the cheaper outcome (the token with '
        'the lower best ask as the book stands at that moment; on a tie the first outcome) at that best ask; at window '
        'start + 200 s it SELLs 10 shares of the same token at the best bid as the book stands then.')
RULE_DETAIL = ('"As the book stands" is the book after applying every tape frame with recv_ms <= that moment. A leg '
               'whose token has no book yet at that moment, or after the tape\'s last frame, is omitted. timestamp = floor(moment / 1000) s.')
TRADES_FIELDS = ("proxyWallet", "side", "asset", "conditionId", "size", "price", "timestamp", "title", "slug",
                 "icon", "eventSlug", "outcome", "outcomeIndex", "name", "pseudonym", "bio", "profileImage",
                 "profileImageOptimized", "transactionHash")
DROPPED = ("type", "usdcSize")


def to_trades_row(activity: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """An /activity TRADE row as a /trades row; checks every number keeps its exact source text."""
    for key, value in activity.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if f'"{key}":'.encode() + orjson.dumps(value) not in raw:
                raise ValueError(f"number {key}={value!r} would not round-trip exactly: {raw[:200]!r}")
    row = {k: activity[k] for k in TRADES_FIELDS if k in activity}
    row.update({k: v for k, v in activity.items() if k not in row and k not in DROPPED})
    return row


def gabagool_rows(source: Path) -> Iterator[dict[str, Any]]:
    """TRADE rows of the first 6 hours of the (timestamp-sorted) source, in source order."""
    t0 = None
    with gzip.open(source, "rb") as fh:
        for raw in fh:
            activity = orjson.loads(raw)
            t0 = activity["timestamp"] if t0 is None else t0
            if activity["timestamp"] >= t0 + WINDOW_S:
                break
            if activity["type"] == "TRADE":
                yield to_trades_row(activity, raw)


def write_lines(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``{"_meta": ...}`` then one compact JSON row per line; gzip (mtime 0) when the name ends in .gz."""
    data = b"".join(orjson.dumps(obj) + b"\n" for obj in [{"_meta": meta}, *rows])
    if path.suffix != ".gz":
        path.write_bytes(data)
        return
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


def make_gabagool(source: Path, out: Path) -> dict[str, Any]:
    """Write gabagool22.jsonl.gz and LICENSE-gabagool22; returns the _meta."""
    rows = list(gabagool_rows(source))
    meta = {"source": f"{source.parent.name}/{source.name}", "licence": "ISC (DevShubham07/DataGABA)",
            "synthetic": False, "wallet": WALLET, "rows": len(rows),
            "window_s": [rows[0]["timestamp"], rows[0]["timestamp"] + WINDOW_S] if rows else None,
            "note": "type TRADE rows of the first 6 h; type and usdcSize dropped; identical rows are separate fills"}
    write_lines(out / "gabagool22.jsonl.gz", meta, rows)
    shutil.copyfile(source.parent / "LICENSE", out / "LICENSE-gabagool22")
    return meta


class TopOfBook:
    """Minimal L2 book per token, enough to read the best bid/ask (prices as Decimal)."""

    def __init__(self) -> None:
        self.bids: dict[str, dict[Decimal, Decimal]] = {}
        self.asks: dict[str, dict[Decimal, Decimal]] = {}

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one ``book`` or current-schema ``price_change`` event; others are ignored."""
        if event.get("event_type") == "book":
            token = event["asset_id"]
            self.bids[token] = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in event["bids"]}
            self.asks[token] = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in event["asks"]}
        elif event.get("event_type") == "price_change":
            for ch in event["price_changes"]:
                side = (self.bids if ch["side"] == "BUY" else self.asks).setdefault(ch["asset_id"], {})
                price, size = Decimal(ch["price"]), Decimal(ch["size"])
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def best(self, token: str) -> tuple[Decimal, Decimal]:
        """(best bid, best ask) of a token."""
        return max(self.bids[token]), min(self.asks[token])


def tape_moments(tape_dir: Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(recv_ms, events) for each distinct recv_ms of the tape (``frames.jsonl[.gz]`` or a quote tape,
    libs/common/tapes.py ``read_tape_dir``), in order (array frames flattened)."""
    group: list[dict[str, Any]] = []
    current = None
    for frame in read_tape_dir(tape_dir):
        if frame.recv_ms != current and group:
            yield current, group
            group = []
        current = frame.recv_ms
        payload = orjson.loads(frame.payload)
        group += payload if isinstance(payload, list) else [payload]
    if group:
        yield current, group


def cheaper_outcome(book: TopOfBook, m: MarketMeta) -> int | None:
    """Index of the market's token with the lowest best ask (first on a tie); None if any lacks a book."""
    asks = []
    for i, token in enumerate(m.token_ids):
        if not book.bids.get(token) or not book.asks.get(token):
            return None
        asks.append((book.best(token)[1], i))
    return min(asks)[1]


def demo_legs(tape_dir: Path, markets: list[MarketMeta]) -> list[tuple[MarketMeta, int, str, int, Decimal]]:
    """(market, outcome index, side, moment_ms, price) of every leg the rule produces, in time order."""
    due = sorted((m.start_ms + after, side, i, m) for i, m in enumerate(markets)
                 for side, after in (("BUY", BUY_AFTER_MS), ("SELL", SELL_AFTER_MS)))
    book, legs, chosen, k = TopOfBook(), [], {}, 0
    moments = list(tape_moments(tape_dir))
    for recv_ms, events in [*moments, (moments[-1][0] + 1, [])]:
        while k < len(due) and due[k][0] < recv_ms:
            at, side, _, m = due[k]
            k += 1
            idx = cheaper_outcome(book, m) if side == "BUY" else chosen.get(m.condition_id)
            if idx is None:
                continue
            chosen[m.condition_id] = idx
            bid, ask = book.best(m.token_ids[idx])
            legs.append((m, idx, side, at, ask if side == "BUY" else bid))
        for event in events:
            book.apply(event)
    return legs


def demo_row(wallet: str, market: MarketMeta, idx: int, side: str, moment_ms: int, price: Decimal) -> dict[str, Any]:
    """One synthetic /trades row of ``wallet`` for outcome ``idx`` of ``market``."""
    return {"proxyWallet": wallet, "side": side, "asset": market.token_ids[idx],
            "conditionId": market.condition_id, "size": DEMO_SIZE, "price": float(price),
            "timestamp": moment_ms // 1000, "title": market.question, "slug": market.slug, "icon": "",
            "eventSlug": market.slug, "outcome": market.outcomes[idx], "outcomeIndex": idx, "name": DEMO_NAME,
            "pseudonym": DEMO_NAME, "bio": "synthetic leader for demos and tests", "profileImage": "",
            "profileImageOptimized": "",
            "transactionHash": "0x" + hashlib.sha256(f"{market.slug}:{side}".encode()).hexdigest()}


def make_demo(tape_dir: Path, out: Path, name: str, wallet: str) -> dict[str, Any]:
    """Write the synthetic leader file ``name`` of ``wallet`` drawn from the tape; returns the _meta."""
    markets = load_markets(tape_dir / "markets.json")
    rows = [demo_row(wallet, *leg) for leg in demo_legs(tape_dir, markets)]
    tape = tape_dir.resolve().relative_to(REPO) if tape_dir.resolve().is_relative_to(REPO) else tape_dir
    meta = {"synthetic": True, "rule": RULE, "rule_detail": RULE_DETAIL, "tape": str(tape), "wallet": wallet,
            "rows": len(rows)}
    write_lines(out / name, meta, rows)
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints one summary JSON line per file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="gabagool22 activity_all_sorted.jsonl.gz")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "leaders")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"file": "gabagool22.jsonl.gz"} | make_gabagool(args.source, args.out)))
    for name, tape, wallet in DEMOS:
        print(json.dumps({"file": name} | make_demo(REPO / "data" / "tapes" / tape, args.out, name, wallet)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
