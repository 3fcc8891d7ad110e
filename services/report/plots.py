"""PNG plots of a report (matplotlib, Agg backend: no display): equity curve (``libs.common.pnl.
equity_curve`` drawn by the back-test's ``plot_equity``), net P&L per token, data-age histogram,
fill rate per token, and fills against reconnects over time. Floats appear only here, for drawing."""
from __future__ import annotations

from pathlib import Path

from libs.common import pnl
from services.report.model import RunData, as_int, ts

EQUITY_STEP_MS = 60_000


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    _plt().close(fig)
    return path


def _bars(path: Path, labels: list[str], values: list[float], title: str, ylabel: str) -> Path:
    fig, ax = _plt().subplots(figsize=(max(6, 0.35 * len(labels) + 2), 4))
    ax.bar(range(len(values)), values, color=["tab:green" if v >= 0 else "tab:red" for v in values])
    ax.set_xticks(range(len(labels)), labels, rotation=70, fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _label(token: str, d: RunData) -> str:
    t = d.toks.get(token, {})
    return f"{token[:6]}..{token[-3:]} {t.get('outcome', '')}".strip()


def equity(folder: Path, d: RunData, curve_in: tuple[list, list, dict]) -> Path:
    """``equity.png``: equity and booked P&L sampled every minute of market time."""
    from services.backtest.equity import plot_equity

    fills, marks, payouts = curve_in
    start = min((ts(e) for e in d.events), default=d.now_ms)
    curve = pnl.equity_curve(fills, marks, payouts, start, max(start, d.now_ms), EQUITY_STEP_MS)
    path = folder / "equity.png"
    plot_equity(path, curve, "polyband report: equity")
    return path


def fills_vs_reconnects(folder: Path, d: RunData) -> Path:
    """``reconnects_fills.png``: cumulative fills and orders posted over market time, reconnects as lines."""
    plt = _plt()
    start = min((ts(e) for e in d.events), default=0)
    fig, ax = plt.subplots(figsize=(9, 4))
    for reason, label in (("FILL", "fills"), ("ORDER_POSTED", "orders posted")):
        xs = [(ts(e) - start) / 3_600_000 for e in d.events if e.get("reason") == reason]
        ax.step(xs, range(1, len(xs) + 1), where="post", label=label)
    for i, e in enumerate(e for e in d.events if e.get("reason") in ("WS_RECONNECT", "USER_FEED_DISCONNECTED")):
        ax.axvline((ts(e) - start) / 3_600_000, color="tab:red", alpha=0.5, label="reconnect" if i == 0 else None)
    ax.set_xlabel("market hours")
    ax.set_ylabel("cumulative count")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, folder / "reconnects_fills.png")


def write_plots(folder: Path, d: RunData, answers: dict[str, dict], curve_in: tuple[list, list, dict]) -> list[Path]:
    """Write every plot into ``folder`` (created); returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [equity(folder, d, curve_in)]
    per_pnl = answers["14_pnl"].get("per_token", {})
    out.append(_bars(folder / "pnl_tokens.png", [_label(t, d) for t in per_pnl],
                     [float(v["net"]) for v in per_pnl.values()], "net P&L per token", "pUSD"))
    ages = [a for e in d.events if e.get("reason") in ("ORDER_POSTED", "ORDER_CANCELED")
            for a in [as_int(e.get("data_age_ms", ""))] if a is not None]
    fig, ax = _plt().subplots(figsize=(8, 4))
    ax.hist(ages or [0], bins=40)
    ax.set_title(f"book data age at decision time ({len(ages)} decisions)")
    ax.set_xlabel("ms")
    out.append(_save(fig, folder / "data_age.png"))
    rates = {t: v["fill_rate"] for t, v in answers["6_orders"].get("per_token", {}).items() if v["fill_rate"] is not None}
    out.append(_bars(folder / "fill_rate.png", [_label(t, d) for t in rates], [float(v) for v in rates.values()],
                     "fill rate per token (MATCHED / (MATCHED + CANCELED))", "rate"))
    out.append(fills_vs_reconnects(folder, d))
    return out
