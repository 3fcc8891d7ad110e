"""md_gateway defects of issue 10 (pure parts): a deeply nested frame is one counted reject and never
raises; level changes during a token's first REST snapshot are held and replayed; tokens whose
traffic only moves deeper levels are verified, with the changes in flight replayed on the REST book."""
from __future__ import annotations

import json

import pytest

from services.md_gateway import parse
from services.md_gateway import schemas as s
from services.md_gateway.core import Core
from services.md_gateway.parse import parse_frame
from services.md_gateway.status import PARSE_CODES

T, U, V = "111", "222", "333"
NOW = 1_000_000
DEEP = {  # 1,000 levels: 2 KB as arrays, 6 KB as objects
    "array": b"[" * 1000 + b"]" * 1000,
    "object": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "inside an event": b'{"event_type":"book","asset_id":"1","market":"m","bids":[],"asks":[],'
                       b'"timestamp":"1","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "inside a dump": b'[{"event_type":"last_trade_price","x":' + b"[" * 1000 + b"]" * 1000 + b"}]",
}
BOOK = {"event_type": "book", "asset_id": T, "market": "0xm", "timestamp": "100",
        "bids": [{"price": "0.4", "size": "10"}], "asks": [{"price": "0.6", "size": "7"}]}


def snap(token: str = T, bids: list[tuple[int, int]] | None = None, asks: list[tuple[int, int]] | None = None,
         ts: int = 100) -> s.BookSnap:
    return s.BookSnap(token, "0xm", [(400_000, 10_000_000), (390_000, 5_000_000)] if bids is None else bids,
                      [(600_000, 7_000_000)] if asks is None else asks, ts, 10_000, "", "5")


def lvl(price: int, size: int, ts: int, token: str = T, bid: bool = True) -> s.LevelChange:
    return s.LevelChange(token, "0xm", bid, price, size, ts)


def live_core(*tokens: str, buffer_max: int = 4) -> Core:
    core = Core(grace_ms=5000, rest_retry_ms=2000, buffer_max=buffer_max)
    for t in tokens:
        core.add(t, NOW)
        core.set_live([t], True, NOW)
        core.apply_frame([snap(t)], NOW)  # (with min_order_size: no REST look is asked for)
    core.take()
    core.notes.clear()
    return core


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("name", sorted(DEEP))
def test_a_1000_level_frame_is_one_internal_parse_error_with_its_text(name: str) -> None:
    data = DEEP[name]
    out = parse_frame(data, 1 << 20)
    assert out.events == []
    (rej,) = out.rejects
    assert (rej.reason, rej.value) == ("PARSE_INTERNAL_ERROR", "RecursionError")
    assert rej.detail.startswith("RecursionError: ") and rej.text == data[:300].decode()


def test_an_exception_converting_one_object_of_a_dump_costs_that_object_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(w: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(parse, "_tick", boom)
    tick = {"event_type": "tick_size_change", "asset_id": T, "market": "0xm", "old_tick_size": "0.01",
            "new_tick_size": "0.001", "timestamp": "1"}
    for frame in ([BOOK, tick, {**BOOK, "asset_id": U}], tick):
        out = parse_frame(json.dumps(frame).encode(), 1 << 20)
        (rej,) = out.rejects
        assert (rej.reason, rej.value) == ("PARSE_INTERNAL_ERROR", "ZeroDivisionError")
        assert rej.detail == "ZeroDivisionError: boom"
        assert "tick_size_change" in rej.text
        assert [e.token_id for e in out.events] == ([T, U] if isinstance(frame, list) else [])


def test_the_parse_error_code_counts_as_a_parse_error() -> None:
    assert s.INTERNAL in PARSE_CODES


# ------------------------------------------------------------------ the first snapshot from REST
def first_rest_snapshot_in_flight(buffer_max: int = 4) -> Core:
    core = Core(grace_ms=5000, rest_retry_ms=2000, buffer_max=buffer_max)
    core.add(T, NOW)
    core.set_live([T], True, NOW)  # ... and no dump arrives (missing, or rejected as too large)
    assert core.due_rest(NOW + 5000) == [(T, "snapshot")]
    core.take()
    return core


def test_changes_during_the_first_rest_snapshot_are_replayed_on_it() -> None:
    core = first_rest_snapshot_in_flight()
    core.apply_frame([lvl(410_000, 2_000_000, ts=300), lvl(390_000, 0, ts=300), lvl(380_000, 1_000_000, ts=90)],
                     NOW + 5001)
    assert core.take() == [] and core.counts["buffered"] == 3
    core.apply_rest(snap(ts=250), NOW + 5002)  # the REST book predates the first two changes
    (p,) = core.take()
    st = core.tokens[T]
    assert p.event == "rest" and st.status == "ok"
    assert p.fields[:4] == ["best_bid", "0.41", "best_ask", "0.6"]
    assert st.book.bids == {410_000: 2_000_000, 400_000: 10_000_000}  # the ts 90 change is in the snapshot already
    assert st.buffer is None


def test_a_full_buffer_during_the_first_snapshot_asks_again_for_a_newer_one() -> None:
    core = first_rest_snapshot_in_flight(buffer_max=2)
    core.apply_frame([lvl(410_000 + i, 1, ts=300 + i) for i in range(3)], NOW + 5001)
    assert core.notes[-1][0] == "BOOK_RESYNC_BUFFER_FULL"
    core.apply_rest(snap(ts=250), NOW + 5002)  # older than changes that were lost: not installed
    assert core.tokens[T].status == "resync" and core.due_rest(NOW + 5002) == [(T, "snapshot")]
    core.apply_rest(snap(ts=301), NOW + 5003)  # newer than the changes lost; the one held since is replayed
    assert core.tokens[T].status == "ok" and core.tokens[T].book.best_bid == 410_002


# ------------------------------------------------------------------ quiet-token verification
def test_a_token_whose_traffic_never_moves_the_top_is_picked_by_the_verify_round() -> None:
    core = live_core(T, U, V)
    core.apply_frame([lvl(380_000, 1, ts=200, token=U)], NOW + 50)  # deep level only
    core.apply_frame([lvl(405_000, 1, ts=200, token=V)], NOW + 60)  # a new best bid
    assert sorted(core.verify_round(NOW + 10)) == [T, U]
    assert core.verify_round(NOW + 10) == []  # (in flight: not picked twice)


def test_a_busy_verify_replays_the_changes_in_flight_and_stamps_an_equal_book() -> None:
    core = live_core(T)
    assert core.verify_round(NOW + 10) == [T]
    core.apply_frame([lvl(380_000, 3_000_000, ts=200), lvl(370_000, 1, ts=300)], NOW + 20)
    rest = snap(bids=[(400_000, 10_000_000), (390_000, 5_000_000), (380_000, 3_000_000)], ts=250)
    core.apply_rest(rest, NOW + 30)  # taken between the two changes
    assert core.stamps == [(T, NOW + 30)] and core.counts["verified"] == 1 and core.counts["verify_busy"] == 0
    assert core.take() == []


def test_a_busy_verify_that_does_not_add_up_is_void_and_changes_nothing() -> None:
    core = live_core(T)
    assert core.verify_round(NOW + 10) == [T]
    core.apply_frame([lvl(380_000, 3_000_000, ts=200)], NOW + 20)
    core.apply_rest(snap(bids=[(450_000, 1)], ts=100), NOW + 30)
    assert core.counts["verify_busy"] == 1 and core.stamps == [] and core.counts["drift"] == 0
    assert core.tokens[T].book.best_bid == 400_000 and core.take() == []


@pytest.mark.parametrize("how", ["too many changes", "a WS book"])
def test_a_busy_verify_is_void_after_too_many_changes_or_a_ws_book(how: str) -> None:
    core = live_core(T)
    assert core.verify_round(NOW + 10) == [T]
    if how == "a WS book":
        core.apply_frame([snap(ts=150)], NOW + 15)
        changes = [lvl(380_000, 1, ts=200)]
    else:
        changes = [lvl(380_000, i, ts=200) for i in range(1, 6)]  # buffer_max is 4
    core.apply_frame(changes, NOW + 20)
    core.apply_rest(snap(bids=[(400_000, 10_000_000), (390_000, 5_000_000), (380_000, len(changes))], ts=300),
                    NOW + 30)
    assert core.counts["verify_busy"] == 1 and core.stamps == []
