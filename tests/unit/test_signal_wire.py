"""signal_ingest data-api v2 (``/v2/trades``): snake_case rows normalise into the same Signal as v1
rows, bad fields dead-letter under their v2 name, page envelopes are checked, and cursor paging
joined with the multiset cursor publishes every fill exactly once."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.signal_ingest.batch import classify
from services.signal_ingest.cursor import Cursor, Row, make_rows, needs_next_cursor_page, plan
from services.signal_ingest.normalize import BadBody, Signal, parse_body
from services.signal_ingest.wire import Page, parse_page, view
from services.venue_sim.data_api import V2Query, v2_page, v2_row

ACC = "0x6031b6eed1c97e853c6e0f03ad3ce3529351f96d"
V1_TEXT = ('{"proxyWallet":"0x6031B6eed1c97e853c6e0f03ad3ce3529351f96d","side":"buy","asset":"9838422308310603710376",'
           '"conditionId":"0xa15","size":12.5,"price":0.5699998232997013,"timestamp":1767236479,"title":"ETH Up",'
           '"slug":"eth-up","icon":"","eventSlug":"e","outcome":"Up","outcomeIndex":0,"name":"gabagool22",'
           '"pseudonym":"p","bio":"","profileImage":"","profileImageOptimized":"","transactionHash":"0xe51d"}')
V2_TEXT = ('{"proxy_wallet":"0x6031B6eed1c97e853c6e0f03ad3ce3529351f96d","side":"buy","token_id":"9838422308310603710376",'
           '"condition_id":"0xa15","size":12.5,"price":0.5699998232997013,"timestamp":1767236479,"title":"ETH Up",'
           '"slug":"eth-up","icon":"","event_slug":"e","outcome":"Up","outcome_index":0,"name":"gabagool22",'
           '"pseudonym":"p","bio":"","profile_image":"","profile_image_optimized":"","transaction_hash":"0xe51d"}')


def v1() -> dict[str, object]:
    return parse_body("[" + V1_TEXT + "]")[0]


def v2() -> dict[str, object]:
    return parse_body("[" + V2_TEXT + "]")[0]


def signals(raws: list[object], version: str) -> list[Signal]:
    p = plan(Cursor(0), make_rows(raws, version))
    return list(classify(p.fresh, ACC, Decimal(0)).signals)


def test_v2_row_becomes_the_same_signal_as_its_v1_row() -> None:
    [a], [b] = signals([v1()], "v1"), signals([v2()], "v2")
    assert a == b
    assert (b.token_id, b.condition_id, b.tx_hash, b.side, b.size, b.price, b.ts_ms, b.title, b.slug, b.outcome) == (
        "9838422308310603710376", "0xa15", "0xe51d", "BUY", Decimal("12.5"), Decimal("0.5699998232997013"),
        1767236479000, "ETH Up", "eth-up", "Up")


def test_venue_v2_row_is_the_sdk_shape_of_the_v1_row() -> None:
    assert v2_row(v1()) == v2()


def test_sdk_field_names_wallet_and_asset_id_are_accepted() -> None:
    raw = {("wallet" if k == "proxy_wallet" else "asset_id" if k == "token_id" else k): v for k, v in v2().items()}
    [s] = signals([raw], "v2")
    assert s.token_id == "9838422308310603710376"
    assert view(raw, "v2")["proxyWallet"] == raw["wallet"]


def test_fingerprint_is_the_same_in_both_versions_and_ignores_v2_profile_fields() -> None:
    [a], [b] = make_rows([v1()], "v1"), make_rows([v2()], "v2")
    assert (a.fp, a.ts) == (b.fp, b.ts)
    [c] = make_rows([v2() | {"name": "renamed", "profile_image": "x.png", "profile_image_optimized": "y"}], "v2")
    assert c.fp == b.fp


@pytest.mark.parametrize("field,value,reason", [
    ("token_id", "0xabc", "BAD_TOKEN_ID"), ("token_id", None, "BAD_TOKEN_ID"),
    ("condition_id", "", "BAD_CONDITION_ID"), ("transaction_hash", 7, "BAD_TX_HASH"),
    ("side", "HOLD", "BAD_SIDE"), ("size", "ten", "BAD_SIZE"), ("price", Decimal("1.5"), "BAD_PRICE"),
    ("timestamp", 1767236479000, "BAD_TIMESTAMP"),
    ("proxy_wallet", "0x0000000000000000000000000000000000000001", "ACCOUNT_MISMATCH"),
])
def test_bad_v2_field_is_dead_lettered_with_its_v2_name_and_value(field: str, value: object, reason: str) -> None:
    raw = v2() | {field: value}
    p = plan(Cursor(0), make_rows([raw], "v2"))
    batch = classify(p.fresh, ACC, Decimal(0))
    assert batch.signals == ()
    d = batch.dead[0].fields(ACC, 1)
    assert (d["reason"], d["field"]) == (reason, field)
    assert d["value"] in (repr(value), str(value))
    assert f'"{field}"' in d["raw"]  # the row as received, v2 names


def test_missing_token_id_is_named_as_v2_sends_it() -> None:
    raw = v2()
    del raw["token_id"]
    p = plan(Cursor(0), make_rows([raw], "v2"))
    d = classify(p.fresh, ACC, Decimal(0)).dead[0].fields(ACC, 1)
    assert (d["reason"], d["field"], d["value"]) == ("BAD_TOKEN_ID", "token_id", "None")


def test_parse_page_reads_rows_and_cursor() -> None:
    page = parse_page(b'{"data": [{"size": 1.25}], "pagination": {"has_more": true, "next_cursor": "abc"}}')
    assert page == Page([{"size": Decimal("1.25")}], "abc")
    assert parse_page('{"data": [], "pagination": {"has_more": false, "next_cursor": null}}').next_cursor is None


@pytest.mark.parametrize("body,match", [
    (b"<html>", "not JSON"), (b"[]", "not an object"), (b'{"data": []}', "lacks data"),
    (b'{"data": {}, "pagination": {"has_more": false, "next_cursor": null}}', "lacks data"),
    (b'{"data": [], "pagination": {"has_more": true, "next_cursor": null}}', "disagree"),
    (b'{"data": [], "pagination": {"has_more": false, "next_cursor": "x"}}', "disagree"),
    (b'{"data": [], "pagination": {"has_more": true, "next_cursor": ""}}', "bad pagination"),
    (b'{"data": [], "pagination": {"has_more": "yes", "next_cursor": null}}', "bad pagination"),
])
def test_parse_page_refuses_bad_envelopes(body: bytes, match: str) -> None:
    with pytest.raises(BadBody, match=match):
        parse_page(body)


def rows_at(*stamps: int | None) -> list[Row]:
    return make_rows([{"timestamp": ts} for ts in stamps], "v2")


def test_next_cursor_page_is_read_until_a_row_is_older_than_the_cursor_or_no_more() -> None:
    assert needs_next_cursor_page(rows_at(12, 10, 10), 10, "c")  # rows at the cursor second may go on
    assert not needs_next_cursor_page(rows_at(12, 10, 9), 10, "c")  # an older row proves the rest was seen
    assert not needs_next_cursor_page(rows_at(12, 11), 10, None)  # the server has no more
    assert needs_next_cursor_page(rows_at(None, None), 10, "c")  # undated rows prove nothing
    assert needs_next_cursor_page([], 10, "c")


# ---- property: venue cursor pages + multiset cursor = every fill exactly once ----

def _fill(ts: int, k: int) -> dict[str, object]:
    return {"proxyWallet": ACC, "side": "BUY", "asset": "1", "conditionId": "0xc", "size": k, "price": 0.5,
            "timestamp": ts, "transactionHash": f"0x{k}"}


def _poll(cursor: Cursor, source: list[dict[str, object]], arrivals: list[list[dict[str, object]]],
          limit: int) -> tuple[Cursor, list[Row]]:
    """One v2 poll through the venue's pager; before each page request the next arrivals land."""
    rows: list[Row] = []
    remaining = None
    while True:
        source += arrivals.pop(0) if arrivals else []
        newest_first = list(reversed(source))
        page, remaining = v2_page(newest_first, V2Query(user=ACC), limit, remaining)
        got = make_rows([v2_row(r) for r in page], "v2")
        rows += got
        if not needs_next_cursor_page(got, cursor.ts, None if remaining is None else "c"):
            break
    p = plan(cursor, rows)
    return p.cursor, [f.row for f in p.fresh]


batches = st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), max_size=6), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(batches=batches, limit=st.integers(1, 4), during=st.integers(0, 3))
def test_cursor_pages_with_fills_landing_mid_poll_publish_each_fill_exactly_once(
        batches: list[list[tuple[int, int]]], limit: int, during: int) -> None:
    source: list[dict[str, object]] = []
    cursor, published, now, made = Cursor(0), Counter(), 100, Counter()
    for batch in batches:
        fills = []
        for step, k in batch:  # time never goes back; identical fills (same second, same k) are common
            now += step
            fills.append(_fill(now, k))
        made.update(r.fp for r in make_rows([v2_row(f) for f in fills], "v2"))
        arrivals = [[f] for f in fills[len(fills) - min(during, len(fills)):]]
        source += fills[:len(fills) - len(arrivals)]
        cursor, fresh = _poll(cursor, source, arrivals, limit)
        source += [f for a in arrivals for f in a]
        published.update(r.fp for r in fresh)
    cursor, fresh = _poll(cursor, source, [], limit)  # a last quiet poll catches the late arrivals
    published.update(r.fp for r in fresh)
    assert published == made
