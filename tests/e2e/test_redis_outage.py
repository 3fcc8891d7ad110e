"""Redis outages with every service running as a process (issue 11 item 3).

1. Every service started while Redis is not running waits: one REDIS_UNAVAILABLE line per window, no
   traceback; once redis-server starts on that port, each service runs (its heartbeat in ``pb:svc``)
   and journals the outage (REDIS_OUTAGE, phase=start).
2. Redis paused (SIGSTOP) for longer than the lease TTL while a worker holds a lease: after SIGCONT
   the same worker renews it (same fence, no takeover) and trades on.
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from redis import Redis

from libs.common import keys
from services.ops.paper import PaperConfig, PaperRun
from tests.conftest import RedisServer
from tests.e2e.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data/leaders/demo-synthetic.jsonl"
SERVICES = ("md_gateway", "user_feed", "scheduler", "signal_ingest", "maker_worker", "venue_sim")
WINDOW_S = 5.0
LEASE_ENV = {"PB_LEASE_TTL_MS": "6000", "PB_HTTP_TIMEOUT_S": "2"}


def log_text(run: PaperRun, name: str) -> str:
    return (run.cfg.log_dir / f"{name}.log").read_text(errors="replace")


def count(text: str, what: str) -> int:
    return len(re.findall(rf"event {what}\b", text))


def start_all_without_waiting(run: PaperRun) -> None:
    """Every service and the venue, as PaperRun.start does, without touching Redis."""
    run.sup.__enter__()
    for kind in ("md_gateway", "user_feed", "scheduler"):
        run.sup.start(kind, run.env(kind, {"PB_INSTANCE_ID": f"{kind}-1"}))
    run.start_ingest()
    run.start_worker(1)
    run.sup.start("venue_sim", run.env("venue_sim", {
        "PB_VENUE_HTTP_PORT": str(run.http_port), "PB_VENUE_WS_PORT": str(run.ws_port), "PB_TAPE": str(run.cfg.tape),
        "PB_SPEED": repr(run.cfg.speed), "PB_LEADER_FILES": ",".join(str(p) for p in run.cfg.leaders),
        "PB_AUDIT_LOG": str(run.cfg.log_dir / "venue_audit.jsonl"), "PB_INSTANCE_ID": "venue_sim-1"}))


def instance(kind: str) -> str:
    return "maker_worker-1" if kind == "maker_worker" else f"{kind}-1"


@pytest.mark.timeout(240)
def test_every_service_started_before_redis_waits_with_one_line_per_window_then_runs(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # its port, not started yet
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=5.0, workers=1, log_dir=tmp_path / "logs",
                               redis_url=server.url))
    try:
        start_all_without_waiting(run)
        t0 = time.monotonic()
        names = [instance(k) for k in SERVICES]
        logs = {k: ("maker_worker-1" if k == "maker_worker" else k) for k in SERVICES}  # log file names
        eventually(lambda: all(count(log_text(run, logs[k]), "REDIS_UNAVAILABLE") >= 2 for k in SERVICES), 60,
                   "two REDIS_UNAVAILABLE windows in every service's log")
        assert run.sup.dead() == [], "a service exited while Redis was down"
        server.start()
        down_s = time.monotonic() - t0
        r = Redis.from_url(server.url, decode_responses=True)
        eventually(lambda: all(r.zscore(keys.SERVICES, n) for n in names), 90, "every service's heartbeat in pb:svc")
        journal = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "REDIS_OUTAGE"]
        texts = {k: log_text(run, logs[k]) for k in SERVICES}
        assert run.sup.dead() == []
    finally:
        run.stop()
        server.stop(kill=True)
    for k, text in texts.items():
        lines = count(text, "REDIS_UNAVAILABLE")
        assert 2 <= lines <= down_s / WINDOW_S + 2, (k, lines, down_s)
        assert count(text, "REDIS_RECOVERED") == 1, k
        assert "Traceback" not in text and "exc=" not in text, f"{k} logged a traceback:\n{text[-3000:]}"
        assert "password" not in text.lower()
    assert {f["svc"] for f in journal} == set(SERVICES) and all(f["phase"] == "start" for f in journal), journal
    assert all(int(f["outage_ms"]) >= WINDOW_S * 1000 for f in journal), [(f["svc"], f["outage_ms"]) for f in journal]


def held_lease(r: Redis) -> tuple[str, str, int] | None:
    """(token, worker, fence) of a lease a worker holds and whose token has a LIVE order."""
    for token in r.smembers(keys.TOKENS):
        lease = r.hgetall(keys.lease(token))
        if lease.get("worker") and any('"LIVE"' in v for v in r.hvals(keys.orders(token))):
            return token, lease["worker"], int(lease["fence"])
    return None


@pytest.mark.timeout(300)
def test_redis_paused_past_the_lease_ttl_the_holder_renews_with_the_same_fence_and_trades_on(tmp_path: Path) -> None:
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=3.0, workers=2, log_dir=tmp_path, extra_env=LEASE_ENV))
    try:
        run.start()
        r = run.r
        assert r is not None and run.sup._redis_proc is not None
        token, worker, fence = eventually(lambda: held_lease(r), 120, "a worker holding a lease with a live order")
        expires = int(r.hget(keys.lease(token), "expires_ms") or 0)
        run.sup._redis_proc.send_signal(signal.SIGSTOP)
        try:
            pause_until = expires / 1000 + 6.0 + 2.0  # past the lease and one more TTL
            while time.time() < pause_until:  # the fault's duration: Redis stays frozen this long
                time.sleep(0.2)
        finally:
            run.sup._redis_proc.send_signal(signal.SIGCONT)
        resumed_ms = int(time.time() * 1000)
        eventually(lambda: int(r.hget(keys.lease(token), "expires_ms") or 0) > resumed_ms, 30, "the lease renewed")
        lease = r.hgetall(keys.lease(token))
        assert lease["worker"] == worker and int(lease["fence"]) == fence, f"taken over: {lease}"
        traded = lambda: [f for _, f in r.xrange(keys.EVENTS, min=f"{resumed_ms}-0")
                          if f["reason"] in ("ORDER_POSTED", "ORDER_CANCELED", "FILL") and f["token_id"] == token]
        eventually(traded, 120, "the holder trading the token after the outage")
        events = [f for _, f in r.xrange(keys.EVENTS)]  # up to the holder trading on
        lease = r.hgetall(keys.lease(token))
        outage_svcs = lambda: {f["svc"] for _, f in r.xrange(keys.EVENTS, min=f"{resumed_ms - 60_000}-0")
                               if f["reason"] == "REDIS_OUTAGE"}
        eventually(lambda: outage_svcs() >= set(SERVICES), 60, "REDIS_OUTAGE journaled by every service")
        outages = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] == "REDIS_OUTAGE"]
        assert run.sup.dead() == [], "a service died during the pause"
    finally:
        run.stop()
    assert not lease.get("worker") or (lease["worker"], int(lease["fence"])) == (worker, fence), lease  # or finished
    renewed = [f for f in events if f["reason"] == "LEASE_RENEWED_LATE" and f["token_id"] == token]
    assert renewed and all(f["fence"] == str(fence) for f in renewed)
    assert not [f for f in events if f["reason"] == "LEASE_ACQUIRED" and f["token_id"] == token
                and f.get("prev_worker") == worker], "a takeover of a holder that was only waiting on Redis"
    assert all(f["phase"] == "run" and int(f["outage_ms"]) > 0 for f in outages), outages
    for name in ("maker_worker-1", "maker_worker-2", "scheduler", "signal_ingest", "user_feed", "md_gateway", "venue_sim"):
        text = log_text(run, name)
        assert count(text, "REDIS_UNAVAILABLE") >= 1 and count(text, "REDIS_RECOVERED") == 1, name
        assert "Traceback" not in text and "exc=" not in text, f"{name} logged a traceback:\n{text[-3000:]}"
