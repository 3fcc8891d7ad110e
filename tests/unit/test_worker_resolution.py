"""The pure strategy when its token's market resolves: cancel everything, never place again, settle at the
payout (average cost, exact Decimal), redeem with bounded retries; and the wait for it at the market end."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.maker_worker.models import (
    Cancel, Fill, MarketView, Note, OpenOrder, OrderGone, Params, Place, Redeem, Redeemed, RedeemFailed, Release,
    Resolved, Tick, TokenState, Transition,
)
from services.maker_worker.strategy import step
from services.maker_worker.tokens import position_fields, resolution_events

D = Decimal
NOW = 1_000_000
P = Params(aggressive_step_after_ms=5_000, sell_only_window_ms=0, signal_timeout_ms=10**9, balance_backoff_ms=0,
           resolution_wait_ms=60_000, max_redeem_attempts=3, redeem_backoff_ms=1_000)
M = MarketView(D("0.50"), D("0.51"), D("0.01"), D(5), NOW + 600_000)


def st(**kw: object) -> TokenState:
    base = dict(token_id="t", end_ms=NOW + 600_000, tick_size=D("0.01"), min_order_size=D(5), leader_price=D("0.50"),
                last_signal_ms=NOW, condition_id="0xc")
    base.update(kw)
    return TokenState(**base)  # type: ignore[arg-type]


def order(oid: str, side: str, price: str) -> OpenOrder:
    return OpenOrder(oid, side, D(price), D(10), "entry", NOW)  # type: ignore[arg-type]


def holding() -> TokenState:
    """Two BUY fills: 10 @ 0.47 and 5 @ 0.53 -> 15 shares at avg 0.49; one SELL 3 @ 0.60 -> realized 0.33."""
    s = st(orders=(order("b1", "BUY", "0.47"), order("b2", "BUY", "0.53"), order("s1", "SELL", "0.60")))
    fills = (Fill("b1", "BUY", D("0.47"), D(10)), Fill("b2", "BUY", D("0.53"), D(5)), Fill("s1", "SELL", D("0.60"), D(3)))
    for f in fills:
        s, _ = step(s, M, f, NOW, P)
    assert (s.position, s.avg_entry, s.realized_pnl) == (D(12), D("0.49"), D("0.33"))
    return s


def test_resolution_cancels_every_order_first_and_places_nothing() -> None:
    s, out = step(holding(), M, Resolved(D(1)), NOW, P)
    assert out == [] and s.resolved and s.payout == D(1)
    s, out = step(s, M, Tick(), NOW, P)
    assert out == [Cancel(o, "MARKET_RESOLVED") for o in ("b1", "b2", "s1")]
    for oid in ("b1", "b2", "s1"):
        s, _ = step(s, M, OrderGone(oid, "CANCELED"), NOW, P)
    s, out = step(s, M, Tick(), NOW, P)
    assert not any(isinstance(i, (Place, Cancel)) for i in out)


def test_settlement_math_winner_and_loser_exact() -> None:
    for payout, pnl in ((D(1), D("6.12")), (D(0), D("-5.88"))):  # 12 x (1 - 0.49), 12 x (0 - 0.49)
        s = replace(holding(), orders=())
        s, _ = step(s, M, Resolved(payout), NOW, P)
        s, out = step(s, M, Tick(), NOW, P)
        resolved = Transition("resolved", "MARKET_RESOLVED", {"payout": str(payout)})
        assert out == [resolved, Redeem(D(12), payout, pnl, True)]
        assert (s.position, s.redeem_shares, s.realized_pnl) == (0, D(12), D("0.33") + pnl)
        assert position_fields(s)["redeem_pending"] == "12" and position_fields(s)["position"] == "0"
        s, out = step(s, M, Redeemed("0xc", "0xtx", D(12) * payout), NOW, P)
        assert s.done and out[-1] == Release(True)
        t = out[0]
        assert isinstance(t, Transition) and (t.state, t.reason) == ("resolved", "REDEEMED")
        assert (t.info["realized_pnl"], t.info["shares"], t.info["tx_id"]) == (str(D("0.33") + pnl), "12", "0xtx")
        assert step(s, M, Tick(), NOW, P) == (s, [])  # done: nothing ever again


def test_flat_at_resolution_settles_with_nothing_to_redeem() -> None:
    s, _ = step(st(), M, Resolved(D(0)), NOW, P)
    s, out = step(s, M, Tick(), NOW, P)
    assert [type(i) for i in out] == [Transition, Release] and out[0].reason == "SETTLED_FLAT"  # type: ignore[union-attr]
    assert out[0].state == "resolved" and s.done  # type: ignore[union-attr]


def test_unknown_payout_fails_the_token_with_its_reason() -> None:
    s, _ = step(replace(holding(), orders=()), M, Resolved(None), NOW, P)
    s, out = step(s, M, Tick(), NOW, P)
    assert Transition("failed", "PAYOUT_UNKNOWN") in out and s.done and s.position == 12


def test_redeem_failures_back_off_then_fail_the_token() -> None:
    s, _ = step(replace(holding(), orders=()), M, Resolved(D(1)), NOW, P)
    s, _ = step(s, M, Tick(), NOW, P)
    s, out = step(s, M, RedeemFailed("VENUE_ERROR: 502"), NOW, P)
    assert isinstance(out[0], Note) and out[0].fields["retry_in_ms"] == "1000" and not s.done
    assert step(s, M, Tick(), NOW + 999, P)[1] == []  # backing off
    s, out = step(s, M, Tick(), NOW + 1000, P)
    assert out == [Redeem(D(12), D(1), D("6.12"), False)]  # the settlement is booked once
    s, out = step(s, M, RedeemFailed("VENUE_ERROR: 502"), NOW + 1000, P)
    assert out[0].fields["retry_in_ms"] == "2000"  # type: ignore[union-attr]
    s, out = step(s, M, RedeemFailed("VENUE_ERROR: 502"), NOW + 3000, P)
    t = out[0]
    assert s.done and isinstance(t, Transition) and (t.state, t.reason) == ("failed", "REDEEM_FAILED")
    assert out[-1] == Release(True) and t.info["attempt"] == "3"
    assert s.realized_pnl == D("6.45")


def test_holding_at_market_end_cancels_and_waits_for_the_resolution() -> None:
    s = holding()
    end = s.end_ms
    s, out = step(s, M, Tick(), end, P)
    assert [i for i in out if isinstance(i, Cancel)] == [Cancel(o, "MARKET_ENDED") for o in ("b1", "b2", "s1")]
    assert any(isinstance(i, Note) and i.reason == "AWAITING_RESOLUTION" for i in out) and not s.done
    s = replace(s, orders=())
    assert step(s, M, Tick(), end + 1, P)[1] == []  # waiting, noted once
    s2, out = step(s, M, Tick(), end + 60_000, P)
    assert Transition("closed", "MARKET_ENDED") in out and s2.done
    s3, _ = step(s, M, Resolved(D(1)), end + 2, P)
    assert step(s3, M, Tick(), end + 2, P)[1][-1] == Redeem(D(12), D(1), D("6.12"), True)


def test_resolution_event_from_the_book_or_the_token_hash_once() -> None:
    s = st()
    assert resolution_events(s, {}, {"resolved": "1", "payout": "0", "market": "0xm"}) == [Resolved(D(0), "0xm")]
    tok = {"state": "resolved", "payout": "1", "condition_id": "0xc"}
    assert resolution_events(s, tok, {}) == [Resolved(D(1), "0xc")]
    assert resolution_events(s, {}, {"resolved": "1", "payout": ""}) == [Resolved(None)]
    assert resolution_events(s, {"state": "active"}, {"resolved": ""}) == []
    assert resolution_events(replace(s, resolved=True), {}, {"resolved": "1", "payout": "1"}) == []
