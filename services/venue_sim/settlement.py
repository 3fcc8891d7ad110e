"""Asynchronous settlement of the paper venue's trades: MATCHED -> MINED -> CONFIRMED.

Polymarket settles matches on chain after answering ``POST /order`` (reference/polymarket-api.md
"What changed": ``tradeIDs`` without ``transactionsHashes``; statuses MATCHED -> MINED -> CONFIRMED,
``polymarket/models/clob/account.py`` ``TradeStatus``; ``polymarket/_internal/actions/orders/
settlement.py`` waits for CONFIRMED or FAILED). The venue moves each trade to MINED
``mined_ms`` market ms after its match and to CONFIRMED ``confirmed_ms`` after that. Paper trades
never fail. Not thread-safe: the engine calls it under its lock.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

NEXT_STATUS = {"MATCHED": "MINED", "MINED": "CONFIRMED"}


@dataclass(frozen=True)
class Step:
    """Trade ``trade_id`` reaches ``status`` at market ms ``due_ms``."""

    due_ms: int
    trade_id: str
    status: str


class Settlement:
    """The pending status steps of every trade, in due order (ties in match order).

    Args:
        mined_ms: market ms from MATCHED to MINED (>= 0). confirmed_ms: from MINED to CONFIRMED (>= 0).
    """

    def __init__(self, mined_ms: int, confirmed_ms: int) -> None:
        if mined_ms < 0 or confirmed_ms < 0:
            raise ValueError(f"settlement delays must be >= 0, got {mined_ms}, {confirmed_ms}")
        self.delays = {"MINED": mined_ms, "CONFIRMED": confirmed_ms}
        self._heap: list[tuple[int, int, str, str]] = []
        self._n = 0

    def _push(self, due_ms: int, trade_id: str, status: str) -> None:
        self._n += 1
        heapq.heappush(self._heap, (due_ms, self._n, trade_id, status))

    def matched(self, trade_id: str, now_ms: int) -> None:
        """A new MATCHED trade: schedule its MINED step."""
        self._push(now_ms + self.delays["MINED"], trade_id, "MINED")

    def due(self, now_ms: int) -> list[Step]:
        """Pop every step due at ``now_ms`` (a MINED step schedules its CONFIRMED step, which is
        returned too when already due), in order."""
        steps: list[Step] = []
        while self._heap and self._heap[0][0] <= now_ms:
            due_ms, _, trade_id, status = heapq.heappop(self._heap)
            steps.append(Step(due_ms, trade_id, status))
            if status in NEXT_STATUS:
                self._push(due_ms + self.delays[NEXT_STATUS[status]], trade_id, NEXT_STATUS[status])
        return steps

    def pending(self) -> int:
        """Steps not yet due."""
        return len(self._heap)
