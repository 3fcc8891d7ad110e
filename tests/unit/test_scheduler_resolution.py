"""Scheduler decisions when a token's market resolves: terminal state ``resolved`` at once, never refilled,
out of the queue, a settle lease when shares are held and no worker holds the token (pure)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.scheduler import housekeeping, lifecycle
from services.scheduler.gamma import parse_market
from services.scheduler.model import BookView, LeaseView, Rules, TokenView
from services.scheduler.signals import Signal

NOW = 1_700_000_000_000
RULES = Rules()
RESOLVED_BOOK = BookView(True, "ok", NOW, NOW, resolved=True, payout="1")
LIVE = LeaseView(True, "w1", NOW + 10_000, "maker")


def view(lease: LeaseView | None = None, book: BookView = RESOLVED_BOOK, **kw: object) -> TokenView:
    flags = {k: kw.pop(k) for k in ("in_subs", "in_offers", "in_pending", "tracked") if k in kw}
    tok = {k: str(v) for k, v in kw.items()}
    return TokenView("7", tok, lease or LeaseView(), book, **flags)  # type: ignore[arg-type]


def kinds(d: object) -> list[str]:
    return [e.kind for e in d.effects]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("v", "effects"), [
    (view(state="pending", in_pending=True), ["dequeue"]),
    (view(state="candidate"), []),
    (view(state="active", position="10"), ["offer", "index_offer"]),
    (view(state="closed", reason="MARKET_ENDED", position="10"), ["offer", "index_offer"]),
    (view(state="cooldown", reason="TAKE_PROFIT_DONE", position="0"), []),
])
def test_resolved_book_moves_the_token_to_resolved_at_once(v: TokenView, effects: list[str]) -> None:
    d = housekeeping.review(v, NOW, NOW, RULES)
    assert d is not None and d.transition is not None
    t = d.transition
    assert (t.state, t.reason, t.expect, dict(t.fields)) == ("resolved", "MARKET_RESOLVED", (v.state,), {"payout": "1"})
    assert kinds(d) == effects
    if "offer" in effects:
        assert d.effects[0].value == "exit_only"


def test_a_worker_holding_the_lease_settles_it_itself() -> None:
    assert housekeeping.review(view(LIVE, state="active", position="10"), NOW, NOW, RULES) is None


def test_resolved_token_keeps_a_settle_lease_offered_until_settled_then_is_cleaned() -> None:
    holding = view(state="resolved", position="10", in_subs=True)
    assert kinds(housekeeping.review(holding, NOW, NOW, RULES)) == ["offer", "index_offer"]
    offered = view(LeaseView(True, "", 0, "exit_only"), state="resolved", position="10", in_offers=True)
    assert housekeeping.review(offered, NOW, NOW, RULES) is None
    pending = view(state="resolved", position="0", redeem_pending="10")  # settled, redeem not done (crash)
    assert "offer" in kinds(housekeeping.review(pending, NOW, NOW, RULES))
    done = view(LeaseView(True, "w1", NOW - 1, "exit_only"), state="resolved", position="0", in_subs=True)
    assert kinds(housekeeping.review(done, NOW, NOW, RULES))[:2] == ["withdraw", "unsubscribe"]


def test_a_closed_token_holding_shares_awaits_the_resolution_subscribed() -> None:
    v = view(LeaseView(True, "w1", NOW - 1, "maker"), book=BookView(True, "ok", NOW, NOW), state="closed",
             reason="MARKET_ENDED", position="10", in_subs=True, in_offers=True)
    d = housekeeping.review(v, NOW, NOW, RULES)
    assert kinds(d) == ["withdraw", "unindex_offer"]
    assert d.notes[0].reason == "AWAITING_RESOLUTION"  # type: ignore[union-attr]
    quiet = view(book=BookView(True, "ok", NOW, NOW), state="closed", reason="MARKET_ENDED", position="10",
                 in_subs=True)
    assert housekeeping.review(quiet, NOW, NOW, RULES) is None


def test_a_buy_after_resolution_is_refused_with_reason() -> None:
    sig = Signal("s9", "0xabc", "BUY", "7", "0xc", Decimal(10), Decimal("0.5"), NOW, stream_id="1-0")
    d = lifecycle.on_buy(view(state="resolved", payout="1"), sig, NOW + 10**9, NOW, RULES)
    assert d.transition is None and [n.reason for n in d.notes] == ["REENTRY_REFUSED_RESOLVED"]


def gamma(closed: bool, prices: list[str]) -> dict:
    return {"clobTokenIds": json.dumps(["7", "8"]), "outcomes": json.dumps(["Up", "Down"]), "conditionId": "0xc",
            "question": "q", "slug": "s", "endDate": "2026-02-18T10:00:00Z", "orderPriceMinTickSize": Decimal("0.01"),
            "orderMinSize": 5, "closed": closed, "active": True, "acceptingOrders": not closed,
            "outcomePrices": json.dumps(prices)}


def test_gamma_closed_with_a_winner_resolves_a_candidate() -> None:
    assert parse_market(gamma(True, ["1", "0"]), "7").payout == 1  # type: ignore[union-attr]
    assert parse_market(gamma(True, ["0", "1"]), "7").payout == 0  # type: ignore[union-attr]
    assert parse_market(gamma(True, ["0.55", "0.45"]), "7").payout is None  # type: ignore[union-attr]
    assert parse_market(gamma(False, ["1", "0"]), "7").payout is None  # type: ignore[union-attr]
    meta = parse_market(gamma(True, ["0", "1"]), "7")
    d = lifecycle.on_metadata("7", meta, NOW, NOW, RULES)
    assert d.transition is not None and (d.transition.state, d.transition.reason) == ("resolved", "MARKET_RESOLVED")
    assert d.transition.fields["payout"] == "0" and not d.effects  # never queued
    closed = lifecycle.on_metadata("7", parse_market(gamma(True, ["0.5", "0.5"]), "7"), NOW, NOW, RULES)
    assert closed.transition is not None and closed.transition.reason == "MARKET_CLOSED"
