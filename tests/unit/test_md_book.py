"""md_gateway book.py: the pure L2 book equals a naive reference under random level updates, and its
top of book is max bid / min ask."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.md_gateway.book import EMPTY_TOP, Book, TopOfBook

prices = st.integers(min_value=1, max_value=99).map(lambda t: t * 10_000)  # 0.01 .. 0.99
sizes = st.one_of(st.just(0), st.integers(min_value=1, max_value=10**9))
updates = st.lists(st.tuples(st.booleans(), prices, sizes), max_size=200)
levels = st.lists(st.tuples(prices, sizes), max_size=30)


def naive(bids: dict[int, int], asks: dict[int, int]) -> TopOfBook:
    bb = max((p for p, q in bids.items() if q), default=None)
    ba = min((p for p, q in asks.items() if q), default=None)
    return TopOfBook(bb, bids[bb] if bb else 0, ba, asks[ba] if ba else 0)


@settings(max_examples=300)
@given(levels, levels, updates)
def test_random_updates_match_a_naive_reference_book(bids0: list, asks0: list, ups: list) -> None:
    book = Book()
    ref_b = {p: q for p, q in bids0 if q}
    ref_a = {p: q for p, q in asks0 if q}
    book.replace(bids0, asks0)
    for is_bid, price, size in ups:
        ref = ref_b if is_bid else ref_a
        before = naive(ref_b, ref_a)
        if size:
            ref[price] = size
        else:
            ref.pop(price, None)
        changed = book.apply(is_bid, price, size)
        after = naive(ref_b, ref_a)
        assert book.bids == ref_b and book.asks == ref_a
        assert book.top() == after
        assert changed == (after if after != before else None)
    assert book.same_levels(list(ref_b.items()), list(ref_a.items()))


@given(levels, levels)
def test_top_is_max_bid_and_min_ask_and_crossed_means_bid_at_or_above_ask(bids: list, asks: list) -> None:
    book = Book()
    top = book.replace(bids, asks)
    live_b = [p for p, q in bids if q]
    live_a = [p for p, q in asks if q]
    assert top.bid == (max(live_b) if live_b else None)
    assert top.ask == (min(live_a) if live_a else None)
    assert top.crossed == bool(live_b and live_a and max(live_b) >= min(live_a))


def test_size_is_the_new_total_and_zero_deletes() -> None:
    book = Book()
    book.replace([(400_000, 5)], [(600_000, 7)])
    assert book.apply(True, 400_000, 9) == TopOfBook(400_000, 9, 600_000, 7)  # total, not a difference
    assert book.apply(True, 300_000, 1) is None  # a deeper level leaves the top alone
    assert book.apply(True, 400_000, 0) == TopOfBook(300_000, 1, 600_000, 7)
    assert book.apply(True, 100_000, 0) is None  # deleting a missing level is a no-op
    book.clear()
    assert book.top() == EMPTY_TOP and not book.top().crossed
