"""The account-wide exposure ledger (SPEC S3.4 "Risk"): a typed wrapper over ``risk_exposure.lua``.

``pb:risk:{acct}:exposure`` holds, per token, ``fence:exposure_micro:shares_micro`` -- the USD (in
integer micro-USD) and the shares (in micro-shares) the token commits: shares held x average entry
plus the unmatched remainder of our open BUY orders x their price, plus any entry BUY reserved but
not yet answered by the venue. Every worker of the account reads and writes the same hash, so the
caps hold across N workers: ``reserve`` adds a new entry BUY only when the account total stays
within the cap (one atomic script), ``sync`` overwrites the token's entry with the holder's truth
(releases a cancelled or rejected reservation, turns a fill into position exposure, and at a lease
handover replaces what a dead holder left with the new holder's reconciled view).

Fencing: the entry carries the writer's lease fence and a lower fence is refused (``StaleFence``),
so a paused worker whose lease passed on can never overwrite the new holder's entry. Entries of zero
are kept as tombstones for that reason (one short field per token ever traded).
``pb:risk:{acct}:upnl`` (token -> micro-USD) is the holder's mark-to-market, written by ``sync``.
"""
from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from libs.common import keys, lua


class StaleFence(Exception):
    """A newer lease holder already wrote this token's entry; nothing was written."""

    def __init__(self, token_id: str, fence: int, stored: int) -> None:
        super().__init__(f"stale fence token={token_id} fence={fence} stored={stored}")
        self.token_id, self.fence, self.stored = token_id, fence, stored


@dataclass(frozen=True)
class Entry:
    """One token's ledger entry: writer's fence, exposure (micro-USD), shares (micro-shares)."""

    fence: int
    exposure_micro: int
    shares_micro: int


@dataclass(frozen=True)
class Outcome:
    """Result of a write. ``ok`` False: ``reason`` EXPOSURE_CAP (``committed_micro`` = the account's
    exposure without the new order, ``limit`` = cap in micro-USD) or POSITION_CAP (``committed_micro``
    = the token's shares in micro-shares, ``limit`` = the cap in micro-shares). ``ok`` True:
    ``committed_micro`` = account exposure after the write, ``upnl_micro`` = sum of unrealized P&L."""

    ok: bool
    reason: str = ""
    committed_micro: int = 0
    limit: int = 0
    upnl_micro: int = 0


def parse_entry(raw: str) -> Entry | None:
    """``fence:exposure:shares`` -> Entry; None when malformed (counted as nothing by readers)."""
    parts = raw.split(":")
    try:
        return Entry(int(parts[0]), int(parts[1]), int(parts[2]))
    except (IndexError, ValueError):
        return None


class ExposureLedger:
    """Reads and atomic writes of the ledger on one Redis client."""

    def __init__(self, r: Redis) -> None:
        self.r = r
        self._script = lua.register(r, "risk_exposure")

    def _call(self, token_id: str, fence: int, base: tuple[int, int], need: tuple[int, int],
              cap_micro: int | None, max_shares_micro: int | None, upnl_micro: int | None) -> Outcome:
        args = [token_id, fence, base[0], base[1], need[0], need[1],
                "" if cap_micro is None else cap_micro, "" if max_shares_micro is None else max_shares_micro,
                "" if upnl_micro is None else upnl_micro]
        res = self._script(keys=[keys.RISK_EXPOSURE, keys.RISK_UPNL], args=args)
        if int(res[0]) == 1:
            return Outcome(True, "", int(res[1]), 0, int(res[2]))
        if res[1] == "STALE_FENCE":
            raise StaleFence(token_id, fence, int(res[2]))
        return Outcome(False, str(res[1]), int(res[2]), int(res[3]))

    def reserve(self, token_id: str, fence: int, base: tuple[int, int], need: tuple[int, int],
                cap_micro: int, max_shares_micro: int) -> Outcome:
        """Set the token's entry to ``base + need`` (each (micro-USD, micro-shares)) only if the account
        total stays <= ``cap_micro`` and the token's shares <= ``max_shares_micro``.

        Raises:
            StaleFence: a newer holder owns the entry.
        """
        return self._call(token_id, fence, base, need, cap_micro, max_shares_micro, None)

    def sync(self, token_id: str, fence: int, base: tuple[int, int], upnl_micro: int | None) -> Outcome:
        """Overwrite the token's entry with ``base`` (no cap check: it is the truth) and its unrealized
        P&L (None = unchanged, 0 = removed); returns the account totals.

        Raises:
            StaleFence: a newer holder owns the entry.
        """
        return self._call(token_id, fence, base, (0, 0), None, None, upnl_micro)

    def entries(self) -> dict[str, Entry]:
        """Every readable entry, token -> Entry."""
        out = {}
        for token, raw in self.r.hgetall(keys.RISK_EXPOSURE).items():
            e = parse_entry(raw)
            if e is not None:
                out[token] = e
        return out
