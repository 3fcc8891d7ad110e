"""The worker's side of the account-wide risk limits (SPEC S3.4 "Risk"; pure rules in ``risk``).

``RiskDesk`` is the imperative shell around ``libs.common.exposure.ExposureLedger``:

* ``load`` (once per worker step, from the step's pipelined snapshot) caches every token's ledger
  exposure, today's realized P&L and the unrealized marks, and halts on the marked daily loss.
* ``room`` gives the strategy its ``Tick.exposure_room_usd``: cap - other tokens' ledger exposure -
  this token's own commitment. Advisory only (other workers move concurrently).
* ``admit`` is the authoritative check, run by ``TokenTrader.execute`` just before an entry BUY is
  signed: it reserves the order's USD and shares in the ledger atomically (refused: EXPOSURE_CAP /
  POSITION_CAP journaled with the numbers, once per episode per token, and nothing is sent).
* ``sync`` (after every step of a held token) overwrites the token's entry with the holder's truth:
  a cancelled or rejected reservation is released, a fill becomes position exposure, and on a lease
  handover the new holder's first sync (after it reconciled position from the venue and cancelled
  the old holder's orders) replaces whatever the dead holder left. A stale fence raises LeaseLost.
"""
from __future__ import annotations

from decimal import Decimal

from redis import Redis

from libs.common import keys
from libs.common.clock import Clock
from libs.common.exposure import ExposureLedger, StaleFence, parse_entry
from libs.common.journal import Journal
from libs.common.leases import LeaseLost
from services.maker_worker import risk
from services.maker_worker.config import WorkerSettings
from services.maker_worker.models import Place, TokenState
from services.maker_worker.trading import Held

USD = risk.MICRO
UNSEEN = ""  # cache slot: exposure of other tokens learnt from a refusal, not yet seen by ``load``


class RiskDesk:
    """See module docstring. Amounts in the journal are USD / shares as decimal strings."""

    def __init__(self, r: Redis, journal: Journal, clock: Clock, settings: WorkerSettings) -> None:
        self.r, self.journal, self.clock, self.s = r, journal, clock, settings
        self.ledger = ExposureLedger(r)
        self._entries: dict[str, int] = {}  # token -> ledger exposure (micro-USD) as last seen
        self._last: dict[str, tuple[int, int, int | None]] = {}  # token -> last synced (usd, shares, upnl)
        self._refused: dict[str, str] = {}  # token -> reason of the current refusal episode

    def snapshot_reads(self, pipe) -> None:  # type: ignore[no-untyped-def]
        """Queue the three reads ``load`` takes (ledger, unrealized marks, today's realized P&L)."""
        pipe.hgetall(keys.RISK_EXPOSURE)
        pipe.hvals(keys.RISK_UPNL)
        pipe.hget(keys.RISK_DAILY_PNL, risk.utc_day(self.clock.now_ms()))

    def load(self, ledger: dict[str, str], upnl: list[str], realized: str | None) -> None:
        """Cache the ledger; halt (HALT_DAILY_LOSS, reason MTM) when realized + unrealized <= -limit."""
        self._entries = {t: e.exposure_micro for t, raw in ledger.items() if (e := parse_entry(raw)) is not None}
        marks = [int(v) for v in upnl if v.lstrip("-").isdigit()]
        pnl = risk.mtm_pnl_micro(risk.parse_micro(realized), marks)
        limit = self.s.daily_loss_limit_usd
        if risk.mtm_limit_hit(pnl, limit) and risk.set_halt(
                self.r, f"DAILY_LOSS_LIMIT day_pnl_mtm={Decimal(pnl) / USD} limit={limit}"):
            self.journal.record("HALT_DAILY_LOSS", level="error", day_pnl=Decimal(pnl) / USD, limit=limit,
                                realized=Decimal(risk.parse_micro(realized)) / USD,
                                unrealized=Decimal(sum(marks)) / USD, marked=True)

    def room(self, token: str, state: TokenState | None) -> Decimal:
        """Exposure room for a new entry of ``token`` (USD, >= 0)."""
        others = sum(v for t, v in self._entries.items() if t != token)
        own = risk.commitment(state)[0] if state is not None else 0
        return risk.room_usd(others, own, self.s.max_exposure_usd)

    def admit(self, h: Held, p: Place) -> bool:
        """Reserve an entry BUY in the ledger; True to send it. SELLs always pass.

        Raises:
            LeaseLost: a newer holder owns the token's entry (nothing is sent).
        """
        if p.side != "BUY" or h.state is None:
            return True
        token, fence = h.grant.token_id, h.grant.fence
        base, need = risk.commitment(h.state), risk.need_of(p)
        try:
            out = self.ledger.reserve(token, fence, base, need, risk.micro_down(self.s.max_exposure_usd),
                                      risk.micro_down(self.s.max_position))
        except StaleFence as exc:
            raise LeaseLost(token, fence, f"EXPOSURE_FENCE_STALE stored={exc.stored}") from None
        if out.ok:
            self._entries[token] = base[0] + need[0]
            self._last.pop(token, None)
            self._refused.pop(token, None)
            return True
        if out.reason == "EXPOSURE_CAP":  # others moved since ``load``: make ``room`` agree until the next one
            seen = sum(v for t, v in self._entries.items() if t not in (token, UNSEEN))
            self._entries[UNSEEN] = max(0, out.committed_micro - base[0] - seen)
        if self._refused.get(token) != out.reason:
            self._refused[token] = out.reason
            self._journal_refusal(token, p, out.reason, out.committed_micro, need, out.limit)
        return False

    def _journal_refusal(self, token: str, p: Place, reason: str, committed: int, need: tuple[int, int],
                         limit: int) -> None:
        if reason == "EXPOSURE_CAP":
            self.journal.record("EXPOSURE_CAP", token_id=token, level="warn", committed_usd=Decimal(committed) / USD,
                                need_usd=Decimal(need[0]) / USD, cap_usd=Decimal(limit) / USD, price=p.price,
                                size=p.size)
        else:
            self.journal.record("POSITION_CAP", token_id=token, level="warn", shares=Decimal(committed) / USD,
                                need_shares=p.size, max_position=Decimal(limit) / USD, price=p.price)

    def sync(self, h: Held) -> None:
        """Write the token's entry and mark when they changed since the last sync (see module docstring).

        Raises:
            LeaseLost: a newer holder owns the token's entry (nothing was written).
        """
        if h.state is None:
            return
        token = h.grant.token_id
        usd, shares = risk.commitment(h.state)
        # a token released for good has no holder left to mark it: its mark goes (its exposure stays)
        upnl = 0 if h.released else risk.upnl_micro(h.state, h.market.best_bid if h.market else None)
        if self._last.get(token) == (usd, shares, upnl):
            return
        try:
            self.ledger.sync(token, h.grant.fence, (usd, shares), upnl)
        except StaleFence as exc:
            raise LeaseLost(token, h.grant.fence, f"EXPOSURE_FENCE_STALE stored={exc.stored}") from None
        self._entries[token] = usd
        self._last[token] = (usd, shares, upnl)

    def forget(self, token: str) -> None:
        """Drop per-token caches (the token is no longer held)."""
        self._last.pop(token, None)
        self._refused.pop(token, None)
