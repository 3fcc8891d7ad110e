"""Per-signer order and cancel rate limits of the paper venue (token buckets, wall time).

Polymarket (reference/polymarket-api.md "What changed": per-signer order and cancel token buckets;
batches admitted all or nothing; ``Poly-RateLimit-*`` headers; 429 with ``Retry-After``). The
headers are the ones polymarket-client parses (``polymarket/clients/_transport.py``
``_parse_rate_limit_headers``, ``polymarket/rate_limit.py`` ``RateLimitUpdate``):
``Poly-RateLimit-Remaining`` (tokens left after the request), ``Poly-RateLimit-Reset`` (Unix s when
the bucket is full again), ``Poly-RateLimit-Tier``. A refused request gets 429 and
``Retry-After`` (whole seconds until enough tokens), which the SDK raises as ``RateLimitError``
with ``retry_after`` (``_raise_for_response_status``/``_extract_retry_after``).
Token counts are exact integers of milli-tokens (no float arithmetic).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

TOO_MANY = "Too Many Requests"  # UNCONFIRMED: Polymarket's 429 body text is not in the SDK or reference
TIER = "paper"
MILLI = 1000


@dataclass(frozen=True)
class Decision:
    """Outcome of one ``take``: ``allowed``; ``remaining`` whole tokens left; ``reset_s`` Unix s
    when the bucket is full; ``retry_after_s`` whole seconds to wait (0 when allowed)."""

    allowed: bool
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        """The ``Poly-RateLimit-*`` headers (plus ``Retry-After`` on a refusal)."""
        out = {"Poly-RateLimit-Remaining": str(self.remaining), "Poly-RateLimit-Reset": str(self.reset_s),
               "Poly-RateLimit-Tier": TIER}
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class TokenBucket:
    """Buckets of ``capacity`` tokens refilled at ``per_s`` tokens per second, one per key.

    Args:
        capacity: burst size (>= 1). per_s: refill rate (>= 1 token per second).
        now_ms: wall clock in ms (injectable for tests).
    """

    def __init__(self, capacity: int, per_s: int, now_ms: Callable[[], int]) -> None:
        if capacity < 1 or per_s < 1:
            raise ValueError(f"rate limit needs capacity >= 1 and per_s >= 1, got {capacity}, {per_s}")
        self.capacity, self.per_s, self.now_ms = capacity, per_s, now_ms
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, int]] = {}  # key -> (milli-tokens, at ms)

    def _level(self, key: str, now: int) -> int:
        milli, at = self._state.get(key, (self.capacity * MILLI, now))
        return min(self.capacity * MILLI, milli + (now - at) * self.per_s)  # ms x tokens/s = milli-tokens

    def take(self, key: str, tokens: int = 1) -> Decision:
        """Take ``tokens`` for ``key`` (all or nothing: a batch of n orders takes n)."""
        now = self.now_ms()
        with self._lock:
            level = self._level(key, now)
            allowed = tokens * MILLI <= level
            if allowed:
                level -= tokens * MILLI
            self._state[key] = (level, now)
        missing = max(0, tokens * MILLI - level) if not allowed else 0
        full_in_ms = _ceil_div(self.capacity * MILLI - level, self.per_s)
        return Decision(allowed, level // MILLI, _ceil_div(now + full_in_ms, 1000),
                        max(1, _ceil_div(_ceil_div(missing, self.per_s), 1000)) if not allowed else 0)


class RateLimits:
    """The venue's two per-signer buckets: ``orders`` (POST /order, /orders) and ``cancels``
    (DELETE /order, /orders, /cancel-all, /cancel-market-orders)."""

    def __init__(self, order_capacity: int, order_per_s: int, cancel_capacity: int, cancel_per_s: int,
                 now_ms: Callable[[], int]) -> None:
        self.orders = TokenBucket(order_capacity, order_per_s, now_ms)
        self.cancels = TokenBucket(cancel_capacity, cancel_per_s, now_ms)
