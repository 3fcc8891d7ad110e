"""A nemesis: a paper run on a bundled tape with random kills and pauses, then the SPEC S2 invariants.

    .venv/bin/python scripts/nemesis.py --faults 60 --seed 1

Starts a PaperRun (private Redis with an AOF, the venue, every service, ``--workers`` workers), waits
for the first order, then injects ``--faults`` faults at seeded random moments over ``--duration``
seconds: SIGKILL then restart after a short down time, or SIGSTOP for a random time then SIGCONT, on
random services and on Redis (a Redis kill restarts it from its AOF). The venue is never faulted
(it is the exchange). SeqMonitor samples every book's seq meanwhile. After the last fault it lets
the system settle, then checks (``scripts/nemesis_checks.py``): one fence at a time per token, every
signal applied exactly once with nothing pending, no double activation, seq never backwards, no live
order on a token nobody holds, every venue fill booked once, every service back (heartbeat after the
last fault) and none died on its own. Prints each fault (time, target, kind, hold) and each invariant
held / VIOLATED with its numbers; exit status 1 on any violation. ``--json-out`` writes the same.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

import typer
from redis import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from libs.common import keys  # noqa: E402
from scripts.nemesis_checks import (Check, Fault, check_activations, check_fences, check_fills,  # noqa: E402
                                    check_orphans, check_seq, check_signals, plan_faults)
from services.ops.paper import PaperConfig, PaperRun  # noqa: E402
from services.ops.supervisor import pause_redis, resume_redis  # noqa: E402
from services.ops.tape_defaults import DEMO_LEADERS, DEMO_TAPE  # noqa: E402
from tests.e2e.helpers import SeqMonitor, eventually  # noqa: E402

app = typer.Typer(add_completion=False)
console = Console(width=130)


def inject(run: PaperRun, f: Fault) -> None:
    """Apply one fault and undo it (restart / SIGCONT) after ``f.hold_s``; blocks for the hold."""
    if f.target == "redis":
        if f.kind == "kill":
            run.sup.restart_redis(down_s=f.hold_s)
        else:
            pause_redis(run.sup)
            try:
                time.sleep(f.hold_s)
            finally:
                resume_redis(run.sup)
        return
    proc = next(p for p in reversed(run.sup.procs) if p.name == f.target)
    if f.kind == "kill":
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(10)
        time.sleep(f.hold_s)
        run.restart(f.target)
    else:
        os.kill(proc.popen.pid, signal.SIGSTOP)
        try:
            time.sleep(f.hold_s)
        finally:
            os.kill(proc.popen.pid, signal.SIGCONT)


def unexpected_deaths(run: PaperRun) -> list[str]:
    """Processes that exited on their own (a killed one is restarted before this is asked)."""
    return [f"{p.name} exit {p.popen.returncode} (log {p.log_path})" for p in run.sup.dead()]


def order_fences(r: Redis) -> dict[str, int]:
    """order id -> fence of every ``pb:orders:{token}`` record."""
    out: dict[str, int] = {}
    for token in r.smembers(keys.TOKENS):
        for oid, raw in r.hgetall(keys.orders(token)).items():
            try:
                rec = json.loads(raw)
                out[oid] = int(rec["fence"])
            except (ValueError, KeyError, TypeError):
                continue
    return out


def journal(r: Redis, *reasons: str) -> list[tuple[str, dict[str, str]]]:
    return [(i, f) for i, f in r.xrange(keys.EVENTS) if f.get("reason") in reasons]


def holders(r: Redis, tokens: set[str]) -> dict[str, str]:
    """token -> worker holding an unexpired lease (by Redis's clock) or ""."""
    sec, usec = r.time()
    now_ms = int(sec) * 1000 + int(usec) // 1000
    out = {}
    for t in tokens:
        lease = r.hgetall(keys.lease(t))
        out[t] = lease.get("worker", "") if int(lease.get("expires_ms") or 0) > now_ms else ""
    return out


def open_orders(run: PaperRun) -> list[tuple[str, str]]:
    import httpx

    state = httpx.get(f"{run.clob_url}/_sim/state", timeout=5).json()
    return [(o["id"], o["asset_id"]) for o in state["open_orders"]]


def check_orphans_settled(run: PaperRun, r: Redis, within_s: float) -> Check:
    """The orphan check, retried for up to ``within_s`` (a killed holder's token is legitimately
    unheld until its lease runs out and another worker takes it over and cancels)."""
    deadline = time.monotonic() + within_s
    while True:
        rows = open_orders(run)
        c = check_orphans(rows, holders(r, {t for _, t in rows}))
        if c.held or time.monotonic() > deadline:
            return c
        time.sleep(1.0)


def services_back(run: PaperRun, r: Redis, since_ms: int, within_s: float) -> Check:
    """Every process's heartbeat in ``pb:svc`` advanced past ``since_ms`` (wall) within ``within_s``."""
    names = [run.instances.get(p.name, p.name) for p in run.sup.procs]
    stale: list[str] = []

    def all_back() -> bool:
        stale[:] = [n for n in names if float(r.zscore(keys.SERVICES, n) or 0) <= since_ms]
        return not stale
    try:
        eventually(all_back, within_s, "every service's heartbeat after the last fault", interval_s=0.5)
    except AssertionError:
        pass
    dead = unexpected_deaths(run)
    bad = [f"no heartbeat from {n}" for n in stale] + [f"died: {d}" for d in dead]
    return Check("every service recovered by itself", not bad,
                 {"services": len(names), "stale": len(stale), "died": len(dead)}, tuple(bad[:5]))


def pending(r: Redis) -> int:
    try:
        return int(r.xpending(keys.SIG_STREAM, keys.SIG_GROUP)["pending"])
    except RedisError:
        return -1


def last_delivered(r: Redis) -> str | None:
    """The scheduler group's last-delivered-id (None: no group)."""
    return next((g["last-delivered-id"] for g in r.xinfo_groups(keys.SIG_STREAM) if g["name"] == keys.SIG_GROUP), None)


def unheld_active(r: Redis) -> list[str]:
    """Tokens in a trading state (active, exiting, exit_only) whose lease no worker holds right now."""
    tokens = {t for t in r.smembers(keys.TOKENS) if r.hget(keys.tok(t), "state") in ("active", "exiting", "exit_only")}
    return [t for t, w in holders(r, tokens).items() if not w]


def final_checks(run: PaperRun, r: Redis, mon: SeqMonitor, grace_ms: int, settle_s: float,
                 last_fault_ms: int, quiet_s: float) -> tuple[list[Check], dict[str, object]]:
    """Settle, then every invariant (services are still running for the liveness checks; they are
    stopped -- workers cancel first -- before the journal is compared with the audit log). The
    settling lasts at least ``quiet_s`` after the last fault (a victim's lease runs out, one more TTL
    of grace for a restarted holder, the takeover grace: then its tokens are taken over and its fills
    recovered) and until every active token is held again (at most ``settle_s`` more)."""
    checks = [services_back(run, r, last_fault_ms, settle_s)]
    time.sleep(max(0.0, last_fault_ms / 1000 + quiet_s - time.time()))  # takeovers of the last victims
    for ok, what in ((lambda: pending(r) == 0, "the consumer group's pending list drained"),
                     (lambda: not unheld_active(r), "every active token held by a worker")):
        try:
            eventually(ok, settle_s, what, interval_s=0.5)
        except AssertionError:
            pass  # not a verdict by itself: the checks below say what is wrong
    checks.append(check_orphans_settled(run, r, settle_s))
    mon.stop_flag.set()
    mon.join(5)
    run.sup.stop_services()
    summary = run.summary()
    audit = run.audit()
    grants = [(f["token_id"], int(f["fence"]), int(i.split("-")[0])) for i, f in journal(r, "LEASE_ACQUIRED")]
    booked: dict[str, Decimal] = {}
    for _, f in journal(r, "FILL"):
        booked[f["order_id"]] = booked.get(f["order_id"], Decimal(0)) + Decimal(f["size"])
    signals = [(i, f.get("signal_id", "")) for i, f in r.xrange(keys.SIG_STREAM)]
    dead = [f.get("signal_id", "") for _, f in r.xrange(keys.SIG_DEAD)]
    activations = [(f["token_id"], f.get("signal_id", "")) for _, f in journal(r, "ACTIVATED")]
    checks += [check_fences(audit, order_fences(r), grants, grace_ms),
               check_signals(signals, r.hgetall(keys.SIG_DONE), dead, pending(r), last_delivered(r)),
               check_activations(activations, int(summary["tokens_activated"])),  # type: ignore[call-overload]
               check_seq(mon.backwards, mon.samples),
               check_fills(audit, booked)]
    return checks, summary


def report(checks: list[Check], summary: dict[str, object], faults: list[dict[str, object]]) -> bool:
    """Print the invariants table and the run's counters; True when every invariant held."""
    table = Table(title="invariants")
    for col in ("invariant", "verdict", "numbers"):
        table.add_column(col)
    for c in checks:
        verdict = "[green]held[/]" if c.held else "[red]VIOLATED[/]"
        table.add_row(c.name, verdict, " ".join(f"{k}={v}" for k, v in c.numbers.items()))
    console.print(table)
    for c in checks:
        for e in c.examples:
            console.print(f"  [red]{c.name}[/]: {e}")
    counters = {k: summary.get(k) for k in ("signals", "tokens_activated", "orders_posted", "fills", "sells_posted")}
    console.print(f"faults={len(faults)} " + " ".join(f"{k}={v}" for k, v in counters.items())
                  + f" errors={summary.get('errors')}")
    return all(c.held for c in checks)


@app.command()
def main(faults: int = typer.Option(60, help="how many faults to inject"),
         seed: int = typer.Option(1, help="RNG seed of the fault plan"),
         duration: float = typer.Option(0.0, help="seconds over which the faults are spread (0: 4 s a fault)"),
         workers: int = typer.Option(2, min=2), speed: float = typer.Option(5.0, help="tape speed"),
         tape: Path = typer.Option(DEMO_TAPE), leader: list[Path] = typer.Option(list(DEMO_LEADERS)),
         lease_ttl_ms: int = typer.Option(6000), http_timeout_s: float = typer.Option(2.0),
         settle: float = typer.Option(40.0, help="seconds allowed for recovery after the last fault"),
         warmup: float = typer.Option(120.0, help="seconds allowed for the first order before faults start"),
         log_dir: Path = typer.Option(REPO / "var" / "nemesis"),
         json_out: Path | None = typer.Option(None, help="also write the result as JSON here")) -> None:
    """Run the nemesis (module docstring); exit status 1 when an invariant was violated."""
    rng = random.Random(seed)
    env = {"PB_LEASE_TTL_MS": str(lease_ttl_ms), "PB_HTTP_TIMEOUT_S": str(http_timeout_s)}
    run = PaperRun(PaperConfig(tape=tape, leaders=tuple(leader), speed=speed, workers=workers, log_dir=log_dir,
                               redis_appendonly=True, extra_env=env, export=True))
    targets = ["md_gateway", "user_feed", "scheduler", "signal_ingest", "redis"] + \
        [f"maker_worker-{i}" for i in range(1, workers + 1)]
    plan = plan_faults(rng, faults, duration or 4.0 * faults, targets, max_pause_s=2.0 * lease_ttl_ms / 1000)
    done: list[dict[str, object]] = []
    ok = False
    try:
        run.start()
        r = run.r
        assert r is not None
        mon = SeqMonitor(Redis.from_url(str(run.sup.redis_url), decode_responses=True))
        mon.start()
        eventually(lambda: r.hget(keys.SUMMARY, "orders_posted"), warmup, "a first order")
        console.print(f"[bold]nemesis[/] seed={seed} faults={faults} targets={','.join(targets)} logs={log_dir}")
        t0 = time.monotonic()
        for f in plan:
            time.sleep(max(0.0, t0 + f.at_s - time.monotonic()))
            at = time.monotonic() - t0
            wall = time.strftime("%H:%M:%S", time.gmtime())
            console.print(f"t=+{at:6.1f}s {wall}Z  {f.target:<15} {f.kind:<5} hold={f.hold_s:.1f}s")
            inject(run, f)
            done.append({"at_s": round(at, 2), "target": f.target, "kind": f.kind, "hold_s": f.hold_s})
        last_ms = time.time_ns() // 1_000_000
        quiet_s = 3 * lease_ttl_ms / 1000 + http_timeout_s
        checks, summary = final_checks(run, r, mon, int(http_timeout_s * 1000), settle, last_ms, quiet_s)
        ok = report(checks, summary, done)
        if json_out is not None:
            json_out.write_text(json.dumps({"ok": ok, "faults": done, "summary": summary, "checks": [
                {"name": c.name, "held": c.held, "numbers": c.numbers, "examples": list(c.examples)}
                for c in checks]}, indent=1, default=str))
    finally:
        for p in run.sup.procs:
            if p.popen.poll() is None:
                os.kill(p.popen.pid, signal.SIGCONT)
        resume_redis(run.sup)
        run.stop()
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    app()
