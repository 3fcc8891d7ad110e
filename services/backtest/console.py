"""``polyband backtest``: one run (a table per token and in total, then the summary JSON as the last
line) or ``--grid FILE`` (several parameter sets in parallel processes, side by side).

A grid file is JSON: ``[{"name": "tp3", "set": {"PB_TAKE_PROFIT": "0.03"}}, ...]``; each entry runs
with the command line's ``--set`` values overridden by its own, into ``<out>/<name>/``.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.backtest.run import BacktestConfig, run_backtest

HASH_SEED = "0"  # set-iteration order is part of a run's inputs: fixed so runs are byte-identical


def ensure_hash_seed(argv: list[str]) -> None:
    """Re-execute this process with ``PYTHONHASHSEED=0`` unless it already has it (no return then)."""
    if os.environ.get("PYTHONHASHSEED") == HASH_SEED:
        return
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
    os.execve(sys.executable, [sys.executable, "-m", "services.ops.cli", *argv], env)


def parse_sets(values: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (``PB_`` is added when missing).

    Raises:
        ValueError: an item without ``=``, naming it.
    """
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. PB_TAKE_PROFIT=0.03")
        key = key.strip().upper()
        out[key if key.startswith("PB_") else f"PB_{key}"] = value
    return out


def load_grid(path: Path) -> list[tuple[str, dict[str, str]]]:
    """The grid file's entries as (name, settings).

    Raises:
        ValueError: not a JSON list of ``{"name": str, "set": {str: str}}``, naming the entry.
    """
    data = json.loads(path.read_text())
    if not isinstance(data, list) or not data:
        raise ValueError(f"grid {path}: expected a non-empty JSON list of {{name, set}} objects")
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("set"), dict):
            raise ValueError(f"grid {path}: entry {i} has bad value {str(entry)[:80]!r} (needs name and set)")
        out.append((entry["name"], parse_sets([f"{k}={v}" for k, v in entry["set"].items()])))
    return out


def token_table(result: dict[str, Any]) -> Table:
    """Per token (with a fill) and total: fills, position, realized, settled, fees, rebates, net."""
    s = result["summary"]
    table = Table(title=f"back-test {s['tape']}: P&L per token (pUSD)")
    for col in ("token", "bought", "sold", "realized", "unrealized", "settled", "fees", "rebates", "net"):
        table.add_column(col, justify="left" if col == "token" else "right")
    for t in sorted(result["tokens"], key=lambda x: x.token_id):
        table.add_row(t.token_id[:10] + "…", *(_fmt(getattr(t, c)) for c in
                      ("bought", "sold", "realized", "unrealized", "settled", "fees", "rebates", "net")))
    p = s["pnl_usd"]
    table.add_row("total", "", "", *(_fmt(Decimal(p[k])) for k in ("realized", "unrealized", "settled", "fees",
                                                                    "rebates", "net")), style="bold")
    return table


def _fmt(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


def print_result(result: dict[str, Any], console: Console) -> None:
    """The table, one line of counters, exits by reason, the audit check, then the summary JSON."""
    s = result["summary"]
    console.print(token_table(result))
    console.print(f"orders {s['orders_posted']}  fills {s['fills']}  sells {s['sells_posted']}  "
                  f"tokens activated {s['tokens_activated']}  settled at resolution {s['settled_at_resolution']}  "
                  f"redeemed {s['redeemed']}")
    console.print("exits by reason: " + ", ".join(f"{k} {v}" for k, v in s["exits"].items()))
    console.print(f"audit-log check: {'match' if s['audit_check']['match'] else 'MISMATCH'}; run folder {s['out']}")
    print(json.dumps({k: s[k] for k in ("signals", "tokens_activated", "orders_posted", "fills", "sells_posted",
                                        "redeemed", "errors", "pnl_usd")}), flush=True)


def _one(cfg: BacktestConfig) -> dict[str, Any]:
    res = run_backtest(cfg)
    return {"summary": res["summary"]}


def run_grid(base: BacktestConfig, grid: list[tuple[str, dict[str, str]]], procs: int, console: Console) -> None:
    """Run every grid entry (``procs`` at a time, each its own process) and print them side by side."""
    cfgs = [BacktestConfig(base.tape, base.leaders, base.out / name, {**base.overrides, **sets}, base.workers,
                           base.seed, base.tail_ms, base.minutes) for name, sets in grid]
    with ProcessPoolExecutor(max_workers=procs) as pool:
        results = list(pool.map(_one, cfgs))
    table = Table(title=f"grid on {base.tape.name} (pUSD)")
    table.add_column("name")
    for col in ("settings", "orders", "fills", "sells", "realized", "settled", "fees", "net"):
        table.add_column(col, justify="right")
    for (name, sets), res in zip(grid, results):
        s, p = res["summary"], res["summary"]["pnl_usd"]
        table.add_row(name, " ".join(f"{k}={v}" for k, v in sets.items()), str(s["orders_posted"]), str(s["fills"]),
                      str(s["sells_posted"]), p["realized"], p["settled"], p["fees"], p["net"])
    console.print(table)
    print(json.dumps({name: res["summary"]["pnl_usd"] for (name, _), res in zip(grid, results)}), flush=True)
