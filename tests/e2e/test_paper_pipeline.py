"""Issue 2, end to end: Redis, the venue and every service as processes on the default real tape.

A leader BUY leads to a post-only BUY at the best bid in the venue's audit log, then a fill, then a
post-only SELL at the take-profit price; every book's seq only ever increased; the run stops
cleanly with workers cancelling their orders first.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from libs.common import keys
from services.ops.paper import DEMO_TAPE, PaperConfig, PaperRun
from tests.e2e.helpers import SeqMonitor, eventually, paper_run, round_up, stream_seqs_increase

REPO = Path(__file__).resolve().parents[2]
TAKE_PROFIT = Decimal("0.02")
STOP_LOSS = Decimal("0.10")
SPEED = 40.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperRun]:
    cfg = PaperConfig(tape=DEMO_TAPE, leaders=(REPO / "data/leaders/demo-synthetic.jsonl",), speed=SPEED,
                      workers=2, log_dir=tmp_path_factory.mktemp("paper"),
                      extra_env={"PB_TAKE_PROFIT": str(TAKE_PROFIT), "PB_STOP_LOSS": str(STOP_LOSS)})
    with paper_run(cfg) as pr:
        yield pr


def D(x: object) -> Decimal:
    return Decimal(str(x))


def chains(audit: list[dict]) -> list[tuple[dict, dict, dict]]:
    """Every (BUY accepted, its fill, the first SELL accepted on that token after the fill)."""
    out = []
    for buy in (a for a in audit if a["kind"] == "order_accepted" and a["side"] == "BUY"):
        fill = next((a for a in audit if a["kind"] == "fill" and a["order_id"] == buy["order_id"]), None)
        if fill is None:
            continue
        sell = next((a for a in audit if a["kind"] == "order_accepted" and a["side"] == "SELL"
                     and a["token_id"] == buy["token_id"] and a["wall_ms"] >= fill["wall_ms"]), None)
        if sell is not None:
            out.append((buy, fill, sell))
    return out


def take_profit_target(fill: dict, sell: dict) -> Decimal:
    """SPEC S3.4: max(avg_entry * (1 + take_profit), best_bid + tick) rounded up to tick."""
    tick = D(sell["tick_size"])
    return max(round_up(D(fill["price"]) * (1 + TAKE_PROFIT), tick), D(sell["book_best_bid"]) + tick)


def take_profit_chains(audit: list[dict]) -> list[tuple[dict, dict, dict]]:
    """Chains whose SELL was posted while the stop loss had not triggered (bid above the stop)."""
    return [c for c in chains(audit) if D(c[2]["book_best_bid"]) > D(c[1]["price"]) * (1 - STOP_LOSS)]


@pytest.mark.timeout(240)
def test_leader_buy_leads_to_maker_buy_fill_and_take_profit_sell(run: PaperRun) -> None:
    assert run.r is not None
    monitor = SeqMonitor(run.r)
    monitor.start()
    try:
        eventually(lambda: take_profit_chains(run.audit()), 150, "BUY -> fill -> take-profit SELL in the audit log")
    finally:
        monitor.stop_flag.set()
        monitor.join(5)
    audit = run.audit()
    entries = [a for a in audit if a["kind"] == "order_accepted" and a["side"] == "BUY"]
    for buy in entries:
        bid, ask, tick = D(buy["book_best_bid"]), D(buy["book_best_ask"]), D(buy["tick_size"])
        expected = bid + tick if ask - bid >= 2 * tick else bid
        assert buy["post_only"] is True and D(buy["price"]) == expected, f"entry not at the best bid: {buy}"
    for buy, fill, sell in take_profit_chains(audit):
        assert sell["post_only"] is True
        assert D(sell["price"]) == take_profit_target(fill, sell), f"take-profit SELL {sell} after {fill}"
    assert monitor.samples > 0 and monitor.backwards == [], monitor.backwards
    for token in run.r.smembers(keys.MD_SUBS) | set(monitor.last):
        stream_seqs_increase(run.r, token)


def test_summary_counts_the_chain(run: PaperRun) -> None:
    s = eventually(lambda: (lambda x: x if x["fills"] and x["sells_posted"] else None)(run.summary()), 60,
                   "fills and sells in the summary")
    assert s["signals"] > 0 and s["tokens_activated"] > 0 and s["orders_posted"] > 0
