"""Pure multiset cursor of one leader account (SPEC S2.1): which fetched rows are new.

The data-api lists a wallet's fills newest first and has no ids; rows identical in every field are
separate fills. The cursor therefore keeps the newest timestamp seen (``ts``, Unix seconds) and, for
that timestamp, how many times each row fingerprint has been handled (``counts``). On a re-poll:

* rows older than ``ts`` were handled before;
* rows at ``ts`` are new only beyond the stored count of their fingerprint (the excess);
* rows newer than ``ts`` are all new, and the counts restart at the newest timestamp among them.

Rows whose timestamp is missing or malformed cannot be placed in time; they are counted for good in
``undated`` (fingerprint -> count, never reset) so that each is dead-lettered exactly once.
Limitation of the data-api design: a fill that appears *later* with a timestamp older than ``ts``
is not seen (the API has no insertion ids to page by).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from services.signal_ingest.normalize import fingerprint, row_ts
from services.signal_ingest.wire import V1, view

_FP, _ND = "fp:", "nd:"


@dataclass(frozen=True)
class Cursor:
    """Progress of one account.

    Attributes:
        ts: newest handled trade timestamp (Unix seconds, market time).
        counts: fingerprint -> occurrences handled at ``ts``.
        undated: fingerprint -> occurrences handled of rows without a usable timestamp.
        gen: commit generation (0 = never stored); the store refuses a commit from a stale ``gen``.
    """

    ts: int
    counts: Mapping[str, int] = field(default_factory=dict)
    undated: Mapping[str, int] = field(default_factory=dict)
    gen: int = 0

    def to_fields(self) -> dict[str, str]:
        """Hash fields for ``keys.sig_cursor`` except ``gen`` (the store sets it): ``ts``,
        ``fp:<fingerprint>`` and ``nd:<fingerprint>`` counts, all as decimal strings."""
        out = {"ts": str(self.ts)}
        out.update({_FP + fp: str(n) for fp, n in sorted(self.counts.items())})
        out.update({_ND + fp: str(n) for fp, n in sorted(self.undated.items())})
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "Cursor | None":
        """Inverse of ``to_fields`` (plus ``gen``); None for an empty hash (no cursor yet).

        Raises:
            ValueError: a field holds a non-integer (the message names the field and value).
        """
        if not fields:
            return None
        counts, undated = {}, {}
        for name, value in fields.items():
            if not value.lstrip("-").isdigit():
                raise ValueError(f"cursor field {name!r} has bad value {value!r}")
            if name.startswith(_FP):
                counts[name[len(_FP):]] = int(value)
            elif name.startswith(_ND):
                undated[name[len(_ND):]] = int(value)
        if "ts" not in fields:
            raise ValueError("cursor field 'ts' is missing")
        return cls(int(fields["ts"]), counts, undated, int(fields.get("gen", "0")))

    def same_progress(self, other: "Cursor") -> bool:
        """True when ``other`` records the same progress (``gen`` ignored)."""
        return (self.ts, dict(self.counts), dict(self.undated)) == (other.ts, dict(other.counts), dict(other.undated))


@dataclass(frozen=True)
class Row:
    """A fetched row: the parsed JSON value as received, its fingerprint and timestamp (s, None if
    unusable), both taken from its v1 view, and the data-api ``version`` it came from (wire.py)."""

    raw: Any
    fp: str
    ts: int | None
    version: str = V1

    @property
    def view(self) -> Any:
        """The row with v1 field names (``wire.view``)."""
        return view(self.raw, self.version)


@dataclass(frozen=True)
class Fresh:
    """A row occurrence to handle now: the ``n``-th (1-based) row with its fingerprint at its ts."""

    row: Row
    n: int


@dataclass(frozen=True)
class Plan:
    """What a poll does: ``fresh`` rows (oldest first), the ``cursor`` after them, and on a first
    run how many rows were history (``skipped``, at or before the first-run cursor)."""

    fresh: tuple[Fresh, ...]
    cursor: Cursor
    skipped: int = 0


def make_rows(raws: Iterable[Any], version: str = V1) -> list[Row]:
    """Wrap parsed rows (any JSON value) of data-api ``version`` with fingerprint and timestamp,
    both from the v1 view, so one fill has the same fingerprint in either version."""
    out = []
    for raw in raws:
        v = view(raw, version)
        out.append(Row(raw, fingerprint(v), row_ts(v), version))
    return out


def first_run_ts(now_ms: int, lookback_s: int) -> int:
    """First-run cursor timestamp (s): market ``now`` minus the lookback; older rows are history."""
    return (now_ms - lookback_s * 1000) // 1000


def needs_next_page(page: list[Row], cursor_ts: int, limit: int) -> bool:
    """True while reading must go on: the response is full (``limit`` rows) and holds no row older
    than ``cursor_ts`` (only a strictly older row proves every row at ``cursor_ts`` was seen)."""
    if len(page) < limit:
        return False
    return not any(r.ts is not None and r.ts < cursor_ts for r in page)


def needs_next_cursor_page(page: list[Row], cursor_ts: int, next_cursor: str | None) -> bool:
    """v2 paging verdict after one page: go on while the server has more (``next_cursor``) and the
    page holds no row older than ``cursor_ts``. Keyset pages do not shift when new fills land at the
    top, so the pages of one poll join into one newest-first list without overlap or gap."""
    if next_cursor is None:
        return False
    return not any(r.ts is not None and r.ts < cursor_ts for r in page)


def widening_limits(page_size: int, max_rows: int, growth: int = 4) -> list[int]:
    """``limit`` of each read of one poll: ``page_size``, then ``growth`` times wider, up to ``max_rows``.

    Why widen instead of stepping ``offset``: the list grows at the top while it is read, so the
    rows at an offset move between two requests and offset pages can overlap or skip rows (and
    identical fills make the overlap impossible to tell from real repeats). One response is one
    consistent snapshot, so a poll re-reads from the top with a wider ``limit`` until the response
    reaches the cursor. Total rows transferred stay below ``growth / (growth - 1)`` times the last read.
    """
    out, n = [], max(1, min(page_size, max_rows))
    while True:
        out.append(n)
        if n >= max_rows:
            return out
        n = min(max_rows, n * growth)


def _merge_max(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in set(a) | set(b)}


def plan(cursor: Cursor, rows: list[Row]) -> Plan:
    """Rows (newest first, as fetched) -> the occurrences not handled yet and the next cursor."""
    fresh: list[Fresh] = []
    seen: Counter[tuple[int | None, str]] = Counter()
    for row in reversed(rows):  # oldest first
        if row.ts is not None and row.ts < cursor.ts:
            continue
        seen[(row.ts, row.fp)] += 1
        n = seen[(row.ts, row.fp)]
        if row.ts is None:
            handled = cursor.undated.get(row.fp, 0)
        elif row.ts == cursor.ts:
            handled = cursor.counts.get(row.fp, 0)
        else:
            handled = 0
        if n > handled:
            fresh.append(Fresh(row, n))
    undated = _merge_max(cursor.undated, {fp: n for (ts, fp), n in seen.items() if ts is None})
    top = max((r.ts for r in rows if r.ts is not None), default=cursor.ts)
    if top > cursor.ts:
        counts = {fp: n for (ts, fp), n in seen.items() if ts == top}
    else:
        top = cursor.ts
        counts = _merge_max(cursor.counts, {fp: n for (ts, fp), n in seen.items() if ts == top})
    return Plan(tuple(fresh), Cursor(top, counts, undated, cursor.gen))


def plan_first_run(start_ts: int, rows: list[Row]) -> Plan:
    """First poll of an account: rows at or before ``start_ts`` (and undated ones) are history,
    counted in ``skipped``; only newer rows are fresh (SPEC S2.1: entering old trades would buy
    far from the leader's price)."""
    base = Cursor(start_ts,
                  dict(Counter(r.fp for r in rows if r.ts == start_ts)),
                  dict(Counter(r.fp for r in rows if r.ts is None)))
    skipped = sum(1 for r in rows if r.ts is None or r.ts <= start_ts)
    p = plan(base, rows)
    return Plan(p.fresh, p.cursor, skipped)
