"""md_gateway end to end against a fake market channel replaying the 60 s raw capture (issue 3, first
"done when"): final Redis books equal the capture's final values, and every best_bid/best_ask pair
the capture reports reaches the token's stream, in order, with increasing seq."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Iterator

import pytest
from redis import Redis

from libs.common import keys
from tests.md_fakes import FakeMarket, Harness, SeqWatcher, books_equal_rest, capture_payloads, dec, wait_for

Pair = tuple[Decimal | None, Decimal | None]


def reported_pairs(payloads: list[str]) -> tuple[dict[str, Pair], dict[str, list[Pair]]]:
    """From the capture alone: each token's dump top, and every (best_bid, best_ask) pair it reports
    afterwards (price_change entries and best_bid_ask events), "0"/"1" meaning an empty side."""
    def pair(bid: str, ask: str) -> Pair:
        return (None if Decimal(bid) == 0 else Decimal(bid), None if Decimal(ask) == 1 else Decimal(ask))

    dump = {b["asset_id"]: (dec(b["bids"][-1]["price"]) if b["bids"] else None,
                            dec(b["asks"][-1]["price"]) if b["asks"] else None) for b in json.loads(payloads[0])}
    seen: dict[str, list[Pair]] = {t: [] for t in dump}
    for text in payloads[1:]:
        obj = json.loads(text)
        if obj["event_type"] == "best_bid_ask":
            seen[obj["asset_id"]].append(pair(obj["best_bid"], obj["best_ask"]))
        for e in obj.get("price_changes", []):
            seen[e["asset_id"]].append(pair(e["best_bid"], e["best_ask"]))
    return dump, seen


def collapse(pairs: list[Pair]) -> list[Pair]:
    out: list[Pair] = []
    for p in pairs:
        if not out or out[-1] != p:
            out.append(p)
    return out


@pytest.fixture()
def fake() -> Iterator[FakeMarket]:
    market = FakeMarket(capture_payloads()).start()
    yield market
    market.stop()


def test_replaying_the_capture_reproduces_every_reported_top_in_order(r: Redis, redis_url: str,
                                                                      fake: FakeMarket) -> None:
    payloads = capture_payloads()
    dump, reported = reported_pairs(payloads)
    tokens = sorted(dump)
    assert len(tokens) == 28 and sum(map(len, reported.values())) > 100
    r.sadd(keys.MD_SUBS, *tokens)
    gw = Harness(r, fake).start()
    watcher = SeqWatcher(redis_url, tokens)
    watcher.start()
    try:
        wait_for(lambda: all(r.hget(keys.md_book(t), "status") == "ok" for t in tokens), 10, "the dump in Redis")
        fake.play()
        final = {t: (reported[t] or [dump[t]])[-1] for t in tokens}

        def at_final() -> bool:
            return all((dec(r.hget(keys.md_book(t), "best_bid")), dec(r.hget(keys.md_book(t), "best_ask"))) == final[t]
                       for t in tokens)

        wait_for(at_final, 10, "every book at the capture's final best bid/ask")
        wait_for(lambda: watcher.reads > 3, 5, "the seq watcher")
        for t in tokens:
            entries = r.xrange(keys.md_stream(t))
            seqs = [int(f["seq"]) for _, f in entries]
            assert seqs == sorted(set(seqs)), t
            published = [(dec(f["best_bid"]), dec(f["best_ask"])) for _, f in entries if f["event"] != "subscribed"]
            assert collapse(published) == collapse([dump[t]] + reported[t]), t
            assert int(r.hget(keys.md_book(t), "seq")) >= seqs[-1]  # (+ publishes that leave the top alone)
        status = gw.status()
        assert status["state"] == "connected" and status["with_book"] == "28" and status["missing_book"] == "0"
        assert status["xcheck_mismatch"] == "0" and status["rejects"] == "0" and status["xcheck"] != "0"
        assert int(status["entries"]) == 102 and status["missing_subscription"] == "0"
    finally:
        violations = watcher.finish()
        gw.close()
    assert violations == []


def test_a_restarted_gateway_continues_every_seq_and_resyncs_from_the_dump(r: Redis, redis_url: str,
                                                                           fake: FakeMarket) -> None:
    tokens = sorted(fake.books)
    r.sadd(keys.MD_SUBS, *tokens)
    watcher = SeqWatcher(redis_url, tokens)
    watcher.start()
    gateways: list[Harness] = []
    try:
        gateways.append(Harness(r, fake).start())
        wait_for(lambda: all(r.hget(keys.md_book(t), "status") == "ok" for t in tokens), 10, "the first dump")
        fake.play(50)
        wait_for(lambda: not books_equal_rest(r, fake, tokens), 10, "books equal to REST before the stop")
        gateways.pop().close()
        assert r.hget(keys.MD_GATEWAY, "state") == "down"  # a clean stop says so at once
        before = {t: int(r.hget(keys.md_book(t), "seq")) for t in tokens}
        fake.play(20)  # nobody listening
        gateways.append(Harness(r, fake).start())

        def second_dump() -> bool:
            return all(int(r.hget(keys.md_book(t), "seq")) > before[t] + 1
                       and r.hget(keys.md_book(t), "status") == "ok" for t in tokens)

        wait_for(second_dump, 10, "the second gateway's dump, with seqs continued")
        fake.play()
        wait_for(lambda: not books_equal_rest(r, fake, tokens), 10, "books equal to REST after the restart")
    finally:
        for gw in gateways:
            gw.close()
        violations = watcher.finish()
    assert violations == []
