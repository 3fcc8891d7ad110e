"""md_gateway: shard plan (<= cap per connection, stable), keepalive rules, backoff, messages, settings."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.settings import BadSetting, load_settings
from services.md_gateway.config import GatewaySettings
from services.md_gateway.shards import initial_subscribe, plan, subscribe_op, unsubscribe_op
from services.md_gateway.ws import OPEN, ConnState, backoff_ms, liveness

tokens = st.sets(st.integers(min_value=0, max_value=60).map(str), max_size=60)


@given(st.lists(tokens, min_size=1, max_size=6), st.integers(min_value=1, max_value=12))
def test_plan_covers_wanted_within_the_cap_and_keeps_tokens_where_they_are(steps: list[set[str]], cap: int) -> None:
    current: dict[int, set[str]] = {}
    for wanted in steps:
        new = plan(current, wanted, cap)
        flat = [t for toks in new.values() for t in toks]
        assert sorted(flat) == sorted(wanted)  # every wanted token exactly once
        assert all(0 < len(toks) <= cap for toks in new.values())
        for cid, toks in current.items():  # nobody moves
            for t in toks & wanted:
                assert t in new[cid]
        current = new


def test_plan_opens_more_connections_past_the_cap() -> None:
    wanted = {f"t{i:04d}" for i in range(450)}
    new = plan({}, wanted, 200)
    assert sorted(len(v) for v in new.values()) == [50, 200, 200]
    with pytest.raises(ValueError):
        plan({}, wanted, 0)


def test_liveness_pings_on_schedule_and_declares_a_silent_link_dead() -> None:
    c = ConnState(0, status=OPEN, next_ping_ms=10_000)
    assert liveness(c, 9_999, 10_000, 20_000) == "ok"
    assert liveness(c, 10_000, 10_000, 20_000) == "ping"
    c.ping_sent_ms, c.next_ping_ms = 10_000, 20_000
    assert liveness(c, 29_999, 10_000, 20_000) == "ping"  # keep pinging while waiting
    assert liveness(c, 30_000, 10_000, 20_000) == "dead"  # oldest PING unanswered for 20 s


def test_backoff_grows_exponentially_with_jitter_within_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        cap = min(30_000, 500 * 2 ** (attempt - 1))
        d = backoff_ms(attempt, 500, 30_000, rng.random())
        assert cap / 2 <= d <= cap
    assert backoff_ms(1, 500, 30_000, 0.0) == 250 and backoff_ms(40, 500, 30_000, 0.999) <= 30_000


def test_subscription_messages_follow_the_documented_shapes() -> None:
    assert json.loads(initial_subscribe(["a", "b"])) == {"assets_ids": ["a", "b"], "type": "market",
                                                         "initial_dump": True, "level": 2,
                                                         "custom_feature_enabled": True}
    assert json.loads(subscribe_op(["c"])) == {"operation": "subscribe", "assets_ids": ["c"],
                                               "custom_feature_enabled": True}
    assert json.loads(unsubscribe_op(["a"])) == {"operation": "unsubscribe", "assets_ids": ["a"]}


def test_bad_settings_name_the_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_WS_MARKET_URL", "http://nope")
    with pytest.raises(BadSetting, match="PB_WS_MARKET_URL='http://nope'"):
        load_settings(GatewaySettings)
    monkeypatch.delenv("PB_WS_MARKET_URL")
    monkeypatch.setenv("PB_MAX_ASSETS_PER_CONNECTION", "0")
    with pytest.raises(BadSetting, match="PB_MAX_ASSETS_PER_CONNECTION='0'"):
        load_settings(GatewaySettings)


def test_paper_mode_verifies_more_often() -> None:
    assert load_settings(GatewaySettings).verify_interval_s == 20.0
    assert load_settings(GatewaySettings, mode="live", live_confirm=True).verify_interval_s == 120.0
