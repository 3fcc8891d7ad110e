"""``polyband status``: one screen of live state, read from Redis only (SPEC S5)."""
from __future__ import annotations

import json
import time

from redis import Redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from libs.common import keys
from libs.common.pnl import PnlTotals, TokenPnl
from libs.common.pnl_redis import system_pnl


def _age(now_ms: int, then: str | None) -> str:
    if not then or then == "0":
        return "-"
    sec = (now_ms - int(float(then))) / 1000
    return f"{sec:.1f}s" if sec < 120 else f"{sec / 60:.1f}m"


def services_table(r: Redis, now_ms: int) -> Table:
    """One row per service instance: kind, pid, heartbeat age."""
    t = Table("instance", "service", "pid", "heartbeat", title="services")
    for inst, score in r.zrange(keys.SERVICES, 0, -1, withscores=True):
        h = r.hgetall(keys.service(inst))
        t.add_row(inst, h.get("service", "?"), h.get("pid", "?"), _age(now_ms, str(int(score))))
    return t


def gateway_table(r: Redis, now_ms: int) -> Table:
    """The gateway hash, field by field."""
    g = r.hgetall(keys.MD_GATEWAY)
    t = Table("field", "value", title="md_gateway")
    for k in sorted(g):
        t.add_row(k, _age(now_ms, g[k]) + " ago" if k.endswith("_ms") and g[k].isdigit() and int(g[k]) > 10**12 else g[k])
    return t


def token_rows(r: Redis) -> list[tuple[str, dict[str, str], dict[str, str], dict[str, str], list[dict[str, object]]]]:
    """(token, tok hash, book hash, lease hash, orders) for every known token, in one pipeline."""
    tokens = sorted(r.smembers(keys.TOKENS))
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.hgetall(keys.tok(t))
        pipe.hgetall(keys.md_book(t))
        pipe.hgetall(keys.lease(t))
        pipe.hvals(keys.orders(t))
    res = pipe.execute()
    rows = []
    for i, t in enumerate(tokens):
        orders = [json.loads(v) for v in res[4 * i + 3] if v.startswith("{")]
        rows.append((t, res[4 * i], res[4 * i + 1], res[4 * i + 2], orders))
    return rows


def tokens_table(r: Redis, now_ms: int, pnls: dict[str, TokenPnl] | None = None) -> tuple[Table, Table, Table]:
    """Queues by state, leases, and per-token rows (``net``: the token's net P&L, pUSD, from ``pnls``)."""
    rows, pnls = token_rows(r), pnls or {}
    counts: dict[str, int] = {}
    tt = Table("token", "state", "reason", "bid", "ask", "data age", "src", "pos", "avg", "open", "net", title="tokens")
    lt = Table("token", "worker", "fence", "mode", "expires in", title="leases")
    for t, tok, book, lease, orders in rows:
        state = tok.get("state", "?")
        counts[state] = counts.get(state, 0) + 1
        if state in ("closed", "failed") and not lease:
            continue
        fresh = max(int(book.get("recv_ts_ms") or 0), int(book.get("verified_ts_ms") or 0))
        live = sum(1 for o in orders if o.get("status") in ("LIVE", "PENDING"))
        tt.add_row(t[:10] + "…", state, tok.get("reason", ""), book.get("best_bid", "-"), book.get("best_ask", "-"),
                   _age(now_ms, str(fresh)), book.get("source", "-"), tok.get("position", "0"),
                   tok.get("avg_entry", "-"), str(live), str(pnls[t].net) if t in pnls else "-")
        if lease:
            exp = int(lease.get("expires_ms") or 0)
            lt.add_row(t[:10] + "…", lease.get("worker") or "(offered)", lease.get("fence", "0"), lease.get("mode", ""),
                       f"{(exp - now_ms) / 1000:.1f}s" if exp else "-")
    qt = Table("state", "tokens", title="queues")
    for s in ("candidate", "pending", "active", "exiting", "exit_only", "cooldown", "closed", "failed"):
        qt.add_row(s, str(counts.get(s, 0)))
    qt.add_row("offers waiting", str(r.zcard(keys.SCHED_OFFERS)))
    return qt, lt, tt


def pnl_line(total: PnlTotals) -> str:
    """The total P&L in one line (pUSD)."""
    return (f"net {total.net} = realized {total.realized} + unrealized {total.unrealized} + settled "
            f"{total.settled} - fees {total.fees} + rebates {total.rebates} ({total.tokens} tokens)")


def summary_table(r: Redis, total: PnlTotals | None = None) -> Table:
    """Run counters, failures by reason code, and the total P&L line."""
    t = Table("counter", "value", title="summary")
    if total is not None:
        t.add_row("P&L pUSD", pnl_line(total))
    for k, v in sorted(r.hgetall(keys.SUMMARY).items()):
        t.add_row(k, v)
    for k, v in sorted(r.hgetall(keys.ERRORS).items()):
        t.add_row(f"error {k}", v)
    halt = r.get(keys.HALT)
    if halt:
        t.add_row("HALTED", halt)
    return t


def snapshot(r: Redis) -> Group:
    """Everything ``status`` shows, as one renderable."""
    now_ms = int(time.time() * 1000)
    tokens, total = system_pnl(r)
    qt, lt, tt = tokens_table(r, now_ms, {p.token_id: p for p in tokens})
    return Group(services_table(r, now_ms), gateway_table(r, now_ms), qt, lt, tt, summary_table(r, total))


def render_status(r: Redis, watch: bool) -> None:
    """Print once, or refresh every second until Ctrl-C with ``watch``."""
    console = Console()
    if not watch:
        console.print(snapshot(r))
        return
    with Live(snapshot(r), console=console, refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(1)
                live.update(snapshot(r))
        except KeyboardInterrupt:
            pass
