"""Redemption of resolved positions in the paper venue's ledger (SPEC S7: "paper: by the venue").

On chain, ``redeemPositions`` burns every outcome token the holder has of a resolved condition and
pays ``shares x payout numerator / denominator`` in collateral (Gnosis CTF; Polymarket's collateral
adapters pay pUSD). The venue does the same in its ledger: for each token of the market the account
holds, it pays ``shares x payout`` pUSD (1 for the winning token, 0 for the others) and sets the
shares to 0. A second redemption finds no shares and pays nothing (idempotent). A market whose
replay found no winner (``winner == ""``: no tape levels at the end, services/venue_sim/replay.py
``winning_token``) pays ``1/n`` per share on each of its ``n`` tokens, as Polymarket resolves an
unknowable market 50-50 (documented choice).

Who won is kept in a :class:`Resolutions` registry, the engine's ``resolutions`` (``resolutions_for(engine)``): the
replay's market end records it (``__main__.VenueSink.on_market_end``), and ``POST /_sim/resolve``
(chain.py, test control) may record it earlier. A condition with no recorded winner is unresolved
and redemption is refused.

Money is Decimal exact to 10^-6 (the pUSD / conditional-token unit; accounts.py), never float.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from libs.common.tapes import MarketMeta
from services.venue_sim.accounts import UNIT, Ledger

log = logging.getLogger(__name__)


class RedeemRefused(Exception):
    """A redemption the venue refuses: ``field`` and ``value`` name the bad input, ``message`` says why
    (also ``str(exc)``), ``reason`` is an UPPER_SNAKE code for logs and the audit line."""

    def __init__(self, field_name: str, value: object, message: str, reason: str) -> None:
        super().__init__(f"{message} ({field_name}={str(value)[:100]!r})")
        self.field, self.value, self.reason = field_name, value, reason
        self.message = str(self)


@dataclass(frozen=True)
class RedeemOutcome:
    """Result of one redemption: ``payout`` pUSD credited (Decimal, 10^-6 exact), ``redeemed`` shares
    removed per token id (only tokens that had shares), ``collateral_after`` the account's pUSD."""

    address: str
    condition_id: str
    winner: str
    payout: Decimal
    redeemed: dict[str, Decimal] = field(default_factory=dict)
    collateral_after: Decimal = Decimal(0)


class Resolutions:
    """Thread-safe registry ``condition id -> winning token id`` ("" = resolved without a winner)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._winners: dict[str, str] = {}

    def record(self, condition_id: str, winner: str) -> None:
        """Record the winner of ``condition_id`` (a later call for the same condition is ignored:
        a market resolves once)."""
        with self._lock:
            self._winners.setdefault(condition_id.lower(), winner)

    def winner(self, condition_id: str) -> str | None:
        """The recorded winner, "" for no winner, None while unresolved."""
        with self._lock:
            return self._winners.get(condition_id.lower())


def resolutions_for(engine: Any) -> Resolutions:
    """The Resolutions registry of ``engine`` (its ``resolutions`` attribute)."""
    return engine.resolutions  # type: ignore[no-any-return]


def payout_per_share(meta: MarketMeta, winner: str, token_id: str) -> Decimal:
    """pUSD paid per share of ``token_id``: 1 for the winner, 0 for the others, 1/n each when
    ``winner`` is "" (rounded down to 10^-6)."""
    if not winner:
        return (Decimal(1) / len(meta.token_ids)).quantize(UNIT, rounding=ROUND_DOWN)
    return Decimal(1) if token_id == winner else Decimal(0)


def redeem(ledger: Ledger, address: str, meta: MarketMeta, winner: str) -> RedeemOutcome:
    """Pay ``address``'s shares of every token of ``meta`` at their payout and set them to 0. Pure
    (ledger only; not thread-safe: the engine calls it under its lock). Idempotent.

    Raises:
        RedeemRefused: ``winner`` is not "" nor one of ``meta.token_ids`` (field ``winner``).
    """
    if winner and winner not in meta.token_ids:
        raise RedeemRefused("winner", winner, f"winner is not a token of condition {meta.condition_id}",
                            "BAD_WINNER")
    account = ledger.accounts.get(address.lower())
    if account is None:
        return RedeemOutcome(address, meta.condition_id, winner, Decimal(0))
    payout, redeemed = Decimal(0), {}
    for token_id in meta.token_ids:
        holding = account.holdings.get(token_id)
        if holding is None or holding.shares <= 0:
            continue
        pay = (holding.shares * payout_per_share(meta, winner, token_id)).quantize(UNIT, rounding=ROUND_DOWN)
        redeemed[token_id] = holding.shares
        holding.realized += pay - holding.cost
        holding.shares, holding.cost = Decimal(0), Decimal(0)
        account.collateral += pay
        payout += pay
    return RedeemOutcome(account.address, meta.condition_id, winner, payout, redeemed, account.collateral)


def redeem_locked(engine: Any, address: str, condition_id: str) -> RedeemOutcome:
    """Redeem for ``address`` in ``engine`` (call under the engine's lock: ``Engine.redeem``), and
    write the audit line ``redeem`` (payout, shares per token) or ``redeem_rejected`` (reason).

    Raises:
        RedeemRefused: unknown condition (UNKNOWN_CONDITION), market not resolved (NOT_RESOLVED).
    """
    try:
        meta = engine.conditions.get(condition_id) or engine.conditions.get(condition_id.lower())
        if meta is None:
            raise RedeemRefused("condition_id", condition_id, "condition is not a market of this venue",
                                "UNKNOWN_CONDITION")
        winner = resolutions_for(engine).winner(condition_id)
        if winner is None:
            raise RedeemRefused("condition_id", condition_id, "result for condition not received yet",
                                "NOT_RESOLVED")
        outcome = redeem(engine.ledger, address, meta, winner)
    except RedeemRefused as exc:
        _audit(engine, "redeem_rejected", maker=address, market=condition_id, reason=exc.reason, error=exc.message)
        log.info("event REDEEM_REFUSED address=%s condition=%s reason=%s", address, condition_id, exc.reason)
        raise
    _audit(engine, "redeem", maker=address, market=condition_id, winner=winner, payout=outcome.payout,
           shares={t: format(s, "f") for t, s in outcome.redeemed.items()}, collateral=outcome.collateral_after)
    log.info("event REDEEMED address=%s condition=%s payout=%s tokens=%d", address, condition_id,
             outcome.payout, len(outcome.redeemed))
    return outcome


def _audit(engine: Any, kind: str, **fields: Any) -> None:
    engine.audit.write(kind, engine.clock.now_ms(), engine.clock.wall_ms(), **fields)
