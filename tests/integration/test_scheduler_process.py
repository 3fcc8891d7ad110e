"""``python -m services.scheduler`` as a process: wired from the environment, activates a token from a
BUY signal, heartbeats, and stops cleanly on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from libs.common import keys
from libs.common.clock import ReplayClock, publish_replay_clock
from tests.scheduler_fakes import FakeGamma, make_market, publish

REPO = Path(__file__).resolve().parents[2]


def wait_for(fn, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_scheduler_process_activates_a_token_and_stops_on_sigterm(r: Redis, redis_url: str, tmp_path: Path) -> None:
    wall = time.time_ns() // 1_000_000
    publish_replay_clock(r, ReplayClock(wall, wall, 1.0))
    with FakeGamma() as gamma:
        gamma.add(make_market(("4242", "4243"), wall + 4 * 3_600_000))
        env = {**os.environ, "PB_MODE": "paper", "PB_REDIS_URL": redis_url, "PB_GAMMA_URL": gamma.url,
               "PB_INSTANCE_ID": "scheduler-proc", "PB_STEP_INTERVAL_S": "0.05", "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "services.scheduler"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            publish(r, "BUY", "4242", "proc-1", wall)
            wait_for(lambda: r.hget(keys.SUMMARY, "tokens_activated") == "1", 15, "the token to be activated")
            assert r.hget(keys.tok("4242"), "state") == "active"
            assert r.sismember(keys.MD_SUBS, "4242") and r.hget(keys.lease("4242"), "mode") == "maker"
            wait_for(lambda: r.zscore(keys.SERVICES, "scheduler-proc"), 5, "the service heartbeat")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]
    assert "scheduler stopped" in err
