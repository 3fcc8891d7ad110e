"""md_gateway bad input (issue 3, third "done when"): truncated JSON, unknown event type, missing
fields, negative size, price outside [0, 1], a crossed book and a 5 MB frame are each a counted,
logged rejection; the connection stays up and the stream goes on."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from tests.md_fakes import FakeMarket, Harness, SeqWatcher, books_equal_rest, capture_payloads, wait_for


@pytest.fixture()
def fake() -> Iterator[FakeMarket]:
    market = FakeMarket(capture_payloads()).start()
    yield market
    market.stop()


def bad_frames(token: str, market: str, best_ask: str) -> dict[str, str]:
    change = {"asset_id": token, "price": "0.5", "size": "10", "side": "BUY", "hash": "a" * 40}
    pc = {"market": market, "price_changes": [change], "timestamp": "1790267400000", "event_type": "price_change"}

    def with_entry(**kw: str) -> str:
        return json.dumps({**pc, "price_changes": [{**change, **kw}]})

    return {
        "PARSE_BAD_JSON": json.dumps(pc)[:57],
        "PARSE_UNKNOWN_EVENT": json.dumps({**pc, "event_type": "price_flip"}),
        "PARSE_MISSING_FIELD": json.dumps({k: v for k, v in pc.items() if k != "timestamp"}),
        "PARSE_BAD_VALUE": with_entry(size="-10"),
        "PARSE_BAD_VALUE ": with_entry(price="1.5"),
        "FRAME_TOO_LARGE": json.dumps({**pc, "padding": "x" * (5 * 1024 * 1024)}),
        "BOOK_CROSSED": with_entry(price=best_ask, side="BUY", size="10"),
    }


def test_every_bad_input_is_counted_logged_and_skipped(r: Redis, redis_url: str, fake: FakeMarket) -> None:
    tokens = sorted(fake.books)
    r.sadd(keys.MD_SUBS, *tokens)
    gw = Harness(r, fake).start()
    watcher = SeqWatcher(redis_url, tokens)
    watcher.start()
    try:
        wait_for(lambda: not books_equal_rest(r, fake, tokens), 10, "the dump")
        fake.play(10)
        victim = tokens[3]
        frames = bad_frames(victim, fake.books[victim].market, fake.books[victim].best()[1])
        for text in frames.values():
            fake.inject(text)
        fake.play()
        wait_for(lambda: r.hget(keys.md_book(victim), "source") == "rest", 10, "the crossed book re-snapshotted")
        wait_for(lambda: not books_equal_rest(r, fake, tokens), 10, "books equal to REST after the bad frames")
        status = gw.status()
        assert status["parse_errors"] == "6" and status["rejects"] == "7"
        assert status["reject:PARSE_BAD_VALUE"] == "2" and status["reject:BOOK_CROSSED"] == "1"
        for code in ("PARSE_BAD_JSON", "PARSE_UNKNOWN_EVENT", "PARSE_MISSING_FIELD", "FRAME_TOO_LARGE"):
            assert status[f"reject:{code}"] == "1", code
        assert status["reconnects"] == "0" and gw.count("WS_DISCONNECT") == 0 and status["state"] == "connected"
        assert int(status["entries"]) > 90  # the frames after the bad ones were applied
        events = [f for _, f in r.xrange(keys.EVENTS) if f["reason"] in
                  {c.strip() for c in frames} - {"BOOK_CROSSED"}]
        assert len(events) == 6 and all(f["level"] == "error" and f["text"] for f in events)
        value = next(f for f in events if f["reason"] == "PARSE_BAD_VALUE" and f["value"] == "-10")
        assert value["field"] == "price_changes[].size" and value["text"].startswith('{"market"')
        assert gw.count("BOOK_CROSSED") == 1 and gw.count("BOOK_RESYNC") == 1
        for t in tokens:  # a crossed top never reached Redis
            for _, f in r.xrange(keys.md_stream(t)):
                if f["best_bid"] and f["best_ask"]:
                    assert Decimal(f["best_bid"]) < Decimal(f["best_ask"]), (t, f)
    finally:
        violations = watcher.finish()
        gw.close()
    assert violations == []
