"""Retention, the pure part: what may be deleted, given what Redis holds and the time (issue 10).

Nothing here does I/O; ``retention_store`` reads Redis, asks these functions, and deletes. Rules:

- Signal stream ``pb:sig:stream``: entries older than ``signals_ms`` (by stream id, which is the
  Redis wall clock) go, but only below every consumer group's last-delivered id and below its
  oldest pending id (:func:`stream_minid`): an entry not yet delivered, or delivered and not acked,
  is never trimmed. No consumer group: nothing was delivered, nothing is trimmed.
- ``pb:sig:done`` (idempotency by signal id): a done entry goes only when its signal can never be
  published again (:func:`done_deletable`). signal_ingest's cursor guarantees that a row older than
  the account's cursor ``ts`` is never published again; if the cursor is lost, the first run after
  it republishes only rows newer than ``now - lookback_s``. So an entry goes once its signal's
  ``ts_ms`` is older than ``now - max(signals_ms, lookback_ms)`` and older than its account's
  cursor second. Ages come from ``pb:sig:done_at`` (signal_id -> ts_ms), filled from the stream
  entries as they are trimmed (a done entry whose stream entry still exists is always kept).
- Tokens: a token's records (``keys.token_record_keys``) go only when it is finished (closed,
  cooldown, failed, resolved), not tracked, subscribed, offered or queued, holds no lease, no open
  order (PENDING/LIVE), no shares (``position``, ``redeem_pending``), and its last activity (the
  newest of ``updated_ms, last_fill_ms, activated_ms, signal_ts_ms, cooldown_until_ms``, market ms)
  is older than :func:`token_cutoff`: ``tokens_ms`` back, and never newer than the oldest journal
  entry, so that ``polyband report`` (which reads the whole ``pb:events`` journal with every token
  in ``pb:tokens``) never shows a journaled token whose records are gone.
- Service instances in ``pb:svc`` and workers in ``pb:workers`` whose last heartbeat is older than
  ``services_ms`` (wall) are forgotten; ``pb:risk:daily_pnl`` days older than ``risk_days``.
Times: ``*_ms`` are Unix ms, market time unless named ``wall``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

PURGEABLE_STATES = frozenset({"closed", "cooldown", "failed", "resolved"})
ACTIVITY_FIELDS = ("updated_ms", "last_fill_ms", "activated_ms", "signal_ts_ms", "cooldown_until_ms")
SHARE_FIELDS = ("position", "redeem_pending")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class RetentionRules:
    """Retention windows in ms (see ``SchedulerSettings`` ``retention_*`` for meanings).

    ``interval_wall_ms`` 0 turns retention off; ``batch`` bounds the work of one pass per part.
    """

    interval_wall_ms: int = 300_000
    signals_ms: int = 7 * DAY_MS
    tokens_ms: int = 7 * DAY_MS
    services_wall_ms: int = DAY_MS
    risk_days: int = 30
    lookback_ms: int = 0
    batch: int = 1000

    @classmethod
    def from_settings(cls, s: Any) -> "RetentionRules":
        """Rules from a ``SchedulerSettings`` (seconds -> ms)."""
        return cls(interval_wall_ms=int(s.retention_interval_s * 1000), signals_ms=int(s.retention_signals_s * 1000),
                   tokens_ms=int(s.retention_tokens_s * 1000),
                   services_wall_ms=int(s.retention_services_s * 1000), risk_days=s.retention_risk_days,
                   lookback_ms=int(s.lookback_s) * 1000, batch=s.retention_batch)


def parse_id(stream_id: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` -> (ms, seq).

    Raises:
        ValueError: naming the id when it is not a stream id.
    """
    ms, sep, seq = stream_id.partition("-")
    if not (ms.isdigit() and (not sep or seq.isdigit())):
        raise ValueError(f"stream id={stream_id!r} is not <ms>-<seq>")
    return int(ms), int(seq or 0)


def next_id(stream_id: str) -> str:
    """The smallest stream id above ``stream_id`` (for an exclusive MINID)."""
    ms, seq = parse_id(stream_id)
    return f"{ms}-{seq + 1}"


@dataclass(frozen=True)
class GroupState:
    """One consumer group of a stream: ``last_delivered`` id and the ``oldest_pending`` id (None when
    nothing is pending)."""

    last_delivered: str
    oldest_pending: str | None = None


def stream_minid(cutoff_wall_ms: int, groups: Iterable[GroupState]) -> str | None:
    """The MINID for ``XTRIM``: entries with an id below it may go. The lowest of the age cutoff
    (``<cutoff>-0``), every group's last-delivered id and every group's oldest pending id; None
    when nothing may go (no group, or the MINID is at the stream's start)."""
    groups = list(groups)
    if not groups:
        return None
    bounds = [(max(cutoff_wall_ms, 0), 0)]
    for g in groups:
        bounds.append(parse_id(g.last_delivered))
        if g.oldest_pending:
            bounds.append(parse_id(g.oldest_pending))
    low = min(bounds)
    return None if low <= (0, 0) else f"{low[0]}-{low[1]}"


def trim_bound(minid: str, below: list[str], batch: int) -> str:
    """The MINID of one bounded pass: ``minid`` itself when ``below`` (ids under ``minid``, oldest
    first, read up to ``batch``) is not a full batch, else just above the last id read."""
    if len(below) < batch or not below:
        return minid
    return next_id(below[-1])


def done_horizon_ms(now_ms: int, rules: RetentionRules) -> int:
    """Signals with ``ts_ms`` below this are past the age window and the first-run lookback."""
    return now_ms - max(rules.signals_ms, rules.lookback_ms)


def account_of(signal_id: str) -> str:
    """The account of a signal id ``<account>:<tx_hash>:<fp>:<n>`` (lower-case)."""
    return signal_id.split(":", 1)[0].lower()


def done_deletable(ts_ms: int, cursor_ts_s: int | None, now_ms: int, rules: RetentionRules) -> bool:
    """True when a done entry of a signal traded at ``ts_ms`` (market ms) may go: older than
    :func:`done_horizon_ms` and (when the account has a cursor, ``cursor_ts_s`` in seconds) older
    than the cursor's second. A missing cursor is covered by the lookback horizon."""
    if ts_ms >= done_horizon_ms(now_ms, rules):
        return False
    return cursor_ts_s is None or ts_ms < cursor_ts_s * 1000


def _num(raw: Mapping[str, str], name: str) -> Decimal | None:
    try:
        return Decimal(raw.get(name) or "0")
    except InvalidOperation:
        return None


def last_activity_ms(tok: Mapping[str, str]) -> int | None:
    """Newest of :data:`ACTIVITY_FIELDS` (market ms); None when one holds a non-integer."""
    out = 0
    for name in ACTIVITY_FIELDS:
        value = tok.get(name) or "0"
        if not value.lstrip("-").isdigit():
            return None
        out = max(out, int(value))
    return out


def token_cutoff(now_ms: int, rules: RetentionRules, oldest_event_ms: int | None) -> int:
    """Tokens whose last activity is below this may go: ``tokens_ms`` back, and not past the oldest
    journal entry (``oldest_event_ms``, market ms; None for an empty journal)."""
    cutoff = now_ms - rules.tokens_ms
    return cutoff if oldest_event_ms is None else min(cutoff, oldest_event_ms)


def token_verdict(tok: Mapping[str, str], cutoff_ms: int, in_use: bool) -> str:
    """Why a token is kept (a reason code), or ``"PURGE"``. ``in_use``: the token is tracked,
    subscribed, offered or queued. Lease and open orders are checked again, atomically, by
    ``token_purge.lua``; this decides which tokens are worth that call."""
    if in_use:
        return "IN_USE"
    if not tok:
        return "PURGE"  # nothing but leftovers (streams, books); the script refuses if orders or fills exist
    if tok.get("state", "") not in PURGEABLE_STATES:
        return "STATE"
    for name in SHARE_FIELDS:
        n = _num(tok, name)
        if n is None or n != 0:
            return "SHARES"
    last = last_activity_ms(tok)
    if last is None:
        return "BAD_FIELD"
    return "RECENT" if last >= cutoff_ms else "PURGE"


def dead_members(scores: Iterable[tuple[str, float]], cutoff_wall_ms: int) -> list[str]:
    """Members of a heartbeat zset whose last beat (wall ms) is below ``cutoff_wall_ms``."""
    return [m for m, s in scores if s < cutoff_wall_ms]


def old_days(fields: Iterable[str], now_ms: int, keep_days: int) -> list[str]:
    """Day fields (``YYYY-MM-DD``) more than ``keep_days`` before the day of ``now_ms``; fields that
    are not days are left alone."""
    first_kept = (datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc) - timedelta(days=keep_days)).date()
    out = []
    for f in fields:
        try:
            day = datetime.strptime(f, "%Y-%m-%d").date()
        except ValueError:
            continue
        if day < first_kept:
            out.append(f)
    return sorted(out)
