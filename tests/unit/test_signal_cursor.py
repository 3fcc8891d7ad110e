"""signal_ingest pure multiset cursor (SPEC S2.1): dedupe, paging verdict, first run, property test."""
from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from services.signal_ingest.cursor import (Cursor, Row, first_run_ts, make_rows, needs_next_page, plan,
                                           plan_first_run, widening_limits)

ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"


def row(ts: int, size: int = 10, tx: str = "0xaa") -> dict[str, object]:
    return {"proxyWallet": ACC, "side": "BUY", "asset": "123", "conditionId": "0xc", "size": size,
            "price": 0.5, "timestamp": ts, "transactionHash": tx}


def newest_first(rows: list[dict[str, object]]) -> list[Row]:
    return make_rows(list(reversed(rows)))


def published(p) -> Counter:  # type: ignore[no-untyped-def]
    return Counter((f.row.ts, f.row.fp, f.n) for f in p.fresh)


def test_identical_rows_are_separate_fills_and_a_repoll_publishes_only_the_excess() -> None:
    base = [row(100), row(101), row(101)]
    p1 = plan(Cursor(99), newest_first(base))
    assert len(p1.fresh) == 3
    assert p1.cursor.ts == 101 and list(p1.cursor.counts.values()) == [2]
    # two more identical fills at the same second show up later
    p2 = plan(p1.cursor, newest_first(base + [row(101), row(101)]))
    assert [(f.row.ts, f.n) for f in p2.fresh] == [(101, 3), (101, 4)]
    assert list(p2.cursor.counts.values()) == [4]
    # nothing new: nothing fresh, same progress
    p3 = plan(p2.cursor, newest_first(base + [row(101)] * 2))
    assert p3.fresh == () and p3.cursor.same_progress(p2.cursor)


def test_newer_timestamp_resets_counts_and_older_rows_are_already_seen() -> None:
    c = Cursor(101, {make_rows([row(101)])[0].fp: 2})
    p = plan(c, newest_first([row(100), row(101), row(101), row(102, size=5), row(102, size=5)]))
    assert [(f.row.ts, f.n) for f in p.fresh] == [(102, 1), (102, 2)]
    assert p.cursor.ts == 102 and sum(p.cursor.counts.values()) == 2


def test_fresh_rows_come_oldest_first() -> None:
    p = plan(Cursor(0), newest_first([row(5, tx="0x1"), row(6, tx="0x2"), row(7, tx="0x3")]))
    assert [f.row.raw["transactionHash"] for f in p.fresh] == ["0x1", "0x2", "0x3"]


def test_undated_rows_are_handled_once_and_never_reset() -> None:
    bad = {"side": "BUY", "timestamp": "yesterday"}
    p1 = plan(Cursor(0), make_rows([row(5), bad]))
    assert [f.row.ts for f in p1.fresh] == [None, 5]
    p2 = plan(p1.cursor, make_rows([row(9), row(5), bad]))
    assert [f.row.ts for f in p2.fresh] == [9]
    assert p2.cursor.undated == p1.cursor.undated


def test_paging_goes_on_until_a_row_older_than_the_cursor() -> None:
    full_at_cursor = make_rows([row(50)] * 3)
    assert needs_next_page(full_at_cursor, 50, 3)  # all at the cursor second: more may exist
    assert not needs_next_page(make_rows([row(51), row(50), row(49)]), 50, 3)
    assert not needs_next_page(make_rows([row(60)] * 2), 50, 3)  # short page = end of list
    assert needs_next_page(make_rows([row(60)] * 3), 50, 3)


def test_reads_widen_from_page_size_to_the_row_cap() -> None:
    assert widening_limits(100, 2000) == [100, 400, 1600, 2000]
    assert widening_limits(3, 60) == [3, 12, 48, 60]
    assert widening_limits(50, 50) == [50]
    assert widening_limits(500, 100) == [100]


def test_first_run_ignores_history_at_or_before_now_minus_lookback() -> None:
    assert first_run_ts(now_ms=100_999, lookback_s=0) == 100
    assert first_run_ts(now_ms=100_000, lookback_s=30) == 70
    rows = newest_first([row(90), row(100), row(100), row(101)])
    p = plan_first_run(100, rows)
    assert [(f.row.ts, f.n) for f in p.fresh] == [(101, 1)]
    assert p.skipped == 3 and p.cursor.ts == 101
    # no newer rows: the cursor stays at the start with the rows there counted as seen
    p0 = plan_first_run(100, newest_first([row(90), row(100)]))
    assert p0.fresh == () and p0.cursor.ts == 100 and sum(p0.cursor.counts.values()) == 1
    assert plan(p0.cursor, newest_first([row(90), row(100), row(100)])).fresh[0].n == 2


def test_cursor_round_trips_through_hash_fields() -> None:
    c = Cursor(123, {"ab": 2, "cd": 1}, {"ef": 1}, gen=7)
    fields = {**c.to_fields(), "gen": "7"}
    assert Cursor.from_fields(fields) == c
    assert Cursor.from_fields({}) is None


def test_corrupt_cursor_field_is_named() -> None:
    import pytest
    with pytest.raises(ValueError, match="'ts' has bad value 'x'"):
        Cursor.from_fields({"ts": "x"})


# ---- property: any interleaving of growth and polls publishes each row exactly once ----

TS_STEP = st.integers(min_value=0, max_value=2)
ROW = st.tuples(TS_STEP, st.integers(min_value=1, max_value=2), st.sampled_from(["0xa", "0xb"]))
EVENT = st.one_of(st.tuples(st.just("add"), st.lists(ROW, min_size=1, max_size=6)),
                  st.tuples(st.just("poll"), st.integers(min_value=1, max_value=4)))


def poll(cursor: Cursor, snapshot: list[dict[str, object]], page_size: int) -> tuple[Cursor, Counter]:
    """What the service does for one poll against a list served newest first (no row cap)."""
    served = list(reversed(snapshot))
    for limit in widening_limits(page_size, 10**6):
        got = make_rows(served[:limit])
        if not needs_next_page(got, cursor.ts, limit):
            break
    p = plan(cursor, got)
    stored = Cursor.from_fields({**p.cursor.to_fields(), "gen": "0"})  # a restart reads it back from Redis
    assert stored is not None
    return stored, Counter(f.row.fp for f in p.fresh)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=25), st.integers(min_value=1, max_value=4))
def test_any_interleaving_of_polls_publishes_each_row_exactly_once(events: list[tuple[str, object]],
                                                                   final_page: int) -> None:
    snapshot: list[dict[str, object]] = []
    ts = 1000
    cursor = Cursor(ts - 1)
    out: Counter = Counter()
    for kind, arg in events:
        if kind == "add":
            for step, size, tx in arg:  # type: ignore[attr-defined]
                ts += step
                snapshot.append(row(ts, size, tx))
        else:
            cursor, new = poll(cursor, snapshot, int(arg))  # type: ignore[call-overload]
            out += new
            assert not out - Counter(f.fp for f in make_rows(snapshot))  # never more than served
    cursor, new = poll(cursor, snapshot, final_page)
    out += new
    assert out == Counter(f.fp for f in make_rows(snapshot))
