"""The equity curve of a back-test: marks sampled during the run (the tape's best bid of every token
we hold, every ``step_ms`` of virtual time, taken from the venue's own books: the market without our
orders), then ``libs.common.pnl.equity_curve`` over the system's fills and the real resolutions."""
from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from libs.common import pnl

if TYPE_CHECKING:  # annotations only: ``plot_equity`` stays importable without the venue (polyband report)
    from services.backtest.venue_side import SimVenue

EQUITY_STEP_MS = 60_000


class MarkSampler:
    """Collects ``(ts_ms, token_id, best_bid)`` for the tokens ``wallet`` holds at the venue."""

    def __init__(self, venue: SimVenue, wallet: str, step_ms: int = EQUITY_STEP_MS) -> None:
        self.venue, self.wallet, self.step_ms = venue, wallet, step_ms
        self.next_ms = venue.first_ms
        self.marks: list[tuple[int, str, Decimal]] = []

    def on_tick(self, t_ms: int) -> None:
        """Sample once per ``step_ms`` boundary crossed."""
        if t_ms < self.next_ms:
            return
        self.next_ms = t_ms - (t_ms - self.venue.first_ms) % self.step_ms + self.step_ms
        for token, holding in self.venue.engine.holdings(self.wallet):
            if holding.shares > 0:
                bid, _ask = self.venue.books.tape_top(token)
                if bid is not None:
                    self.marks.append((t_ms, token, bid))


def payouts(venue: SimVenue) -> dict[str, tuple[int, Decimal]]:
    """token -> (market end ms, payout pUSD/share) for every market the venue resolved with a winner."""
    out: dict[str, tuple[int, Decimal]] = {}
    for m in venue.markets:
        winner = venue.engine.resolutions.winner(m.condition_id)
        if winner:
            for token in m.token_ids:
                out[token] = (m.end_ms, Decimal(1) if token == winner else Decimal(0))
    return out


def write_equity(path: Path, fills: list[pnl.Fill], sampler: MarkSampler, venue: SimVenue,
                 end_ms: int) -> list[tuple[int, Decimal, Decimal, Decimal]]:
    """Compute the curve and write ``equity.csv`` (ts_ms, booked, unrealized, equity in pUSD)."""
    curve = pnl.equity_curve(fills, sampler.marks, payouts(venue), venue.first_ms, end_ms, sampler.step_ms)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("ts_ms", "booked_usd", "unrealized_usd", "equity_usd"))
        w.writerows((t, str(a), str(b), str(c)) for t, a, b, c in curve)
    return curve


def plot_equity(path: Path, curve: list[tuple[int, Decimal, Decimal, Decimal]], title: str) -> bool:
    """``equity.png`` (matplotlib, no display needed); False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    hours = [(t - curve[0][0]) / 3_600_000 for t, *_ in curve] if curve else []
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(hours, [float(c[3]) for c in curve], label="equity (net P&L)")
    ax.plot(hours, [float(c[1]) for c in curve], label="booked (realized + settled - fees + rebates)", alpha=0.6)
    ax.set_xlabel("tape hours")
    ax.set_ylabel("pUSD")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True
