#!/usr/bin/env python3
"""Draw a SYNTHETIC leader's data-api ``GET /trades`` rows from any tape, by a fixed seeded rule.

Usage::

    python scripts/synth_leader.py TAPE_DIR OUT.jsonl [--seed N] [--per-market K] [--wallet 0x...]
                                   [--sell-share F] [--markets N]

Rule (also written into the file's ``_meta.rule``): for each market of ``markets.json`` (only the
``--markets`` N markets with the most tape frames when given, ties by file order), let the window
be [max(start_ms, first frame), min(end_ms - 60 s, last frame)] (market ms; skipped when empty).
A ``random.Random(f"{seed}:{condition_id}")`` draws, in this order: K BUY moments (uniform integer
ms in the window, sorted), then for each BUY a pick u (uniform in [0, 1)), its size (one of 5, 10,
20, 25, 50 shares), whether it is followed by a SELL (probability F) and, if so, the SELL moment
(uniform in (BUY moment, window end]). At its moment the BUY takes, among the market's outcomes
whose best ask lies in [0.05, 0.95] (in outcome order), the one at position floor(u x count), at
that best ask (omitted when there is none: a leader does not buy a decided market); the SELL is of
the same size and token at its best bid then. "As the book
stands" = after every tape frame with ``recv_ms`` <= the moment (scripts/make_leaders.py's reader);
a leg whose side of the book is empty then is omitted (a SELL whose BUY was omitted too).
``timestamp`` = floor(moment / 1000) s; rows sorted by (moment, market order, leg);
``transactionHash`` = "0x" + sha256(f"{wallet}:{seed}:{condition_id}:{leg}:{side}"). Deterministic
for (tape, seed, K, F, N, wallet); the output is plain JSON lines with ``{"_meta": ...}`` first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "scripts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from libs.common.tapes import MarketMeta, load_markets, read_tape_dir, tape_source  # noqa: E402
from make_leaders import TopOfBook, tape_moments, write_lines  # noqa: E402

NAME = "synthetic-leader"
SIZES = (5, 10, 20, 25, 50)  # shares
END_MARGIN_MS = 60_000
ASK_BAND = (Decimal("0.05"), Decimal("0.95"))  # a BUY only takes an outcome whose best ask is inside
RULE = ("for each market ({markets}), in the window [max(start, first frame), min(end - 60 s, last frame)], "
        "Random(f'{{seed}}:{{condition_id}}') draws {k} BUY moments (uniform ms, sorted), then per BUY a pick u in [0, 1), "
        "a size (5/10/20/25/50 shares), whether a SELL follows (p={f}) and its moment (uniform in (BUY, window end]). "
        "The BUY takes, among the outcomes whose best ask as the book stands then lies in [0.05, 0.95], the one at "
        "position floor(u x count), at that best ask (omitted if none); the SELL is the same size and token at the best "
        "bid then (omitted if no bid). The book stands = after every frame with recv_ms <= the moment; timestamp = "
        "floor(moment / 1000) s.")


@dataclass(frozen=True)
class Leg:
    """One planned trade: market ``m``, outcome index, side, moment (market ms), size (shares), leg number."""

    m: MarketMeta
    idx: int  # outcome index; -1 until priced (BUY) / the BUY's pick
    u: float
    side: str
    at_ms: int
    size: int
    n: int
    order: int  # market order in markets.json


def frame_counts(tape_dir: Path) -> dict[str, int]:
    """Frames (events) per condition id over the whole tape."""
    counts: dict[str, int] = {}
    for _, events in tape_moments(tape_dir):
        for ev in events:
            cid = ev.get("market", "")
            counts[cid] = counts.get(cid, 0) + 1
    return counts


def tape_span(tape_dir: Path) -> tuple[int, int]:
    """(first, last) recv_ms of the tape."""
    first = last = None
    for frame in read_tape_dir(tape_dir):
        first = frame.recv_ms if first is None else first
        last = frame.recv_ms
    if first is None or last is None:
        raise ValueError(f"{tape_source(tape_dir)}: the tape has no frames")
    return first, last


def plan(m: MarketMeta, order: int, span: tuple[int, int], seed: int, k: int, sell_share: float) -> list[Leg]:
    """The legs the rule draws for one market (module doc), before book lookups."""
    lo, hi = max(m.start_ms, span[0]), min(m.end_ms - END_MARGIN_MS, span[1])
    if lo > hi:
        return []
    rng = random.Random(f"{seed}:{m.condition_id}")
    buys = sorted(rng.randint(lo, hi) for _ in range(k))
    legs = []
    for n, at in enumerate(buys):
        u, size = rng.random(), rng.choice(SIZES)
        legs.append(Leg(m, -1, u, "BUY", at, size, n, order))
        if rng.random() < sell_share and at < hi:
            legs.append(Leg(m, -1, u, "SELL", rng.randint(at + 1, hi), size, n, order))
    return legs


def priced(legs: list[Leg], tape_dir: Path) -> list[tuple[Leg, Decimal]]:
    """Each leg with its price from the book as it stands at its moment; one pass over the tape."""
    due = sorted(legs, key=lambda g: (g.at_ms, g.order, g.n, g.side != "BUY"))
    book, out, bought, i = TopOfBook(), [], {}, 0
    moments = list(tape_moments(tape_dir))
    for recv_ms, events in [*moments, (moments[-1][0] + 1, [])]:
        while i < len(due) and due[i].at_ms < recv_ms:
            leg, i = due[i], i + 1
            idx = buy_pick(book, leg) if leg.side == "BUY" else bought.get((leg.m.condition_id, leg.n))
            bids = book.bids.get(leg.m.token_ids[idx]) if idx is not None else None
            if idx is None or (leg.side == "SELL" and not bids):
                continue
            bought[(leg.m.condition_id, leg.n)] = idx
            price = min(book.asks[leg.m.token_ids[idx]]) if leg.side == "BUY" else max(bids)
            out.append((replace(leg, idx=idx), price))
        for event in events:
            book.apply(event)
    return out


def buy_pick(book: TopOfBook, leg: Leg) -> int | None:
    """The BUY's outcome index: position floor(u x count) among outcomes with a best ask in [0.05, 0.95]."""
    ok = [i for i, t in enumerate(leg.m.token_ids) if book.asks.get(t) and ASK_BAND[0] <= min(book.asks[t]) <= ASK_BAND[1]]
    return ok[int(leg.u * len(ok))] if ok else None


def trade_row(wallet: str, seed: int, leg: Leg, price: Decimal) -> dict[str, Any]:
    """One /trades row in the field order of data/leaders/demo-synthetic.jsonl."""
    m = leg.m
    return {"proxyWallet": wallet, "side": leg.side, "asset": m.token_ids[leg.idx], "conditionId": m.condition_id,
            "size": leg.size, "price": float(price), "timestamp": leg.at_ms // 1000, "title": m.question,
            "slug": m.slug, "icon": "", "eventSlug": m.slug, "outcome": m.outcomes[leg.idx], "outcomeIndex": leg.idx,
            "name": NAME, "pseudonym": NAME, "bio": "synthetic leader drawn from a tape (scripts/synth_leader.py)",
            "profileImage": "", "profileImageOptimized": "",
            "transactionHash": "0x" + hashlib.sha256(f"{wallet}:{seed}:{m.condition_id}:{leg.n}:{leg.side}".encode()).hexdigest()}


def make(tape_dir: Path, out: Path, seed: int, k: int, wallet: str, sell_share: float,
         top_markets: int | None) -> dict[str, Any]:
    """Write the leader file; returns its _meta."""
    markets = load_markets(tape_dir / "markets.json")
    if top_markets is not None:
        counts = frame_counts(tape_dir)
        ranked = sorted(range(len(markets)), key=lambda i: (-counts.get(markets[i].condition_id, 0), i))
        markets = [markets[i] for i in sorted(ranked[:top_markets])]
    span = tape_span(tape_dir)
    legs = [g for order, m in enumerate(markets) for g in plan(m, order, span, seed, k, sell_share)]
    rows = [trade_row(wallet, seed, leg, price) for leg, price in priced(legs, tape_dir)]
    tape = tape_dir.resolve().relative_to(REPO) if tape_dir.resolve().is_relative_to(REPO) else tape_dir
    which = f"the {top_markets} with the most tape frames" if top_markets is not None else "all of markets.json"
    rule = RULE.format(markets=which, k=k, f=sell_share)
    meta = {"synthetic": True, "rule": rule, "tape": str(tape), "wallet": wallet, "seed": seed, "per_market": k,
            "sell_share": sell_share, "markets": len(markets), "rows": len(rows),
            "buys": sum(r["side"] == "BUY" for r in rows), "tokens_bought": len({r["asset"] for r in rows if r["side"] == "BUY"})}
    write_lines(out, meta, rows)
    return meta


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the _meta."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tape_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-market", type=int, default=3, help="BUYs drawn per market (K)")
    ap.add_argument("--wallet", default="0x00000000000000000000000000000000000de113")
    ap.add_argument("--sell-share", type=float, default=0.5, help="probability a BUY is followed by a SELL")
    ap.add_argument("--markets", type=int, default=None, help="only the N markets with the most tape frames")
    args = ap.parse_args(argv)
    if args.per_market < 1 or not 0 <= args.sell_share <= 1:
        ap.error("--per-market must be >= 1 and --sell-share in [0, 1]")
    print(json.dumps(make(args.tape_dir, args.out, args.seed, args.per_market, args.wallet, args.sell_share,
                          args.markets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
