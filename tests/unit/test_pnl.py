"""libs/common/pnl.py: the one P&L definition (average cost, settlement, fees, rounding, order)."""
from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import pnl
from libs.common.pnl import Fill, micro, token_pnl

T = "tok1"


def f(ts: int, side: str, price: str, size: str, fee: str = "0", rebate: str = "0", tid: str = "",
      token: str = T) -> Fill:
    return Fill(ts, token, side, D(price), D(size), D(fee), D(rebate), "", tid or f"t{ts}", "o")


def test_average_cost_by_hand() -> None:
    # buy 10 @ 0.40, buy 10 @ 0.60 -> avg 0.50; sell 5 @ 0.70 -> realized 1.0; mark 0.45 on 15
    p = token_pnl([f(1, "BUY", "0.40", "10"), f(2, "BUY", "0.60", "10"), f(3, "SELL", "0.70", "5")], D("0.45"), None)
    assert (p.position, p.avg_entry, p.realized) == (D(15), D("0.5"), D("1.000000"))
    assert p.unrealized == D("-0.750000") and p.net == D("0.250000") and p.mark == D("0.45")
    assert (p.bought, p.sold) == (D(20), D(5))


def test_avg_after_flat_restarts_at_new_price() -> None:
    p = token_pnl([f(1, "BUY", "0.2", "3"), f(2, "SELL", "0.3", "3"), f(3, "BUY", "0.7", "1")], D("0.7"), None)
    assert p.avg_entry == D("0.7") and p.realized == D("0.300000") and p.unrealized == 0


def test_oversell_realizes_only_the_position_like_the_worker() -> None:
    p = token_pnl([f(1, "BUY", "0.5", "2"), f(2, "SELL", "0.6", "5")], None, None)
    assert p.position == 0 and p.realized == D("0.200000") and p.sold == D(5)


def test_settlement_at_payout() -> None:
    p = token_pnl([f(1, "BUY", "0.30", "10"), f(2, "SELL", "0.50", "4")], D("0.9"), D(1))
    assert p.settled == D("4.200000") and p.unrealized == 0 and p.position == 0 and p.mark is None
    assert p.realized == D("0.800000") and p.net == D("5.000000")
    lost = token_pnl([f(1, "BUY", "0.30", "10")], None, D(0))
    assert lost.settled == D("-3.000000") and lost.payout == 0


def test_fees_and_rebates_enter_net() -> None:
    p = token_pnl([f(1, "BUY", "0.5", "10", fee="0.0175"), f(2, "SELL", "0.5", "10", rebate="0.00350")], None, None)
    assert (p.fees, p.rebates, p.net) == (D("0.017500"), D("0.003500"), D("-0.014000"))


def test_rounding_half_even_once_at_output() -> None:
    assert micro(D("0.0000005")) == D("0") and micro(D("0.0000015")) == D("0.000002")
    # 3 buys of 1 @ 1/3-ish prices: avg is not a finite decimal, unrealized is rounded once
    p = token_pnl([f(1, "BUY", "0.1", "1"), f(2, "BUY", "0.1", "1"), f(3, "BUY", "0.2", "1")], D("0.2"), None)
    assert p.unrealized == D("0.200000")  # 3 x (0.2 - 0.1333...) = 0.2 after rounding
    assert p.net == p.realized + p.unrealized + p.settled - p.fees + p.rebates


def test_bad_side_and_foreign_token_are_refused() -> None:
    with pytest.raises(ValueError, match="side"):
        token_pnl([f(1, "HOLD", "0.5", "1")], None, None)
    with pytest.raises(ValueError, match="other|of token"):
        token_pnl([f(1, "BUY", "0.5", "1"), f(2, "BUY", "0.5", "1", token="x")], None, None, T)


def test_aggregate_groups_and_as_json() -> None:
    a = replace(token_pnl([f(1, "BUY", "0.5", "2")], D("0.6"), None), condition_id="c1", leader="L")
    b = replace(token_pnl([f(1, "BUY", "0.5", "2", token="t2")], None, D(1)), condition_id="c1", leader="")
    tot = pnl.aggregate([a, b])["total"]
    assert (tot.tokens, tot.unrealized, tot.settled, tot.net) == (2, D("0.2"), D("1"), D("1.2"))
    assert set(pnl.aggregate([a, b], "leader")) == {"L", ""}
    assert pnl.aggregate([a, b], "condition_id")["c1"].net == D("1.2")
    assert pnl.as_json(tot) == {"realized": "0.000000", "unrealized": "0.200000", "settled": "1.000000",
                                "fees": "0.000000", "rebates": "0.000000", "net": "1.200000"}
    assert pnl.aggregate([])["total"].net == 0
    with pytest.raises(ValueError):
        pnl.aggregate([a], "day")


def test_equity_curve_samples_fills_marks_and_payouts() -> None:
    fills = [f(1000, "BUY", "0.4", "10"), f(3000, "SELL", "0.5", "5")]
    marks = [(0, T, D("0.3")), (1500, T, D("0.45")), (3500, T, D("0.6"))]
    curve = pnl.equity_curve(fills, marks, {T: (5000, D(1))}, 0, 6000, 1000)
    assert [c[0] for c in curve] == [0, 1000, 2000, 3000, 4000, 5000, 6000]
    assert curve[0][1:] == (0, 0, 0)
    assert curve[1][1:] == (0, D("-1.0"), D("-1.0"))  # 10 x (0.3 - 0.4)
    assert curve[2][2] == D("0.5")  # 10 x (0.45 - 0.4)
    assert curve[4][1:] == (D("0.5"), D("1.0"), D("1.5"))
    assert curve[5][1:] == (D("3.5"), D("0"), D("3.5"))  # 0.5 realized + 5 x (1 - 0.4) settled


prices = st.integers(1, 99).map(lambda c: D(c) / 100)
sizes = st.integers(1, 10_000).map(lambda c: D(c) / 100)
trades = st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), prices, sizes), min_size=1, max_size=25)


def _fills(rows: list[tuple[str, D, D]]) -> list[Fill]:
    return [Fill(i, T, s, p, q, trade_id=f"t{i:03}") for i, (s, p, q) in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(prices, sizes), min_size=1, max_size=20), prices)
def test_round_trip_at_one_price_is_zero(buys: list[tuple[D, D]], price: D) -> None:
    total = sum(q for _, q in buys)
    fills = [Fill(i, T, "BUY", price, q, trade_id=f"b{i:03}") for i, (_, q) in enumerate(buys)]
    p = token_pnl(fills + [Fill(999, T, "SELL", price, total, trade_id="s")], price, None)
    assert p.position == 0 and p.realized == 0 and p.net == 0


@settings(max_examples=300, deadline=None)
@given(trades, prices)
def test_realized_plus_unrealized_is_cash_flow_plus_position_at_mark(rows: list[tuple[str, D, D]], mark: D) -> None:
    p, pos, cash = token_pnl(_fills(rows), mark, None), D(0), D(0)
    for side, price, size in rows:
        done = size if side == "BUY" else min(size, pos)
        pos, cash = (pos + done, cash - price * done) if side == "BUY" else (pos - done, cash + price * done)
    assert p.position == pos
    assert abs(p.realized + p.unrealized - (cash + pos * mark)) <= D("0.000001")


@settings(max_examples=200, deadline=None)
@given(trades, st.sampled_from([D(0), D(1), D("0.5")]))
def test_settlement_closes_the_books(rows: list[tuple[str, D, D]], payout: D) -> None:
    open_ = token_pnl(_fills(rows), payout, None)
    done = token_pnl(_fills(rows), D("0.01"), payout)
    assert done.position == 0 and done.unrealized == 0 and done.realized == open_.realized
    assert done.settled == open_.unrealized  # same formula, same rounding


@settings(max_examples=200, deadline=None)
@given(trades, prices, st.randoms(use_true_random=False))
def test_any_input_order_gives_the_same_answer(rows: list[tuple[str, D, D]], mark: D, rnd: random.Random) -> None:
    fills = _fills(rows)
    shuffled = fills[:]
    rnd.shuffle(shuffled)
    assert token_pnl(shuffled, mark, None) == token_pnl(fills, mark, None)
