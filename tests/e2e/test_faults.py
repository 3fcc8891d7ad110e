"""Fault tests for the invariants of SPEC S2, with every service running as a process."""
from __future__ import annotations

import json
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from libs.common import keys
from services.ops.paper import PaperConfig, PaperRun
from tests.e2e.helpers import eventually, stream_seqs_increase

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data/leaders/demo-synthetic.jsonl"


def live_order_of_a_worker(r) -> tuple[str, str, int, str] | None:  # type: ignore[no-untyped-def]
    """(token, worker, fence, order id) of a LIVE order whose token is leased, if any."""
    for token in r.smembers(keys.TOKENS):
        lease = r.hgetall(keys.lease(token))
        if not lease.get("worker"):
            continue
        for oid, raw in r.hgetall(keys.orders(token)).items():
            order = json.loads(raw)
            if order.get("status") == "LIVE" and str(order.get("fence")) == lease["fence"]:
                return token, lease["worker"], int(lease["fence"]), oid
    return None


def live_intervals(audit: list[dict], token: str) -> dict[str, tuple[int, float]]:
    """order id -> (accepted wall ms, wall ms it stopped being live: fully filled or cancelled)."""
    out: dict[str, tuple[int, float]] = {}
    sizes: dict[str, Decimal] = {}
    for a in audit:
        oid = a["order_id"]
        if a["token_id"] != token:
            continue
        if a["kind"] == "order_accepted":
            out[oid], sizes[oid] = (a["wall_ms"], float("inf")), Decimal(str(a["size"]))
        elif oid in out and (a["kind"] == "cancel" or
                             (a["kind"] == "fill" and Decimal(str(a["size_matched"])) >= sizes[oid])):
            out[oid] = (out[oid][0], a["wall_ms"])
    return out


@pytest.mark.timeout(240)
def test_killed_worker_mid_order_hands_over_with_a_higher_fence_and_no_overlap(tmp_path: Path) -> None:
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=5.0, workers=2, log_dir=tmp_path))
    try:
        run.start()
        r = run.r
        assert r is not None
        token, worker, fence, order_id = eventually(lambda: live_order_of_a_worker(r), 120, "a worker with a live order")
        victim = next(p for p in run.sup.procs if p.name == worker)
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait(10)
        lease = eventually(lambda: (lambda h: h if h.get("worker") not in (None, "", worker) else None)(
            r.hgetall(keys.lease(token))), 60, "another worker taking the lease")
        assert int(lease["fence"]) > fence and lease["prev_worker"] == worker
        eventually(lambda: any(x["kind"] in ("cancel", "fill") and x["order_id"] == order_id for x in run.audit()),
                   60, "the dead worker's order final on the venue (cancelled by the takeover, or filled)")
        time.sleep(2)  # let the new holder quote after its clean-up
        fences = {oid: int(json.loads(v)["fence"]) for oid, v in r.hgetall(keys.orders(token)).items()
                  if v.startswith("{") and json.loads(v).get("fence") is not None}
    finally:
        run.stop()
    audit = run.audit()
    intervals = live_intervals(audit, token)
    by_fence: dict[int, list[tuple[int, float]]] = {}
    for oid, span in intervals.items():
        assert oid in fences, f"venue order {oid} of {token} unknown to Redis"
        by_fence.setdefault(fences[oid], []).append(span)
    assert fence in by_fence
    for f1, spans1 in by_fence.items():
        for f2, spans2 in by_fence.items():
            if f1 < f2:
                for a in spans1:
                    for b in spans2:
                        assert a[1] <= b[0] or b[1] <= a[0], f"fence {f1} order live {a} overlaps fence {f2} order {b}"
    newer = [span for f, spans in by_fence.items() if f > fence for span in spans]
    assert all(span[0] >= int(lease["prev_expires_ms"]) for span in newer), "the new holder did not wait out the old lease"


@pytest.mark.timeout(240)
def test_redis_killed_and_restarted_mid_run_loses_no_signal_and_no_seq_goes_back(tmp_path: Path) -> None:
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=10.0, workers=2, log_dir=tmp_path, redis_appendonly=True))
    try:
        run.start()
        r = run.r
        assert r is not None
        eventually(lambda: r.hget(keys.SUMMARY, "orders_posted"), 120, "a first order posted")
        seqs_before = {t: int(r.hget(keys.md_book(t), "seq") or 0) for t in r.smembers(keys.TOKENS)}
        signals_before = r.xlen(keys.SIG_STREAM)
        time.sleep(1.5)  # appendfsync everysec: let the AOF catch up, as an operator's restart would
        run.sup.restart_redis(down_s=2.0)
        eventually(lambda: r.xlen(keys.SIG_STREAM) > signals_before, 120, "new signals after the restart")
        eventually(lambda: int(r.hget(keys.SUMMARY, "orders_posted") or 0) > int(run.baseline.get("orders_posted", 0)) + 1,
                   120, "orders posted after the restart")
        assert run.sup.dead() == [], "a service died when Redis went away"
        seqs_after = {t: int(r.hget(keys.md_book(t), "seq") or 0) for t in seqs_before}
        entries = [f for _, f in r.xrange(keys.SIG_STREAM)]
        for t in seqs_before:
            stream_seqs_increase(r, t)
    finally:
        run.stop()
    assert all(seqs_after[t] >= seqs_before[t] for t in seqs_before), (seqs_before, seqs_after)
    assert len({e["signal_id"] for e in entries}) == len(entries), "a signal was published twice"


@pytest.mark.timeout(240)
def test_injected_429_and_5xx_on_post_order_back_off_and_never_duplicate_an_order(tmp_path: Path) -> None:
    run = PaperRun(PaperConfig(leaders=(DEMO,), speed=10.0, workers=1, log_dir=tmp_path))
    try:
        run.start()
        r = run.r
        assert r is not None
        for status, count in ((429, 3), (500, 2)):
            httpx.post(f"{run.clob_url}/_sim/fault", json={"path": "/order", "method": "POST", "status": status,
                                                             "count": count, "body": {"error": f"injected {status}"}},
                       timeout=5).raise_for_status()
        eventually(lambda: any(a["kind"] == "order_accepted" for a in run.audit()), 120, "an order accepted after the faults")
        faults = httpx.get(f"{run.clob_url}/_sim/state", timeout=5).json()
        reasons = r.hgetall(keys.COUNTS)
    finally:
        run.stop()
    assert "RATE_LIMITED" in str(reasons) and "ORDER_OUTCOME_UNKNOWN" in reasons, reasons
    assert faults["faults"] == [], f"injected faults not all hit: {faults['faults']}"
    audit = run.audit()
    for token in {a["token_id"] for a in audit if a["kind"] == "order_accepted"}:
        spans = [span for oid, span in live_intervals(audit, token).items()
                 if next(a for a in audit if a["order_id"] == oid)["side"] == "BUY"]
        for i, a in enumerate(spans):
            for b in spans[i + 1:]:
                assert a[1] <= b[0] or b[1] <= a[0], f"two live entry BUYs on {token}: {a} {b}"
