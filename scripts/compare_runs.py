"""Compare two runs token by token from their venue audit logs alone (e.g. ``polyband up`` against
``polyband backtest`` on the same tape): which tokens each traded, at what prices, and where the net
P&L difference comes from.

    python scripts/compare_runs.py var/runs/latest var/backtest [--labels up,backtest] [--json]

Each argument is a run folder holding ``venue_audit.jsonl`` (or the file itself). Per token: orders,
fills, shares bought and sold with average prices, time of the first order (market time), payout and
net P&L (``libs.common.pnl_audit``, the independent recomputation). The difference in total net is
split into: tokens traded the same way in both (identical fills), tokens only one run traded, and
tokens both traded differently.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from libs.common.pnl import TokenPnl
from libs.common.pnl_audit import audit_pnl, read_lines

ZERO = Decimal(0)


@dataclass
class TokenTrace:
    """What one run did on one token: orders, fills as (side, price, size) tuples, first order ms."""

    orders: int = 0
    fills: list[tuple[str, str, str]] = field(default_factory=list)
    first_ms: int = 0


def traces(path: Path) -> dict[str, TokenTrace]:
    """token_id -> TokenTrace from an audit log."""
    out: dict[str, TokenTrace] = defaultdict(TokenTrace)
    for line in read_lines(path):
        token, kind = str(line.get("token_id", "")), line.get("kind")
        if kind == "order_accepted":
            tr = out[token]
            tr.orders += 1
            tr.first_ms = tr.first_ms or int(line.get("ts_ms", 0))
        elif kind == "fill":
            out[token].fills.append((str(line["side"]), str(line["price"]), str(line.get("size_matched") or line["size"])))
    return dict(out)


def audit_file(arg: Path) -> Path:
    """The audit log of a run folder (or the file itself).

    Raises:
        typer.BadParameter: no ``venue_audit.jsonl`` there."""
    path = arg / "venue_audit.jsonl" if arg.is_dir() else arg
    if not path.is_file():
        raise typer.BadParameter(f"{arg}: no venue_audit.jsonl")
    return path


def side_summary(fills: list[tuple[str, str, str]], side: str) -> str:
    """``shares@avg`` of one side's fills ("-" when none)."""
    rows = [(Decimal(p), Decimal(s)) for sd, p, s in fills if sd == side]
    shares = sum((s for _, s in rows), ZERO)
    return f"{shares.normalize():f}@{(sum((p * s for p, s in rows), ZERO) / shares).quantize(Decimal('0.001'))}" if shares else "-"


def classify(a: TokenTrace | None, b: TokenTrace | None) -> str:
    """same (identical fills) | only A | only B (only that run got fills) | different | none."""
    fa, fb = (a.fills if a else []), (b.fills if b else [])
    if not fa and not fb:
        return "none"
    if fa == fb:
        return "same"
    return "only A" if not fb else "only B" if not fa else "different"


def compare(path_a: Path, path_b: Path) -> dict[str, object]:
    """Per-token rows and the split of the total net difference (pUSD, B - A)."""
    ta, tb = traces(path_a), traces(path_b)
    pa, pb = ({p.token_id: p for p in audit_pnl(x)[0]} for x in (path_a, path_b))
    rows, split = [], defaultdict(lambda: ZERO)
    for token in sorted(set(ta) | set(tb)):
        a, b = ta.get(token), tb.get(token)
        kind = classify(a, b)
        na, nb = _net(pa.get(token)), _net(pb.get(token))
        split[kind] += nb - na
        rows.append({"token_id": token, "kind": kind, "net_a": str(na), "net_b": str(nb), "delta": str(nb - na),
                     "payout": _payout(pa.get(token), pb.get(token)),
                     "a": _row(a), "b": _row(b)})
    rows.sort(key=lambda r: -abs(Decimal(str(r["delta"]))))
    totals = {k: str(sum((_net(p) for p in ps.values()), ZERO)) for k, ps in (("a", pa), ("b", pb))}
    return {"rows": rows, "delta_by_kind": {k: str(v) for k, v in sorted(split.items())}, "net": totals}


def _net(p: TokenPnl | None) -> Decimal:
    return p.net if p else ZERO


def _payout(*pnls: TokenPnl | None) -> str:
    """The resolution payout (pUSD/share) either run saw, "-" while unresolved."""
    return next((str(p.payout) for p in pnls if p is not None and p.payout is not None), "-")


def _row(t: TokenTrace | None) -> dict[str, object]:
    if t is None:
        return {"orders": 0, "fills": 0, "bought": "-", "sold": "-", "first": "-"}
    first = datetime.fromtimestamp(t.first_ms / 1000, timezone.utc).strftime("%H:%M:%S") if t.first_ms else "-"
    return {"orders": t.orders, "fills": len(t.fills), "bought": side_summary(t.fills, "BUY"),
            "sold": side_summary(t.fills, "SELL"), "first": first}


def main(run_a: Path, run_b: Path, labels: str = typer.Option("A,B", help="names of the two runs"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Compare RUN_A and RUN_B token by token (net difference = B - A)."""
    result = compare(audit_file(run_a), audit_file(run_b))
    if as_json:
        print(json.dumps(result, indent=1))
        return
    la, lb = (labels.split(",") + ["B"])[:2]
    t = Table("token", "kind", f"{la} first", f"{la} bought", f"{la} sold", f"{la} net", f"{lb} first",
              f"{lb} bought", f"{lb} sold", f"{lb} net", f"{lb}-{la}", "payout", title="per token, largest difference first")
    for r in result["rows"]:  # type: ignore[union-attr]
        if r["kind"] == "none":
            continue
        a, b = r["a"], r["b"]
        t.add_row(r["token_id"][:10] + "…", r["kind"].replace("A", la).replace("B", lb), a["first"], a["bought"],
                  a["sold"], r["net_a"], b["first"], b["bought"], b["sold"], r["net_b"], r["delta"], r["payout"])
    console = Console(width=200)
    console.print(t)
    console.print(f"net {la} {result['net']['a']}  {lb} {result['net']['b']}; {lb}-{la} by kind: "  # type: ignore[index]
                  + ", ".join(f"{k.replace('A', la).replace('B', lb)} {v}" for k, v in result["delta_by_kind"].items()))  # type: ignore[union-attr]


if __name__ == "__main__":
    typer.run(main)
