"""``polyband status``: one screen of live state, read from Redis only (SPEC S5).

It fits a 200x50 terminal: a header (replay clock, trading or HALTED, risk), one line each for the
services, the gateway, the queues and the total P&L, then one row per token (market slug and
outcome, state, lease, book, position, P&L): every token not closed, then the most recently closed
ones with their P&L as far as the screen holds (``polyband report`` lists all of them).
Redis going away is one line, not a traceback: ``--watch`` keeps retrying, a single print exits 1.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from redis import Redis
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from libs.common import keys
from libs.common.pnl import PnlTotals, TokenPnl
from libs.common.pnl_redis import system_pnl

SCREEN_ROWS = 50
FIXED_ROWS = 12  # header, services, gateway, queues, P&L, counters, errors, table title/header/rules
STATES = ("candidate", "pending", "active", "exiting", "exit_only", "cooldown", "closed", "failed")
GATEWAY_FIELDS = ("msgs", "published", "resyncs", "reconnects", "rest_ok", "rest_failed", "parse_errors", "rejects")


@dataclass
class Snapshot:
    """Everything ``status`` shows, read at ``now_ms`` (wall ms)."""

    now_ms: int
    services: list[tuple[str, int]]  # instance, last heartbeat wall ms
    gateway: dict[str, str]
    clock: dict[str, str]
    halt: str | None
    daily_pnl_micro: dict[str, int]
    tokens: list[tuple[str, dict[str, str], dict[str, str], dict[str, str], int]]  # id, tok, book, lease, open orders
    offers: int
    summary: dict[str, str]
    errors: dict[str, str]
    pnls: dict[str, TokenPnl] = field(default_factory=dict)
    total: PnlTotals | None = None


def read(r: Redis, now_ms: int) -> Snapshot:
    """Read a :class:`Snapshot` (a few pipelined round trips). Raises RedisError when Redis fails."""
    pipe = r.pipeline(transaction=False)
    pipe.zrange(keys.SERVICES, 0, -1, withscores=True)
    pipe.hgetall(keys.MD_GATEWAY)
    pipe.hgetall(keys.CLOCK)
    pipe.get(keys.HALT)
    pipe.hgetall(keys.RISK_DAILY_PNL)
    pipe.smembers(keys.TOKENS)
    pipe.zcard(keys.SCHED_OFFERS)
    pipe.hgetall(keys.SUMMARY)
    pipe.hgetall(keys.ERRORS)
    svc, gw, clock, halt, daily, tokens, offers, summary, errors = pipe.execute()
    pnls, total = system_pnl(r)
    return Snapshot(now_ms, [(i, int(s)) for i, s in svc], gw, clock, halt,
                    {d: int(v) for d, v in daily.items()}, _token_rows(r, sorted(tokens)), offers, summary,
                    errors, {p.token_id: p for p in pnls}, total)


def _token_rows(r: Redis, tokens: list[str]) -> list[tuple[str, dict[str, str], dict[str, str], dict[str, str], int]]:
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.hgetall(keys.tok(t))
        pipe.hgetall(keys.md_book(t))
        pipe.hgetall(keys.lease(t))
        pipe.hvals(keys.orders(t))
    res = pipe.execute()
    rows = []
    for i, t in enumerate(tokens):
        live = sum(1 for v in res[4 * i + 3] if '"LIVE"' in v or '"PENDING"' in v)
        rows.append((t, res[4 * i], res[4 * i + 1], res[4 * i + 2], live))
    return rows


def _age(now_ms: int, then_ms: int) -> str:
    if then_ms <= 0:
        return "-"
    sec = (now_ms - then_ms) / 1000
    return f"{sec:.1f}s" if sec < 120 else f"{sec / 60:.0f}m"


def _ms(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


def header(s: Snapshot) -> Text:
    """Replay clock, trading or HALTED, today's realized risk P&L."""
    t = Text("polyband  ", style="bold")
    if s.clock:
        epoch_wall, epoch_tape, speed = _ms(s.clock.get("epoch_wall_ms")), _ms(s.clock.get("epoch_tape_ms")), s.clock.get("speed", "1")
        tape_ms = epoch_tape + int((s.now_ms - epoch_wall) * float(speed))
        t.append(f"replay clock {datetime.fromtimestamp(tape_ms / 1000, timezone.utc):%Y-%m-%d %H:%M:%S} UTC x{speed}  ")
    else:
        t.append("live clock  ")
    t.append(f"HALTED: {s.halt}" if s.halt else "trading", style="bold red" if s.halt else "green")
    if s.daily_pnl_micro:
        day = max(s.daily_pnl_micro)
        t.append(f"  risk: realized today ({day}) {Decimal(s.daily_pnl_micro[day]) / 1_000_000:.2f} pUSD")
    return t


def lines(s: Snapshot) -> list[Text]:
    """The one-line sections: services, gateway, queues, P&L, counters, errors."""
    svc = "  ".join(f"{i} {_age(s.now_ms, ms)}" for i, ms in s.services) or "none"
    g = s.gateway
    gw = f"{g.get('state', 'absent')}  " + "  ".join(f"{k} {g.get(k, '0')}" for k in GATEWAY_FIELDS)
    gw += f"  last msg {_age(s.now_ms, _ms(g.get('last_msg_ms')))} ago" if g else ""
    counts = {st: 0 for st in STATES}
    for _, tok, *_ in s.tokens:
        counts[tok.get("state", "?")] = counts.get(tok.get("state", "?"), 0) + 1
    queues = "  ".join(f"{k} {v}" for k, v in counts.items()) + f"  offers waiting {s.offers}"
    out = [Text(f"services  {svc}"), Text(f"gateway   {gw}"), Text(f"tokens    {queues}")]
    if s.total is not None:
        tt = s.total
        out.append(Text(f"P&L pUSD  net {tt.net} = realized {tt.realized} + unrealized {tt.unrealized} + settled "
                        f"{tt.settled} - fees {tt.fees} + rebates {tt.rebates} ({tt.tokens} tokens)", style="bold"))
    out.append(Text("counters  " + "  ".join(f"{k} {v}" for k, v in sorted(s.summary.items()))))
    if s.errors:
        out.append(Text("errors    " + "  ".join(f"{k} {v}" for k, v in sorted(s.errors.items())), style="red"))
    return out


def token_table(s: Snapshot, max_rows: int) -> Table:
    """Open tokens first, then the most recently closed, at most ``max_rows`` rows."""
    t = Table("token", "market", "outcome", "state", "reason", "worker/fence", "bid", "ask", "age", "src", "pos",
              "avg", "open", "net pUSD", title="tokens", box=None, pad_edge=False)
    done = ("closed", "failed")
    rows = sorted(s.tokens, key=lambda row: (row[1].get("state") in done, -_ms(row[1].get("updated_ms"))))
    for tid, tok, book, lease, live in rows[:max_rows]:
        fresh = max(_ms(book.get("recv_ts_ms")), _ms(book.get("verified_ts_ms")))
        holder = f"{lease.get('worker') or 'offered'}/{lease.get('fence', '0')}" if lease else "-"
        pnl = s.pnls.get(tid)
        t.add_row(tid[:10] + "…", tok.get("slug", "")[:34], tok.get("outcome", "")[:8], tok.get("state", "?"),
                  tok.get("reason", "")[:22], holder, book.get("best_bid", "-"), book.get("best_ask", "-"),
                  _age(s.now_ms, fresh), book.get("source", "-"), tok.get("position", "0"), tok.get("avg_entry", "-"),
                  str(live), str(pnl.net) if pnl else "-")
    if len(rows) > max_rows:
        t.caption = f"{len(rows) - max_rows} more tokens (closed longest ago); polyband report lists every one"
    return t


def render(s: Snapshot, height: int = SCREEN_ROWS) -> Group:
    """The whole screen for a terminal ``height`` rows high."""
    top = [header(s), *lines(s)]
    return Group(*top, token_table(s, max(1, height - FIXED_ROWS - len(top))))


def render_status(r: Redis, url: str, watch: bool, console: Console | None = None) -> int:
    """Print once (exit status 0, or 1 with one line when Redis does not answer), or refresh every
    second until Ctrl-C with ``watch`` (an outage is one line on screen, retried each second)."""
    console = console or Console()
    if not watch:
        try:
            console.print(render(read(r, int(time.time() * 1000)), console.height))
            return 0
        except RedisError as exc:
            print(f"status: redis at {url} does not answer: {type(exc).__name__}: {' '.join(str(exc).split())}",
                  file=sys.stderr)
            return 1
    with Live(console=console, refresh_per_second=1, screen=False) as live:
        try:
            while True:
                live.update(_frame(r, url, console.height))
                time.sleep(1)
        except KeyboardInterrupt:
            return 0


def _frame(r: Redis, url: str, height: int) -> Group | Text:
    try:
        return render(read(r, int(time.time() * 1000)), height)
    except RedisError as exc:
        return Text(f"{datetime.now(timezone.utc):%H:%M:%S} redis at {url} does not answer "
                    f"({type(exc).__name__}); retrying every second, Ctrl-C to quit", style="red")
