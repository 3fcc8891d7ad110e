"""Leader wallets served by the venue's data-api: rows of leader files replayed in market time.

Time alignment (documented rule): a file whose first row (smallest valid ``timestamp``) lies
inside the tape's span ``[tape_start, tape_end]`` (in whole seconds) is served as recorded. Otherwise (e.g. the real
gabagool22 file is from January, the tape from February) every row is shifted by one constant
offset, in whole seconds, so that the file's first row lands at ``tape_start + align_lead_s``;
the served ``timestamp`` is the shifted one, everything else is untouched. A row is visible once
``timestamp * 1000 <= clock.now_ms()`` (market time). Rows with equal timestamps keep their file
order. A row whose ``timestamp`` is not an int is served as it is (the ingest must reject it);
it becomes visible with the previous valid row of its file (or at tape start when none).
``_meta`` (e.g. ``synthetic: true``) is kept and shown by ``describe()`` (``GET /_sim/state``).
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from libs.common.tapes import load_leader

log = logging.getLogger(__name__)

DEFAULT_ALIGN_LEAD_S = 30


class MarketClock(Protocol):
    """``now_ms``: market (replay) time in Unix ms."""

    def now_ms(self) -> int: ...


def valid_ts(row: dict[str, Any]) -> int | None:
    """The row's ``timestamp`` (Unix s) when it is an int (bools refused), else None."""
    ts = row.get("timestamp")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


def alignment_shift_s(timestamps: list[int], tape_start_ms: int, tape_end_ms: int, align_lead_s: int) -> int:
    """Seconds to add to every row of a file (module doc rule); 0 when the file starts inside the tape."""
    if not timestamps:
        return 0
    first = min(timestamps)
    if tape_start_ms // 1000 <= first <= -(-tape_end_ms // 1000):  # whole seconds: floor(start)..ceil(end)
        return 0
    return tape_start_ms // 1000 + align_lead_s - first


def effective_times(rows: list[dict[str, Any]], shift_s: int, fallback_s: int) -> list[int]:
    """Visibility time (s) per row: shifted timestamp, or that of the previous valid row (module doc)."""
    times, last = [], fallback_s
    for row in rows:
        ts = valid_ts(row)
        if ts is not None:
            last = ts + shift_s
        times.append(last)
    return times


@dataclass(frozen=True)
class LeaderSource:
    """One loaded file: ``path``, its ``meta``, ``rows`` count, ``shift_s`` applied, ``malformed_ts``
    (rows without an int timestamp) and the served first/last timestamps (s)."""

    path: str
    meta: dict[str, Any]
    rows: int
    shift_s: int
    malformed_ts: int
    first_ts: int | None
    last_ts: int | None


class Leaders:
    """All leader rows, newest first, visible by market time (module doc).

    Args:
        paths: leader files (plain or .gz JSON lines, libs.common.tapes.load_leader format).
        clock: gives market time ``now_ms``. tape_start_ms/tape_end_ms: the tape's span (Unix ms).
        align_lead_s: where the first row of a shifted file lands after tape start (seconds).
    Raises:
        libs.common.tapes.TapeError: a file is not valid JSON lines (names file, line and value).
    """

    def __init__(self, paths: Iterable[str | Path], clock: MarketClock, tape_start_ms: int, tape_end_ms: int,
                 align_lead_s: int = DEFAULT_ALIGN_LEAD_S) -> None:
        self.clock = clock
        self.sources: list[LeaderSource] = []
        served: list[tuple[int, dict[str, Any]]] = []
        for path in paths:
            loaded = load_leader(Path(path))
            stamps = [t for t in (valid_ts(r) for r in loaded.rows) if t is not None]
            shift = alignment_shift_s(stamps, tape_start_ms, tape_end_ms, align_lead_s)
            times = effective_times(loaded.rows, shift, tape_start_ms // 1000)
            rows = [{**r, "timestamp": r["timestamp"] + shift} if valid_ts(r) is not None and shift else r
                    for r in loaded.rows]
            served.extend(zip(times, rows))
            self.sources.append(LeaderSource(str(path), loaded.meta, len(rows), shift, len(rows) - len(stamps),
                                             min(stamps) + shift if stamps else None,
                                             max(stamps) + shift if stamps else None))
            log.info("event LEADER_FILE_LOADED path=%s rows=%d shift_s=%d synthetic=%s", path, len(rows), shift,
                     loaded.meta.get("synthetic", ""))
        ordered = sorted(served, key=lambda pair: -pair[0])  # stable: file order kept for equal times
        self._keys = [-t for t, _ in ordered]
        self._rows = [row for _, row in ordered]

    def visible(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Rows visible at ``now_ms`` (default: the clock's market time), newest first."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        return self._rows[bisect.bisect_left(self._keys, -(now // 1000)):]

    def times_ms(self) -> list[int]:
        """The distinct market ms at which rows become visible, ascending (the back-test wakes
        signal_ingest only when a poll can find something new)."""
        return sorted({-k * 1000 for k in self._keys})

    def describe(self) -> list[dict[str, Any]]:
        """Per file: path, meta (incl. ``synthetic``), rows, shift_s, malformed_ts, first/last ts."""
        return [{"path": s.path, "meta": s.meta, "synthetic": bool(s.meta.get("synthetic", False)),
                 "rows": s.rows, "shift_s": s.shift_s, "malformed_ts": s.malformed_ts,
                 "first_ts": s.first_ts, "last_ts": s.last_ts} for s in self.sources]
