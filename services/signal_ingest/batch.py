"""Pure: turn the fresh row occurrences of one poll into stream entries.

Each fresh occurrence becomes exactly one of: a signal (``pb:sig:stream``), a dead letter
(``pb:sig:dead``, malformed), or a skip (well-formed but ``size < min_size``). Skips are not dead
letters -- the row is fine, the leader target just filters it -- they are counted and journaled
(``BELOW_MIN_SIZE``) and, like every handled occurrence, counted in the cursor so a re-poll does not
see them again.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Sequence

from services.signal_ingest.cursor import Fresh
from services.signal_ingest.normalize import Reject, Signal, canonical, normalize
from services.signal_ingest.wire import wire_field


@dataclass(frozen=True)
class DeadLetter:
    """A malformed row occurrence with the reason it was refused."""

    reject: Reject
    fresh: Fresh

    def fields(self, account: str, now_ms: int) -> dict[str, str]:
        """``pb:sig:dead`` entry: reason, field, value, account, raw (canonical JSON of the row as
        received), fingerprint, n (occurrence), seen_ms (market ms of the poll)."""
        return {"reason": self.reject.reason, "field": self.reject.field, "value": self.reject.value,
                "account": account, "raw": canonical(self.fresh.row.raw), "fingerprint": self.fresh.row.fp,
                "n": str(self.fresh.n), "seen_ms": str(now_ms)}


@dataclass(frozen=True)
class Batch:
    """One poll's outcome: ``signals`` oldest first, ``dead`` letters, and ``below_min`` skipped fills."""

    signals: tuple[Signal, ...]
    dead: tuple[DeadLetter, ...]
    below_min: tuple[Signal, ...]


def classify(fresh: Sequence[Fresh], account: str, min_size: Decimal) -> Batch:
    """Normalise each fresh occurrence (its v1 view); keep the order (oldest first). A dead letter
    names the field as received (a v2 row's ``token_id``, not ``asset``)."""
    signals: list[Signal] = []
    dead: list[DeadLetter] = []
    below: list[Signal] = []
    for f in fresh:
        out = normalize(f.row.view, account, f.row.fp, f.n)
        if isinstance(out, Reject):
            dead.append(DeadLetter(replace(out, field=wire_field(out.field, f.row.raw, f.row.version)), f))
        elif out.size < min_size:
            below.append(out)
        else:
            signals.append(out)
    return Batch(tuple(signals), tuple(dead), tuple(below))
