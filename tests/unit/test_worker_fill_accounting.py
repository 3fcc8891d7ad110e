"""The pure rules of settling our orders from the venue's record (services/maker_worker/settlement.py)."""
from __future__ import annotations

from decimal import Decimal

from libs.common.venue_types import OrderState
from services.maker_worker.fill_accounting import (
    TRADES_MARGIN_MS, close_check, final_status, ledger_accounted, trade_count, trades_after_ms,
)

D = Decimal


def entry(order_id: str, size: str, fence: int, counted: str, status: str = "MATCHED") -> dict[str, str]:
    return {"order_id": order_id, "size": size, "fence": str(fence), "counted": counted, "status": status}


def state(oid: str, status: str, matched: str = "0", token: str = "T") -> OrderState:
    return OrderState(oid, status, "BUY", D("0.5"), D(10), D(matched), token)


def test_ledger_accounts_the_placing_leases_entries_and_any_counted_one() -> None:
    entries = [entry("o", "4", 1, "4"), entry("o", "3", 1, "0"),  # placed under fence 1: 3 were counted by a poll
               entry("o", "2", 2, "2"),  # a later lease counted 2
               entry("o", "5", 2, "0"),  # a later lease only LOGGED 5 (the old takeover rule): not accounted
               entry("o", "9", 1, "9", "FAILED"), entry("x", "7", 1, "7")]
    assert ledger_accounted(entries, "o", "1") == 9
    assert ledger_accounted(entries, "o", "") == 6, "no record: only what was counted"


def test_a_trade_counts_only_what_no_poll_or_earlier_trade_accounted() -> None:
    assert trade_count(D(0), D(0), D(10)) == 10
    assert trade_count(D(4), D(0), D(6)) == 6, "a record that lags the ledger does not double count"
    assert trade_count(D(4), D(7), D(3)) == 0, "a poll already counted these shares"
    assert trade_count(D(4), D(7), D(6)) == 3
    assert trade_count(D(0), D(10), D(10)) == 0


def test_trades_are_listed_from_before_our_oldest_order() -> None:
    assert trades_after_ms([0, 5_000_000, 4_000_000]) == 4_000_000 - TRADES_MARGIN_MS
    assert trades_after_ms([]) == 0 and trades_after_ms([1_000]) == 0


def test_final_status_comes_from_the_venue_never_blindly_canceled() -> None:
    assert final_status("LIVE", state("o", "MATCHED", "10")) == ("MATCHED", "ORDER_SETTLED")
    assert final_status("LIVE", state("o", "CANCELED", "4")) == ("CANCELED", "ORDER_SETTLED")
    assert final_status("CANCELED", state("o", "MATCHED", "10")) == ("MATCHED", "ORDER_SETTLED")
    assert final_status("LIVE", state("o", "LIVE")) == ("LIVE", "ORDER_STILL_LIVE")
    assert final_status("PENDING", None) == ("FAILED", "ORDER_NEVER_ARRIVED")
    assert final_status("LIVE", None) == ("CANCELED", "ORDER_VANISHED")


def test_close_check_blocks_on_unexplained_shares_or_orders_only() -> None:
    ok = close_check(D(10), D(10), [state("mine", "LIVE")], {"mine"}, "T")
    assert ok.ok and ok.diff == 0
    shares = close_check(D(0), D(10), [], set(), "T")
    assert not shares.ok and shares.diff == 10
    fewer = close_check(D(10), D(4), [], set(), "T")
    assert not fewer.ok and fewer.diff == -6
    orders = close_check(D(0), D(0), [state("stray", "LIVE"), state("other", "LIVE", token="U")], set(), "T")
    assert not orders.ok and [v.id for v in orders.unexplained] == ["stray"], "another token's order is not ours"
