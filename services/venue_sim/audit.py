"""The venue's audit log: one JSON line per order accepted or rejected, cancel, fill, market end and
heartbeat expiry (docs/contracts.md "Paper venue"). Thread-safe; every line is flushed at once so a
test or an operator can tail the file while the venue runs.

Line shape (every key always present, "" when not applicable):
``{"ts_ms": market ms, "wall_ms": wall ms, "kind": "order_accepted" | "order_rejected" | "cancel" |
"fill" | "market_end" | "heartbeat_expired" | "redeem" | "redeem_rejected", "order_id", "token_id", "side", "price", "size",
"post_only", "order_type", "reason", "maker"}`` plus optional extra keys (e.g. ``status``, ``trade_id``).
A ``fill`` line also carries ``trade_id``, ``role`` (MAKER | TAKER), ``size_matched``, ``fee`` (pUSD
charged, "0" when none), ``rebate`` (pUSD maker rebate estimate, NOT credited: Polymarket pays it
daily; "0" for a taker) and ``fee_rate_bps`` (int, the market's taker rate x 10000); a ``redeem``
line carries ``payout`` (pUSD paid) and ``market``, ``winner`` (services/venue_sim/redeem.py).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger(__name__)

KINDS = ("order_accepted", "order_rejected", "cancel", "fill", "market_end", "heartbeat_expired",
         "redeem", "redeem_rejected")  # redeem*: services/venue_sim/redeem.py
_FIELDS = ("order_id", "token_id", "side", "price", "size", "post_only", "order_type", "reason", "maker")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "" if value is None else value


class Audit:
    """Appends audit lines to ``path`` (parent folders are created); ``path=None`` keeps only the
    in-memory counts (tests). ``counts`` holds lines written per kind; ``write_failures`` counts
    lines that could not be written (each also logged as ``AUDIT_WRITE_FAILED``)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._fh: IO[bytes] | None = None
        self.counts: Counter[str] = Counter()
        self.write_failures = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")

    def write(self, kind: str, ts_ms: int, wall_ms: int, **fields: Any) -> dict[str, Any]:
        """Append one line of ``kind`` (one of KINDS); returns the line as written.

        Raises:
            ValueError: ``kind`` is not one of KINDS (a programming error, never input).
        """
        if kind not in KINDS:
            raise ValueError(f"audit kind {kind!r} is not one of {KINDS}")
        line: dict[str, Any] = {"ts_ms": ts_ms, "wall_ms": wall_ms, "kind": kind}
        line.update({k: _plain(fields.pop(k, "")) for k in _FIELDS})
        line.update({k: _plain(v) for k, v in fields.items()})
        data = orjson.dumps(line) + b"\n"
        with self._lock:
            self.counts[kind] += 1
            if self._fh is None:
                return line
            try:
                self._fh.write(data)
                self._fh.flush()
            except (OSError, ValueError) as exc:
                self.write_failures += 1
                log.error("event AUDIT_WRITE_FAILED path=%s kind=%s err=%s", self.path, kind, exc)
        return line

    def close(self) -> None:
        """Close the file (later writes are counted and logged as failures)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
