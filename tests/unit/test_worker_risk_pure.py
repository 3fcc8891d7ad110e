"""Pure risk arithmetic (services.maker_worker.risk): commitments in integer micro-units, rooms, marks
and the marked-to-market daily loss rule."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from libs.common.exposure import Entry, parse_entry
from services.maker_worker.models import OpenOrder, Place, TokenState
from services.maker_worker.risk import (
    commitment, micro_down, micro_up, mtm_limit_hit, mtm_pnl_micro, need_of, room_usd, upnl_micro,
)

D = Decimal


def state(position: str = "0", avg: str = "0", orders: tuple[OpenOrder, ...] = ()) -> TokenState:
    return TokenState("t", 0, D("0.01"), D(5), position=D(position), avg_entry=D(avg), orders=orders)


def test_commitment_counts_position_at_avg_and_open_buy_remainder_only() -> None:
    buy = OpenOrder("b", "BUY", D("0.40"), D(10), "entry", 0, matched=D(4))  # 6 left
    sell = OpenOrder("s", "SELL", D("0.60"), D(3), "take_profit", 0)
    usd, shares = commitment(state("3", "0.50", (buy, sell)))
    assert usd == 3 * 500_000 + 6 * 400_000  # 1.50 + 2.40 USD
    assert shares == 9_000_000  # position 3 + BUY remainder 6; the SELL commits nothing new


def test_micro_rounding_never_understates_a_commitment_nor_overstates_a_cap() -> None:
    assert micro_up(D("0.0000001")) == 1 and micro_down(D("0.0000019")) == 1
    assert need_of(Place("BUY", D("0.33"), D("3.33"), "entry")) == (1_098_900, 3_330_000)


def test_room_is_cap_minus_others_minus_own_and_never_negative() -> None:
    assert room_usd(2_000_000, 500_000, D(5)) == D("2.5")
    assert room_usd(6_000_000, 0, D(5)) == 0


def test_upnl_marks_position_at_best_bid_and_keeps_last_mark_without_a_bid() -> None:
    assert upnl_micro(state("10", "0.50"), D("0.46")) == -400_000
    assert upnl_micro(state("0", "0.50"), D("0.46")) == 0  # flat: nothing at risk
    assert upnl_micro(state("10", "0.50"), None) is None


def test_mtm_loss_limit_counts_realized_plus_unrealized() -> None:
    assert mtm_pnl_micro(-200_000, [-150_000, 50_000]) == -300_000
    assert mtm_limit_hit(-300_000, D("0.3")) and not mtm_limit_hit(-299_999, D("0.3"))
    assert not mtm_limit_hit(-100_000, D("0.3"))  # realized alone would pass, marks decide
    assert mtm_limit_hit(mtm_pnl_micro(0, [-300_000]), D("0.3"))  # unrealized alone halts


def test_ledger_entries_parse_and_malformed_ones_are_skipped() -> None:
    assert parse_entry("7:1500000:3000000") == Entry(7, 1_500_000, 3_000_000)
    assert parse_entry("garbage") is None and parse_entry("1:2") is None


@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 99)), max_size=6),
       st.integers(0, 10_000), st.integers(1, 99))
def test_commitment_equals_decimal_exposure_rounded_up(orders: list[tuple[int, int]], pos: int, avg: int) -> None:
    """Integer micro-USD agrees with the exact Decimal formula (sizes in 0.01 shares, prices in cents)."""
    oo = tuple(OpenOrder(str(i), "BUY", D(p) / 100, D(s) / 100, "entry", 0) for i, (s, p) in enumerate(orders))
    s = state(str(D(pos) / 100), str(D(avg) / 100), oo)
    exact = s.position * s.avg_entry + sum((o.size * o.price for o in oo), D(0))
    assert commitment(s)[0] == micro_up(exact)
