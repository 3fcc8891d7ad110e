"""Pure rate-limit helpers: a token bucket and jittered backoff. Times are wall milliseconds.

Polymarket documents 200 requests per 10 s for data-api ``/trades`` (reference/polymarket-api.md,
rate-limit table); ``IngestSettings.rate_limit_per_10s`` sets the bucket, shared by every leader.
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW_MS = 10_000


@dataclass
class TokenBucket:
    """``capacity`` requests per ``window_ms``, refilled continuously; starts full.

    Use ``wait_ms(now)`` to learn how long to wait, then ``take(now)`` to spend one request.
    """

    capacity: int
    last_ms: int
    window_ms: int = WINDOW_MS
    tokens: float = -1.0

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.window_ms < 1:
            raise ValueError(f"token bucket needs capacity >= 1 and window_ms >= 1, "
                             f"got {self.capacity}, {self.window_ms}")
        if self.tokens < 0:
            self.tokens = float(self.capacity)

    def _refill(self, now_ms: int) -> None:
        if now_ms > self.last_ms:
            refill = (now_ms - self.last_ms) * self.capacity / self.window_ms
            self.tokens = min(float(self.capacity), self.tokens + refill)
            self.last_ms = now_ms

    def wait_ms(self, now_ms: int) -> int:
        """Milliseconds until one request may be sent (0 = now)."""
        self._refill(now_ms)
        if self.tokens >= 1.0:
            return 0
        return max(1, int((1.0 - self.tokens) * self.window_ms / self.capacity + 0.999))

    def take(self, now_ms: int) -> bool:
        """Spend one request if available; False (nothing spent) when the bucket is empty."""
        self._refill(now_ms)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def backoff_ms(failures: int, retry_after_s: float | None, max_ms: int, jitter: float, base_ms: int = 1000) -> int:
    """Pause after the ``failures``-th consecutive HTTP 429 (1, 2, ...).

    Exponential ``base_ms * 2**(failures-1)`` capped at ``max_ms``, scaled by ``0.5 + jitter/2``
    (``jitter`` in [0, 1)) so that clients do not retry in step; never shorter than the server's
    ``Retry-After`` (seconds) when it sent one, and never longer than ``max_ms`` otherwise.
    """
    exp = min(max_ms, base_ms * 2 ** max(0, min(failures - 1, 30)))
    wait = int(exp * (0.5 + max(0.0, min(jitter, 1.0)) / 2))
    if retry_after_s is not None and retry_after_s > 0:
        wait = max(wait, int(retry_after_s * 1000))
    return max(1, wait)
