"""signal_ingest rate limiting: token bucket (200 per 10 s documented) and 429 backoff."""
from __future__ import annotations

from services.signal_ingest.ratelimit import TokenBucket, backoff_ms


def test_bucket_allows_capacity_per_window_then_makes_you_wait() -> None:
    b = TokenBucket(capacity=200, last_ms=0)
    assert sum(b.take(0) for _ in range(250)) == 200
    assert b.wait_ms(0) == 50  # one request per 10 s / 200
    assert not b.take(49) and b.take(50)
    # over a long run the rate converges to capacity per 10 s
    sent, now = 0, 1000
    while now < 101_000:
        now += max(1, b.wait_ms(now))
        sent += b.take(now)
    assert 2000 <= sent <= 2020  # 100 s at 20/s plus the 19 tokens refilled during the first second


def test_backoff_grows_jitters_caps_and_honours_retry_after() -> None:
    assert backoff_ms(1, None, 60_000, 0.0) == 500 and backoff_ms(1, None, 60_000, 0.999) < 1000
    assert backoff_ms(3, None, 60_000, 0.0) == 2000
    assert backoff_ms(30, None, 60_000, 0.999) <= 60_000
    assert backoff_ms(1, 7.0, 60_000, 0.0) == 7000
