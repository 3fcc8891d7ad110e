"""The scheduler's pure core: Gamma parsing, signal parsing, planning, lifecycle and health rules."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.settings import BadSetting, load_settings
from services.scheduler import health, housekeeping, lifecycle, planner
from services.scheduler.config import SchedulerSettings
from services.scheduler.gamma import GammaBadMarket, GammaUnavailable, parse_market, pick_market
from services.scheduler.model import BookView, HealthRecord, LeaseView, Rules, TokenView
from services.scheduler.signals import MalformedSignal, Signal, parse_signal

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "ra1nty" / "market_detail.json"
UP = "94242206871221370391055736153305071391564432448684801902267396130896523340261"
DOWN = "22943400237250229318795315882775337816951160275867284205243766113690886285726"
NOW = 1_700_000_000_000
RULES = Rules()
MIN = 60_000


def real_market() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"), parse_float=Decimal)


def test_real_gamma_market_parses_to_decimal_metadata() -> None:
    meta = parse_market(real_market(), DOWN)
    assert meta is not None
    assert meta.outcome == "Down" and meta.condition_id.startswith("0xba3509")
    assert meta.tick_size == Decimal("0.001") and meta.min_order_size == Decimal("5")
    assert meta.end_ms == 1774166100000  # 2026-03-22T07:55:00Z
    assert not meta.neg_risk and not meta.closed and meta.active and meta.accepting_orders
    assert meta.fields()["tick_size"] == "0.001"
    assert pick_market([real_market()], "123") is None


@pytest.mark.parametrize(("name", "value"), [("clobTokenIds", "not json"), ("orderMinSize", None),
                                             ("orderPriceMinTickSize", True), ("endDate", "soon"),
                                             ("conditionId", "")])
def test_malformed_market_names_field_and_value(name: str, value: object) -> None:
    m = real_market()
    m[name] = value
    with pytest.raises(GammaBadMarket) as err:
        parse_market(m, UP) if name != "clobTokenIds" else pick_market([m], UP)
    assert err.value.field == name and err.value.value == value
    assert not err.value.retryable and GammaUnavailable("x").retryable


def fields(**over: str) -> dict[str, str]:
    base = {"signal_id": "s1", "account": "0xABC", "side": "buy", "token_id": "7", "price": "0.5",
            "size": "10", "ts_ms": "1700000000000"}
    base.update(over)
    return {k: v for k, v in base.items() if v != "-"}


def test_parse_signal() -> None:
    sig = parse_signal("1-0", fields())
    assert (sig.side, sig.account, sig.price, sig.ts_ms) == ("BUY", "0xabc", Decimal("0.5"), NOW)


@pytest.mark.parametrize(("over", "name"), [({"token_id": "-"}, "token_id"), ({"side": "x"}, "side"),
                                            ({"price": "NaN"}, "price"), ({"size": "-1"}, "size"),
                                            ({"ts_ms": "1.5"}, "ts_ms")])
def test_malformed_signal_names_the_field(over: dict[str, str], name: str) -> None:
    with pytest.raises(MalformedSignal) as err:
        parse_signal("1-0", fields(**over))
    assert err.value.field == name


def view(t: str = "7", lease: LeaseView | None = None, **tok: object) -> TokenView:
    return TokenView(t, {k: str(v) for k, v in tok.items()}, lease or LeaseView())


def sig(side: str, t: str = "7") -> Signal:
    return Signal("s1", "0xabc", side, t, "0xc", Decimal(10), Decimal("0.5"), NOW, stream_id="1-0")


LIVE = LeaseView(True, "w1", NOW + 10_000, "maker")


@pytest.mark.parametrize(("v", "state", "reason", "note"), [
    (view(), None, None, "IGNORED_NO_POSITION"),
    (view(state="active", position="0"), None, None, "IGNORED_NO_POSITION"),
    (view(state="pending"), "closed", "LEADER_SOLD_BEFORE_ENTRY", "IGNORED_NO_POSITION"),
    (view(state="active", position="3", lease=LIVE), "exiting", "LEADER_SELL", None),
    (view(state="active", position="3"), "exit_only", "LEADER_SELL", None),
    (view(state="exiting", position="3"), "exit_only", "LEADER_SELL", None),
    (view(state="exiting", position="3", lease=LIVE), None, None, "SELL_ALREADY_EXITING"),
    (view(state="closed", reason="MARKET_ENDED", position="3"), None, None, "IGNORED_NO_POSITION"),
])
def test_sell_rules(v: TokenView, state: str | None, reason: str | None, note: str | None) -> None:
    d = lifecycle.on_sell(v, sig("SELL"), NOW, NOW, RULES)
    assert (d.transition.state, d.transition.reason) == (state, reason) if state else d.transition is None
    assert [n.reason for n in d.notes] == ([note] if note else [])
    if state == "exit_only":
        assert [e.kind for e in d.effects] == ["offer", "index_offer"] and d.effects[0].value == "exit_only"


@pytest.mark.parametrize(("v", "now", "want"), [
    (view(state="cooldown", updated_ms=NOW, cooldown_until_ms=NOW + 10 * MIN), NOW + 9 * MIN, "REENTRY_COOLDOWN"),
    (view(state="cooldown", updated_ms=NOW, cooldown_until_ms=NOW + 10 * MIN), NOW + 10 * MIN, "candidate"),
    (view(state="cooldown", updated_ms=NOW), NOW + 10 * MIN, "candidate"),
    (view(state="closed", reason="EXIT_DONE", updated_ms=NOW), NOW + 10 * MIN, "candidate"),
    (view(state="closed", reason="MARKET_ENDED", updated_ms=NOW), NOW + 100 * MIN, "REENTRY_REFUSED"),
    (view(state="closed", reason="NO_MARKET", updated_ms=NOW), NOW + 100 * MIN, "REENTRY_REFUSED"),
    (view(state="failed", reason="BALANCE_FAILURES"), NOW + 100 * MIN, "REENTRY_REFUSED"),
    (view(state="cooldown", updated_ms=NOW, lease=LeaseView(True, "w1", NOW + 10**9, "maker")), NOW + 20 * MIN,
     "REENTRY_BUSY"),
    (view(state="exit_only"), NOW, "BUY_WHILE_EXITING"),
])
def test_buy_reentry_rules(v: TokenView, now: int, want: str) -> None:
    d = lifecycle.on_buy(v, sig("BUY"), now, NOW, RULES)
    got = d.transition.state if d.transition else d.notes[0].reason
    assert got == want


def pending(t: str, ts: int, end: int = NOW + 4 * 60 * MIN) -> TokenView:
    return view(t, state="pending", signal_ts_ms=ts, end_ms=end)


def test_planner_fifo_capacity_and_refusals() -> None:
    views = {"a": pending("a", 3), "b": pending("b", 1), "c": pending("c", 2, end=NOW + 30 * MIN),
             "d": pending("d", 1), "x": view("x", state="active")}
    queue = [(t, float(v.tok["signal_ts_ms"])) for t, v in views.items() if t != "x"]
    plan = planner.plan_activations(queue, views, NOW, Rules(max_active=3))
    assert plan.activate == ("b", "d") and plan.busy == 1 and plan.free == 2
    assert [(t, r) for t, r, _ in plan.refuse] == [("c", "ENDING_SOON")]


@given(st.lists(st.integers(0, 50), min_size=0, max_size=40), st.integers(0, 12), st.integers(1, 10))
def test_planner_never_exceeds_capacity_and_takes_the_oldest(ts: list[int], busy: int, cap: int) -> None:
    views = {f"p{i}": pending(f"p{i}", t) for i, t in enumerate(ts)}
    views.update({f"b{i}": view(f"b{i}", state="exiting") for i in range(busy)})
    queue = [(f"p{i}", float(t)) for i, t in enumerate(ts)]
    plan = planner.plan_activations(queue, views, NOW, Rules(max_active=cap))
    assert len(plan.activate) == min(max(0, cap - busy), len(ts))
    expected = [t for t, _ in sorted(queue, key=lambda e: (e[1], e[0]))][:len(plan.activate)]
    assert list(plan.activate) == expected


def active(book_ts: int, **tok: object) -> TokenView:
    base = {"state": "active", "activated_ms": NOW, "position": "0", **tok}
    return TokenView("7", {k: str(v) for k, v in base.items()}, LIVE, BookView(True, "ok", book_ts, NOW), in_subs=True)


def test_health_warns_once_then_cleans_up_and_ignores_wall_receive_time_in_paper() -> None:
    gw = HealthRecord()
    rec, notes, d = health.assess_token(active(NOW), gw, NOW + 29 * MIN, NOW, RULES)
    assert notes == [] and d is None
    v = TokenView("7", active(NOW).tok, LIVE, BookView(True, "ok", NOW, NOW + 10**9), in_subs=True)  # wall >> market
    rec, notes, d = health.assess_token(v, gw, NOW + 31 * MIN, NOW, RULES)
    assert [n.reason for n in notes] == ["HEALTH_INACTIVE_WARN"] and rec.warn_ms == NOW + 31 * MIN
    v2 = TokenView("7", v.tok, LIVE, v.book, rec, in_subs=True)
    _, notes, _ = health.assess_token(v2, gw, NOW + 32 * MIN, NOW, RULES)
    assert notes == []
    _, _, d = health.assess_token(v2, gw, NOW + 60 * MIN, NOW, RULES)
    assert d is not None and (d.transition.state, d.transition.reason) == ("exiting", "INACTIVE_CLEANUP")


@pytest.mark.parametrize(("lease", "position", "state"), [
    (LeaseView(True, "w1", NOW - 1, "maker"), "0", "exit_only"),  # holder vanished, flat on record: take over first
    (LeaseView(True, "", 0, "maker"), "0", "cooldown"),  # released (worker cleared): flat is flat
    (LeaseView(), "0", "cooldown"),
    (LeaseView(True, "", 0, "maker"), "3", "exit_only"),
])
def test_inactive_token_of_a_vanished_holder_is_taken_over_not_closed_flat(lease: LeaseView, position: str,
                                                                         state: str) -> None:
    tok = {**active(NOW).tok, "position": position}
    v = TokenView("7", tok, lease, BookView(True, "ok", NOW, NOW), in_subs=True)
    _, _, d = health.assess_token(v, HealthRecord(), NOW + 61 * MIN, NOW, RULES)
    assert d is not None and d.transition.state == state


@pytest.mark.parametrize(("st", "lease", "want"), [
    ("active", LeaseView(True, "w1", NOW - 1, "maker"), "exit_only"),  # vanished holder: a takeover settles it
    ("active", LeaseView(True, "", 0, "maker"), "closed"),
    ("exiting", LeaseView(), "closed"),
    ("exit_only", LeaseView(True, "w1", NOW - 1, "exit_only"), None),  # re-offered by the lease repairs
])
def test_market_ended_closes_only_what_nobody_may_still_have_orders_on(st: str, lease: LeaseView,
                                                                       want: str | None) -> None:
    v = TokenView("7", {"state": st, "end_ms": str(NOW - 1), "position": "0"}, lease, in_subs=True, tracked=True)
    d = housekeeping.running(v, NOW, NOW, RULES)
    got = d.transition.state if d is not None and d.transition is not None else None
    assert got == want
    if want is None:
        assert d is not None and any(e.kind == "index_offer" for e in d.effects)


def test_feed_problems_suspend_inactivity() -> None:
    down = HealthRecord(feed=health.GATEWAY_DOWN)
    assert health.assess_token(active(NOW), down, NOW + 5 * 60 * MIN, NOW, RULES) == (HealthRecord(), [], None)
    no_book = TokenView("7", active(NOW).tok, LIVE, BookView(), in_subs=True)
    rec, notes, d = health.assess_token(no_book, HealthRecord(), NOW + 5 * 60 * MIN, NOW + 20_000, RULES)
    assert rec.feed == "FEED_NO_BOOK" and d is None
    fresh = {"state": "connected", "updated_ms": str(NOW)}
    assert health.gateway_problem(fresh, NOW + 5001, 5000).startswith("updated_ms")
    assert health.gateway_problem({"state": "connected", "updated_ms": str(NOW)}, NOW + 5000, 5000) == ""
    assert health.gateway_problem({}, NOW, 5000) == "no gateway hash"


def test_finished_token_with_live_lease_is_left_until_released() -> None:
    v = TokenView("7", {"state": "closed", "reason": "EXIT_DONE"}, LIVE, in_subs=True, in_offers=True)
    assert housekeeping.review(v, NOW, NOW, RULES) is None
    expired = TokenView("7", v.tok, LeaseView(True, "w1", NOW - 1, "exit_only"), in_subs=True, in_offers=True)
    d = housekeeping.review(expired, NOW, NOW, RULES)
    assert d is not None and [e.kind for e in d.effects][:3] == ["withdraw", "unsubscribe", "unindex_offer"]
    assert not any(e.kind in ("offer", "index_offer") for e in d.effects)


def test_settings_paper_defaults_and_checks() -> None:
    s = load_settings(SchedulerSettings)
    assert (s.sell_only_window_s, s.inactive_warn_s, s.inactive_cleanup_s, s.reentry_cooldown_s) == (60, 90, 180, 30)
    assert s.gamma_url.endswith("/gamma") and s.max_active_tokens == 10 and s.lease_ttl_ms == 10_000
    live = load_settings(SchedulerSettings, mode="live", live_confirm=True, private_key="0x" + "1" * 64)
    assert (live.inactive_warn_s, live.inactive_cleanup_s, live.reentry_cooldown_s) == (1800, 3600, 600)
    assert "1111" not in repr(live)
    with pytest.raises(BadSetting, match="inactive_cleanup_s"):
        load_settings(SchedulerSettings, inactive_warn_s=500)
    with pytest.raises(BadSetting, match="PB_PRIVATE_KEY"):
        load_settings(SchedulerSettings, mode="live", live_confirm=True)


def test_bad_setting_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PB_MAX_ACTIVE_TOKENS": "ten", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "services.scheduler"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "BAD_SETTING" in res.stderr and "PB_MAX_ACTIVE_TOKENS='ten'" in res.stderr
