"""The pure band strategy (SPEC S3.4): entry, re-pricing, take profit, exits, sizing, lifecycle ends."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.maker_worker.models import (
    Balance, Cancel, Fill, MarketView, ModeChange, Note, OpenOrder, OrderGone, Params, Place, Posted, Rejected,
    Release, SignalRefresh, Tick, TokenState, Transition,
)
from services.maker_worker.pricing import take_profit_target
from services.maker_worker.strategy import step

D = Decimal
NOW = 1_000_000
P = Params(aggressive_step_after_ms=5_000, sell_only_window_ms=60_000, signal_timeout_ms=150_000,
           balance_backoff_ms=0)


def st(**kw: object) -> TokenState:
    base = dict(token_id="t", end_ms=NOW + 600_000, tick_size=D("0.01"), min_order_size=D(5),
                leader_price=D("0.50"), last_signal_ms=NOW)
    base.update(kw)
    return TokenState(**base)  # type: ignore[arg-type]


def mv(bid: str | None, ask: str | None, fresh: bool = True) -> MarketView:
    return MarketView(D(bid) if bid else None, D(ask) if ask else None, D("0.01"), D(5), NOW + 600_000, fresh)


def tick(s: TokenState, m: MarketView, now: int = NOW, **kw: object):  # type: ignore[no-untyped-def]
    return step(s, m, Tick(**kw), now, P)  # type: ignore[arg-type]


def order(oid: str, side: str, price: str, size: str = "10", purpose: str = "entry", status: str = "LIVE") -> OpenOrder:
    return OpenOrder(oid, side, D(price), D(size), purpose, NOW, status=status)  # type: ignore[arg-type]


def places(intents: list) -> list[Place]:  # type: ignore[type-arg]
    return [i for i in intents if isinstance(i, Place)]


def test_entry_at_best_bid_when_spread_is_one_tick() -> None:
    _, out = tick(st(), mv("0.50", "0.51"))
    assert out == [Place("BUY", D("0.50"), D("10.00"), "entry", True)]


def test_entry_one_tick_above_bid_when_spread_is_two_ticks_or_more() -> None:
    _, out = tick(st(), mv("0.48", "0.50"))
    assert places(out)[0].price == D("0.49")


def test_entry_size_is_raised_to_the_market_minimum() -> None:
    _, out = step(st(min_order_size=D(15)), replace(mv("0.50", "0.51"), min_order_size=D(15)), Tick(), NOW,
                  replace(P, order_size=D(10)))
    assert places(out)[0].size == D(15)


def test_no_entry_without_a_bid() -> None:
    s, out = tick(st(), mv(None, "0.51"))
    assert out == [Note("BOOK_SIDE_MISSING", "warn", {"side": "bid"})]  # journaled once, nothing placed
    assert tick(s, mv(None, "0.51"))[1] == []


def test_entry_reprices_when_bid_moves_away_but_not_when_ours_is_the_bid() -> None:
    s = st(orders=(order("a", "BUY", "0.50"),))
    assert tick(s, mv("0.50", "0.53"))[1] == []  # our order is the best bid
    _, out = tick(s, mv("0.52", "0.53"))
    assert out == [Cancel("a", "REPRICE")]


def test_entry_abandoned_when_bid_runs_above_leader_price_plus_premium() -> None:
    s, out = tick(st(leader_price=D("0.40")), mv("0.43", "0.44"))  # 0.43 > 0.40 * 1.05
    assert Transition("cooldown", "ENTRY_ABANDONED") in out and Release(True) in out and s.done


def test_buy_fill_sets_avg_entry_and_take_profit_is_rounded_up_to_tick() -> None:
    s, _ = step(st(orders=(order("a", "BUY", "0.333", "10"),)), mv("0.33", "0.34"),
                Fill("a", "BUY", D("0.333"), D(10)), NOW, P)
    assert s.position == 10 and s.avg_entry == D("0.333")
    assert take_profit_target(s, mv("0.30", "0.40"), P) == D("0.34")  # 0.33966 -> 0.34
    assert take_profit_target(s, mv("0.36", "0.40"), P) == D("0.37")  # best bid + tick wins


def test_holding_cancels_entry_rest_and_posts_take_profit_of_all_shares() -> None:
    s = st(position=D(6), avg_entry=D("0.50"), orders=(order("a", "BUY", "0.50", "10"),))
    _, out = tick(s, mv("0.50", "0.52"))
    assert out[0] == Cancel("a", "ENTRY_FILLED")
    assert places(out) == [Place("SELL", D("0.51"), D("6.00"), "take_profit", True)]


def test_entry_filled_below_the_minimum_keeps_resting() -> None:
    s = st(position=D(4), avg_entry=D("0.50"), orders=(order("a", "BUY", "0.50", "10"),))
    assert tick(s, mv("0.50", "0.52"))[1] == []


def test_stop_loss_switches_to_exiting() -> None:
    s = st(position=D(10), avg_entry=D("0.50"), orders=(order("tp", "SELL", "0.51", purpose="take_profit"),))
    s2, out = tick(s, mv("0.45", "0.47"))
    assert s2.exit_reason == "STOP_LOSS" and Transition("exiting", "STOP_LOSS") in out
    assert Cancel("tp", "REPRICE") in out and not places(out)


def test_signal_timeout_releases_flat_and_exits_holding() -> None:
    later = NOW + 150_000
    s, out = tick(st(orders=(order("a", "BUY", "0.50"),)), mv("0.50", "0.51"), later)
    assert out == [Cancel("a", "SIGNAL_TIMEOUT_FLAT")] and not s.done  # cancel first, finish next Tick
    s, out = tick(replace(s, orders=()), mv("0.50", "0.51"), later)
    assert Transition("cooldown", "SIGNAL_TIMEOUT_FLAT") in out and s.done
    s, out = tick(st(position=D(10), avg_entry=D("0.50")), mv("0.50", "0.51"), later)
    assert Transition("exiting", "SIGNAL_TIMEOUT_HOLDING") in out


def test_signal_refresh_postpones_the_timeout() -> None:
    s, _ = step(st(), mv("0.50", "0.51"), SignalRefresh(D("0.50"), NOW + 100_000), NOW, P)
    _, out = tick(s, mv("0.50", "0.51"), NOW + 150_000)
    assert places(out)


def test_sell_only_window_no_buys_and_flat_release() -> None:
    s = st(end_ms=NOW + 30_000)
    _, out = tick(s, mv("0.50", "0.51"))
    assert Transition("cooldown", "SELL_ONLY_WINDOW_FLAT") in out and not places(out)
    s2, out = tick(replace(s, position=D(10), avg_entry=D("0.50")), mv("0.50", "0.51"))
    assert s2.exit_reason == "SELL_ONLY_WINDOW" and all(p.side == "SELL" for p in places(out))


def test_insufficient_balance_reduces_size_and_never_expands_until_a_buy_fill() -> None:
    s = st(position=D(10), avg_entry=D("0.50"))
    s, _ = step(s, mv("0.50", "0.52"), Balance(D(7)), NOW, P)
    s, out = step(s, mv("0.50", "0.52"), Rejected("SELL", D(10), "take_profit", "INSUFFICIENT_BALANCE"), NOW, P)
    assert s.sell_cap == D(7) and s.balance_failures == 1 and out == []
    s, _ = step(s, mv("0.50", "0.52"), Balance(D(10)), NOW, P)  # balance recovers: still no expansion
    assert places(tick(s, mv("0.50", "0.52"))[1])[0].size == D(7)
    s, _ = step(s, mv("0.50", "0.52"), Fill("x", "BUY", D("0.50"), D(1)), NOW, P)
    assert s.sell_cap is None and places(tick(s, mv("0.50", "0.52"))[1])[0].size == D(11)


def test_balance_failures_end_in_failed() -> None:
    s = st(position=D(10), avg_entry=D("0.50"), balance_failures=2)
    s, out = step(s, mv("0.50", "0.52"), Rejected("SELL", D(10), "take_profit", "INSUFFICIENT_BALANCE"), NOW, P)
    assert Transition("failed", "BALANCE_FAILURES") in out and s.done


def test_exit_only_flat_closes_and_with_shares_sells() -> None:
    s, out = step(st(), mv("0.50", "0.51"), ModeChange("exit_only", "EXIT_ONLY"), NOW, P)
    assert isinstance(out[0], Note)
    s, out = tick(s, mv("0.50", "0.51"))
    assert Transition("closed", "EXIT_ONLY_NOTHING_TO_SELL") in out and s.done
    s = st(position=D(10), avg_entry=D("0.50"), exit_reason="EXIT_ONLY", exit_only=True)
    assert [p.side for p in places(tick(s, mv("0.50", "0.52"))[1])] == ["SELL"]


def test_inactive_cleanup_flat_goes_to_cooldown() -> None:
    s, _ = step(st(), mv("0.5", "0.51"), ModeChange("exiting", "INACTIVE_CLEANUP"), NOW, P)
    assert Transition("cooldown", "INACTIVE_CLEANUP_FLAT") in tick(s, mv("0.50", "0.51"))[1]


def test_pending_order_blocks_every_decision_but_market_end() -> None:
    s = st(orders=(order("p", "BUY", "0.50", status="PENDING"),))
    assert tick(s, mv("0.40", "0.60"))[1] == []
    s2, out = tick(s, mv("0.40", "0.60"), NOW + 600_000)
    assert out == [Cancel("p", "MARKET_ENDED"), Transition("closed", "MARKET_ENDED"), Release(True)] and s2.done


def test_stale_data_is_noted_once_and_nothing_is_quoted() -> None:
    s, out = tick(st(), mv(None, None, fresh=False))
    assert out == [Note("STALE_DATA", "warn")]
    s, out = tick(s, mv(None, None, fresh=False))
    assert out == []
    s, out = tick(s, mv("0.50", "0.51"))
    assert out[0] == Note("STALE_RECOVERED") and places(out)


def test_halt_blocks_entries_but_not_take_profit() -> None:
    s = st(orders=(order("a", "BUY", "0.50"),))
    assert tick(s, mv("0.50", "0.51"), halted=True)[1] == [Cancel("a", "HALT")]
    assert tick(st(), mv("0.50", "0.51"), halted=True)[1] == []
    held = st(position=D(10), avg_entry=D("0.50"))
    assert places(tick(held, mv("0.50", "0.51"), halted=True)[1])[0].side == "SELL"


def test_backoff_holds_places_back() -> None:
    s = st(backoff_until_ms=NOW + 1)
    assert tick(s, mv("0.50", "0.51"))[1] == []
    assert places(tick(s, mv("0.50", "0.51"), NOW + 1)[1])


def test_take_profit_fill_to_flat_goes_to_cooldown() -> None:
    s = st(position=D(10), avg_entry=D("0.50"), orders=(order("tp", "SELL", "0.51", purpose="take_profit"),))
    s, _ = step(s, mv("0.50", "0.52"), Fill("tp", "SELL", D("0.51"), D(10)), NOW, P)
    assert s.position == 0 and s.realized_pnl == D("0.1000")
    s, _ = step(s, mv("0.50", "0.52"), OrderGone("tp", "MATCHED"), NOW, P)
    s, out = tick(s, mv("0.50", "0.52"))
    assert Transition("cooldown", "TAKE_PROFIT_DONE") in out and s.done


def test_posted_order_is_tracked_and_kept_when_it_still_fits() -> None:
    s = st(position=D(10), avg_entry=D("0.50"))
    s, out = tick(s, mv("0.50", "0.52"))
    (p,) = places(out)
    s, _ = step(s, mv("0.50", "0.52"), Posted(OpenOrder("tp", p.side, p.price, p.size, p.purpose, NOW)), NOW, P)
    assert tick(s, mv("0.50", "0.52"))[1] == []
