"""Redis side of user_feed: publishing entries to the per-token streams, the newest match time seen
per token, and the tokens and orders a REST backfill must look at.

``pb:user:{token}`` (capped stream, MAXLEN ~ ``stream_maxlen``): one entry per parsed event, fields
as ``parse`` builds them (plain strings). ``pb:user:seen`` (hash token -> market ms): newest trade
match time published for the token; the backfill asks the venue for trades from there on.
"""
from __future__ import annotations

import orjson
from redis import Redis

from libs.common import keys
from services.user_feed.parse import Entry

OPEN_STATUSES = ("PENDING", "LIVE")


class StreamStore:
    """Writes entries (one pipelined round trip per call) and keeps ``seen`` in memory and Redis.

    Args:
        r: decoded Redis client. maxlen: approximate cap of each per-token stream.
    """

    def __init__(self, r: Redis, maxlen: int) -> None:
        self.r, self.maxlen = r, maxlen
        self.seen: dict[str, int] = {t: int(v) for t, v in r.hgetall(keys.USER_SEEN).items() if v.isdigit()}

    def publish(self, entries: list[Entry]) -> int:
        """XADD every entry to its token's stream (in order) and advance ``seen``; returns how many.

        Raises:
            RedisError: nothing is lost on the wire side: the caller's run_loop retries the step.
        """
        if not entries:
            return 0
        pipe = self.r.pipeline(transaction=False)
        advanced: dict[str, int] = {}
        for token, fields in entries:
            pipe.xadd(keys.user_stream(token), fields, maxlen=self.maxlen, approximate=True)
            ts = int(fields.get("ts_ms") or 0) if fields.get("kind") == "trade" else 0
            if ts > max(self.seen.get(token, 0), advanced.get(token, 0)):
                advanced[token] = ts
        if advanced:
            pipe.hset(keys.USER_SEEN, mapping={t: str(v) for t, v in advanced.items()})
        pipe.execute()
        self.seen.update(advanced)
        return len(entries)


def open_orders_by_token(r: Redis) -> dict[str, list[str]]:
    """Token -> ids of our PENDING/LIVE order records (``pb:orders:{token}``), plus every token the
    scheduler still tracks (``pb:sched:tracked``, possibly with no open order). Unreadable records
    are skipped here (the worker journals them)."""
    out: dict[str, list[str]] = {t: [] for t in r.smembers(keys.SCHED_TRACKED)}
    for key in r.scan_iter(match=keys.orders_pattern(), count=500):
        token = keys.token_of_orders(key)
        ids = out.setdefault(token, [])
        for oid, text in r.hgetall(key).items():
            try:
                rec = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("status") in OPEN_STATUSES and not oid.startswith("intent:"):
                ids.append(oid)
    return out
