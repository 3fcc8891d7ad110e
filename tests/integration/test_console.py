"""``polyband status`` / ``halt`` / ``resume`` against a real Redis: status fits a 200x50 terminal
with market, outcome, closed tokens' P&L, total P&L, risk, halt and replay clock; Redis going away
is one line; halt and resume refuse a Redis that holds no polyband data."""
from __future__ import annotations

import io
import json
import time

from redis import Redis
from rich.console import Console
from typer.testing import CliRunner

from libs.common import keys
from services.ops.cli import app
from services.ops.status import read, render
from tests.conftest import free_port

NOW = int(time.time() * 1000)


def seed(r: Redis, n_closed: int) -> None:
    """Tokens as the scheduler and worker leave them: one active with a lease, ``n_closed`` closed,
    each with a fill ledger (a round trip of 10 shares, bought 0.50, sold 0.55)."""
    r.hset(keys.CLOCK, mapping={"epoch_wall_ms": NOW, "epoch_tape_ms": 1790586000000, "speed": "20.0"})
    r.zadd(keys.SERVICES, {"scheduler-1": NOW, "maker_worker-1": NOW - 500})
    r.hset(keys.MD_GATEWAY, mapping={"state": "connected", "msgs": 10, "published": 9, "last_msg_ms": NOW})
    r.hset(keys.RISK_DAILY_PNL, "2026-09-28", -1_250_000)
    r.hset(keys.SUMMARY, mapping={"signals": 3, "fills": 2 * n_closed})
    tokens = ["9" * 70] + [f"{i:070d}" for i in range(1, n_closed + 1)]
    for i, t in enumerate(tokens):
        r.sadd(keys.TOKENS, t)
        state = "active" if i == 0 else "closed"
        r.hset(keys.tok(t), mapping={"state": state, "reason": "" if i == 0 else "TAKE_PROFIT_DONE",
                                     "slug": f"btc-updown-15m-{1790586000 + 900 * i}", "outcome": "Up" if i % 2 else "Down",
                                     "position": "0", "updated_ms": NOW - i * 1000, "condition_id": f"0xc{i}"})
        for side, price, ts in (("BUY", "0.50", 1), ("SELL", "0.55", 2)):
            rec = {"price": price, "size": "10", "side": side, "ts_ms": NOW - 10_000 + ts, "trade_id": f"t{i}{side}",
                   "order_id": f"o{i}{side}", "status": "CONFIRMED", "ours": "1", "fee": "0", "rebate": "0", "role": "MAKER"}
            r.hset(keys.fills(t), f"t{i}{side}:o{i}{side}", json.dumps(rec))
    r.hset(keys.lease(tokens[0]), mapping={"worker": "maker_worker-1", "fence": "7", "expires_ms": NOW + 5000})
    r.set(keys.HALT, "HALT_DAILY_LOSS")


def screen(r: Redis) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=200, height=50, force_terminal=False)
    console.print(render(read(r, NOW), 50))
    return out.getvalue().splitlines()


def test_status_fits_200x50_with_markets_closed_pnl_risk_halt_and_clock(r: Redis) -> None:
    seed(r, n_closed=60)
    lines = screen(r)
    text = "\n".join(lines)
    assert len(lines) <= 50 and max(len(ln) for ln in lines) <= 200
    assert "replay clock 2026-09-28" in text and "HALTED: HALT_DAILY_LOSS" in text and "-1.25 pUSD" in text
    assert "btc-updown-15m-1790586000" in text and "maker_worker-1/7" in text, "the active token and its lease"
    assert "TAKE_PROFIT_DONE" in text and "0.500000" in text, "closed tokens with their net P&L (10 x 0.05)"
    assert "net 30.500000" in text, "total P&L of the 61 round trips"
    assert "more tokens" in text, "what does not fit is counted, not cut silently"


def test_status_with_redis_gone_is_one_line_and_exit_1() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    res = CliRunner().invoke(app, ["status", "--redis-url", url])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "does not answer" in res.output and "Traceback" not in res.output


def test_halt_and_resume_refuse_a_redis_without_polyband_data(r: Redis, redis_url: str) -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["halt", "--redis-url", redis_url])
    assert refused.exit_code == 2 and "holds no polyband data" in refused.output
    assert r.get(keys.HALT) is None, "nothing written to a Redis that is not a polyband run's"
    assert runner.invoke(app, ["resume", "--redis-url", redis_url]).exit_code == 2
    r.zadd(keys.SERVICES, {"scheduler-1": NOW})
    assert runner.invoke(app, ["halt", "OPERATOR", "--redis-url", redis_url]).exit_code == 0
    assert r.get(keys.HALT) == "OPERATOR"
    resumed = runner.invoke(app, ["resume", "--redis-url", redis_url])
    assert resumed.exit_code == 0 and "was: OPERATOR" in resumed.output and r.get(keys.HALT) is None
