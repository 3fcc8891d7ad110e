"""The back-test's virtual clock: market time and wall time are the same number, moved only by the
driver, so leases, timeouts, steps and the tape all run in one time and no result depends on how
fast the machine is."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VirtualClock:
    """``now_ms`` = ``wall_ms`` = ``t`` (virtual ms, Unix epoch of the tape). ``sleep`` returns at once:
    a service that would wait in real life is stepped again by the driver at a later virtual time."""

    t: int

    def now_ms(self) -> int:
        return self.t

    def wall_ms(self) -> int:
        return self.t

    def sleep(self, seconds: float) -> None:  # noqa: ARG002 - time only moves when the driver says so
        return None

    def to_wall_ms(self, market_ms: int) -> int:
        """Identity: market ms are wall ms here (``Replay`` asks)."""
        return market_ms

    def set(self, t_ms: int) -> None:
        """Move to ``t_ms``; time never goes backwards.

        Raises:
            ValueError: ``t_ms`` is before the current time.
        """
        if t_ms < self.t:
            raise ValueError(f"virtual clock cannot go back from {self.t} to {t_ms}")
        self.t = t_ms
