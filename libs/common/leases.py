"""Leases with fencing tokens (SPEC S2, S3.3): typed wrappers over the lease Lua scripts.

A token that should be traded has a lease hash ``pb:lease:{token}`` created by the scheduler
(``offer``). A worker ``acquire``s it and receives a fence from ``pb:fence:{token}``, a counter
that only ever increases. The worker ``renew``s every few seconds and checks every state write and
every order through ``fenced_hset``; any refusal raises ``LeaseLost`` and the worker stops trading
that token at once. Times are wall milliseconds (``Clock.wall_ms``), never replay time.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from redis import Redis

from libs.common import keys, lua


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
        self._s = {n: lua.register(r, n) for n in
                   ("lease_offer", "lease_acquire", "lease_renew", "lease_release", "lease_withdraw",
                    "fenced_hset")}

    def offer(self, token_id: str, mode: str, now_ms: int) -> bool:
        """Create an unheld lease in ``mode``, or set the mode of the existing one. True if created."""
        return bool(self._s["lease_offer"](keys=[keys.lease(token_id)], args=[mode, now_ms]))

    def acquire(self, token_id: str, worker_id: str, now_ms: int, ttl_ms: int) -> Grant | None:
        """Claim the lease; None when not offered or held by another live worker."""
        res = self._s["lease_acquire"](keys=[keys.lease(token_id), keys.fence(token_id)],
                                        args=[worker_id, now_ms, ttl_ms])
        if int(res[0]) != 1:
            return None
        return Grant(token_id, worker_id, int(res[1]), str(res[2]), now_ms + ttl_ms, str(res[3]), int(res[4]))

    def renew(self, grant: Grant, now_ms: int, ttl_ms: int) -> Grant:
        """Extend ``grant``; returns it with the new expiry and current mode.

        Raises:
            LeaseLost: another holder, a newer fence, no lease, or already expired.
        """
        res = self._s["lease_renew"](keys=[keys.lease(grant.token_id)],
                                      args=[grant.worker_id, grant.fence, now_ms, ttl_ms])
        if int(res[0]) != 1:
            raise LeaseLost(grant.token_id, grant.fence, str(res[1]))
        return replace(grant, mode=str(res[1]), expires_ms=int(res[2]))

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
