"""The nemesis's invariant checks (scripts/nemesis_checks.py) on clean and violating inputs."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scripts.nemesis_checks import (check_activations, check_fences, check_fills, check_orphans, check_seq,
                                    check_signals, live_spans)

T = "tok1"


def acc(oid: str, wall: int, size: str = "10", token: str = T) -> dict:
    return {"kind": "order_accepted", "order_id": oid, "token_id": token, "wall_ms": wall, "size": size}


def cancel(oid: str, wall: int, token: str = T) -> dict:
    return {"kind": "cancel", "order_id": oid, "token_id": token, "wall_ms": wall}


def fill(oid: str, wall: int, size: str, matched: str, token: str = T) -> dict:
    return {"kind": "fill", "order_id": oid, "token_id": token, "wall_ms": wall, "size": size,
            "size_matched": matched}


def test_live_spans_end_at_cancel_or_full_fill_and_stay_open_otherwise() -> None:
    audit = [acc("a", 100), fill("a", 150, "4", "4"), fill("a", 200, "6", "10"), acc("b", 120), cancel("b", 300),
             acc("c", 400), fill("c", 450, "5", "5")]
    assert live_spans(audit) == {"a": (T, 100, 200), "b": (T, 120, 300), "c": (T, 400, float("inf"))}


def test_live_spans_names_a_bad_line() -> None:
    with pytest.raises(ValueError, match="wall_ms"):
        live_spans([{"kind": "order_accepted", "order_id": "x", "token_id": T, "size": "1"}])


def test_fences_clean_handover_holds() -> None:
    audit = [acc("a", 100), acc("a2", 110), cancel("a", 500), cancel("a2", 510), acc("b", 600)]
    c = check_fences(audit, {"a": 1, "a2": 1, "b": 2}, [(T, 1, 50), (T, 2, 450)], grace_ms=2000)
    assert c.held, c
    assert c.numbers["orders"] == 3 and c.numbers["overlaps"] == 0


def test_fences_overlapping_live_orders_of_two_fences_are_a_violation() -> None:
    audit = [acc("a", 100), acc("b", 600), cancel("a", 700)]  # a (fence 1) still live when b (fence 2) came
    c = check_fences(audit, {"a": 1, "b": 2}, [(T, 1, 50), (T, 2, 450)], grace_ms=2000)
    assert not c.held and c.numbers["overlaps"] == 1
    assert "fence 1" in c.examples[0] and "fence 2" in c.examples[0]


def test_fences_old_fence_order_accepted_after_a_newer_grant_is_a_violation() -> None:
    audit = [acc("a", 100), cancel("a", 200), acc("late", 5000), cancel("late", 5001)]
    c = check_fences(audit, {"a": 1, "late": 1}, [(T, 1, 50), (T, 2, 1000)], grace_ms=2000)
    assert not c.held and c.numbers["late_orders"] == 1 and c.numbers["overlaps"] == 0


def test_fences_same_fence_overlap_and_other_tokens_are_fine_but_unknown_orders_are_not() -> None:
    audit = [acc("buy", 100), acc("sell", 120), acc("x", 130, token="tok2")]
    fences = {"buy": 3, "sell": 3, "x": 1}
    assert check_fences(audit, fences, [(T, 3, 10), ("tok2", 1, 10)], 2000).held
    c = check_fences(audit + [acc("ghost", 140)], fences, [], 2000)
    assert not c.held and c.numbers["unknown_orders"] == 1


def test_signals_each_done_once_hold() -> None:
    sigs = [("1-0", "s1"), ("2-0", "s2"), ("3-0", "s1")]  # s1 re-published: points at its first entry
    c = check_signals(sigs, {"s1": "1-0", "s2": "2-0"}, [], pending=0)
    assert c.held and c.numbers == {"entries": 3, "signals": 2, "done": 2, "dead": 0, "missing": 0,
                                    "unfinished": 0, "mismatched": 0, "pending": 0, "undelivered": 0}


def test_signals_published_after_the_last_delivered_entry_are_undelivered_not_lost() -> None:
    sigs = [("1-0", "s1"), ("5-0", "s2"), ("5-1", "s3")]
    c = check_signals(sigs, {"s1": "1-0"}, [], pending=0, last_delivered="5-0")
    assert not c.held and c.numbers["missing"] == 1 and c.numbers["undelivered"] == 1  # s2 was delivered: lost
    c = check_signals(sigs, {"s1": "1-0", "s2": "5-0"}, [], pending=0, last_delivered="5-0")
    assert c.held and c.numbers["undelivered"] == 1 and c.numbers["signals"] == 2
    with pytest.raises(ValueError, match="not a stream id"):
        check_signals(sigs, {}, [], 0, last_delivered="x-y")


def test_signals_lost_unfinished_pending_or_mismatched_are_violations() -> None:
    sigs = [("1-0", "s1"), ("2-0", "s2"), ("3-0", "s3"), ("4-0", "s4"), ("5-0", "s5")]
    done = {"s1": "1-0", "s2": "claimed:2-0", "s4": "9-0"}
    c = check_signals(sigs, done, ["s5"], pending=2)
    assert not c.held
    assert (c.numbers["missing"], c.numbers["unfinished"], c.numbers["mismatched"], c.numbers["dead"]) == (1, 1, 1, 1)
    assert any("pending" in e for e in c.examples)
    assert not check_signals([("1-0", "s1")], {"s1": "1-0"}, [], pending=1).held


def test_activations() -> None:
    assert check_activations([("t1", "s1"), ("t1", "s2"), ("t2", "s3")], 3).held
    twice = check_activations([("t1", "s1"), ("t1", "s1")], 2)
    assert not twice.held and twice.numbers["doubled"] == 1
    assert not check_activations([("t1", "s1")], 2).held  # a counted activation with no record


def test_seq_and_orphans() -> None:
    assert check_seq([], 100).held
    bad = check_seq([("t1", 9, 7)], 100)
    assert not bad.held and bad.examples == ("t1: 9 -> 7",)
    assert check_orphans([("o1", "t1")], {"t1": "maker_worker-1"}).held
    orphan = check_orphans([("o1", "t1"), ("o2", "t2")], {"t1": "maker_worker-1", "t2": ""})
    assert not orphan.held and orphan.numbers["orphans"] == 1


def test_fills_booked_once() -> None:
    audit = [fill("a", 1, "4", "4"), fill("a", 2, "6", "10"), fill("b", 3, "5", "5")]
    assert check_fills(audit, {"a": Decimal("10"), "b": Decimal("5")}).held
    lost = check_fills(audit, {"a": Decimal("10")})
    doubled = check_fills(audit, {"a": Decimal("16"), "b": Decimal("5")})
    assert not lost.held and not doubled.held and doubled.numbers["differing_orders"] == 1


def test_plan_faults_is_seeded_sorted_and_bounded() -> None:
    import random

    from scripts.nemesis_checks import plan_faults

    targets = ["scheduler", "md_gateway", "redis", "maker_worker-1", "maker_worker-2"]
    a = plan_faults(random.Random(1), 60, 240.0, targets, max_pause_s=12.0)
    assert a == plan_faults(random.Random(1), 60, 240.0, targets, max_pause_s=12.0)
    assert a != plan_faults(random.Random(2), 60, 240.0, targets, max_pause_s=12.0)
    assert len(a) == 60 and [f.at_s for f in a] == sorted(f.at_s for f in a)
    assert all(0 <= f.at_s < 240 and f.target in targets and f.kind in ("kill", "pause") for f in a)
    assert all(f.hold_s <= (12.0 if f.kind == "pause" else 3.0) for f in a)
    assert {f.target for f in a} == set(targets) and {f.kind for f in a} == {"kill", "pause"}
    with pytest.raises(ValueError, match="duration_s=0"):
        plan_faults(random.Random(1), 3, 0, targets, 1.0)
