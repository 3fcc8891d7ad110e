"""``polyband up`` as a user runs it (a real process, its children, a terminal's Ctrl-C):

- a bad setting, a missing tape and a missing leader file end it at once, with the problem named
  and no summary line; a child that dies at start puts its error line on the console, exit 1;
- ``PB_METRICS_PORT=N`` gives every process its own port, each exposes its own families and the
  dashboard's queries name metrics they expose (``metrics_checks``);
- Ctrl-C (SIGINT to the terminal's process group) stops the run cleanly: workers cancel their
  orders, no order is left live at the venue, no traceback, the summary is the last line, exit 0;
- the run folder then answers ``polyband report --run`` (issue 9's first "Done when").
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from services.ops.paper import DEMO_TAPE
from services.ops.supervisor import REPO
from tests.conftest import RedisServer
from tests.e2e.helpers import eventually, free_block
from tests.e2e.metrics_checks import check_metrics

UP = [sys.executable, "-m", "services.ops", "up"]


def run_up(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(UP + args, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def no_summary(out: str) -> bool:
    return not any(line.startswith("{") for line in out.splitlines())


def test_bad_setting_missing_tape_and_missing_leader_end_up_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    bad = run_up(["--duration", "5", "--run-dir", str(tmp_path / "a")], {"PB_ORDER_SIZE": "abc"})
    assert bad.returncode == 2 and "PB_ORDER_SIZE='abc'" in bad.stderr and no_summary(bad.stdout)
    tape = run_up(["--tape", str(tmp_path / "no-tape"), "--leader", str(REPO / "data/leaders/demo-synthetic.jsonl"),
                   "--duration", "5", "--run-dir", str(tmp_path / "b")])
    assert tape.returncode == 2 and f"tape {tmp_path / 'no-tape'}: no such" in tape.stderr and no_summary(tape.stdout)
    leader = run_up(["--leader", str(tmp_path / "nobody.jsonl"), "--duration", "5", "--run-dir", str(tmp_path / "c")])
    assert leader.returncode == 2 and "nobody.jsonl: no such file" in leader.stderr and no_summary(leader.stdout)
    assert time.monotonic() - started < 30, "each refusal comes before anything starts"
    assert not (tmp_path / "a").exists(), "nothing started, no run folder"


def test_a_child_dying_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_up(["--tape", str(DEMO_TAPE), "--duration", "5", "--run-dir", str(tmp_path / "run")],
                     {"PB_METRICS_PORT": str(port)}, timeout=90)
    assert res.returncode == 1 and no_summary(res.stdout), res.stdout[-2000:]
    assert "up: the run did not start: " in res.stderr and "md_gateway exited with status 2: " in res.stderr
    assert f"BAD_SETTING PB_METRICS_PORT={port}" in res.stderr and "md_gateway.log" in res.stderr


def test_metrics_ports_ctrl_c_and_report(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    base, run_dir = free_block(10), tmp_path / "run"
    env = {**os.environ, "PB_REDIS_URL": redis.url, "PB_METRICS_PORT": str(base)}
    up = subprocess.Popen(UP + ["--tape", str(DEMO_TAPE), "--workers", "1", "--run-dir", str(run_dir)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        r = Redis.from_url(redis.url, decode_responses=True)
        eventually(lambda: int(r.hget("pb:summary", "fills") or 0) >= 1, 120, "a fill")
        names = ["md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker-1", "venue_sim"]
        check_metrics({n: base + i for i, n in enumerate(names)})  # each process on its own port
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C on the terminal does: the whole foreground group
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        redis.stop()
    assert up.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["fills"] >= 1 and "pnl_usd" in summary
    worker_log = (run_dir / "maker_worker-1.log").read_text()
    assert "SHUTDOWN_CANCEL_FAILED" not in worker_log and "SHUTDOWN" in worker_log
    assert live_orders_left(run_dir / "venue_audit.jsonl") == set(), "every order ended (filled or cancelled)"
    assert json.loads((run_dir / "summary.json").read_text())["fills"] == summary["fills"]
    report = subprocess.run([sys.executable, "-m", "services.ops", "report", "--run", str(run_dir), "--json",
                             "--plots", str(tmp_path / "plots")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr[-2000:]
    answers = json.loads(report.stdout)["answers"]
    assert len(answers) == 14 and answers["6_orders"]["total"]["matched"] >= 1, "the run's fills are the report's"
    assert answers["14_pnl"]["total"]["net"] == summary["pnl_usd"]["net"], "one P&L definition"
    assert len(list((tmp_path / "plots").glob("*.png"))) == 5


def live_orders_left(audit: Path) -> set[str]:
    """Order ids accepted and neither cancelled nor fully filled, from the venue's audit log."""
    from decimal import Decimal
    open_: dict[str, Decimal] = {}
    for line in audit.read_text().splitlines():
        ev = json.loads(line)
        oid = str(ev.get("order_id", ""))
        if ev["kind"] == "order_accepted":
            open_[oid] = Decimal(ev["size"])
        elif ev["kind"] == "fill" and oid in open_:
            open_[oid] -= Decimal(ev.get("size_matched") or ev["size"])
        elif ev["kind"] == "cancel":
            open_.pop(oid, None)
    return {o for o, left in open_.items() if left > 0}
