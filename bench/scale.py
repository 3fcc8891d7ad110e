"""Scale benchmark (a benchmark, not a test): ``python bench/scale.py [--tokens 200] [--workers 2]
[--duration 60] [--speed 120]``. One invocation runs two phases, each a fresh paper system
(services/ops/paper.py PaperRun: Redis, venue_sim, md_gateway, user_feed, scheduler, signal_ingest,
N maker_worker processes): the baseline with ``--baseline`` (10) active tokens, then ``--tokens``.

Load. The tape is SYNTHETIC (bench/scale_tape.py): the 500 most active markets of the bundled week
tape, each shifted to start at the tape's start, so all 1,000 tokens quote at once on real price
paths. A synthetic leader buys the N most active tokens at T0 + 5 s; signal_ingest, the scheduler
(``PB_MAX_ACTIVE_TOKENS=N``) and Gamma turn them into N leases, and each worker takes up to
``--max-leases`` (default ceil(N / workers)). The other 1000 - N tokens are seeded as
``closed``/``MARKET_ENDED`` positions awaiting resolution: the one lifecycle state the scheduler
keeps subscribed without a lease, so md_gateway carries 1,000 subscribed tokens in both phases.
Trading-rule timeouts are lifted (``PB_SIGNAL_TIMEOUT_S``, ``PB_INACTIVE_*``) and a Redis book
counts as fresh for 10 min (``PB_BOOK_MAX_AGE_MS``: quotes are minutes of market time apart), so
nothing exits during the measured window. The window starts once every lease is held and every
active token has a LIVE order (the ramp, timed apart: it includes each lease's takeover checks).

Measured per phase, over ``--duration`` wall seconds:

* memory: VmRSS of the workers and md_gateway (/proc/<pid>/status) at the end, divided by the active
  tokens (MB per active token); scheduler and venue RSS are shown apart.
* REST calls to the venue per second, by ``METHOD /route`` (the venue's ``pb_venue_http_requests_total``).
* step time p50/p99 of the scheduler and the workers (``pb_scheduler_step_seconds``,
  ``pb_worker_step_seconds``, histogram quantiles as Prometheus computes them).
* book-change-to-order latency, p50/p99/max (ms): for every order a worker posted in reaction to a
  new Redis book (``ORDER_POSTED`` with ``book_seq``) published inside the window, from the wall
  time md_gateway PUBLISHED that book change to Redis (the ``pb:md:stream:{token}`` entry of that seq: its id is Redis' own clock
  at the XADD) to the wall time the venue ACCEPTED the order (``order_accepted`` ``wall_ms`` in the
  venue's audit log, after signature check and matching). Also shown from the gateway's receipt of
  the frame (``recv_ts_ms``), which adds md_gateway's parse and publish, and in stages: gateway
  (receipt -> publish), worker (publish -> decision: receipt + the order's journaled ``data_age_ms``;
  approximate when a REST verification stamped the book after the frame) and order (decision ->
  accepted: the cancel of the old order, the risk reservation, signing and the POST). Same host,
  same clock. Raw rows: ``var/bench/scale/n<N>/latency.jsonl``.
* Redis growth: INFO ``used_memory`` and DBSIZE sampled every 2 s, least-squares slope per wall
  second, extrapolated to 24 h of market time (slope x 86,400 / speed).

The machine is shared with whatever else runs: numbers move with its load; both phases run in the
same invocation so their ratio is what to compare.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from benchlib import pct  # noqa: E402
from libs.common import keys  # noqa: E402
from scale_probe import (EventTail, RedisSampler, change_stamps, hist_quantile, latencies, merge_buckets,  # noqa: E402
                         rss_mb, scrape, venue_accepts)
from scale_tape import all_tokens, build, leader_file  # noqa: E402
from services.ops.paper import PaperConfig, PaperRun  # noqa: E402

OUT = REPO / "var" / "bench" / "scale"
console = Console(stderr=True)


def run_env(n: int, workers: int, max_leases: int) -> dict[str, str]:
    """Settings of every process for a phase with ``n`` active tokens (module docstring)."""
    return {"PB_MAX_ACTIVE_TOKENS": str(n), "PB_MAX_LEASES": str(max_leases),
            "PB_SIGNAL_TIMEOUT_S": "864000", "PB_INACTIVE_WARN_S": "864000", "PB_INACTIVE_CLEANUP_S": "1728000",
            "PB_BOOK_MAX_AGE_MS": "600000", "PB_START_USDC": "10000000", "PB_MAX_EXPOSURE_USD": "10000000",
            "PB_METRICS_PORT": "0", "PB_LOG_LEVEL": "INFO"}


def seed_watched(run: PaperRun, tokens: list[str]) -> None:
    """Seed ``tokens`` as closed/MARKET_ENDED positions awaiting resolution: tracked and subscribed."""
    assert run.r is not None
    pipe = run.r.pipeline(transaction=False)
    for t in tokens:
        pipe.hset(keys.tok(t), mapping={"state": "closed", "reason": "MARKET_ENDED", "position": "5",
                                        "avg_entry": "0.5", "updated_ms": "0", "end_ms": "0"})
        pipe.sadd(keys.SCHED_TRACKED, t)
        pipe.sadd(keys.MD_SUBS, t)
        pipe.sadd(keys.TOKENS, t)
    pipe.execute()


def held(run: PaperRun, tokens: list[str]) -> tuple[int, int]:
    """(tokens whose lease a worker holds, tokens with a LIVE order record)."""
    assert run.r is not None
    pipe = run.r.pipeline(transaction=False)
    for t in tokens:
        pipe.hget(keys.lease(t), "worker")
        pipe.hvals(keys.orders(t))
    res = pipe.execute()
    leases = sum(1 for w in res[0::2] if w)
    quoting = sum(1 for vals in res[1::2] if any('"LIVE"' in v for v in vals))
    return leases, quoting


def phase(n: int, workers: int, max_leases: int, duration: float, speed: float, tape: Path,
          progress: Progress, metrics_base: int, extra: dict[str, str]) -> dict:
    """One phase with ``n`` active tokens; returns its measurements."""
    name = f"n{n}"
    log_dir = OUT / name
    leaders, active = leader_file(tape, n, OUT / f"leader-{n}.jsonl")
    watched = [t for t in all_tokens(tape) if t not in set(active)]
    env = run_env(n, workers, max_leases)
    env["PB_METRICS_PORT"] = str(metrics_base)
    env.update(extra)
    run = PaperRun(PaperConfig(tape=tape, leaders=(leaders,), speed=speed, workers=workers, log_dir=log_dir,
                               extra_env=env))
    task = progress.add_task(f"{name}: starting", total=duration)
    t_start = time.monotonic()
    try:
        run.start()
        seed_watched(run, watched)
        assert run.r is not None
        deadline = time.monotonic() + 120
        while True:
            run.raise_if_dead()
            lz, q = held(run, active)
            progress.update(task, description=f"{name}: leases {lz}/{n} quoting {q}")
            if (lz >= n and q >= n) or time.monotonic() > deadline:  # every token held and quoting
                break
            time.sleep(0.5)
        ramp_s = time.monotonic() - t_start
        sampler, tail = RedisSampler(run.r), EventTail(run.r)
        tail.poll()
        tail.posted.clear()
        before = _scrape_all(run)
        since_ms = int(time.time() * 1000)
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration:
            run.raise_if_dead()
            sampler.sample()
            tail.poll()
            lz, q = held(run, active)
            progress.update(task, completed=time.monotonic() - t0,
                            description=f"{name}: leases {lz}/{n} quoting {q}")
            time.sleep(2.0)
        elapsed = time.monotonic() - t0
        tail.poll()
        after = _scrape_all(run)
        calls = _calls(before.get("venue_sim", {}), after.get("venue_sim", {}))
        rss = {p.name: rss_mb(p.popen.pid) for p in run.sup.procs}
        stamps = change_stamps(run.r, active)
        lz, q = held(run, active)
        result = {"n": n, "leases": lz, "quoting": q, "ramp_s": ramp_s, "elapsed_s": elapsed, "rss": rss,
                  "calls": dict(calls), "sampler": sampler, "before": before, "after": after, "tail": tail,
                  "stamps": stamps, "summary": run.summary(), "subs": run.r.scard(keys.MD_SUBS),
                  "since_ms": since_ms}
    finally:
        progress.update(task, description=f"{name}: stopping")
        final = run.stop()
    result["final"] = final
    result["accepted"] = venue_accepts(log_dir / "venue_audit.jsonl")
    return result


def _scrape_all(run: PaperRun) -> dict[str, dict]:
    out = {}
    for name, port in run.metrics_ports.items():
        try:
            out[name] = scrape(port)
        except Exception:  # noqa: BLE001 - a process without metrics; shown as missing
            out[name] = {}
    return out


def _pair(xs: list[float]) -> str:
    """``p50 / p99`` of ``xs`` (ms) as text."""
    return f"{pct(xs, 50):.1f} / {pct(xs, 99):.1f}" if len(xs) > 10 else "n<11"


def _calls(before: dict, after: dict) -> dict[str, float]:
    """``METHOD /route`` -> venue HTTP requests during the window (``pb_venue_http_requests_total``)."""
    def counts(sc: dict) -> dict[str, float]:
        return {f"{lb['method']} {lb['route']}": v for lb, v in sc.get("pb_venue_http_requests_total", [])}
    b = counts(before)
    return {k: v - b.get(k, 0.0) for k, v in counts(after).items() if v - b.get(k, 0.0)}


def _delta_buckets(res: dict, kind: str, metric: str) -> list[tuple[float, float]]:
    """Histogram buckets of ``metric`` over processes of ``kind`` (name prefix), window delta."""
    after = merge_buckets([v for k, v in res["after"].items() if k.startswith(kind)], metric)
    before = dict(merge_buckets([v for k, v in res["before"].items() if k.startswith(kind)], metric))
    return [(le, c - before.get(le, 0.0)) for le, c in after]


def measures(res: dict, speed: float) -> dict[str, float]:
    """The numbers of one phase (module docstring)."""
    n, rss = res["n"], res["rss"]
    mem = sum(v for k, v in rss.items() if k.startswith("maker_worker") or k == "md_gateway")
    lat = latencies(res["tail"].posted, res["stamps"], res["accepted"], res["since_ms"],
                    OUT / f"n{n}" / "latency.jsonl")
    pub = lat.total
    calls = res["calls"]
    orders = sum(v for k, v in calls.items() if k.split()[1] in ("/order", "/orders"))
    el = res["elapsed_s"]
    sched = _delta_buckets(res, "scheduler", "pb_scheduler_step_seconds")
    work = _delta_buckets(res, "maker_worker", "pb_worker_step_seconds")
    s = res["sampler"]
    day = 86_400 / speed
    return {
        "active (leases held)": res["leases"], "quoting (LIVE order)": res["quoting"], "subscribed": res["subs"],
        "ramp to all leases s": res["ramp_s"],
        "RSS workers+gateway MB": mem, "MB per active token": mem / max(1, n),
        "RSS scheduler MB": rss.get("scheduler", 0.0), "RSS venue MB": rss.get("venue_sim", 0.0),
        "REST calls/s (all)": sum(calls.values()) / el, "REST order+cancel calls/s": orders / el,
        "REST GET calls/s": sum(v for k, v in calls.items() if k.startswith("GET")) / el,
        "scheduler step p50 ms": 1000 * hist_quantile(sched, 0.5), "scheduler step p99 ms": 1000 * hist_quantile(sched, 0.99),
        "worker step p50 ms": 1000 * hist_quantile(work, 0.5), "worker step p99 ms": 1000 * hist_quantile(work, 0.99),
        "reactive orders": len(pub),
        "change->order p50 ms": pct(pub, 50), "change->order p99 ms": pct(pub, 99),
        "change->order max ms": max(pub) if pub else math.nan,
        "change->order > 10 ms %": 100 * sum(1 for x in pub if x > 10) / len(pub) if pub else math.nan,
        "recv->order p99 ms": pct(lat.from_recv, 99),
        "  stage gateway recv->publish p50/p99 ms": _pair(lat.gateway),
        "  stage worker publish->decision p50/p99 ms": _pair(lat.wake),
        "  stage order decision->accepted p50/p99 ms": _pair(lat.order),
        "Redis MB/day (market)": s.slope(1) * day / 1e6, "Redis keys/day (market)": s.slope(2) * day,
        "_calls": {k: v / el for k, v in calls.items()},
    }


def main(tokens: int = typer.Option(200, help="active tokens of the measured phase"),
         baseline: int = typer.Option(10, help="active tokens of the baseline phase"),
         workers: int = typer.Option(2, help="maker_worker processes"),
         max_leases: int = typer.Option(0, help="PB_MAX_LEASES (0 = ceil(tokens / workers) per phase)"),
         duration: float = typer.Option(60.0, help="measured wall seconds per phase"),
         speed: float = typer.Option(120.0, help="tape speed (market ms per wall ms)"),
         set_: list[str] = typer.Option([], "--set", help="KEY=VALUE setting for every process (repeatable), "
                                        "e.g. PB_RECONCILE_INTERVAL_S=60")) -> None:
    """Run the baseline and the measured phase; print one table and a JSON line."""
    extra = dict(kv.split("=", 1) for kv in set_)
    tape = build(OUT / "tape")
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as progress:
        for n in (baseline, tokens):
            ml = max_leases or math.ceil(n / workers)
            res = phase(n, workers, ml, duration, speed, tape, progress, 19300 + 50 * len(results), extra)
            results.append(measures(res, speed))
    table = Table(title=f"scale bench: {workers} workers, speed {speed:g}x, {duration:g} s per phase"
                        + (f", {' '.join(set_)}" if set_ else ""))
    table.add_column("measure")
    for n in (baseline, tokens):
        table.add_column(f"{n} active", justify="right")
    table.add_column("ratio", justify="right")
    for key in [k for k in results[0] if not k.startswith("_")]:
        a, b = results[0][key], results[1][key]
        if isinstance(a, str) or isinstance(b, str):
            table.add_row(key, str(a), str(b), "")
            continue
        ratio = b / a if a and not math.isnan(a) else math.nan
        table.add_row(key, f"{a:,.2f}", f"{b:,.2f}", f"{ratio:,.2f}")
    Console().print(table)
    routes = Table(title="venue REST calls per second by route")
    routes.add_column("route")
    for n in (baseline, tokens):
        routes.add_column(f"{n} active", justify="right")
    for key in sorted(set(results[0]["_calls"]) | set(results[1]["_calls"])):
        routes.add_row(key, *(f"{r['_calls'].get(key, 0.0):,.2f}" for r in results))
    Console().print(routes)
    print(json.dumps({"baseline": results[0], "measured": results[1]}, default=str))


if __name__ == "__main__":
    typer.run(main)
