"""A paused worker never touches a token it lost (SPEC S2 fencing; issue 7 item 6), with every
service running as a process on the paper venue.

Worker A quotes a token, is SIGSTOPped past its lease; worker B takes the token over (cancels A's
orders after the grace period) and quotes its own. B is then frozen too, so that every request the
venue sees while A is resumed and stopped with SIGTERM can only be A's (both share one paper
account): A, frozen for at least twice the lease TTL, must send nothing for any token B holds -- no
order, no cancel (not the blind ``cancel_token`` of old) -- write nothing of B's tokens in Redis
(order records, lease, position fields, exposure; B is frozen, so any change is A's), and B's orders
stay LIVE.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from redis import Redis

from libs.common import keys
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data/leaders/demo-synthetic.jsonl"
SENDS = ("order_accepted", "order_rejected", "cancel")
WORKER_ENV = {"PB_LEASE_TTL_MS": "6000", "PB_HTTP_TIMEOUT_S": "2"}
TTL_S = 6.0


def live_orders(r: Redis, token: str, worker: str) -> list[str]:
    """Ids of LIVE records of ``token`` written under the current fence, when ``worker`` holds it."""
    lease = r.hgetall(keys.lease(token))
    if lease.get("worker") != worker:
        return []
    out = []
    for oid, raw in r.hgetall(keys.orders(token)).items():
        rec = json.loads(raw) if raw.startswith("{") else {}
        if rec.get("status") == "LIVE" and str(rec.get("fence")) == lease["fence"]:
            out.append(oid)
    return out


def quoting(r: Redis, worker: str) -> tuple[str, list[str]] | None:
    """(token, live order ids) of some token ``worker`` holds and quotes, if any."""
    for token in r.smembers(keys.TOKENS):
        ids = live_orders(r, token, worker)
        if ids:
            return token, ids
    return None


def held_by(r: Redis, worker: str) -> set[str]:
    return {t for t in r.smembers(keys.TOKENS) if r.hget(keys.lease(t), "worker") == worker}


WORKER_FIELDS = ("position", "avg_entry", "realized_pnl", "last_fill_ms", "redeem_pending")


def worker_state(r: Redis, tokens: set[str]) -> dict[str, object]:
    """Everything a worker writes for ``tokens``: order records, lease, the worker-written fields of
    ``pb:tok``, and the account-wide exposure / unrealized P&L entries (each tagged with its fence)."""
    out: dict[str, object] = {}
    for t in sorted(tokens):
        tok = r.hgetall(keys.tok(t))
        out[t] = {"orders": r.hgetall(keys.orders(t)), "lease": r.hgetall(keys.lease(t)),
                  "tok": {k: tok.get(k) for k in WORKER_FIELDS}, "fence": r.get(keys.fence(t)),
                  "exposure": r.hget(keys.RISK_EXPOSURE, t), "upnl": r.hget(keys.RISK_UPNL, t)}
    return out


@pytest.mark.timeout(300)
def test_sigstopped_worker_resumed_and_terminated_sends_nothing_for_tokens_it_lost(tmp_path: Path) -> None:
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=3.0, workers=1, log_dir=tmp_path,
                               service_env={"maker_worker": WORKER_ENV}))
    try:
        run.start()
        r = run.r
        assert r is not None
        token, a_orders = eventually(lambda: quoting(r, "maker_worker-1"), 150, "worker A quoting a token")
        a_fence = int(r.hget(keys.lease(token), "fence") or 0)
        a = next(p for p in run.sup.procs if p.name == "maker_worker-1")
        os.kill(a.popen.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        run.start_worker(2)
        b_orders = eventually(lambda: live_orders(r, token, "maker_worker-2"), 90, "B taking over and quoting")
        lease = r.hgetall(keys.lease(token))
        assert lease["prev_worker"] == "maker_worker-1"
        final = {x["order_id"] for x in run.audit() if x["kind"] in ("cancel", "fill")}
        assert set(a_orders) <= final, "A's orders were not final before B quoted"
        time.sleep(max(0.0, stopped_at + 2 * TTL_S - time.monotonic()))  # A stays frozen 2x the lease TTL
        b_orders = live_orders(r, token, "maker_worker-2") or b_orders  # B quotes on meanwhile
        frozen_s = time.monotonic() - stopped_at
        b = next(p for p in run.sup.procs if p.name == "maker_worker-2")
        os.kill(b.popen.pid, signal.SIGSTOP)  # from here on every venue request is A's
        time.sleep(0.5)  # let any request B had in flight land in the audit log
        b_tokens = held_by(r, "maker_worker-2")
        before = worker_state(r, b_tokens)
        resumed_ms = time.time_ns() // 1_000_000
        a.popen.send_signal(signal.SIGTERM)  # pending while stopped: A wakes up straight into its shutdown
        os.kill(a.popen.pid, signal.SIGCONT)
        assert a.popen.wait(20) == 0
        ended_ms = time.time_ns() // 1_000_000
        audit = run.audit()
        after = worker_state(r, b_tokens)  # B is still frozen: any change since ``before`` is A's
        a_events = [f for _, f in r.xrange(keys.EVENTS, min=f"{resumed_ms}-0")
                    if f.get("worker") == "maker_worker-1" or f.get("svc") == "maker_worker"]
        os.kill(b.popen.pid, signal.SIGCONT)
        assert r.hget(keys.lease(token), "worker") == "maker_worker-2"
    finally:
        for p in run.sup.procs:
            if p.popen.poll() is None:
                os.kill(p.popen.pid, signal.SIGCONT)
        run.stop()
    assert frozen_s >= 2 * TTL_S, frozen_s
    assert int(after[token]["lease"]["fence"]) > a_fence  # type: ignore[index]
    assert after == before, f"A wrote Redis state of tokens it lost after it resumed: {before} -> {after}"
    posted = [f for f in a_events if f.get("reason") in ("ORDER_POSTED", "FILL") and f.get("token_id") in b_tokens]
    assert posted == [], f"A journaled trading on tokens it lost: {posted}"
    by_a = [x for x in audit if x["kind"] in SENDS and resumed_ms <= x["wall_ms"] <= ended_ms + 1000
            and x["token_id"] in b_tokens]
    assert by_a == [], f"A sent requests for tokens it had lost after it resumed: {by_a}"
    assert token in b_tokens
    cancelled = {x["order_id"] for x in audit if x["kind"] == "cancel" and x["wall_ms"] >= resumed_ms}
    assert not cancelled & set(b_orders), "an order of the new holder was cancelled while it was frozen"
    log = a.log_path.read_text()
    noticed = [line for line in log.splitlines() if token in line and
               ("SHUTDOWN_SKIPPED_NOT_HOLDER" in line or "reason=LEASE_LOST" in line)]
    assert noticed, "A never journaled that it lost the token"
    final = log.split("reason=SHUTDOWN_CANCEL ")[-1].splitlines()[0]
    assert "canceled=0" in final, final
