"""Plain data a report is computed from (read by ``reader``, no Redis here) and small pure helpers.

Units: every ``*_ms`` is market time in Unix milliseconds; prices in [0, 1] and sizes in shares
are Decimal; money is pUSD (Decimal, from ``libs.common.pnl``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from libs.common.pnl import TokenPnl

Event = dict[str, str]  # one pb:events entry: ts_ms, svc, reason, level, token_id and its own fields
RATE = Decimal("0.001")


@dataclass(frozen=True)
class Params:
    """Report parameters: ``reconnect_window_ms`` (answer 8, market ms after each reconnect)."""

    reconnect_window_ms: int = 5 * 60_000


@dataclass
class RunData:
    """Everything the answers read, as plain data.

    ``events``: pb:events entries in stream order (already cut to ``--since``); ``toks``: token ->
    pb:tok hash; ``orders``: token -> order id -> decoded pb:orders record; ``leases``: token ->
    pb:lease hash (held tokens only); ``summary``/``counts``/``errors``: the run-wide hashes (str ->
    int); ``gateway``/``user_feed``: pb:md:gateway and pb:user:feed hashes; ``pending``: tokens in
    pb:sched:pending; ``offers``: tokens in pb:sched:offers; ``pnl``: TokenPnl of every token with a
    fill (``libs.common.pnl_redis.system_pnl``); ``now_ms``: the report's "now" (market ms);
    ``since_ms``: the ``--since`` cut (0 = none).
    """

    events: list[Event] = field(default_factory=list)
    toks: dict[str, dict[str, str]] = field(default_factory=dict)
    orders: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)
    leases: dict[str, dict[str, str]] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    gateway: dict[str, str] = field(default_factory=dict)
    user_feed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)
    pnl: list[TokenPnl] = field(default_factory=list)
    now_ms: int = 0
    since_ms: int = 0


def ts(e: Event) -> int:
    """The market-time stamp (ms) of an event; 0 when missing or not an integer."""
    try:
        return int(e.get("ts_ms") or 0)
    except ValueError:
        return 0


def as_int(raw: object) -> int | None:
    """An integer field (``data_age_ms``, ``gap_ms``...) or None when absent or not an integer."""
    try:
        return int(str(raw))
    except ValueError:
        return None


def percentile(values: list[int], q: int) -> int | None:
    """Nearest-rank ``q``-th percentile (q in 1..100) of integer ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-q * len(ordered) // 100))  # ceil(q/100 * n)
    return ordered[rank - 1]


def ratio(num: int, den: int) -> Decimal | None:
    """``num / den`` to 3 decimals (half even); None when ``den`` is 0."""
    if den <= 0:
        return None
    return (Decimal(num) / Decimal(den)).quantize(RATE, rounding=ROUND_HALF_EVEN)


def per_minute(n: int, span_ms: int) -> Decimal | None:
    """``n`` per minute over ``span_ms`` milliseconds (3 decimals); None for an empty span."""
    if span_ms <= 0:
        return None
    return (Decimal(n) * 60_000 / Decimal(span_ms)).quantize(RATE, rounding=ROUND_HALF_EVEN)


def by_token(events: list[Event], reasons: set[str]) -> dict[str, list[Event]]:
    """Events whose reason is in ``reasons``, grouped by token id (stream order kept)."""
    out: dict[str, list[Event]] = {}
    for e in events:
        if e.get("reason") in reasons:
            out.setdefault(e.get("token_id", ""), []).append(e)
    return out
