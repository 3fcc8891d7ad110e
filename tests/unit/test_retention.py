"""Retention's pure rules (services/scheduler/retention.py): what may go, given state and now."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scheduler import retention as rt
from services.scheduler.config import SchedulerSettings

DAY = rt.DAY_MS
NOW = 1_800_000_000_000
RULES = rt.RetentionRules(signals_ms=7 * DAY, tokens_ms=7 * DAY, lookback_ms=120_000, batch=3)

ids = st.tuples(st.integers(0, 10**13), st.integers(0, 5)).map(lambda t: f"{t[0]}-{t[1]}")


@given(cutoff=st.integers(0, 10**13), delivered=ids, pending=st.one_of(st.none(), ids))
def test_minid_never_above_pending_delivered_or_cutoff(cutoff: int, delivered: str, pending: str | None) -> None:
    minid = rt.stream_minid(cutoff, [rt.GroupState(delivered, pending)])
    if minid is None:
        return
    m = rt.parse_id(minid)
    assert m <= (cutoff, 0)
    assert m <= rt.parse_id(delivered)  # an undelivered entry (above last-delivered) is never below MINID
    if pending is not None:
        assert m <= rt.parse_id(pending)  # the oldest pending entry itself is kept (XTRIM keeps id >= MINID)


def test_minid_is_the_lowest_bound_over_every_group() -> None:
    groups = [rt.GroupState("500-3", "200-1"), rt.GroupState("900-0", None)]
    assert rt.stream_minid(1000, groups) == "200-1"
    assert rt.stream_minid(100, groups) == "100-0"
    assert rt.stream_minid(1000, [rt.GroupState("400-2")]) == "400-2"


def test_no_group_or_nothing_delivered_trims_nothing() -> None:
    assert rt.stream_minid(NOW, []) is None
    assert rt.stream_minid(NOW, [rt.GroupState("0-0")]) is None


def test_trim_bound_stops_after_a_full_batch() -> None:
    assert rt.trim_bound("900-0", ["1-0", "2-0"], 3) == "900-0"
    assert rt.trim_bound("900-0", ["1-0", "2-0", "7-4"], 3) == "7-5"


def test_bad_stream_id_names_the_value() -> None:
    with pytest.raises(ValueError, match="'abc'"):
        rt.parse_id("abc")


def test_done_entry_kept_within_age_and_lookback_and_cursor() -> None:
    old = NOW - 8 * DAY
    assert rt.done_deletable(old, None, NOW, RULES)  # lost cursor: the lookback horizon covers it
    assert rt.done_deletable(old, old // 1000 + 1, NOW, RULES)
    assert not rt.done_deletable(old, old // 1000, NOW, RULES)  # at the cursor's second: keep
    assert not rt.done_deletable(NOW - 6 * DAY, None, NOW, RULES)  # inside the age window
    long_lookback = rt.RetentionRules(signals_ms=DAY, lookback_ms=10 * DAY)
    assert not rt.done_deletable(old, None, NOW, long_lookback)  # a lost cursor would republish it


@given(ts=st.integers(0, NOW), cursor=st.one_of(st.none(), st.integers(0, NOW // 1000)),
       signals_ms=st.integers(1, 30 * DAY), lookback_ms=st.integers(0, 30 * DAY))
def test_deletable_done_entry_can_never_be_republished(ts: int, cursor: int | None, signals_ms: int,
                                                       lookback_ms: int) -> None:
    rules = rt.RetentionRules(signals_ms=signals_ms, lookback_ms=lookback_ms)
    if rt.done_deletable(ts, cursor, NOW, rules):
        # a first run at any later time publishes only rows newer than now - lookback
        assert ts < NOW - lookback_ms
        assert ts < NOW - signals_ms
        # with the cursor intact, only rows at or after its second can come again
        assert cursor is None or ts < cursor * 1000


def tok(**kw: str) -> dict[str, str]:
    base = {"state": "closed", "position": "0", "updated_ms": str(NOW - 8 * DAY)}
    return {**base, **kw}


def test_token_verdicts() -> None:
    cutoff = NOW - 7 * DAY
    assert rt.token_verdict(tok(), cutoff, False) == "PURGE"
    assert rt.token_verdict(tok(), cutoff, True) == "IN_USE"
    for state in ("active", "exiting", "exit_only", "pending", "candidate", ""):
        assert rt.token_verdict(tok(state=state), cutoff, False) == "STATE"
    for state in ("cooldown", "failed", "resolved"):
        assert rt.token_verdict(tok(state=state), cutoff, False) == "PURGE"
    assert rt.token_verdict(tok(position="0.5"), cutoff, False) == "SHARES"
    assert rt.token_verdict(tok(redeem_pending="3"), cutoff, False) == "SHARES"
    assert rt.token_verdict(tok(position="x"), cutoff, False) == "SHARES"
    assert rt.token_verdict(tok(last_fill_ms=str(cutoff)), cutoff, False) == "RECENT"
    assert rt.token_verdict(tok(updated_ms="soon"), cutoff, False) == "BAD_FIELD"
    assert rt.token_verdict({}, cutoff, False) == "PURGE"


def test_token_cutoff_never_past_the_oldest_journal_entry() -> None:
    assert rt.token_cutoff(NOW, RULES, None) == NOW - 7 * DAY
    assert rt.token_cutoff(NOW, RULES, NOW - 9 * DAY) == NOW - 9 * DAY
    assert rt.token_cutoff(NOW, RULES, NOW - DAY) == NOW - 7 * DAY


def test_dead_members_and_old_days() -> None:
    assert rt.dead_members([("a", 10.0), ("b", 99.0)], 50) == ["a"]
    now = 1_767_225_600_000  # 2026-01-01T00:00Z
    days = ["2025-11-30", "2025-12-01", "2025-12-02", "2026-01-01", "junk"]
    assert rt.old_days(days, now, 31) == ["2025-11-30"]


def test_rules_from_settings_defaults() -> None:
    live = rt.RetentionRules.from_settings(SchedulerSettings(mode="live", private_key="0x" + "1" * 64))
    assert (live.signals_ms, live.tokens_ms, live.services_wall_ms) == (7 * DAY, 7 * DAY, DAY)
    assert live.interval_wall_ms == 300_000 and live.risk_days == 30 and live.lookback_ms == 0
    paper = rt.RetentionRules.from_settings(SchedulerSettings())
    assert paper.lookback_ms == 120_000  # as signal_ingest's paper default PB_LOOKBACK_S
