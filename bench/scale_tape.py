"""The scale bench's SYNTHETIC tape and leader file, derived from the bundled week tape (bench/scale.py).

Tape rule (deterministic): from ``data/tapes/week-2026-07`` (600 binary markets, real top-of-book
quotes ~2 min apart, spread over a week) take the ``markets`` markets with the most quote changes in
the first ``hours`` hours of their own life (ties by file order) and shift each market's quotes in
time so that its first quote falls on the week tape's first timestamp ``T0``: every market then
trades at once, from the tape's start, on its own real price path. Quotes later than ``hours`` after
a market's first are dropped. Each market's ``start_ms`` becomes ``T0`` and its ``end_ms`` and
resolution ``T0 + 30 days`` (no market ends during a bench run). Token and condition ids are the
week tape's own (all distinct), so 500 markets give 1,000 tokens.

Leader rule: one synthetic wallet buys, at ``T0 + 5 s``, the first ``n`` tokens of :func:`token_order`
(Yes of the most active market first; a market's No when its Yes ask is outside [0.05, 0.95]) at
the token's best ask at ``T0``, 5 shares each.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEEK = REPO / "data" / "tapes" / "week-2026-07"
WALLET = "0x00000000000000000000000000000000005ca1e0"
DAY_MS = 86_400_000


def _quotes(path: Path) -> list[tuple[int, int, str, str]]:
    """(ts_ms, market index, bid, ask) of every quote line."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            ts, m, bid, ask = line.rstrip("\n").split(",")
            out.append((int(ts), int(m), bid, ask))
    return out


def build(out: Path, markets: int = 500, hours: float = 6.0) -> Path:
    """Write the synthetic quote tape into ``out`` (skipped when its ``tape_meta.json`` matches);
    returns ``out``. Raises OSError/ValueError when the week tape is unreadable."""
    meta_path = out / "tape_meta.json"
    want = {"synthetic": True, "source": str(WEEK.relative_to(REPO)), "markets": markets, "hours": hours,
            "rule": __doc__.split("Leader rule")[0].strip()}
    if meta_path.exists() and json.loads(meta_path.read_text()).get("rule_args") == [markets, hours]:
        return out
    src_markets = json.loads((WEEK / "markets.json").read_text())
    src_res = json.loads((WEEK / "resolutions.json").read_text())
    quotes = _quotes(WEEK / "quotes.csv.gz")
    t0 = quotes[0][0]
    first: dict[int, int] = {}
    for ts, m, _, _ in quotes:
        first.setdefault(m, ts)
    span = int(hours * 3_600_000)
    active = [0] * len(src_markets)
    for ts, m, _, _ in quotes:
        if ts - first[m] < span:
            active[m] += 1
    chosen = sorted(range(len(src_markets)), key=lambda i: (-active[i], i))[:markets]
    new_idx = {m: i for i, m in enumerate(chosen)}
    rows = sorted((t0 + ts - first[m], src_markets[m]["slug"], new_idx[m], bid, ask)
                  for ts, m, bid, ask in quotes if m in new_idx and ts - first[m] < span)
    end = t0 + 30 * DAY_MS
    out.mkdir(parents=True, exist_ok=True)
    mk = [{**src_markets[m], "start_ms": t0, "end_ms": end} for m in chosen]
    res = [{**src_res[m], "resolved_ms": end} for m in chosen]
    (out / "markets.json").write_text(json.dumps(mk, indent=1))
    (out / "resolutions.json").write_text(json.dumps(res))
    with gzip.open(out / "quotes.csv.gz", "wt", encoding="utf-8", newline="\n") as fh:
        fh.write("ts_ms,market,bid,ask\n")
        fh.writelines(f"{ts},{i},{bid},{ask}\n" for ts, _, i, bid, ask in rows)
    meta_path.write_text(json.dumps({**want, "rule_args": [markets, hours], "quote_lines": len(rows),
                                     "tokens": 2 * markets, "first_recv_ms": t0}, indent=1))
    return out


def token_order(tape: Path) -> list[tuple[str, Decimal, dict]]:
    """(token id, best ask at T0, market) per market of ``tape`` in file order (most active first):
    the Yes token, or the No token when Yes's first ask lies outside [0.05, 0.95]."""
    mk = json.loads((tape / "markets.json").read_text())
    firsts: dict[int, tuple[Decimal, Decimal]] = {}
    with gzip.open(tape / "quotes.csv.gz", "rt", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            _, m, bid, ask = line.rstrip("\n").split(",")
            firsts.setdefault(int(m), (Decimal(bid), Decimal(ask)))
            if len(firsts) == len(mk):
                break
    out = []
    for i, m in enumerate(mk):
        bid, ask = firsts[i]
        yes_ok = Decimal("0.05") <= ask <= Decimal("0.95")
        out.append((m["token_ids"][0], ask, m) if yes_ok else (m["token_ids"][1], 1 - bid, m))
    return out


def all_tokens(tape: Path) -> list[str]:
    """Every token id of ``tape`` (two per market, file order)."""
    return [t for m in json.loads((tape / "markets.json").read_text()) for t in m["token_ids"]]


def leader_file(tape: Path, n: int, out: Path) -> tuple[Path, list[str]]:
    """Write a leader file with ``n`` BUY rows (module rule) to ``out``; returns (path, tokens bought)."""
    t0 = json.loads((tape / "tape_meta.json").read_text())["first_recv_ms"]
    picks = token_order(tape)[:n]
    lines = [json.dumps({"_meta": {"synthetic": True, "wallet": WALLET, "rule": __doc__.split("Leader rule: ")[1]}})]
    for tok, price, m in picks:
        outcome = m["outcomes"][m["token_ids"].index(tok)]
        tx = "0x" + hashlib.sha256(f"{WALLET}:{tok}".encode()).hexdigest()
        lines.append(json.dumps({
            "proxyWallet": WALLET, "side": "BUY", "asset": tok, "conditionId": m["condition_id"], "size": 5,
            "price": float(price), "timestamp": t0 // 1000 + 5, "title": m["question"], "slug": m["slug"],
            "icon": "", "eventSlug": m["slug"], "outcome": outcome, "outcomeIndex": m["outcomes"].index(outcome),
            "name": "scale-bench", "pseudonym": "scale-bench", "bio": "synthetic (bench/scale_tape.py)",
            "profileImage": "", "profileImageOptimized": "", "transactionHash": tx}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out, [t for t, _, _ in picks]
