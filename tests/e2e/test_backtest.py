"""``polyband backtest`` end to end: the whole system in virtual time on the recorded real tapes.

Each run is a real ``polyband backtest`` process (it re-executes itself with PYTHONHASHSEED=0,
starts its private redis-server, steps every service and the venue in one thread). Runs are cut to
the first hours of a tape (``--minutes``) so the suite stays fast; the full tapes are measured by
``bench/backtest.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from libs.common import pnl
from libs.common.pnl_audit import audit_pnl

REPO = Path(__file__).resolve().parents[2]
L2 = REPO / "data/tapes/btc15m-2026-09-28"
WEEK = REPO / "data/tapes/week-2026-07"
RUN_FILES = ("summary.json", "fills.csv", "pnl_tokens.csv", "pnl_markets.csv", "equity.csv", "venue_audit.jsonl")

pytestmark = pytest.mark.timeout(300)


def backtest(out: Path, *args: str) -> tuple[dict, str]:
    """Run the CLI; returns (summary.json or {} for a grid, stdout). The environment's PB_* do not
    leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PB_") and k != "PYTHONHASHSEED"}
    proc = subprocess.run([sys.executable, "-m", "services.ops.cli", "backtest", "--out", str(out), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = out / "summary.json"
    return (json.loads(summary.read_text()) if summary.exists() else {}), proc.stdout


def test_l2_tape_twice_gives_byte_identical_runs(tmp_path: Path) -> None:
    """Two runs of the first 40 minutes: the same bytes in every result file and the same last line."""
    _, out_a = backtest(tmp_path / "a", "--tape", str(L2), "--minutes", "40")
    _, out_b = backtest(tmp_path / "b", "--tape", str(L2), "--minutes", "40")
    for name in RUN_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert out_a.splitlines()[-1] == out_b.splitlines()[-1]
    last = json.loads(out_a.splitlines()[-1])
    assert last["orders_posted"] > 0 and last["fills"] > 0 and last["sells_posted"] > 0


def test_l2_tape_trades_counts_money_settles_and_matches_the_audit_log(tmp_path: Path) -> None:
    """The first 125 minutes (the first held position settles at 120 min): fees, a settlement, exits,
    and the audit log alone gives the same P&L to the micro-dollar."""
    a, out = backtest(tmp_path, "--tape", str(L2), "--minutes", "125")
    last = json.loads(out.splitlines()[-1])
    assert set(last["pnl_usd"]) == {"realized", "unrealized", "settled", "fees", "rebates", "net"}
    assert Decimal(last["pnl_usd"]["fees"]) + Decimal(last["pnl_usd"]["rebates"]) > 0  # crypto fees are charged
    assert Decimal(last["pnl_usd"]["settled"]) != 0 and a["settled_at_resolution"] >= 1 and a["exits"]
    assert a["errors"] == {} and a["audit_check"]["match"], a["audit_check"]
    _tokens, totals = audit_pnl(tmp_path / "venue_audit.jsonl")
    assert pnl.as_json(totals) == a["pnl_usd"]
    fills = (tmp_path / "fills.csv").read_text().splitlines()
    assert len(fills) - 1 >= a["fills"] > 0  # one CSV row per fill record (a header first)
    equity = (tmp_path / "equity.csv").read_text().splitlines()
    assert equity[0] == "ts_ms,booked_usd,unrealized_usd,equity_usd" and len(equity) > 120


def test_week_tape_slice_activates_tokens_and_matches_the_audit_log(tmp_path: Path) -> None:
    s, _ = backtest(tmp_path, "--tape", str(WEEK), "--minutes", str(6 * 60))
    assert s["tokens_activated"] >= 10 and s["fills"] > 0 and s["settings"]["PB_SIGNAL_TIMEOUT_S"] == "3600"
    assert s["audit_check"]["match"], s["audit_check"]
    _tokens, totals = audit_pnl(tmp_path / "venue_audit.jsonl")
    assert pnl.as_json(totals) == s["pnl_usd"]


def test_a_grid_runs_each_entry_in_its_own_folder_and_prints_them_side_by_side(tmp_path: Path) -> None:
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps([{"name": "tp2", "set": {"PB_TAKE_PROFIT": "0.02"}},
                                {"name": "tp5", "set": {"TAKE_PROFIT": "0.05"}}]))
    _, out = backtest(tmp_path / "g", "--tape", str(L2), "--minutes", "40", "--grid", str(grid))
    last = json.loads(out.splitlines()[-1])
    assert set(last) == {"tp2", "tp5"}
    for name in ("tp2", "tp5"):
        s = json.loads((tmp_path / "g" / name / "summary.json").read_text())
        assert s["settings"]["PB_TAKE_PROFIT"] == ("0.02" if name == "tp2" else "0.05")


def test_bad_set_value_is_refused_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PB_")}
    proc = subprocess.run([sys.executable, "-m", "services.ops.cli", "backtest", "--out", str(tmp_path),
                           "--minutes", "1", "--set", "PB_ORDER_SIZE=abc"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "PB_ORDER_SIZE" in proc.stderr and "abc" in proc.stderr
