"""md_gateway core: what is published for each event, resyncs, crossed books, cross-checks, verify."""
from __future__ import annotations

from services.md_gateway import schemas as s
from services.md_gateway.core import Core
from services.md_gateway.state import Publish

T, U = "111", "222"
NOW = 1_000_000


def book(token: str = T, bids: list[tuple[int, int]] | None = None, asks: list[tuple[int, int]] | None = None,
         ts: int = 100) -> s.BookSnap:
    return s.BookSnap(token, "0xm", bids if bids is not None else [(400_000, 10_000_000), (390_000, 5_000_000)],
                      asks if asks is not None else [(600_000, 7_000_000), (610_000, 1_000_000)], ts, 10_000, "0.45")


def lvl(price: int, size: int, bid: bool = True, token: str = T, ts: int = 200,
        expect: tuple[int | None, int | None] | None = None) -> s.LevelChange:
    return s.LevelChange(token, "0xm", bid, price, size, ts, expect)


def field(p: Publish, name: str) -> str:
    i = p.fields.index(name)
    return p.fields[i + 1]


def live_core(*tokens: str) -> Core:
    core = Core(grace_ms=5000, rest_retry_ms=2000, buffer_max=4)
    for t in tokens or (T,):
        core.add(t, NOW)
        core.set_live([t], True, NOW)
        core.apply_frame([book(t)], NOW)
    core.take()
    core.notes.clear()
    core.verify_now.clear()  # (the first-snapshot REST look, tested on its own below)
    return core


def test_a_new_token_is_published_resync_until_its_snapshot() -> None:
    core = Core()
    core.add(T, NOW)
    (p,) = core.take()
    assert p.stream and p.event == "subscribed" and field(p, "status") == "resync" and field(p, "best_bid") == ""
    core.set_live([T], True, NOW)
    core.apply_frame([book()], NOW + 5, 77)
    (p,) = core.take()
    assert p.stream and p.event == "book" and p.recv_ns == 77
    assert p.fields[:12] == ["best_bid", "0.4", "best_ask", "0.6", "bid_size", "10", "ask_size", "7",
                             "exch_ts_ms", "100", "recv_ts_ms", str(NOW + 5)]
    assert field(p, "status") == "ok" and field(p, "source") == "ws" and field(p, "tick_size") == "0.01"
    assert field(p, "last_trade_price") == "0.45" and field(p, "market") == "0xm"


def test_the_first_ws_snapshot_asks_rest_once_for_min_order_size_learnt_even_when_busy() -> None:
    core = Core()
    core.add(T, NOW)
    core.set_live([T], True, NOW)
    core.apply_frame([book()], NOW)
    assert core.due_rest(NOW) == [(T, "verify")]
    core.apply_frame([lvl(380_000, 1)], NOW + 1)  # the book moves while REST answers
    core.take()
    core.apply_rest(s.BookSnap(T, "0xm", [], [], 1, 1_000, "", "5"), NOW + 2)
    (p,) = core.take()
    assert p.fields == ["min_order_size", "5", "tick_size", "0.001"] and not p.stream
    assert core.counts["verify_busy"] == 1 and core.tokens[T].book.best_bid == 400_000
    core.apply_frame([book()], NOW + 3)
    (p,) = core.take()
    assert field(p, "min_order_size") == "5" and core.due_rest(NOW + 3) == []


def test_every_top_change_is_published_in_order_and_deep_changes_are_not() -> None:
    core = live_core()
    core.apply_frame([lvl(410_000, 3_000_000), lvl(380_000, 1_000_000), lvl(410_000, 4_000_000),
                      lvl(590_000, 2_000_000, bid=False)], NOW + 1)
    pubs = core.take()
    tops = [(field(p, "best_bid"), field(p, "bid_size"), field(p, "best_ask")) for p in pubs]
    assert tops == [("0.41", "3", "0.6"), ("0.41", "4", "0.6"), ("0.41", "4", "0.59")]
    assert all(p.stream and p.event == "price_change" and field(p, "exch_ts_ms") == "200" for p in pubs)
    assert core.counts["entries"] == 4


def test_changes_for_tokens_not_subscribed_are_counted_and_ignored() -> None:
    core = live_core()
    core.apply_frame([lvl(410_000, 3, token="999")], NOW)
    assert core.take() == [] and core.counts["unwanted"] == 1


def test_a_cross_undone_within_the_same_frame_is_never_published_and_not_resynced() -> None:
    core = live_core()
    core.apply_frame([lvl(650_000, 1_000_000), lvl(650_000, 0)], NOW)
    assert core.take() == [] and core.tokens[T].status == "ok" and core.counts["crossed"] == 0


def test_a_book_still_crossed_at_the_end_of_a_frame_is_resynced_from_rest() -> None:
    core = live_core(T, U)
    core.apply_frame([lvl(600_000, 1_000_000), lvl(420_000, 2_000_000, token=U)], NOW + 3)
    pubs = core.take()
    assert [(p.token_id, p.event) for p in pubs] == [(U, "price_change"), (T, "crossed")]
    resync = pubs[1]
    assert field(resync, "status") == "resync" and field(resync, "best_bid") == "" and resync.stream
    assert all(not (field(p, "best_bid") and field(p, "best_bid") >= field(p, "best_ask")) for p in pubs)
    assert core.counts["crossed"] == 1 and [n[0] for n in core.notes] == ["BOOK_CROSSED", "BOOK_RESYNC"]
    assert core.due_rest(NOW + 3) == [(T, "snapshot")]
    assert core.due_rest(NOW + 3) == []  # one request in flight per token


def test_tick_size_change_drops_the_book_holds_changes_and_replays_them_on_the_rest_snapshot() -> None:
    core = live_core()
    core.apply_frame([s.TickSizeChange(T, "0xm", 1_000, 300)], NOW)
    (p,) = core.take()
    assert p.event == "tick_size_change" and field(p, "tick_size") == "0.001" and field(p, "status") == "resync"
    assert core.ticks == [(T, "0.001")]
    core.apply_frame([lvl(395_000, 2_000_000, ts=250), lvl(401_000, 9_000_000, ts=320)], NOW + 1)
    assert core.take() == [] and core.counts["buffered"] == 2
    assert core.due_rest(NOW + 1) == [(T, "snapshot")]
    rest = s.BookSnap(T, "0xm", [(400_000, 1_000_000)], [(600_000, 1_000_000)], 310, 1_000, "0.45", "5")
    core.apply_rest(rest, NOW + 50)
    (p,) = core.take()
    assert p.event == "rest" and field(p, "source") == "rest" and field(p, "status") == "ok"
    # the change at ts 250 is older than the snapshot (310): dropped; the one at 320 replayed
    assert field(p, "best_bid") == "0.401" and 395_000 not in core.tokens[T].book.bids
    assert field(p, "verified_ts_ms") == str(NOW + 50) and field(p, "min_order_size") == "5"


def test_best_bid_ask_is_a_cross_check_only_and_a_mismatch_asks_for_a_verify() -> None:
    core = live_core()
    core.apply_frame([s.BestBidAsk(T, 410_000, 600_000, 200)], NOW)  # arrives before its price_change
    assert core.take() == [] and core.counts["xcheck_mismatch"] == 0
    core.apply_frame([lvl(410_000, 1_000_000, expect=(410_000, 600_000))], NOW)
    assert len(core.take()) == 1 and core.counts["xcheck"] == 2 and core.counts["xcheck_mismatch"] == 0
    core.apply_frame([s.BestBidAsk(T, 420_000, 600_000, 300)], NOW)
    core.apply_frame([lvl(300_000, 1_000_000)], NOW)
    assert core.counts["xcheck_mismatch"] == 1 and core.notes[-1][0] == "BOOK_XCHECK_MISMATCH"
    assert core.tokens[T].top.bid == 410_000  # never the source
    assert core.due_rest(NOW) == [(T, "verify")]


def test_last_trade_and_resolution_update_fields_without_a_stream_entry() -> None:
    core = live_core()
    core.apply_frame([s.LastTrade(T, "0xm", "0.520", 5), s.Resolved("0xm", (T, "999"), 6)], NOW)
    a, b = core.take()
    assert (a.stream, a.fields) == (False, ["last_trade_price", "0.520"])
    assert (b.stream, b.fields) == (False, ["resolved", "1", "payout", ""])  # no winner named: payout unknown


def test_verify_stamps_an_equal_book_and_replaces_a_drifted_one() -> None:
    core = live_core(T, U)
    assert sorted(core.verify_round(NOW + 1)) == [T, U]
    same = book()
    core.apply_rest(s.BookSnap(T, "0xm", same.bids, same.asks, 1, 10_000, "", ""), NOW + 10)
    assert core.take() == [] and core.stamps == [(T, NOW + 10)]
    drifted = s.BookSnap(U, "0xm", [(450_000, 1_000_000)], book().asks, 1, 10_000, "", "5")
    core.apply_rest(drifted, NOW + 11)
    (p,) = core.take()
    assert p.event == "drift" and field(p, "best_bid") == "0.45" and field(p, "source") == "rest"
    assert core.counts["drift"] == 1 and core.notes[-1][0] == "BOOK_DRIFT"


def test_a_verify_is_void_when_the_token_changed_while_the_request_was_in_flight() -> None:
    core = live_core()
    assert core.verify_round(NOW + 1) == [T]
    core.apply_frame([lvl(380_000, 1)], NOW + 2)
    core.apply_rest(s.BookSnap(T, "0xm", [(1_000, 1)], [], 1, 10_000, "", ""), NOW + 3)
    assert core.counts["verify_busy"] == 1 and core.tokens[T].book.best_bid == 400_000


def test_only_quiet_tokens_are_verified() -> None:
    core = live_core(T, U)
    core.apply_frame([lvl(410_000, 1, token=U)], NOW + 50)  # a top change (a deep one is quiet: see defects)
    assert core.verify_round(NOW + 10) == [T]


def test_a_disconnect_resyncs_and_a_missing_dump_falls_back_to_rest_after_the_grace() -> None:
    core = live_core()
    core.set_live([T], False, NOW)
    (p,) = core.take()
    assert p.event == "disconnect" and field(p, "status") == "resync"
    assert core.due_rest(NOW + 10_000) == []  # not live: the reconnect's dump is awaited
    core.set_live([T], True, NOW + 100)
    assert core.due_rest(NOW + 100 + 4_999) == []
    assert core.due_rest(NOW + 100 + 5_000) == [(T, "snapshot")]
    core.rest_failed(T, NOW + 5_200, "HTTP_500", "boom")
    assert core.notes[-1][0] == "REST_BOOK_FAILED" and core.due_rest(NOW + 7_199) == []
    assert core.due_rest(NOW + 7_200) == [(T, "snapshot")]


def test_a_full_resync_buffer_discards_the_snapshot_in_flight_and_asks_again() -> None:
    core = live_core()
    core.apply_frame([s.TickSizeChange(T, "0xm", 1_000, 300)], NOW)
    assert core.due_rest(NOW) == [(T, "snapshot")]
    core.apply_frame([lvl(390_000 + i, 1, ts=400) for i in range(6)], NOW + 1)  # buffer_max is 4
    core.apply_rest(book(ts=350), NOW + 2)
    assert core.tokens[T].status == "resync"
    assert core.due_rest(NOW + 2) == [(T, "snapshot")]
    core.apply_rest(book(ts=500), NOW + 3)
    assert core.tokens[T].status == "ok"


def test_unsubscribing_leaves_the_hash_resync() -> None:
    core = live_core()
    core.remove(T, NOW)
    (p,) = core.take()
    assert p.event == "unsubscribed" and field(p, "status") == "resync" and T not in core.tokens


def test_republish_all_restates_every_book() -> None:
    core = live_core(T, U)
    core.set_live([U], False, NOW)
    core.take()
    pubs = {p.token_id: p for p in core.republish_all(NOW + 5)}
    assert field(pubs[T], "best_bid") == "0.4" and field(pubs[T], "status") == "ok" and pubs[T].stream
    assert field(pubs[U], "status") == "resync" and field(pubs[U], "best_bid") == ""
