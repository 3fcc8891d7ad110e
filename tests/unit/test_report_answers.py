"""``polyband report``'s answers (services/report), pure: hand-built journal entries and records."""
from __future__ import annotations

from decimal import Decimal as D

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from libs.common.pnl import TokenPnl
from services.maker_worker.models import MarketView, Note, TokenState
from services.maker_worker.strategy import freshness
from services.report import answers_feed as feed
from services.report import answers_trading as trading
from services.report.answers import TITLES, compute, token_rows
from services.report.model import Params, RunData, percentile
from services.report.reader import parse_since
from services.report.render import render, to_json

T0 = 1_790_000_000_000


def ev(reason: str, t: int, token: str = "tA", **fields: str) -> dict[str, str]:
    return {"ts_ms": str(T0 + t), "svc": fields.pop("svc", "maker_worker"), "reason": reason, "level": "info",
            "token_id": token, **fields}


def test_inactive_separates_warned_cleaned_and_recovered_tokens() -> None:
    d = RunData(events=[ev("HEALTH_INACTIVE_WARN", 0, "a"), ev("INACTIVE_CLEANUP", 10, "a"),
                        ev("HEALTH_INACTIVE_WARN", 0, "b"), ev("HEALTH_RECOVERED", 5, "b"),
                        ev("INACTIVE_CLEANUP_FLAT", 9, "c")])
    out = feed.inactive(d)
    assert out["total"] == {"tokens_warned": 2, "tokens_cleaned_up": 2, "tokens_recovered": 1,
                            "warned": 2, "cleaned_up": 2, "recovered": 1}
    assert out["per_token"]["b"] == {"warned": 1, "cleaned_up": 0, "recovered": 1}


def test_stale_episodes_end_on_the_feed_on_rest_given_up_or_open() -> None:
    evs = [ev("BOOK_REST_FALLBACK", 0), ev("BOOK_FEED_RETURNED", 700),  # feed
           ev("BOOK_REST_FALLBACK", 1000), ev("LEASE_RELEASED", 3000),  # ran on REST until released
           ev("BOOK_REST_FAILED", 4000), ev("STALE_DATA", 4000), ev("LEASE_RELEASED", 9000),  # gave up
           ev("BOOK_REST_FALLBACK", 10_000)]  # still open
    eps = feed.stale_episodes(evs)
    assert [(e["ended"], e["duration_ms"]) for e in eps] == [("feed", 700), ("rest", 2000), ("gave_up", 5000),
                                                            ("open", None)]
    out = feed.stale(RunData(events=evs))
    assert out["total"]["episodes"] == 4 and out["total"]["feed_recovery_rate"] == D("0.250")


def test_side_gaps_count_per_side_with_recovery_rate() -> None:
    d = RunData(events=[ev("BOOK_SIDE_MISSING", 0, side="bid"), ev("BOOK_SIDE_RESTORED", 50, side="bid", gap_ms="50"),
                        ev("BOOK_SIDE_MISSING", 60, side="bid"), ev("BOOK_SIDE_MISSING", 60, side="ask")])
    total = feed.side_gaps(d)["total"]
    assert total["bid_missing"] == 2 and total["bid_restored"] == 1 and total["bid_recovery_rate"] == D("0.500")
    assert total["ask_missing"] == 1 and total["ask_restored"] == 0 and total["bid_gap_p50_ms"] == 50


def test_strategy_journals_a_missing_side_once_and_its_gap_when_it_returns() -> None:
    s = TokenState("tA", T0 + 900_000, D("0.01"), D(5))
    def view(bid: str | None, ask: str | None, fresh: bool = True) -> MarketView:
        return MarketView(D(bid) if bid else None, D(ask) if ask else None, D("0.01"), D(5), T0 + 900_000, fresh)
    s, notes = freshness(s, view(None, "0.5"), T0)
    assert notes == [Note("BOOK_SIDE_MISSING", "warn", {"side": "bid"})] and s.side_missing_ms == (T0, 0)
    s, notes = freshness(s, view(None, "0.5"), T0 + 100)
    assert notes == []  # once per gap
    s, notes = freshness(s, view(None, None, fresh=False), T0 + 200)
    assert notes == [Note("STALE_DATA", "warn")] and s.side_missing_ms == (T0, 0)  # no verdict on a stale book
    s, notes = freshness(s, view("0.4", "0.5"), T0 + 1500)
    assert notes == [Note("STALE_RECOVERED"), Note("BOOK_SIDE_RESTORED", fields={"side": "bid", "gap_ms": "1500"})]
    assert s.side_missing_ms == (0, 0)


def test_orders_fill_rate_and_time_to_fill_from_records_and_fill_events() -> None:
    recs = {"o1": {"status": "MATCHED", "ts_ms": T0}, "o2": {"status": "CANCELED", "ts_ms": T0},
            "o3": {"status": "LIVE", "ts_ms": T0 + 10}, "old": {"status": "MATCHED", "ts_ms": T0 - 99}}
    d = RunData(events=[ev("FILL", 400, order_id="o1"), ev("FILL", 900, order_id="o1")], orders={"tA": recs},
                since_ms=T0)
    row = trading.orders(d)["per_token"]["tA"]
    assert (row["orders"], row["matched"], row["canceled"], row["live"]) == (3, 1, 1, 1)
    assert row["fill_rate"] == D("0.500") and row["fill_p50_ms"] == 900  # the last fill completes the order


def test_fills_and_posts_after_reconnects_vs_otherwise() -> None:
    m = 60_000
    evs = [ev("ORDER_POSTED", 0), ev("WS_RECONNECT", 10 * m, ""), ev("FILL", 11 * m), ev("ORDER_POSTED", 12 * m),
           ev("USER_FEED_DISCONNECTED", 13 * m, ""), ev("FILL", 16 * m), ev("FILL", 19 * m)]
    t = feed.after_reconnects(RunData(events=evs), Params(reconnect_window_ms=5 * m))["total"]
    # windows [10, 15) and [13, 18) merge to [10, 18): 8 of the 19 minutes (+1 ms)
    assert (t["fills_after"], t["fills_otherwise"], t["posted_after"], t["posted_otherwise"]) == (2, 1, 1, 1)
    assert t["minutes_after"] == D("8.000") and t["fills_per_min_after"] == D("0.250")


def test_trading_answers_ignored_exits_queue_rejects_states() -> None:
    toks = {"a": {"state": "closed", "reason": "EXIT_DONE"}, "b": {"state": "exit_only", "reason": "LEADER_SELL"},
            "c": {"state": "cooldown", "reason": "TAKE_PROFIT_DONE"}, "d": {"state": "active"}}
    evs = [ev("IGNORED_NO_POSITION", 0, "x", leader="0xabc", svc="scheduler"), ev("IGNORED_NO_POSITION", 1, "y"),
           ev("STOP_LOSS", 2, "a", state="exiting", position="10"),
           ev("SELL_ALREADY_EXITING", 3, "a", state="exiting", svc="scheduler"),  # a verdict, not a move
           ev("LEADER_SELL", 4, "b", state="exit_only", prev="active", svc="scheduler"),
           ev("INSUFFICIENT_BALANCE", 5, "a", side="SELL"), ev("INSUFFICIENT_BALANCE", 6, "a", side="BUY")]
    d = RunData(events=evs, toks=toks, leases={"b": {"mode": "exit_only", "worker": "w1"}}, now_ms=T0 + 60_004,
                pending=["d"])
    assert trading.ignored_sells(d)["per_leader"] == {"0xabc": {"ignored": 1}, "unknown": {"ignored": 1}}
    ex = trading.exits(d)
    assert ex["by_trigger"] == {"LEADER_SELL": 1, "STOP_LOSS": 1}
    assert ex["by_closing_reason"] == {"closed:EXIT_DONE": 1, "cooldown:TAKE_PROFIT_DONE": 1}
    q = trading.exit_only_queue(d)
    assert q["total"] == {"queued": 1, "max_age_ms": 60_000} and q["per_token"]["b"]["lease"] == "w1"
    assert trading.balance_rejects(d)["total"] == {"sell_rejects": 1, "tokens": 1}
    s = trading.states(d)["total"]
    assert (s["closed"], s["exit_only"], s["cooldown"], s["active"], s["pending_queue"]) == (1, 1, 1, 1, 1)


def test_pnl_per_token_per_leader_and_total() -> None:
    p = [TokenPnl("a", leader="L1", realized=D("1.5"), net=D("1.5")), TokenPnl("b", leader="L1", fees=D("0.1"),
         net=D("-0.1")), TokenPnl("c", leader="L2", settled=D("-2"), net=D("-2"))]
    out = trading.pnl(RunData(pnl=p))
    assert out["total"]["net"] == "-0.600000" and out["total"]["tokens"] == 3
    assert out["per_leader"]["L1"]["net"] == "1.400000" and out["per_leader"]["L2"]["settled"] == "-2.000000"


def test_data_age_percentiles_per_token_from_order_events() -> None:
    evs = [ev("ORDER_POSTED", i, data_age_ms=str(a)) for i, a in enumerate((5, 10, 400, 20))]
    evs.append(ev("ORDER_CANCELED", 9, data_age_ms=""))  # older records: no age
    out = feed.data_age(RunData(events=evs))
    assert out["per_token"]["tA"] == {"n": 4, "p50_ms": 10, "p95_ms": 400, "max_ms": 400}


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=50))
def test_percentiles_are_values_of_the_list_and_ordered(vals: list[int]) -> None:
    p50, p95 = percentile(vals, 50), percentile(vals, 95)
    assert p50 in vals and p95 in vals and min(vals) <= p50 <= p95 <= max(vals)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 1000), max_size=20), st.integers(1, 200))
def test_reconnect_windows_are_disjoint_sorted_and_cover_each_start(starts: list[int], width: int) -> None:
    wins = feed.windows(starts, width, 0, 2000)
    assert all(a < b for a, b in wins) and all(wins[i][1] < wins[i + 1][0] for i in range(len(wins) - 1))
    assert all(any(a <= s < b for a, b in wins) for s in starts)
    assert sum(b - a for a, b in wins) <= len(starts) * width


def test_parse_since_accepts_ms_iso_and_spans_and_names_a_bad_value() -> None:
    assert parse_since("1790000000000", 0) == 1_790_000_000_000
    assert parse_since("30m", T0) == T0 - 1_800_000 and parse_since("2h", T0) == T0 - 7_200_000
    assert parse_since("2026-09-28T09:00:00", 0) == parse_since("2026-09-28T09:00:00+00:00", 0)
    with pytest.raises(ValueError, match="--since='yesterday'"):
        parse_since("yesterday", T0)


def test_json_has_every_answer_with_decimals_as_strings_and_tables_render() -> None:
    d = RunData(events=[ev("FILL", 0), ev("WS_RECONNECT", 1, "")], toks={"tA": {"state": "active", "title": "X, 5PM"}},
                pnl=[TokenPnl("tA", net=D("0.5"))], now_ms=T0 + 1)
    answers = compute(d)
    doc = orjson.loads(to_json(answers, token_rows(d), 0, d.now_ms))
    assert list(doc["answers"]) == list(TITLES) and doc["answers"]["14_pnl"]["total"]["net"] == "0.500000"
    assert doc["tokens"]["tA"]["state"] == "active"
    console = Console(width=200, record=True)
    render(console, answers, token_rows(d), 0, d.now_ms)
    text = console.export_text()
    assert "1. Inactive tokens" in text and "14. P&L" in text and max(len(x) for x in text.splitlines()) <= 200
