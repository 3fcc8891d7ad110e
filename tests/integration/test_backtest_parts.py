"""The back-test's small parts: the virtual clock, the pacer (against a real Redis), --set and grid
parsing, and a tape's back-test defaults."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis import Redis

from libs.common import keys
from services.backtest.console import load_grid, parse_sets
from services.backtest.pacing import IDLE_MS, Pacer
from services.backtest.vclock import VirtualClock
from services.backtest.venue_side import tape_defaults

T0 = 1_000_000


def test_virtual_clock_is_one_time_that_only_moves_forward() -> None:
    c = VirtualClock(T0)
    c.set(T0 + 5)
    assert c.now_ms() == c.wall_ms() == T0 + 5
    c.sleep(30)  # a service's sleep does not move time: only the driver does
    assert c.now_ms() == T0 + 5
    with pytest.raises(ValueError, match="cannot go back"):
        c.set(T0)


def pacer(r: Redis, leader_ms: list[int]) -> Pacer:
    return Pacer(r, T0, leader_ms, ingest_ms=2_000, scheduler_ms=5_000, worker_ms=5_000, workers=["w1", "w2"])


def test_ingest_polls_on_its_grid_only_where_a_leader_row_became_visible(r: Redis) -> None:
    p = pacer(r, [T0 + 4_500, T0 + 4_800, T0 + 60_000])
    assert p.due("signal_ingest", T0)
    p.after_ingest(T0, published=False)
    assert p.next["signal_ingest"] == T0 + 6_000  # the first grid point at or after 4.5 s
    p.after_ingest(T0 + 6_000, published=True)
    assert p.next["signal_ingest"] == T0 + 60_000 and p.due("scheduler", T0 + 6_000)
    p.after_ingest(T0 + 60_000, published=False)
    assert p.next["signal_ingest"] == T0 + 60_000 + IDLE_MS  # no row left: rarely


def test_scheduler_and_workers_step_often_only_while_there_is_work(r: Redis) -> None:
    p = pacer(r, [])
    p.after_ingest(T0, published=False)  # no leader rows at all
    p.after_scheduler(T0)
    assert p.next["scheduler"] == T0 + IDLE_MS and p.next["w1"] == T0  # nothing tracked, nothing offered
    r.zadd(keys.SCHED_OFFERS, {"tok": 1})
    p.next["w1"] = p.next["w2"] = T0 + IDLE_MS
    p.after_scheduler(T0 + 1_000)
    assert p.next["scheduler"] == T0 + 6_000 and p.next["w1"] == p.next["w2"] == T0 + 1_000  # offer: now
    p.after_worker("w1", T0 + 1_000, holding=True, released=False)
    assert p.next["w1"] == T0 + 6_000
    p.after_worker("w1", T0 + 6_000, holding=False, released=True)
    assert p.next["w1"] == T0 + 6_000 + IDLE_MS and p.next["scheduler"] == T0 + 6_000  # a freed slot
    p.user_events(T0 + 7_000, ["w2"])
    assert p.next["w2"] == T0 + 7_000 and p.next_due_ms() == T0 + 6_000


def test_set_values_get_their_prefix_and_bad_ones_are_named() -> None:
    assert parse_sets(["take_profit=0.03", "PB_STOP_LOSS=0.05"]) == {"PB_TAKE_PROFIT": "0.03", "PB_STOP_LOSS": "0.05"}
    with pytest.raises(ValueError, match="'TAKE_PROFIT'"):
        parse_sets(["TAKE_PROFIT"])


def test_a_grid_file_must_be_a_list_of_named_settings(tmp_path: Path) -> None:
    good = tmp_path / "g.json"
    good.write_text(json.dumps([{"name": "a", "set": {"TAKE_PROFIT": "0.03"}}]))
    assert load_grid(good) == [("a", {"PB_TAKE_PROFIT": "0.03"})]
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"name": "a", "set": {}}, {"set": {}}]))
    with pytest.raises(ValueError, match="entry 1"):
        load_grid(bad)


def test_a_tapes_backtest_defaults_are_strings_or_refused(tmp_path: Path) -> None:
    assert tape_defaults(tmp_path) == {}
    (tmp_path / "backtest.json").write_text(json.dumps({"PB_STEP_INTERVAL_S": 30}))
    with pytest.raises(ValueError, match="PB_"):
        tape_defaults(tmp_path)
    week = Path(__file__).resolve().parents[2] / "data/tapes/week-2026-07"
    assert tape_defaults(week)["PB_SIGNAL_TIMEOUT_S"] == "3600"
