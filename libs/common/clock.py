"""Injectable clocks.

Two kinds of time, kept apart on purpose:
- *market time* (``now_ms``): the time of the market being traded. Trading rules (market end,
  sell-only window, signal timeout, aggressive steps, cooldown) use it. In live mode it is wall time;
  in paper mode it is the replay clock of the venue, which may run faster than real time.
- *wall time* (``wall_ms``, ``sleep``): infrastructure deadlines (leases, pings, heartbeats, HTTP).
  These must never be compressed: real I/O does not get faster when a replay does.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from redis import Redis

from libs.common import keys

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Time source: ``now_ms`` market ms, ``wall_ms`` wall ms, ``sleep`` wall seconds."""

    def now_ms(self) -> int: ...

    def wall_ms(self) -> int: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Market time is wall time (live mode)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


@dataclass(frozen=True)
class ReplayClock:
    """Market time of a replay: ``epoch_tape_ms + (wall - epoch_wall_ms) * speed``.

    Attributes:
        epoch_wall_ms: wall ms at which the replay's market time was ``epoch_tape_ms``.
        epoch_tape_ms: market (tape) ms at that instant.
        speed: market ms per wall ms (>0).
    """

    epoch_wall_ms: int
    epoch_tape_ms: int
    speed: float

    def now_ms(self) -> int:
        wall = time.time_ns() // 1_000_000
        return self.epoch_tape_ms + int((wall - self.epoch_wall_ms) * self.speed)

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def to_wall_ms(self, market_ms: int) -> int:
        """Wall ms at which market time reaches ``market_ms``."""
        return self.epoch_wall_ms + int((market_ms - self.epoch_tape_ms) / self.speed)

    def as_fields(self) -> dict[str, str]:
        """Plain-string hash fields for ``keys.CLOCK``."""
        return {
            "epoch_wall_ms": str(self.epoch_wall_ms),
            "epoch_tape_ms": str(self.epoch_tape_ms),
            "speed": repr(self.speed),
        }


@dataclass
class FakeClock:
    """Test clock: time moves only when told; ``sleep`` advances it without waiting."""

    now: int = 1_700_000_000_000
    wall: int = 1_700_000_000_000
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now_ms(self) -> int:
        return self.now

    def wall_ms(self) -> int:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.advance(int(seconds * 1000))

    def advance(self, ms: int) -> None:
        """Move market and wall time forward by ``ms``."""
        with self._lock:
            self.now += ms
            self.wall += ms


def publish_replay_clock(r: Redis, clock: ReplayClock) -> None:
    """Write the replay clock to ``keys.CLOCK`` (done by the paper venue at start)."""
    r.hset(keys.CLOCK, mapping=clock.as_fields())


def read_replay_clock(r: Redis) -> ReplayClock | None:
    """The replay clock published by the venue, or None when there is none (live mode)."""
    raw = r.hgetall(keys.CLOCK)
    if not raw:
        return None
    return ReplayClock(int(raw["epoch_wall_ms"]), int(raw["epoch_tape_ms"]), float(raw["speed"]))


def clock_for_mode(r: Redis, mode: str, wait_s: float = 60.0) -> Clock:
    """SystemClock in live mode; in paper mode wait (up to ``wait_s``) for the venue's replay clock.

    Raises:
        TimeoutError: no replay clock appeared in time (is the venue running on this Redis?).
    """
    if mode != "paper":
        return SystemClock()
    deadline = time.monotonic() + wait_s
    while True:
        clock = read_replay_clock(r)
        if clock is not None:
            log.info("replay clock speed=%s epoch_tape_ms=%d", clock.speed, clock.epoch_tape_ms)
            return clock
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replay clock at {keys.CLOCK} after {wait_s}s: start the venue")
        log.debug("waiting for the venue's replay clock key=%s", keys.CLOCK)  # callers log CLOCK_WAIT
        time.sleep(0.2)
