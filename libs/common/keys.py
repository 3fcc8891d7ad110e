"""Every Redis key name polyband uses. Nothing else builds key strings (a test greps for ``"pb:``).

Per-token keys embed the token id in literal braces, ``pb:md:book:{7087...}``, which makes the token
id the Redis Cluster hash tag: all keys of one token share a slot, so a Lua script may touch them
together. Global keys (indexes, streams shared by all tokens) are never touched by per-token scripts.
"""
from __future__ import annotations

NS = "pb"
ALL_PATTERN = f"{NS}:*"  # SCAN pattern matching every polyband key (a run folder's Redis export)

# ---- signals (signal_ingest -> scheduler) ----
# The keys sig_publish.lua writes together carry one hash tag, {sig}: one cluster slot.
SIG_TAG = "{sig}"
SIG_STREAM = f"{NS}:{SIG_TAG}:stream"  # stream: one entry per leader fill
SIG_DEAD = f"{NS}:{SIG_TAG}:dead"  # stream: malformed rows with reason
SIG_PUBLISHED = f"{NS}:{SIG_TAG}:published"  # string: signals ever published (sig_publish.lua INCRBY)
SIG_GROUP = "scheduler"  # consumer group on SIG_STREAM
SIG_DONE = f"{NS}:sig:done"  # hash signal_id -> stream id of first effect (idempotency)
SIG_DONE_AT = f"{NS}:sig:done_at"  # zset signal_id -> signal ts_ms (market): ages pb:sig:done (retention)


# Names before the {sig} hash tag (issue 10); ``libs.common.key_migration`` renames them at start.
LEGACY_SIG_STREAM = f"{NS}:sig:stream"
LEGACY_SIG_DEAD = f"{NS}:sig:dead"
LEGACY_SIG_CURSOR_PATTERN = f"{NS}:sig:cursor:*"


def sig_cursor(account: str) -> str:
    """Hash: ``ts`` (newest seen trade timestamp, s) and ``fp:<fingerprint>`` -> count at that ts.
    Same hash tag as ``SIG_STREAM`` (``pb:{sig}:cursor:<account>``)."""
    return f"{NS}:{SIG_TAG}:cursor:{account.lower()}"


# ---- market data (md_gateway -> workers) ----
MD_SUBS = f"{NS}:md:subs"  # set of token ids that must be subscribed (scheduler)
MD_GATEWAY = f"{NS}:md:gateway"  # hash: gateway connection state and counters
MD_TICK = f"{NS}:md:tick"  # hash token -> tick size announced by tick_size_change (audit)


def md_book(token_id: str) -> str:
    """Hash: top of book of one token with its seq (see README key map)."""
    return f"{NS}:md:book:{{{token_id}}}"


def md_stream(token_id: str) -> str:
    """Capped stream: every top-of-book change of one token with its seq."""
    return f"{NS}:md:stream:{{{token_id}}}"


def token_of_md_stream(key: str) -> str:
    """The token id of an :func:`md_stream` key (inverse of ``md_stream``).

    Raises:
        ValueError: ``key`` is not an md stream key.
    """
    prefix = f"{NS}:md:stream:{{"
    if not (key.startswith(prefix) and key.endswith("}")):
        raise ValueError(f"not an md stream key: {key!r}")
    return key[len(prefix):-1]


# ---- tokens, leases, orders ----
TOKENS = f"{NS}:tokens"  # set: every token the scheduler has seen
SCHED_PENDING = f"{NS}:sched:pending"  # zset token -> signal ts_ms (FIFO queue for activation)
SCHED_OFFERS = f"{NS}:sched:offers"  # zset token -> offered wall ms (tokens waiting for a worker)
WORKERS = f"{NS}:workers"  # zset worker id -> last heartbeat wall ms


def tok(token_id: str) -> str:
    """Hash: lifecycle state, reason, market metadata, position of one token."""
    return f"{NS}:tok:{{{token_id}}}"


def lease(token_id: str) -> str:
    """Hash written only by Lua: worker, fence, mode, expires_ms, granted_ms."""
    return f"{NS}:lease:{{{token_id}}}"


def fence(token_id: str) -> str:
    """String counter: the token's fencing-token sequence; only ever INCR'd, never reset."""
    return f"{NS}:fence:{{{token_id}}}"


def orders(token_id: str) -> str:
    """Hash order_id -> JSON of our order (side, price, size, matched, status, fence, ts_ms)."""
    return f"{NS}:orders:{{{token_id}}}"


# ---- journal, counters, services ----
EVENTS = f"{NS}:events"  # capped stream: every decision and failure with a reason code
COUNTS = f"{NS}:counts"  # hash reason -> count (every journaled reason)
ERRORS = f"{NS}:errors"  # hash reason -> count (only failures)
SUMMARY = f"{NS}:summary"  # hash of run-wide counters (signals, orders_posted, fills, ...)
SERVICES = f"{NS}:svc"  # zset instance id -> last heartbeat wall ms
CLOCK = f"{NS}:clock"  # hash: replay clock published by the paper venue
HALT = f"{NS}:halt"  # string: reason, when trading is halted by risk or by hand
ALERT_STATE = f"{NS}:alert:state"  # hash (alerter): cursor (last pb:events id handled), state (JSON), outbox (JSON)


def service(instance_id: str) -> str:
    """Hash: one service instance's state (service, pid, started_ms, last_ms, detail)."""
    return f"{NS}:svc:{instance_id}"


# ---- maker_worker ----
RISK_DAILY_PNL = f"{NS}:risk:daily_pnl"  # hash UTC day (YYYY-MM-DD, market time) -> realized P&L, micro-USD (HINCRBY)


# ---- scheduler ----
SCHED_TRACKED = f"{NS}:sched:tracked"  # set: tokens the scheduler still looks after (not yet cleaned up)
SCHED_HEALTH = f"{NS}:sched:health"  # hash token -> JSON health/feed marks; field "_gateway" for the feed link


# ---- account-wide risk (maker_worker; one hash tag {acct}: a risk script touches one cluster slot) ----
RISK_EXPOSURE = f"{NS}:risk:{{acct}}:exposure"  # hash token -> "fence:exposure_micro_usd:shares_micro" (Lua only)
RISK_UPNL = f"{NS}:risk:{{acct}}:upnl"  # hash token -> unrealized P&L, micro-USD (holder's mark; Lua only)


# ---- user channel (user_feed -> workers) ----
USER_FEED = f"{NS}:user:feed"  # hash: user-channel link health (state, connected, last_msg_wall_ms, counters)
USER_SEEN = f"{NS}:user:seen"  # hash token -> newest trade match time seen (market ms): the REST backfill's start


def user_stream(token_id: str) -> str:
    """Capped stream: our orders' and trades' user-channel events for one token (user_feed -> worker)."""
    return f"{NS}:user:{{{token_id}}}"


def fills(token_id: str) -> str:
    """Hash ``<trade_id>:<order_id>`` -> JSON of one fill of our order: the per-token idempotency ledger."""
    return f"{NS}:fills:{{{token_id}}}"


def orders_pattern() -> str:
    """SCAN pattern matching every :func:`orders` key."""
    return f"{NS}:orders:{{*}}"


def token_of_orders(key: str) -> str:
    """The token id of an :func:`orders` key (inverse of ``orders``).

    Raises:
        ValueError: ``key`` is not an orders key.
    """
    prefix = f"{NS}:orders:{{"
    if not (key.startswith(prefix) and key.endswith("}")):
        raise ValueError(f"not an orders key: {key!r}")
    return key[len(prefix):-1]


def fills_pattern() -> str:
    """SCAN pattern matching every :func:`fills` key."""
    return f"{NS}:fills:{{*}}"


def token_of_fills(key: str) -> str:
    """The token id of a :func:`fills` key (inverse of ``fills``).

    Raises:
        ValueError: ``key`` is not a fills key.
    """
    prefix = f"{NS}:fills:{{"
    if not (key.startswith(prefix) and key.endswith("}")):
        raise ValueError(f"not a fills key: {key!r}")
    return key[len(prefix):-1]


def token_record_keys(token_id: str) -> list[str]:
    """Every per-token key retention deletes when a finished token ages out, in the order
    ``token_purge.lua`` expects: tok, lease, orders, fills, user stream, md book, md stream.
    The fence counter (:func:`fence`) is deliberately not listed: it must never go back."""
    return [tok(token_id), lease(token_id), orders(token_id), fills(token_id), user_stream(token_id),
            md_book(token_id), md_stream(token_id)]
