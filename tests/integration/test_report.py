"""``polyband report`` against real Redis: the run-folder round trip (``libs.common.run_store``), the
command on a live Redis seeded as the services write it, and a real back-test's folder."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from redis import Redis
from typer.testing import CliRunner

from libs.common import keys
from libs.common.clock import FakeClock
from libs.common.journal import Journal
from libs.common.run_store import DUMP_NAME, RunStoreError, export_redis, open_run
from services.ops.cli import app

REPO = Path(__file__).resolve().parents[2]
L2 = REPO / "data/tapes/btc15m-2026-09-28"


def test_a_run_folder_keeps_every_pb_key_with_its_type_and_ttl(r: Redis, tmp_path: Path) -> None:
    clock = FakeClock()
    Journal(r, "maker_worker", clock).record("FILL", token_id="t1", side="BUY", price="0.5")
    r.hset(keys.tok("t1"), mapping={"state": "active", "position": "10"})
    r.zadd(keys.SCHED_PENDING, {"t2": 5})
    r.sadd(keys.TOKENS, "t1", "t2")
    r.set(keys.HALT, "MANUAL", px=600_000)
    r.set("other:key", "not ours")
    export_redis(r, tmp_path)
    with open_run(tmp_path) as run:
        assert sorted(run.keys("*")) == sorted(k for k in r.keys("*") if k.startswith(f"{keys.NS}:"))
        assert run.xrange(keys.EVENTS) == r.xrange(keys.EVENTS)
        assert run.hgetall(keys.tok("t1")) == {"state": "active", "position": "10"}
        assert run.zrange(keys.SCHED_PENDING, 0, -1, withscores=True) == [("t2", 5.0)]
        assert 0 < run.pttl(keys.HALT) <= 600_000 and run.get(keys.HALT) == "MANUAL"
    with pytest.raises(ValueError, match="is not a folder"):
        with open_run(tmp_path / "missing"):
            pass
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"has no {DUMP_NAME}"):
        with open_run(tmp_path / "empty"):
            pass
    (tmp_path / "bad").mkdir()
    with gzip.open(tmp_path / "bad" / DUMP_NAME, "wb") as fh:
        fh.write(b"PICKLE??")
    with pytest.raises(RunStoreError, match="not a polyband Redis dump"):
        with open_run(tmp_path / "bad"):
            pass


def _seed(r: Redis, clock: FakeClock) -> None:
    """Two tokens as the services leave them: journal entries, pb:tok, pb:orders, pb:fills."""
    j = Journal(r, "maker_worker", clock)
    t0 = clock.now_ms()
    for t, state, reason in (("ta", "closed", "EXIT_DONE"), ("tb", "exit_only", "LEADER_SELL")):
        r.sadd(keys.TOKENS, t)
        r.hset(keys.tok(t), mapping={"state": state, "reason": reason, "leader_account": "0xlead", "title": "BTC, 5PM",
                                     "outcome": "Up", "updated_ms": str(t0)})
    j.record("ORDER_POSTED", token_id="ta", order_id="o1", side="BUY", price="0.50", size="10", purpose="entry",
             data_age_ms=40)
    clock.advance(2000)
    j.record("FILL", token_id="ta", order_id="o1", side="BUY", price="0.50", size="10")
    j.record("STOP_LOSS", token_id="ta", state="exiting", position="10")
    j.record("ORDER_POSTED", token_id="ta", order_id="o2", side="SELL", price="0.45", size="10", purpose="aggressive",
             data_age_ms=100)
    j.record("FILL", token_id="ta", order_id="o2", side="SELL", price="0.45", size="10")
    Journal(r, "scheduler", clock).record("IGNORED_NO_POSITION", token_id="tc", state="unknown", leader="0xlead")
    orders = {"o1": {"side": "BUY", "price": "0.50", "size": "10", "matched": "10", "status": "MATCHED", "ts_ms": t0},
              "o2": {"side": "SELL", "price": "0.45", "size": "10", "matched": "10", "status": "MATCHED",
                     "ts_ms": t0 + 2000}}
    r.hset(keys.orders("ta"), mapping={k: orjson.dumps({"id": k, **v}).decode() for k, v in orders.items()})
    fills = {f"tr{i}:{k}": orjson.dumps({"trade_id": f"tr{i}", "order_id": k, "side": v["side"], "price": v["price"],
                                         "size": "10", "status": "CONFIRMED", "ours": "1", "ts_ms": v["ts_ms"],
                                         "fee": "0", "rebate": "0"}).decode()
             for i, (k, v) in enumerate(orders.items())}
    r.hset(keys.fills("ta"), mapping=fills)
    r.hset(keys.lease("tb"), mapping={"worker": "", "mode": "exit_only", "fence": "1"})


def test_report_on_a_live_redis_answers_in_json_and_tables(r: Redis, redis_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    _seed(r, clock)
    res = CliRunner().invoke(app, ["report", "--redis-url", redis_url, "--json"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)["answers"]
    assert a["6_orders"]["per_token"]["ta"]["fill_rate"] == "1.000" and a["6_orders"]["total"]["matched"] == 2
    assert a["7_data_age"]["per_token"]["ta"] == {"n": 2, "p50_ms": 40, "p95_ms": 100, "max_ms": 100}
    assert a["4_aggressive"]["total"]["aggressive_steps"] == 1 and a["9_ignored_sells"]["per_leader"]["0xlead"]
    assert a["11_exit_only"]["per_token"]["tb"]["age_ms"] == 2000
    assert a["14_pnl"]["total"]["realized"] == "-0.500000" and a["14_pnl"]["per_leader"]["0xlead"]["tokens"] == 1
    assert a["13_states"]["total"]["exit_only"] == 1 and a["10_exits"]["by_trigger"] == {"STOP_LOSS": 1}
    since = CliRunner().invoke(app, ["report", "--redis-url", redis_url, "--json", "--since", str(clock.now_ms())])
    assert json.loads(since.stdout)["answers"]["6_orders"]["total"]["orders"] == 1  # only o2 was placed since
    text = CliRunner().invoke(app, ["report", "--redis-url", redis_url])
    assert text.exit_code == 0 and "6. Orders LIVE -> MATCHED / CANCELED" in text.stdout
    bad = CliRunner().invoke(app, ["report", "--redis-url", redis_url, "--since", "soon"])
    assert bad.exit_code == 2 and "--since='soon'" in bad.output
    nothing = CliRunner().invoke(app, ["report", "--run", str(tmp_path)])
    assert nothing.exit_code == 2 and f"has no {DUMP_NAME}" in nothing.output


@pytest.mark.timeout(120)
def test_report_on_a_back_test_folder_matches_its_summary(tmp_path: Path) -> None:
    """A real back-test (the first 22 minutes of the L2 tape: one entry, fills, a stop loss, an exit)
    leaves redis.pbdump; ``report --run`` on it agrees with the run's own summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PB_") and k != "PYTHONHASHSEED"}
    out = tmp_path / "bt"
    proc = subprocess.run([sys.executable, "-m", "services.ops.cli", "backtest", "--out", str(out), "--tape", str(L2),
                           "--minutes", "22"], cwd=REPO, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    res = CliRunner().invoke(app, ["report", "--run", str(out), "--json", "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)["answers"]
    assert summary["fills"] > 0 and a["6_orders"]["total"]["orders"] == summary["orders_posted"]
    assert a["6_orders"]["total"]["matched"] >= 1 and summary["fills"] >= a["6_orders"]["total"]["matched"]
    assert a["14_pnl"]["total"]["net"] == summary["pnl_usd"]["net"]
    assert a["10_exits"]["by_closing_reason"] and a["10_exits"]["by_trigger"]
    assert a["7_data_age"]["total"]["n"] > 0  # data_age_ms journaled on the worker's order actions
    assert a["2_stale"]["total"]["feed"] >= 1  # the REST fallback at acquisition ends on BOOK_FEED_RETURNED
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["data_age.png", "equity.png", "fill_rate.png", "pnl_tokens.png", "reconnects_fills.png"]
