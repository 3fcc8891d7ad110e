"""Reads a run's Redis into ``RunData`` (the thin I/O shell of the report): pipelined, the journal
with XRANGE in chunks. ``parse_since`` turns ``--since`` into market ms."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson
from redis import Redis

from libs.common import keys
from libs.common.pnl_redis import system_pnl
from services.report.model import Event, RunData, as_int, ts

CHUNK = 5000  # journal entries per XRANGE
BATCH = 500  # tokens per pipeline
UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_since(text: str, now_ms: int) -> int:
    """``--since`` as market ms: an integer (Unix ms), an ISO time (UTC when no zone is given) or a
    span back from ``now_ms`` (``30m``, ``2h``, ``45s``, ``1d``).

    Raises:
        ValueError: naming ``--since`` and the value when it is none of these.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"(\d+)\s*([smhd])", text)
    if m:
        return now_ms - int(m.group(1)) * UNITS_MS[m.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since={text!r}: not Unix ms, an ISO time or a span like 30m / 2h") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def read_events(r: Redis) -> list[Event]:
    """Every pb:events entry in stream order, read CHUNK at a time."""
    out: list[Event] = []
    start = "-"
    while True:
        page = r.xrange(keys.EVENTS, min=start, max="+", count=CHUNK)
        out.extend(fields for _id, fields in page)
        if len(page) < CHUNK:
            return out
        start = "(" + page[-1][0]


def _decode_orders(raw: dict[str, str]) -> dict[str, dict[str, object]]:
    out = {}
    for oid, text in raw.items():
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out[oid] = rec
    return out


def _read_tokens(r: Redis, d: RunData, tokens: list[str]) -> None:
    for i in range(0, len(tokens), BATCH):
        part = tokens[i:i + BATCH]
        pipe = r.pipeline(transaction=False)
        for t in part:
            pipe.hgetall(keys.tok(t))
            pipe.hgetall(keys.orders(t))
            pipe.hgetall(keys.lease(t))
        res = pipe.execute()
        for j, t in enumerate(part):
            d.toks[t] = res[3 * j]
            if res[3 * j + 1]:
                d.orders[t] = _decode_orders(res[3 * j + 1])
            if res[3 * j + 2]:
                d.leases[t] = res[3 * j + 2]


def _ints(h: dict[str, str]) -> dict[str, int]:
    return {k: as_int(v) or 0 for k, v in sorted(h.items())}


def read_run(r: Redis, since: str | None = None) -> RunData:
    """Read everything the answers need from ``r`` (decoded client); ``since`` (``parse_since``) cuts
    the journal and the orders. "now" is the newest journal time (market ms).

    Raises:
        ValueError: a bad ``since``; redis.RedisError: Redis failed.
    """
    events = read_events(r)
    now_ms = max((ts(e) for e in events[-1000:]), default=0)
    d = RunData(now_ms=now_ms)
    d.since_ms = parse_since(since, now_ms) if since else 0
    d.events = [e for e in events if ts(e) >= d.since_ms] if d.since_ms else events
    pipe = r.pipeline(transaction=False)
    for k in (keys.SUMMARY, keys.COUNTS, keys.ERRORS, keys.MD_GATEWAY, keys.USER_FEED):
        pipe.hgetall(k)
    pipe.zrange(keys.SCHED_PENDING, 0, -1)
    pipe.zrange(keys.SCHED_OFFERS, 0, -1)
    pipe.smembers(keys.TOKENS)
    summary, counts, errors, d.gateway, d.user_feed, d.pending, d.offers, tokens = pipe.execute()
    d.summary, d.counts, d.errors = _ints(summary), _ints(counts), _ints(errors)
    _read_tokens(r, d, sorted(tokens))
    d.pnl, _total = system_pnl(r)
    return d


def read_curve(r: Redis, d: RunData) -> tuple[list, list, dict]:
    """Inputs of ``libs.common.pnl.equity_curve`` from Redis: every token's fills (the same sources as
    ``pnl_redis.token_from_hashes``), marks ``(exch_ts_ms, token, best_bid)`` from the capped
    ``pb:md:stream`` entries, payouts ``token -> (end_ms, payout)`` from pb:tok."""
    from decimal import Decimal

    from libs.common.pnl_redis import ledger_fills, order_fills, stream_fills
    from libs.common.pnl import stored_price

    tokens = sorted({t.token_id for t in d.pnl})
    pipe = r.pipeline(transaction=False)
    for t in tokens:
        pipe.hgetall(keys.fills(t))
        pipe.hgetall(keys.orders(t))
        pipe.xrange(keys.user_stream(t))
        pipe.xrange(keys.md_stream(t))
    res = pipe.execute()
    fills, marks, payouts = [], [], {}
    for i, t in enumerate(tokens):
        ledger, orders, user, md = res[4 * i: 4 * i + 4]
        tok = d.toks.get(t, {})
        f = ledger_fills(t, ledger) + stream_fills(t, user, ledger, orders, tok)
        fills += f + order_fills(t, orders, f)
        marks += [(as_int(e.get("exch_ts_ms", "")) or 0, t, Decimal(e["best_bid"])) for _id, e in md if e.get("best_bid")]
        payout = stored_price(tok.get("payout"))
        if payout is not None:
            payouts[t] = (as_int(tok.get("end_ms", "")) or 0, payout)
    marks.sort(key=lambda m: (m[0], m[1]))
    return fills, marks, payouts
