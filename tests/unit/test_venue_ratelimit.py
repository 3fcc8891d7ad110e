"""Venue rate limits (token buckets, the headers polymarket-client parses) and trade settlement steps."""
from __future__ import annotations

import httpx
import pytest
from polymarket.clients._transport import _extract_retry_after, _parse_rate_limit_headers  # noqa: PLC2701

from services.venue_sim.ratelimit import TokenBucket
from services.venue_sim.settlement import Settlement


class Wall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_bucket_spends_refills_and_refuses_with_retry_after() -> None:
    wall = Wall(1_700_000_000_000)
    bucket = TokenBucket(3, 2, wall)  # burst 3, 2 tokens per second
    assert [bucket.take("a").remaining for _ in range(3)] == [2, 1, 0]
    refused = bucket.take("a")
    assert not refused.allowed and refused.retry_after_s == 1 and refused.remaining == 0
    assert bucket.take("b").allowed  # per signer
    wall.ms += 500  # one token back
    assert bucket.take("a").allowed and not bucket.take("a").allowed
    wall.ms += 10_000
    assert bucket.take("a", 3).remaining == 0  # a batch takes all its tokens at once...
    wall.ms += 1_000
    batch = bucket.take("a", 3)  # ...or none: 2 tokens are not enough for 3 orders
    assert not batch.allowed and batch.retry_after_s == 1 and bucket.take("a", 2).allowed


def test_headers_are_what_the_sdk_reads() -> None:
    wall = Wall(1_700_000_000_000)
    bucket = TokenBucket(1, 1, wall)
    ok = bucket.take("a")
    update = _parse_rate_limit_headers(httpx.Headers(ok.headers()))
    assert update is not None and (update.remaining, update.tier) == (0, "paper")
    assert update.reset == 1_700_000_001  # full again one second later (Unix s)
    refused = bucket.take("a")
    response = httpx.Response(429, headers=refused.headers(), json={"error": "Too Many Requests"})
    assert _extract_retry_after(response) == 1.0


def test_bucket_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, Wall(0))


def test_settlement_steps_in_due_order() -> None:
    s = Settlement(mined_ms=100, confirmed_ms=200)
    s.matched("t1", 1_000)
    s.matched("t2", 1_050)
    assert s.due(1_099) == []
    assert [(x.trade_id, x.status) for x in s.due(1_150)] == [("t1", "MINED"), ("t2", "MINED")]
    assert [(x.trade_id, x.status, x.due_ms) for x in s.due(10_000)] == [("t1", "CONFIRMED", 1_300),
                                                                        ("t2", "CONFIRMED", 1_350)]
    assert s.pending() == 0
    instant = Settlement(0, 0)
    instant.matched("t3", 5)
    assert [x.status for x in instant.due(5)] == ["MINED", "CONFIRMED"]
