"""P&L recomputed from the paper venue's audit log ALONE (``services/venue_sim/audit.py``), with the
one definition in :mod:`libs.common.pnl`. Independent of Redis and of ``pnl_redis``: a cross-check.

Lines read (JSON, one per line, in the order written):

- ``fill``: one fill of one order: ``token_id``, ``side``, ``price`` (pUSD/share), ``size`` (shares),
  ``trade_id``, ``order_id``, ``maker`` (the account), ``role``; ``fee``, ``rebate`` (pUSD) when
  present (0 when absent: older logs). ``ts_ms`` is floored to ``ts_quantum_ms`` (default 1000)
  before ordering, because the venue reports a trade's ``match_time`` in whole seconds and that is
  the ``ts_ms`` the system's ledger holds; both readers then order fills identically.
- any line with ``token_id`` and a ``book_best_bid``: the last one is the token's default mark.
- ``market_end`` (``market`` = condition id): the resolution. Its per-token payout is read from
  ``payouts`` ({token: pUSD/share}) or ``winner`` + ``tokens`` when the venue writes them.
- ``redeem`` (``market``, ``winner``, ``shares`` {token: shares}): payout 1 for the winner, 0 for the
  other tokens listed. A redeem without a winner (venue pays 1/n) gives no payout unless the
  market_end line carried ``tokens`` (n is not in the log otherwise).

A token whose market has no payout in the log is valued as open (marked at its best bid).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from libs.common.pnl import stored_decimal, stored_price, MICRO, ZERO, Fill, PnlTotals, TokenPnl, aggregate, token_pnl

__all__ = ["audit_pnl", "AuditView", "read_lines"]

Lines = str | Path | Iterable[Any]


def read_lines(source: Lines) -> Iterable[dict[str, Any]]:
    """Audit lines as dicts from a file path, or from an iterable of dicts / JSON str / bytes lines
    (blank and unreadable lines are skipped)."""
    items: Iterable[Any] = Path(source).read_bytes().splitlines() if isinstance(source, (str, Path)) else source
    for item in items:
        if isinstance(item, dict):
            yield item
            continue
        try:
            line = orjson.loads(item) if item and str(item).strip() else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(line, dict):
            yield line


@dataclass
class AuditView:
    """What the log says, per token: fills, last tape best bid, payout and condition."""

    fills: dict[str, list[Fill]] = field(default_factory=dict)
    bids: dict[str, Decimal | None] = field(default_factory=dict)
    payouts: dict[str, Decimal] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)

    def add(self, line: dict[str, Any], maker: str | None, quantum: int) -> None:
        """Fold one line in (module doc)."""
        kind, token = line.get("kind"), str(line.get("token_id") or "")
        if token and "book_best_bid" in line:
            self.bids[token] = stored_price(line.get("book_best_bid"))
        if kind == "fill" and token and (maker is None or str(line.get("maker", "")).lower() == maker.lower()):
            ts = int(stored_decimal(line.get("ts_ms")))
            self.fills.setdefault(token, []).append(Fill(
                ts - ts % quantum, token, str(line.get("side", "")), stored_decimal(line.get("price")), stored_decimal(line.get("size")),
                stored_decimal(line.get("fee")), stored_decimal(line.get("rebate")), str(line.get("role", "")),
                str(line.get("trade_id", "")), str(line.get("order_id", ""))))
        elif kind == "market_end":
            self._market_end(line)
        elif kind == "redeem":
            self._redeem(line)

    def _set(self, cond: str, token: str, payout: Decimal | None) -> None:
        if cond:
            self.conditions.setdefault(token, cond)
        if payout is not None:
            self.payouts.setdefault(token, payout)  # a market resolves once: the first report wins

    def _market_end(self, line: dict[str, Any]) -> None:
        cond, payouts = str(line.get("market", "")), line.get("payouts")
        if isinstance(payouts, dict):
            for token, p in payouts.items():
                self._set(cond, str(token), stored_price(p))
            return
        tokens, winner = line.get("tokens"), line.get("winner")
        if isinstance(tokens, list) and tokens and isinstance(winner, str):
            even = (Decimal(1) / len(tokens)).quantize(MICRO, rounding=ROUND_DOWN)
            for token in tokens:
                self._set(cond, str(token), (Decimal(1) if token == winner else ZERO) if winner else even)

    def _redeem(self, line: dict[str, Any]) -> None:
        cond, winner, shares = str(line.get("market", "")), str(line.get("winner") or ""), line.get("shares")
        for token in shares if isinstance(shares, dict) else {}:
            self._set(cond, str(token), (Decimal(1) if token == winner else ZERO) if winner else None)


def audit_pnl(path_or_lines: Lines, marks: Mapping[str, Decimal | None] | None = None,
              leaders: Mapping[str, str] | None = None, *, maker: str | None = None,
              ts_quantum_ms: int = 1000, conditions: Mapping[str, str] | None = None) -> tuple[list[TokenPnl], PnlTotals]:
    """Per-token P&L (sorted by token id) of every token with a fill in the log, and their total.

    Args:
        path_or_lines: the audit file, or its lines (dicts, JSON str or bytes).
        marks: token -> best bid (pUSD/share) overriding the log's last ``book_best_bid``.
        leaders: token -> leader account (the log has none).
        conditions: token -> condition id for tokens the log does not tie to a market (the log names
            a token's market only in ``redeem`` / ``market_end`` lines).
        maker: count only fills of this account (address, any case); None = every fill line.
        ts_quantum_ms: fills' ``ts_ms`` are floored to this before ordering (module doc).
    """
    view = AuditView()
    for line in read_lines(path_or_lines):
        view.add(line, maker, max(1, ts_quantum_ms))
    out = []
    for token in sorted(view.fills):
        mark = marks[token] if marks is not None and token in marks else view.bids.get(token)
        out.append(token_pnl(view.fills[token], mark, view.payouts.get(token), token,
                             view.conditions.get(token) or (conditions or {}).get(token, ""),
                             (leaders or {}).get(token, "")))
    return out, aggregate(out)["total"]
