"""The 14 answers of ``polyband report`` (SPEC S5, issue 9), computed from ``RunData`` (pure)."""
from __future__ import annotations

from typing import Callable

from services.report import answers_feed as feed
from services.report import answers_trading as trading
from services.report.model import Params, RunData

TITLES: dict[str, str] = {
    "1_inactive": "Inactive tokens: warned at 30 min vs cleaned up at 60 min vs recovered",
    "2_stale": "Stale-book episodes and how they ended (feed / REST fallback / gave up)",
    "3_side_gaps": "Missing bid / ask episodes per side and recovery rate",
    "4_aggressive": "Aggressive-sell steps and floor holds",
    "5_reconnects": "Reconnects, resyncs, REST verifications",
    "6_orders": "Orders LIVE -> MATCHED / CANCELED: fill rate and time to fill",
    "7_data_age": "Book data age at decision time (ms)",
    "8_after_reconnects": "Fills and quoting after reconnects vs otherwise (per minute)",
    "9_ignored_sells": "Leader SELLs ignored for no position, per leader",
    "10_exits": "Exits by reason",
    "11_exit_only": "Exit-only tasks still queued and their age",
    "12_balance_rejects": "SELL rejections for insufficient balance",
    "13_states": "Tokens per state",
    "14_pnl": "P&L (pUSD) per token, per leader and total",
}


def compute(d: RunData, p: Params | None = None) -> dict[str, dict]:
    """Every answer keyed as in ``TITLES`` (``1_inactive`` ... ``14_pnl``)."""
    p = p or Params()
    fns: dict[str, Callable[[RunData], dict]] = {
        "1_inactive": feed.inactive, "2_stale": feed.stale, "3_side_gaps": feed.side_gaps,
        "4_aggressive": trading.aggressive, "5_reconnects": feed.reconnects, "6_orders": trading.orders,
        "7_data_age": feed.data_age, "8_after_reconnects": lambda x: feed.after_reconnects(x, p),
        "9_ignored_sells": trading.ignored_sells, "10_exits": trading.exits, "11_exit_only": trading.exit_only_queue,
        "12_balance_rejects": trading.balance_rejects, "13_states": trading.states, "14_pnl": trading.pnl,
    }
    return {key: fn(d) for key, fn in fns.items()}


def token_rows(d: RunData) -> dict[str, dict[str, str]]:
    """token -> {state, reason, leader, title, outcome} from pb:tok (the JSON ``tokens`` object)."""
    return {t: {k: h.get(src, "") for k, src in (("state", "state"), ("reason", "reason"), ("leader", "leader_account"),
                                                  ("title", "title"), ("outcome", "outcome"))}
            for t, h in sorted(d.toks.items())}
