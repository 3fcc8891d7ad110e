"""Redis side of the scheduler: one snapshot per step, and execution of decisions.

``snapshot`` costs two round trips whatever the number of tokens: the index sets, then one
pipeline reading every token's ``pb:lease``, ``pb:tok`` and ``pb:md:book`` hash plus the indexes
again. It is not a MULTI (keys of many tokens live in different Redis Cluster slots); instead each
token's lease is read BEFORE its token hash: a worker writes its final ``state`` and only then
releases the lease, so a lease seen gone or unheld implies the final state is seen too (never an
"active token without lease" that is really a finished one).
``apply`` executes a :class:`Decision`: a guarded transition (WATCH/MULTI compare-and-set on
``state``), lease operations through ``Leases``, the index writes in one pipeline, then the journal.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Mapping

from redis import Redis
from redis.exceptions import WatchError

from libs.common import keys
from libs.common.journal import Journal
from libs.common.leases import Leases, holder_deadline
from services.scheduler.model import (
    SIGNAL_OF_TOKEN, BadField, BookView, Decision, Effect, HealthRecord, LeaseView, TokenView, Transition,
)

log = logging.getLogger(__name__)

GATEWAY_FIELD = "_gateway"  # field of keys.SCHED_HEALTH holding the gateway's record
CAS_RETRIES = 5


@dataclass(frozen=True)
class Snapshot:
    """Every token the scheduler looks after, the FIFO queue, and the gateway's state."""

    views: dict[str, TokenView]
    queue: list[tuple[str, float]]
    gateway: dict[str, str]
    gateway_health: HealthRecord


class Store:
    """Reads snapshots and applies decisions for one scheduler.

    Args:
        r: decoded Redis client.
        leases: lease operations (Lua) on the same Redis.
        journal: journal of this scheduler instance.
    """

    def __init__(self, r: Redis, leases: Leases, journal: Journal) -> None:
        self.r, self.leases, self.journal = r, leases, journal
        self._reported: set[tuple[str, str, str]] = set()
        # takeover rule (libs.common.leases.holder_deadline): a held lease counts as held until that
        # deadline; 0 = plain expiry. Set by Scheduler (lease TTL) and __main__ (RedisGate.up_since_ms).
        self.lease_grace_ms = 0
        self.redis_up_since: Callable[[], int] = lambda: 0

    # ---- reading ----
    def universe(self) -> list[str]:
        """Tracked tokens plus any token found in subs, offers or the queue (orphans get repaired)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.smembers(keys.SCHED_TRACKED)
        pipe.smembers(keys.MD_SUBS)
        pipe.zrange(keys.SCHED_OFFERS, 0, -1)
        pipe.zrange(keys.SCHED_PENDING, 0, -1)
        found: set[str] = set()
        for part in pipe.execute():
            found.update(part)
        return sorted(found)

    def snapshot(self, reuse: Mapping[str, TokenView] | None = None) -> Snapshot:
        """One pipelined read of every token of :meth:`universe` (two round trips in all). Tokens in
        ``reuse`` (views of an earlier snapshot: the scheduler's quiet finished tokens) are not read
        again: their view is kept with the index memberships and health of this snapshot."""
        reuse = reuse or {}
        every = self.universe()
        tokens = [t for t in every if t not in reuse]
        pipe = self.r.pipeline(transaction=False)
        for t in tokens:
            pipe.hgetall(keys.lease(t))  # lease first: see the module docstring
            pipe.hgetall(keys.tok(t))
            pipe.hgetall(keys.md_book(t))
        pipe.smembers(keys.SCHED_TRACKED)
        pipe.smembers(keys.MD_SUBS)
        pipe.zrange(keys.SCHED_OFFERS, 0, -1, withscores=True)
        pipe.zrange(keys.SCHED_PENDING, 0, -1, withscores=True)
        pipe.hgetall(keys.MD_GATEWAY)
        pipe.hgetall(keys.SCHED_HEALTH)
        pipe.zrange(keys.WORKERS, 0, -1, withscores=True)
        res = pipe.execute()
        n = 3 * len(tokens)
        tracked, subs, offers, queue, gateway, health, beats = res[n:]
        offer_at = {t: int(s) for t, s in offers}
        pending = {t for t, _ in queue}
        views = {}
        for i, t in enumerate(tokens):
            views[t] = TokenView(
                t, res[3 * i + 1], self._lease(t, res[3 * i], dict(beats)), self._book(t, res[3 * i + 2]),
                self._health(t, health.get(t)), t in subs, t in offer_at, offer_at.get(t, 0), t in pending,
                t in tracked)
        for t in every:
            if t in reuse:
                views[t] = replace(reuse[t], health=self._health(t, health.get(t)), in_subs=t in subs,
                                   in_offers=t in offer_at, offer_wall_ms=offer_at.get(t, 0), in_pending=t in pending,
                                   tracked=t in tracked)
        views = {t: views[t] for t in every}  # universe order, read or reused
        gateway_health = self._health(GATEWAY_FIELD, health.get(GATEWAY_FIELD))
        return Snapshot(views, [(t, float(s)) for t, s in queue], gateway, gateway_health)

    def token(self, token_id: str) -> TokenView:
        """One token's view for a signal (one round trip; no book, health or index membership)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.lease(token_id))
        pipe.hgetall(keys.tok(token_id))
        pipe.zrange(keys.WORKERS, 0, -1, withscores=True)
        lease, tok, beats = pipe.execute()
        return TokenView(token_id, tok, self._lease(token_id, lease, dict(beats)))

    def _lease(self, token_id: str, raw: Mapping[str, str], beats: Mapping[str, float]) -> LeaseView:
        """The lease as read; a held one's ``expires_ms`` is its takeover deadline (``holder_deadline``)."""
        try:
            view = LeaseView.parse(token_id, raw)
            if not self.lease_grace_ms or not view.worker:
                return view
            deadline = holder_deadline(view.expires_ms, int(beats.get(view.worker, 0)), self.redis_up_since(),
                                       self.lease_grace_ms)
            return replace(view, expires_ms=deadline)
        except BadField as exc:
            self.report_bad(exc, "lease")
            return LeaseView(True, raw.get("worker", ""), 0, raw.get("mode", ""))

    def _health(self, token_id: str, raw: str | None) -> HealthRecord:
        try:
            return HealthRecord.loads(raw)
        except ValueError:
            self.report_bad(BadField(token_id, token_id, raw), "sched_health")
            return HealthRecord()

    def _book(self, token_id: str, raw: Mapping[str, str]) -> BookView:
        try:
            return BookView.parse(token_id, raw)
        except BadField as exc:
            self.report_bad(exc, "book")
            return BookView()

    def report_bad(self, exc: BadField, where: str) -> None:
        """Journal TOKEN_FIELD_INVALID (error) once per (token, field, value)."""
        key = (exc.token_id, f"{where}.{exc.field}", str(exc.value))
        if key not in self._reported:
            self._reported.add(key)
            self.journal.record("TOKEN_FIELD_INVALID", token_id=exc.token_id, level="error", hash=where,
                                field=exc.field, value=exc.value)

    # ---- writing ----
    def write_health(self, updates: Mapping[str, HealthRecord]) -> None:
        """Store changed health records (one HSET)."""
        if updates:
            self.r.hset(keys.SCHED_HEALTH, mapping={t: rec.dumps() for t, rec in updates.items()})

    def cas(self, token_id: str, t: Transition, now_ms: int) -> tuple[bool, str]:
        """Write the transition only if ``state`` is in ``t.expect``; returns (written, state found)."""
        key = keys.tok(token_id)
        mapping = {**t.fields, "state": t.state, "reason": t.reason, "updated_ms": str(now_ms)}
        for _ in range(CAS_RETRIES):
            with self.r.pipeline(transaction=True) as pipe:  # WATCH/MULTI on one key: one cluster slot
                try:
                    pipe.watch(key)
                    found = pipe.hget(key, "state") or ""
                    if found not in t.expect:
                        return False, found
                    pipe.multi()
                    pipe.hset(key, mapping=mapping)
                    pipe.execute()
                    return True, found
                except WatchError:
                    continue
        return False, "CONTENDED"

    def apply(self, d: Decision, now_ms: int, wall_ms: int) -> bool:
        """Execute one decision; False when its transition's guard failed (nothing else done) or a
        lease withdrawal was refused (cleanup deferred). Every journal record of a decision that is the
        effect of a signal carries ``signal_id``."""
        found = ""
        tag = self._signal_tag(d)
        if d.transition is not None:
            ok, found = self.cas(d.token_id, d.transition, now_ms)
            if not ok:
                self.journal.record("TRANSITION_CONFLICT", token_id=d.token_id, level="warn", want=d.transition.state,
                                    why=d.transition.reason, expected="|".join(d.transition.expect), found=found,
                                    **tag)
                return False
        if not self._effects(d.token_id, d.effects, wall_ms):
            return False
        if d.transition is not None:
            t = d.transition
            self.journal.record(t.reason, token_id=d.token_id, level=t.level, state=t.state, prev=found or "none",
                                **{**tag, **t.info})
        for n in d.notes:
            fields: dict[str, object] = {**tag, **n.fields}
            self.journal.record(n.reason, token_id=d.token_id, level=n.level, **fields)  # type: ignore[arg-type]
        return True

    def _signal_tag(self, d: Decision) -> dict[str, str]:
        """``{"signal_id": ...}`` for a decision that is a signal's effect (``SIGNAL_OF_TOKEN``: read the
        token's ``last_signal_id``), else {}."""
        signal_id = d.signal_id
        if signal_id == SIGNAL_OF_TOKEN:
            signal_id = self.r.hget(keys.tok(d.token_id), "last_signal_id") or ""
        return {"signal_id": signal_id} if signal_id else {}

    def _effects(self, token_id: str, effects: tuple[Effect, ...], wall_ms: int) -> bool:
        for e in effects:
            if e.kind == "offer":
                self.leases.offer(token_id, e.value, wall_ms)
            elif e.kind == "withdraw" and not self.leases.withdraw(token_id, wall_ms):
                self.journal.record("CLEANUP_DEFERRED", token_id=token_id, why="a worker holds the lease")
                return False
        pipe = self.r.pipeline(transaction=False)
        for e in effects:
            _queue_effect(pipe, token_id, e)
        if len(pipe):
            pipe.execute()
        for e in effects:
            if e.kind == "bump":
                self.journal.bump(e.value)
        return True


def _queue_effect(pipe: "Redis", token_id: str, e: Effect) -> None:  # a pipeline has Redis' command methods
    k = e.kind
    if k == "subscribe":
        pipe.sadd(keys.MD_SUBS, token_id)
    elif k == "unsubscribe":
        pipe.srem(keys.MD_SUBS, token_id)
    elif k == "enqueue":
        pipe.zadd(keys.SCHED_PENDING, {token_id: e.score}, nx=True)
    elif k == "dequeue":
        pipe.zrem(keys.SCHED_PENDING, token_id)
    elif k == "index_offer":
        pipe.zadd(keys.SCHED_OFFERS, {token_id: e.score})
    elif k == "unindex_offer":
        pipe.zrem(keys.SCHED_OFFERS, token_id)
    elif k == "track":
        pipe.sadd(keys.SCHED_TRACKED, token_id)
        pipe.sadd(keys.TOKENS, token_id)
    elif k == "untrack":
        pipe.srem(keys.SCHED_TRACKED, token_id)
    elif k == "hset":
        pipe.hset(keys.tok(token_id), mapping=dict(e.fields))
    elif k == "clear_health":
        pipe.hdel(keys.SCHED_HEALTH, token_id)
    elif k not in ("offer", "withdraw", "bump"):
        raise ValueError(f"unknown effect kind={k!r} token={token_id}")
