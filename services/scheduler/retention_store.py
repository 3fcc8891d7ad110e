"""Retention, the I/O shell: one bounded pass every ``retention_interval_s`` (wall) from the
scheduler's step; the rules are in ``services.scheduler.retention`` (pure).

A pass has five parts, each bounded by ``retention_batch`` and each failing on its own:
``signals`` (index the done entries of the oldest delivered-and-acked stream entries in
``pb:sig:done_at``, then XTRIM MINID), ``done`` (HDEL ``pb:sig:done`` entries past the horizon),
``tokens`` (SSCAN ``pb:tokens``; ``token_purge.lua`` per finished, aged-out token, then its
fields in the global hashes and its zero ``pb:risk:{acct}`` entries), ``services`` (dead instances
in ``pb:svc`` and ``pb:workers``; the ``pb:svc:<id>`` hashes expire on their own 24 h after the
last heartbeat) and ``risk_days`` (old ``pb:risk:daily_pnl`` days). A pass that deleted anything
is journaled ``RETENTION_TRIMMED`` with the counts; a part that failed ``RETENTION_FAILED``
(error, with ``part`` and ``error``), both counted in ``pb:counts`` by the journal. A lost
connection is re-raised after journaling so that ``run_loop`` handles the outage.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import keys, lua
from libs.common.journal import Journal
from services.scheduler import retention as rt

log = logging.getLogger(__name__)

STATES_ARG = ",".join(sorted(rt.PURGEABLE_STATES))
ACTIVITY_ARG = ",".join(rt.ACTIVITY_FIELDS)


@dataclass
class PassResult:
    """What one pass did: ``counts`` (part -> items deleted), ``kept`` (token keep reason -> n),
    ``failed`` (part -> error text)."""

    counts: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        """Items deleted by the pass, all parts together."""
        return sum(self.counts.values())


class Retention:
    """Runs retention passes on one decoded Redis client.

    Args:
        r: decoded Redis client.
        journal: the scheduler's journal.
        rules: ``RetentionRules`` (``interval_wall_ms`` 0: never runs).
    """

    def __init__(self, r: Redis, journal: Journal, rules: rt.RetentionRules) -> None:
        self.r, self.journal, self.rules = r, journal, rules
        self._purge = lua.register(r, "token_purge")
        self._risk_forget = lua.register(r, "risk_forget")
        self._next_wall = 0
        self._token_cursor = 0
        self._oldest_event: int | None = None
        self.passes = 0

    def maybe_run(self, now_ms: int, wall_ms: int) -> PassResult | None:
        """Run a pass when one is due (every ``interval_wall_ms`` wall ms); None otherwise."""
        if self.rules.interval_wall_ms <= 0 or wall_ms < self._next_wall:
            return None
        self._next_wall = wall_ms + self.rules.interval_wall_ms
        return self.run(now_ms, wall_ms)

    def run(self, now_ms: int, wall_ms: int) -> PassResult:
        """One pass (module docstring). Raises redis ConnectionError/TimeoutError after journaling."""
        res = PassResult()
        parts: list[tuple[str, Callable[[], None]]] = [
            ("signals", lambda: res.counts.update(signals=self.trim_signals(wall_ms))),
            ("done", lambda: res.counts.update(done=self.expire_done(now_ms))),
            ("tokens", lambda: self.purge_tokens(now_ms, res)),
            ("services", lambda: res.counts.update(self.forget_services(wall_ms))),
            ("risk_days", lambda: res.counts.update(risk_days=self.trim_risk_days(now_ms))),
        ]
        lost: RedisError | None = None
        for name, part in parts:
            try:
                part()
            except RedisError as exc:
                res.failed[name] = f"{type(exc).__name__}: {exc}"[:300]
                self.journal.record("RETENTION_FAILED", level="error", part=name, error=res.failed[name])
                if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
                    lost = exc
                    break
        self.passes += 1
        if res.deleted:
            fields = {k: v for k, v in sorted(res.counts.items()) if v}
            fields.update({f"kept_{k.lower()}": v for k, v in sorted(res.kept.items())})
            self.journal.record("RETENTION_TRIMMED", **fields)  # type: ignore[arg-type]
        if lost is not None:
            raise lost
        return res

    # ---- signals ----
    def groups(self) -> list[rt.GroupState]:
        """Every consumer group of ``pb:sig:stream`` with its oldest pending id ([] without the stream)."""
        try:
            infos = self.r.xinfo_groups(keys.SIG_STREAM)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise
        out = []
        for g in infos:
            oldest = None
            if int(g.get("pending") or 0):
                oldest = self.r.xpending(keys.SIG_STREAM, g["name"]).get("min")
            out.append(rt.GroupState(str(g["last-delivered-id"]), oldest))
        return out

    def trim_signals(self, wall_ms: int) -> int:
        """Index, then trim, up to ``batch`` delivered-and-acked entries older than ``signals_ms``."""
        minid = rt.stream_minid(wall_ms - self.rules.signals_ms, self.groups())
        if minid is None:
            return 0
        below = self.r.xrange(keys.SIG_STREAM, "-", "(" + minid, count=self.rules.batch)
        if not below:
            return 0
        ages = {}
        for _id, f in below:
            sid, ts = f.get("signal_id", ""), f.get("ts_ms", "")
            if sid and ts.lstrip("-").isdigit():
                ages[sid] = int(ts)
        if ages:
            self.r.zadd(keys.SIG_DONE_AT, ages)  # before the trim: a crash leaves only extra index rows
        bound = rt.trim_bound(minid, [i for i, _ in below], self.rules.batch)
        return int(self.r.xtrim(keys.SIG_STREAM, minid=bound, approximate=False))

    def expire_done(self, now_ms: int) -> int:
        """HDEL up to ``batch`` ``pb:sig:done`` entries whose signal can no longer be published."""
        horizon = rt.done_horizon_ms(now_ms, self.rules)
        rows = self.r.zrangebyscore(keys.SIG_DONE_AT, "-inf", f"({horizon}", start=0, num=self.rules.batch,
                                    withscores=True)
        if not rows:
            return 0
        accounts = sorted({rt.account_of(sid) for sid, _ in rows})
        pipe = self.r.pipeline(transaction=False)
        for a in accounts:
            pipe.hget(keys.sig_cursor(a), "ts")
        raw = dict(zip(accounts, pipe.execute()))
        gone = []
        for sid, ts in rows:
            cur = raw[rt.account_of(sid)]
            if cur is not None and not str(cur).isdigit():
                continue  # a corrupt cursor: keep (signal_ingest reports it)
            if rt.done_deletable(int(ts), None if cur is None else int(cur), now_ms, self.rules):
                gone.append(sid)
        if not gone:
            return 0
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(keys.SIG_DONE, *gone)
        pipe.zrem(keys.SIG_DONE_AT, *gone)
        return int(pipe.execute()[0])

    # ---- tokens ----
    def _in_use(self) -> set[str]:
        pipe = self.r.pipeline(transaction=False)
        pipe.smembers(keys.SCHED_TRACKED)
        pipe.smembers(keys.MD_SUBS)
        pipe.zrange(keys.SCHED_OFFERS, 0, -1)
        pipe.zrange(keys.SCHED_PENDING, 0, -1)
        pipe.xrange(keys.EVENTS, "-", "+", count=1)
        *sets, first = pipe.execute()
        self._oldest_event = _event_ms(first)
        return set().union(*sets)

    def purge_tokens(self, now_ms: int, res: PassResult) -> None:
        """Purge the aged-out finished tokens of the next SSCAN chunk of ``pb:tokens``."""
        self._token_cursor, tokens = self.r.sscan(keys.TOKENS, self._token_cursor, count=self.rules.batch)
        if not tokens:
            return
        in_use = self._in_use()
        cutoff = rt.token_cutoff(now_ms, self.rules, self._oldest_event)
        names = ["state", *rt.SHARE_FIELDS, *rt.ACTIVITY_FIELDS]
        pipe = self.r.pipeline(transaction=False)
        for t in tokens:
            pipe.hmget(keys.tok(t), names)
        tried: list[str] = []
        calls = self.r.pipeline(transaction=False)
        for t, values in zip(tokens, pipe.execute()):
            tok = {n: v for n, v in zip(names, values) if v is not None}
            why = rt.token_verdict(tok, cutoff, t in in_use)
            if why != "PURGE":
                res.kept[why] += 1
                continue
            tried.append(t)
            lua.queue(calls, self._purge, keys.token_record_keys(t), [cutoff, STATES_ARG, ACTIVITY_ARG])  # cluster-safe
        purged: list[str] = []
        for t, (ok, detail) in zip(tried, calls.execute() if tried else []):
            if int(ok) == 1:
                purged.append(t)
                res.counts["token_keys"] += int(detail)
            else:
                res.kept[str(detail)] += 1
        if purged:
            self._forget_tokens(purged)
            res.counts["tokens"] += len(purged)

    def _forget_tokens(self, tokens: list[str]) -> None:
        """The purged tokens' members and fields in global keys (other slots: not in the token script)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.srem(keys.TOKENS, *tokens)
        for k in (keys.SCHED_HEALTH, keys.USER_SEEN, keys.MD_TICK):
            pipe.hdel(k, *tokens)
        pipe.execute()
        self._risk_forget(keys=[keys.RISK_EXPOSURE, keys.RISK_UPNL], args=tokens)

    # ---- services, risk days ----
    def forget_services(self, wall_ms: int) -> dict[str, int]:
        """ZREMRANGEBYSCORE the instances of ``pb:svc`` and ``pb:workers`` silent for ``services_wall_ms``."""
        cutoff = wall_ms - self.rules.services_wall_ms
        pipe = self.r.pipeline(transaction=False)
        pipe.zremrangebyscore(keys.SERVICES, "-inf", f"({cutoff}")
        pipe.zremrangebyscore(keys.WORKERS, "-inf", f"({cutoff}")
        svc, workers = pipe.execute()
        return {"services": int(svc), "workers": int(workers)}

    def trim_risk_days(self, now_ms: int) -> int:
        """HDEL ``pb:risk:daily_pnl`` days more than ``risk_days`` before today (market time)."""
        old = rt.old_days(self.r.hkeys(keys.RISK_DAILY_PNL), now_ms, self.rules.risk_days)
        return int(self.r.hdel(keys.RISK_DAILY_PNL, *old)) if old else 0


def _event_ms(first: list) -> int | None:
    """``ts_ms`` of the oldest journal entry (market ms), None when the journal is empty or unreadable."""
    if not first:
        return None
    value = first[0][1].get("ts_ms", "")
    return int(value) if value.lstrip("-").isdigit() else None
