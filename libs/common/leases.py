"""Leases with fencing tokens (SPEC S2, S3.3): typed wrappers over the lease Lua scripts.

A token that should be traded has a lease hash ``pb:lease:{token}`` created by the scheduler
(``offer``). A worker ``acquire``s it and receives a fence from ``pb:fence:{token}``, a counter
that only ever increases. The worker ``renew``s every few seconds and checks every state write and
every order through ``fenced_hset``; any refusal raises ``LeaseLost`` and the worker stops trading
that token at once. Times are wall milliseconds (``Clock.wall_ms``), never replay time.

Takeover rule (SPEC S2: a takeover waits for evidence that the holder is gone). A Redis stall stops
every renew and every heartbeat at once, so ``expires_ms`` passing is not by itself that evidence.
Another worker's lease counts as held until :func:`holder_deadline`::

    max(expires_ms, up_since_ms + grace_ms, min(beat_ms, expires_ms) + grace_ms)

``beat_ms`` is the holder's last heartbeat (``pb:workers``, wall ms), ``up_since_ms`` the wall ms
since which the deciding process has seen Redis answering (the end of its last outage, or its
start), ``grace_ms`` the lease TTL. So a holder that was only waiting on Redis gets one TTL after
Redis answers again to renew (``renew`` accepts a lease that expired while nobody took it over:
same worker, same fence), and one TTL after expiry while its heartbeat is that fresh; a holder whose
heartbeat is stale (dead, frozen, cut off) is taken over at expiry, as before. ``acquire`` (Lua)
and the scheduler (re-offer, withdraw, MARKET_ENDED while unheld) apply the same rule. Safety does
not rest on it: the fence still guards every write, ``fenced_hset`` refuses an expired lease until
its holder renewed, and a new holder still waits out ``prev_expires_ms + http_timeout`` and cancels
the token's orders before quoting.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from redis import Redis

from libs.common import keys, lua


def holder_deadline(expires_ms: int, beat_ms: int, up_since_ms: int, grace_ms: int) -> int:
    """Wall ms until which a lease held by another worker still counts as held (module docstring).

    Args:
        expires_ms: the lease's expiry; beat_ms: the holder's last heartbeat (0 = none);
        up_since_ms: since when the caller has seen Redis answering; grace_ms: the lease TTL (0 = plain
        expiry, the rule before a Redis outage could be told from a dead holder).
    """
    if grace_ms <= 0:
        return expires_ms
    return max(expires_ms, up_since_ms + grace_ms, min(beat_ms, expires_ms) + grace_ms)


class LeaseLost(Exception):
    """Raised when a renew or fenced write finds another holder, a newer fence or an expired lease."""

    def __init__(self, token_id: str, fence: int, why: str) -> None:
        super().__init__(f"lease lost token={token_id} fence={fence} why={why}")
        self.token_id, self.fence, self.why = token_id, fence, why


@dataclass(frozen=True)
class Grant:
    """A held lease.

    Attributes:
        token_id: the token (``asset_id`` on the wire).
        worker_id: holder.
        fence: fencing token, strictly greater than every earlier grant of this token.
        mode: ``maker`` or ``exit_only``.
        expires_ms: wall ms at which the lease lapses unless renewed.
        prev_worker: previous holder ("" if none) -- a takeover must wait out and clean up after it.
        prev_expires_ms: when the previous holder's lease lapsed (wall ms, 0 if none).
    """

    token_id: str
    worker_id: str
    fence: int
    mode: str
    expires_ms: int
    prev_worker: str = ""
    prev_expires_ms: int = 0


class Leases:
    """Lease operations on one Redis client; every call is one atomic Lua script on one token."""

    def __init__(self, r: Redis) -> None:
        self.r = r
        self.last_refusal = ""  # why the last ``acquire`` returned None (HELD, GRACE, CHANGED, NOT_OFFERED)
        self._s = {n: lua.register(r, n) for n in
                   ("lease_offer", "lease_acquire", "lease_renew", "lease_release", "lease_withdraw",
                    "fenced_hset")}

    def offer(self, token_id: str, mode: str, now_ms: int) -> bool:
        """Create an unheld lease in ``mode``, or set the mode of the existing one. True if created."""
        return bool(self._s["lease_offer"](keys=[keys.lease(token_id)], args=[mode, now_ms]))

    def acquire(self, token_id: str, worker_id: str, now_ms: int, ttl_ms: int, grace_ms: int = 0,
                up_since_ms: int = 0) -> Grant | None:
        """Claim the lease; None when not offered or still held by another worker (``last_refusal``).

        With ``grace_ms`` (the lease TTL) the takeover rule of :func:`holder_deadline` applies: the
        holder's heartbeat is read first (one round trip) and the script refuses a takeover before
        that deadline. ``grace_ms=0`` is plain expiry.
        """
        holder, beat = "", 0
        if grace_ms > 0:
            holder = self.r.hget(keys.lease(token_id), "worker") or ""
            if holder and holder != worker_id:
                beat = int(self.r.zscore(keys.WORKERS, holder) or 0)
        res = self._s["lease_acquire"](keys=[keys.lease(token_id), keys.fence(token_id)],
                                        args=[worker_id, now_ms, ttl_ms, holder, beat, up_since_ms, grace_ms])
        if int(res[0]) != 1:
            self.last_refusal = str(res[1])
            return None
        return Grant(token_id, worker_id, int(res[1]), str(res[2]), now_ms + ttl_ms, str(res[3]), int(res[4]))

    def renew(self, grant: Grant, now_ms: int, ttl_ms: int) -> Grant:
        """Extend ``grant``; returns it with the new expiry and current mode. A lease that expired while
        nobody took it over (same worker and fence) is renewed too (see the takeover rule).

        Raises:
            LeaseLost: another holder, a newer fence, released, or no lease.
        """
        res = self._s["lease_renew"](keys=[keys.lease(grant.token_id)],
                                      args=[grant.worker_id, grant.fence, now_ms, ttl_ms])
        if int(res[0]) != 1:
            raise LeaseLost(grant.token_id, grant.fence, str(res[1]))
        return replace(grant, mode=str(res[1]), expires_ms=int(res[2]))

    def renew_many(self, grants: list[Grant], now_ms: int, ttl_ms: int) -> list[Grant | LeaseLost]:
        """``renew`` of every grant in one round trip (a non-transactional pipeline of the same
        one-token script: each renewal is atomic on its own token, so this stays one slot per script
        on a cluster). Returns, in order, the renewed grant or the ``LeaseLost`` (not raised) of each."""
        pipe = self.r.pipeline(transaction=False)
        for g in grants:
            lua.queue(pipe, self._s["lease_renew"], [keys.lease(g.token_id)], [g.worker_id, g.fence, now_ms, ttl_ms])
        out: list[Grant | LeaseLost] = []
        for g, res in zip(grants, pipe.execute()):
            ok = int(res[0]) == 1
            out.append(replace(g, mode=str(res[1]), expires_ms=int(res[2])) if ok else
                       LeaseLost(g.token_id, g.fence, str(res[1])))
        return out

    def release(self, grant: Grant, done: bool) -> bool:
        """Give the lease up: ``done`` deletes it, otherwise it is left unheld for another worker."""
        return bool(self._s["lease_release"](keys=[keys.lease(grant.token_id)],
                                              args=[grant.worker_id, grant.fence, "done" if done else "reoffer"]))

    def withdraw(self, token_id: str, now_ms: int) -> bool:
        """Scheduler-side delete of an unheld or expired lease; False if a live worker holds it."""
        return bool(self._s["lease_withdraw"](keys=[keys.lease(token_id)], args=[now_ms]))

    def fenced_hset(self, grant: Grant, key: str, mapping: Mapping[str, object], now_ms: int) -> None:
        """HSET ``mapping`` into ``key`` (a key of the same token) only while ``grant`` is current.

        Raises:
            LeaseLost: the write was refused; nothing was written.
        """
        args: list[object] = [grant.worker_id, grant.fence, now_ms]
        for f, v in mapping.items():
            args += [f, str(v)]
        if not int(self._s["fenced_hset"](keys=[keys.lease(grant.token_id), key], args=args)):
            raise LeaseLost(grant.token_id, grant.fence, "FENCED_WRITE_REFUSED")

    def read(self, token_id: str) -> dict[str, str]:
        """The lease hash as stored (empty dict when there is none)."""
        return self.r.hgetall(keys.lease(token_id))
