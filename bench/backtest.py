"""Benchmark of the back-test (a benchmark, not a test):
``python bench/backtest.py [--tape DIR ...] [--minutes N] [--out DIR]``.

Runs ``polyband backtest`` (the same code path: a child process per tape, with PYTHONHASHSEED=0)
on each tape and prints, per tape: tape span, wall seconds, tape events (frames and market ends)
per wall second, and the speed-up over real time (tape time / wall time). The baseline of the
speed-up is real time itself (1x), the rate `up` replays at with ``--speed 1``; within one run the
first tape is also the baseline of the events/s ratio of the others. Default tapes: the 5-hour L2
tape and the week of quotes. Machine: compare only numbers printed by one run (a 2-core box drifts
by about 30 % between runs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAPES = [REPO / "data/tapes/btc15m-2026-09-28", REPO / "data/tapes/week-2026-07"]


def run_one(tape: Path, out: Path, minutes: float | None) -> dict[str, float]:
    """One back-test in a child process; returns span, wall and event counts from its summary."""
    cmd = [sys.executable, "-m", "services.ops.cli", "backtest", "--tape", str(tape), "--out", str(out)]
    if minutes:
        cmd += ["--minutes", str(minutes)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    start = time.monotonic()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    s = json.loads((out / "summary.json").read_text())
    first, end = s["tape_span_ms"]
    span_s = (min(end, first + minutes * 60_000) - first) / 1000 if minutes else (end - first) / 1000
    return {"span_h": span_s / 3600, "wall_s": wall, "events": s["venue_events"], "ticks": s["ticks"],
            "fills": s["fills"], "tokens": s["tokens_activated"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tape", type=Path, action="append", help="tape dir (repeatable)")
    ap.add_argument("--minutes", type=float, default=None, help="only the first N minutes of each tape")
    ap.add_argument("--out", type=Path, default=REPO / "var/bench-backtest")
    args = ap.parse_args()
    base_eps = None
    print(f"{'tape':24} {'span h':>7} {'wall s':>7} {'events':>8} {'ev/s':>8} {'x real time':>12} {'ev/s ratio':>10}")
    for tape in args.tape or TAPES:
        r = run_one(tape, args.out / tape.name, args.minutes)
        eps = r["events"] / r["wall_s"]
        base_eps = base_eps or eps
        print(f"{tape.name:24} {r['span_h']:7.2f} {r['wall_s']:7.1f} {r['events']:8d} {eps:8.0f} "
              f"{r['span_h'] * 3600 / r['wall_s']:11.0f}x {eps / base_eps:9.2f}x   "
              f"(ticks {r['ticks']}, tokens {r['tokens']}, fills {r['fills']})", flush=True)


if __name__ == "__main__":
    main()
