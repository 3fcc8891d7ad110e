"""The pure reconciliation diff (services/maker_worker/reconcile.py): which venue orders are unknown
(adopt or cancel), which records must be read by id, and the position drift with its size."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from libs.common.venue_types import OrderState
from services.maker_worker.models import OpenOrder
from services.maker_worker.reconcile import Adopt, Resolve, diff, order_diff, position_drift

D = Decimal


def rec(oid: str, side: str = "BUY", price: str = "0.50", size: str = "10", status: str = "LIVE",
        matched: str = "0") -> OpenOrder:
    return OpenOrder(oid, side, D(price), D(size), "entry", 0, D(matched), status)  # type: ignore[arg-type]


def ven(oid: str, side: str = "BUY", price: str = "0.50", size: str = "10", matched: str = "0") -> OrderState:
    return OrderState(oid, "LIVE", side, D(price), D(size), D(matched), "tok")


def test_both_sides_agreeing_is_clean() -> None:
    d = diff([rec("a"), rec("b", "SELL", "0.55")], [ven("a"), ven("b", "SELL", "0.55")], D(10), D("10.00"))
    assert d.clean and d.position is None


def test_an_order_we_have_no_record_of_is_cancelled() -> None:
    d = diff([], [ven("x", "SELL", "0.60", "7")], D(0), D(0))
    assert [v.id for v in d.cancel] == ["x"] and not d.adopt and not d.resolve and not d.clean


def test_a_pending_record_adopts_the_unknown_order_with_the_same_side_price_and_size() -> None:
    p = rec("ours", status="PENDING")
    d = diff([p], [ven("theirs")], D(0), D(0))
    assert d.adopt == (Adopt(p, ven("theirs")),) and not d.cancel and not d.resolve


def test_adoption_needs_side_price_and_size_to_match_and_a_pending_record() -> None:
    for other in (ven("v", side="SELL"), ven("v", price="0.51"), ven("v", size="11")):
        d = order_diff([rec("ours", status="PENDING")], [other])
        assert d.cancel == (other,) and d.resolve == (Resolve(rec("ours", status="PENDING"), "NOT_OPEN"),)
    d = order_diff([rec("live")], [ven("v")])  # a LIVE record's order is known by its own id: no adoption
    assert [v.id for v in d.cancel] == ["v"] and [x.record.order_id for x in d.resolve] == ["live"]


def test_a_pending_record_the_venue_lists_under_its_own_id_adopts_nothing() -> None:
    d = order_diff([rec("ours", status="PENDING")], [ven("ours"), ven("twin")])
    assert [v.id for v in d.cancel] == ["twin"] and not d.adopt and not d.resolve


def test_one_pending_record_adopts_one_of_two_identical_unknown_orders_the_other_is_cancelled() -> None:
    d = order_diff([rec("ours", status="PENDING")], [ven("v1"), ven("v2")])
    assert [a.venue.id for a in d.adopt] == ["v1"] and [v.id for v in d.cancel] == ["v2"]


def test_open_records_the_venue_does_not_list_are_resolved_by_id_final_ones_are_ignored() -> None:
    d = order_diff([rec("a"), rec("b", status="MATCHED"), rec("c", status="CANCELED"), rec("d", status="FAILED")], [])
    assert d.resolve == (Resolve(rec("a"), "NOT_OPEN"),)


def test_a_record_we_closed_whose_order_is_still_open_is_cancelled() -> None:
    d = order_diff([rec("a", status="CANCELED")], [ven("a")])
    assert [v.id for v in d.cancel] == ["a"]


def test_a_listed_order_with_more_matched_than_recorded_is_resolved_with_the_venue_size() -> None:
    d = order_diff([rec("a", matched="2")], [ven("a", matched="6")])
    assert d.resolve == (Resolve(rec("a", matched="2"), "MATCHED_BEHIND", D(6)),)
    assert order_diff([rec("a", matched="6")], [ven("a", matched="6")]).clean


def test_position_drift_is_venue_minus_recorded() -> None:
    short = diff([], [], D("10"), D("7.5")).position
    assert short is not None and short.size == D("-2.5") and (short.recorded, short.venue) == (D(10), D("7.5"))
    assert position_drift(D(0), D(3)).size == D(3)  # type: ignore[union-attr]
    assert position_drift(D("3.0"), D(3)) is None


# ---- properties ----
SIDES, PRICES, SIZES = st.sampled_from(["BUY", "SELL"]), st.sampled_from(["0.49", "0.50"]), st.sampled_from(["5", "10"])
records_st = st.lists(st.tuples(st.sampled_from("abcdef"), SIDES, PRICES, SIZES,
                                st.sampled_from(["LIVE", "PENDING", "MATCHED", "CANCELED"]),
                                st.sampled_from(["0", "3"])),
                      unique_by=lambda t: t[0], max_size=5)
venue_st = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "v1", "v2", "v3"]), SIDES, PRICES, SIZES,
                              st.sampled_from(["0", "3", "5"])),
                    unique_by=lambda t: t[0], max_size=5)


@given(records_st, venue_st)
def test_every_order_gets_exactly_one_fate(raw_recs: list[tuple], raw_ven: list[tuple]) -> None:
    recs = [rec(i, s, p, z, status, m) for i, s, p, z, status, m in raw_recs]
    vens = [ven(i, s, p, z, m) for i, s, p, z, m in raw_ven]
    d = order_diff(recs, vens)
    open_ids = {o.order_id for o in recs if o.status in ("LIVE", "PENDING")}
    listed = {v.id: v for v in vens}
    # venue side: an order a record of ours carries is never touched; every other one is adopted xor cancelled
    cancelled, adopted = [v.id for v in d.cancel], [a.venue.id for a in d.adopt]
    assert sorted(cancelled + adopted) == sorted(i for i in listed if i not in open_ids)
    # adoption: a PENDING record the venue does not list, same side/price/size, at most once
    assert len({a.record.order_id for a in d.adopt}) == len(d.adopt)
    for a in d.adopt:
        assert a.record.status == "PENDING" and a.record.order_id not in listed
        assert (a.record.side, a.record.price, a.record.size) == (a.venue.side, a.venue.price, a.venue.original_size)
    # record side: an open record is listed, adopted or resolved NOT_OPEN -- exactly one
    resolved = {x.record.order_id: x for x in d.resolve}
    adopters = {a.record.order_id for a in d.adopt}
    for oid in open_ids:
        fates = [oid in listed, oid in adopters, oid in resolved and resolved[oid].why == "NOT_OPEN"]
        assert sum(fates) == 1, (oid, fates)
    for x in d.resolve:
        if x.why == "MATCHED_BEHIND":
            assert x.venue_matched == listed[x.record.order_id].size_matched > x.record.matched
    assert set(resolved) <= open_ids


@given(st.decimals(min_value=0, max_value=1000, places=2), st.decimals(min_value=0, max_value=1000, places=2))
def test_position_drift_is_reported_iff_the_sizes_differ(recorded: Decimal, venue: Decimal) -> None:
    pd = diff([], [], recorded, venue).position
    assert (pd is None) == (recorded == venue)
    if pd is not None:
        assert pd.recorded + pd.size == venue
