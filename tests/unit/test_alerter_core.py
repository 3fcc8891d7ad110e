"""The alerter's pure parts: what is alerted on (halt, daily loss, failed token, feeds, services), the
rate limiter's invariants (hypothesis), the payload per webhook kind, the state's JSON, the settings."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.settings import BadSetting, load_settings
from services.alerter.codec import dump_outbox, dump_state, load_outbox, load_state
from services.alerter.config import AlerterSettings
from services.alerter.core import Event, Inputs, Rules, State, decide, render
from services.alerter.limiter import HOUR_MS, Alert, LimiterState, Limits, flush, offer
from services.alerter.webhook import payload_for

T0 = 1_700_000_000_000
RULES = Rules(Limits(300_000, 30), 30_000)
TOKEN = "7087" * 19


def ev(n: int, reason: str, svc: str = "scheduler", token: str = "", wall: int = T0, **fields: str) -> Event:
    return Event(f"{T0 + n}-0", reason, svc, token, wall, {"reason": reason, "svc": svc, **fields})


def run(state: State, now: int = T0, events: tuple[Event, ...] = (), halt: str | None = None,
        beats: dict[str, int] | None = None) -> tuple[State, list[Alert]]:
    return decide(state, Inputs(events, halt, beats or {}), now, RULES)


# ---- what is alerted on ----

def test_halt_alerts_once_with_its_reason_then_once_when_lifted() -> None:
    s, out = run(State(), halt="MANUAL_HALT")
    assert [(a.kind, a.severity, a.text) for a in out] == [("halt", "critical", "trading HALTED: MANUAL_HALT")]
    s, out = run(s, T0 + 1000, halt="MANUAL_HALT")
    assert out == []
    s, out = run(s, T0 + 2000, halt=None)
    assert [(a.kind, a.recovery) for a in out] == [("halt_cleared", True)] and "was: MANUAL_HALT" in out[0].text


@pytest.mark.parametrize("key_first", [True, False])
def test_a_daily_loss_halt_is_one_daily_loss_alert_whichever_source_comes_first(key_first: bool) -> None:
    key = "DAILY_LOSS_LIMIT day_pnl=-51.2 limit=50"
    event = ev(1, "HALT_DAILY_LOSS", "maker_worker", TOKEN, day_pnl="-51.2", limit="50", level="error")
    # the worker sets pb:halt, then journals the event: either can be read first (events go before the key)
    s, out = run(State(), halt=key) if key_first else run(State(), events=(event,), halt=key)
    s, more = run(s, T0 + 500, events=() if not key_first else (event,), halt=key)
    s, again = run(s, T0 + 900, events=(), halt=key)
    alerts = out + more + again
    assert [a.kind for a in alerts] == ["daily_loss"] and "50" in alerts[0].text and "-51.2" in alerts[0].text


def test_a_token_entering_failed_is_alerted_with_its_token_and_reason() -> None:
    e = ev(1, "BAD_MARKET_METADATA", "scheduler", TOKEN, state="failed", prev="candidate", level="error")
    ok = ev(2, "TOKEN_ACTIVATED", "scheduler", TOKEN, state="active")
    s, out = run(State(), events=(e, ok))
    assert [(a.kind, a.token_id, a.reason, a.key) for a in out] == [
        ("token_failed", TOKEN, "BAD_MARKET_METADATA", f"failed:{TOKEN}")]
    assert s.cursor == ok.id


def test_feed_down_and_restored_and_the_alerters_own_events_are_ignored() -> None:
    down = ev(1, "FEED_GATEWAY_DOWN", detail="state=reconnecting")
    user = ev(2, "USER_FEED_DISCONNECTED", "user_feed", cause="code=1006")
    own = ev(3, "ALERT_SEND_FAILED", "alerter", state="failed")
    s, out = run(State(), events=(down, user, own))
    assert [(a.kind, a.key, a.text) for a in out] == [
        ("feed_down", "feed:market", "market data feed DOWN: state=reconnecting"),
        ("feed_down", "feed:user", "user channel DOWN: code=1006")]
    s, out = run(s, T0 + 5000, events=(ev(4, "FEED_GATEWAY_RESTORED", down_wall_ms="5000"),
                                       ev(5, "USER_FEED_CONNECTED", "user_feed")))
    assert [(a.kind, a.recovery) for a in out] == [("feed_recovered", True)] * 2


def test_service_down_once_recovered_once_and_stopped_instances_ignored() -> None:
    beats = {"scheduler-a": T0, "md_gateway-b": T0}
    stop = ev(1, "SERVICE_STOPPED", "md_gateway", wall=T0 + 10, instance="md_gateway-b")
    s, out = run(State(), T0 + 29_000, events=(stop,), beats=beats)
    assert out == []
    s, out = run(s, T0 + 31_000, beats=beats)
    assert [(a.kind, a.key) for a in out] == [("service_down", "svc:scheduler-a")]
    s, out = run(s, T0 + 40_000, beats=beats)
    assert out == []
    s, out = run(s, T0 + 41_000, beats={**beats, "scheduler-a": T0 + 41_000})
    assert [(a.kind, a.recovery) for a in out] == [("service_recovered", True)]
    s, out = run(s, T0 + 10 * 60_000, beats={**beats, "md_gateway-b": T0 + 20})  # restarted, then died
    assert {a.key for a in out} == {"svc:scheduler-a", "svc:md_gateway-b"}


def test_members_silent_for_over_a_day_are_history() -> None:
    assert run(State(), T0 + 25 * 3_600_000, beats={"old": T0})[1] == []


def test_suppressed_alerts_are_reported_in_the_next_one() -> None:
    s, out = run(State(), events=tuple(ev(i, "ORDER_REJECTED", "maker_worker", "t1", state="failed") for i in range(3)))
    assert len(out) == 1 and out[0].suppressed == 0
    s, out = run(s, T0 + 300_000, events=(ev(9, "REDEEM_FAILED", "maker_worker", "t1", state="failed"),))
    assert out[0].suppressed == 2 and render(out[0]).endswith("(+2 more suppressed)")


def test_a_down_held_back_by_the_interval_goes_out_later_unless_it_recovered() -> None:
    s, out = run(State(), events=(ev(1, "FEED_GATEWAY_DOWN"),))
    s, out = run(s, T0 + 1000, events=(ev(2, "FEED_GATEWAY_RESTORED"),))
    assert [a.kind for a in out] == ["feed_recovered"]
    s, out = run(s, T0 + 2000, events=(ev(3, "FEED_GATEWAY_DOWN"),))
    assert out == [] and "feed:market" in s.limiter.deferred
    s, out = run(s, T0 + 300_000)
    assert [a.kind for a in out] == ["feed_down"]  # still down: the operator is told
    s, out = run(s, T0 + 301_000, events=(ev(4, "FEED_GATEWAY_RESTORED"),))
    s, out = run(s, T0 + 302_000, events=(ev(5, "FEED_GATEWAY_DOWN"),))
    s, out = run(s, T0 + 303_000, events=(ev(6, "FEED_GATEWAY_RESTORED"),))
    s, out = run(s, T0 + 900_000)
    assert out == [] and s.limiter.suppressed == 1  # the flap that never reached the operator is counted


# ---- the rate limiter's invariants ----

KEYS = ("halt", "feed:user", "svc:a", "failed:t")
OFFER = st.tuples(st.integers(0, 400_000), st.sampled_from(KEYS), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(OFFER, max_size=60), st.integers(0, 600_000), st.integers(1, 5))
def test_rate_limiter_invariants(steps: list[tuple[int, str, bool]], interval: int, per_hour: int) -> None:
    limits, lim, now = Limits(interval, per_hour), LimiterState(), T0
    sent: list[tuple[int, Alert]] = []
    offered, last_offered = 0, {}
    for gap, key, up in steps:
        now += gap
        condition = key != "failed:t"
        alert = Alert("x", key, "info", "x", now, condition=condition, recovery=up and condition)
        lim, out = flush(lim, now, limits)
        sent += [(now, a) for a in out]
        lim, out = offer(lim, alert, now, limits)
        sent += [(now, a) for a in out]
        offered += not alert.recovery
        if condition:
            last_offered[key] = not up
    for _ in range(len(KEYS) + 1):  # a quiet spell: everything deferred goes out
        now += HOUR_MS + interval
        lim, out = flush(lim, now, limits)
        sent += [(now, a) for a in out]
    times = [t for t, _ in sent]
    assert all(sum(1 for u in times if t - HOUR_MS < u <= t) <= per_hour for t in times)
    for key in KEYS:
        downs = [t for t, a in sent if a.key == key and not a.recovery]
        assert all(b - a >= interval for a, b in zip(downs, downs[1:]))
        told = False
        for _, a in (x for x in sent if x[1].key == key):
            assert not a.recovery or told  # a recovery only follows a down the operator was told
            told = a.condition and not a.recovery
    downs_sent = sum(1 for _, a in sent if not a.recovery)
    assert offered == downs_sent + sum(a.suppressed for _, a in sent) + lim.suppressed + len(lim.deferred)
    assert not lim.deferred and lim.told_down == {k for k, down in last_offered.items() if down}


# ---- payloads, state JSON, settings ----

ALERT = Alert("token_failed", "failed:t", "error", "token t FAILED: ORDER_REJECTED", T0, "t", "ORDER_REJECTED",
              suppressed=3)


def test_payload_per_webhook_kind() -> None:
    text = "polyband: token t FAILED: ORDER_REJECTED (+3 more suppressed)"
    assert payload_for("https://discord.com/api/webhooks/1/abc", ALERT) == {"content": text}
    assert payload_for("https://discordapp.com/api/webhooks/1/abc", ALERT) == {"content": text}
    assert payload_for("https://api.telegram.org/bot123:XYZ/sendMessage?chat_id=42", ALERT) == {"text": text}
    assert payload_for("https://hooks.example.org/x", ALERT) == {
        "text": text, "alert": "token_failed", "severity": "error", "token_id": "t", "reason": "ORDER_REJECTED",
        "ts_ms": T0, "suppressed": 3, "source": "polyband"}


def test_state_and_outbox_round_trip_and_garbage_is_refused() -> None:
    s, _ = run(State(), events=(ev(1, "FEED_GATEWAY_DOWN"),), halt="MANUAL_HALT",
               beats={"w": T0 - 60_000, "x": T0})
    s = replace(s, limiter=replace(s.limiter, deferred={ALERT.key: ALERT}),
                stopped={"x": T0 - 1})
    assert load_state(dump_state(s), s.cursor) == s
    assert load_outbox(dump_outbox([ALERT])) == [ALERT]
    for bad in ("{", "[]", '{"halt": ""}'):
        with pytest.raises(ValueError):
            load_state(bad, "0-0")
    with pytest.raises(ValueError):
        load_outbox('[{"kind": "x"}]')


def test_webhook_url_is_optional_and_a_bad_one_is_refused_without_showing_it() -> None:
    assert load_settings(AlerterSettings, alert_webhook_url="").webhook_url() == ""
    url = "https://api.telegram.org/bot123:SECRET/sendMessage?chat_id=1"
    assert load_settings(AlerterSettings, alert_webhook_url=url).webhook_url() == url
    with pytest.raises(BadSetting) as exc:
        load_settings(AlerterSettings, alert_webhook_url="ftp://bot123:SECRET@x")
    assert "PB_ALERT_WEBHOOK_URL" in str(exc.value) and "SECRET" not in str(exc.value)
    with pytest.raises(BadSetting, match="PB_ALERT_MAX_PER_HOUR=0"):
        load_settings(AlerterSettings, alert_max_per_hour=0)
