"""Redis side of signal_ingest: read an account's cursor; publish and advance it atomically.

``commit`` runs ``libs/common/lua/sig_publish.lua``: the XADDs to ``pb:sig:stream`` and
``pb:sig:dead``, the cursor replacement and the ``signals`` counter in ``pb:summary`` (what
``Journal.bump("signals", n)`` would do, but exact across a crash) happen in one script, so the
cursor moves only together with the publish (SPEC S2.1) and a crash leaves either all or nothing.

Trade-off (Redis Cluster): the cursor and the two streams are in different slots, and a script may
only touch one slot there. On one Redis (with replicas or Sentinel) this is exact. For Cluster the
signal keys would need one shared hash tag (e.g. ``pb:sig:{sig}:stream``), which is acceptable since
signal traffic is small; a non-atomic fallback would instead have to rely on the consumers'
idempotency by ``signal_id`` (``pb:sig:done``) and could leave duplicate entries in the stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from redis import Redis

from libs.common import keys, lua
from services.signal_ingest.cursor import Cursor

DEAD_MAXLEN = 100_000  # dead letters kept (approximate); signals are never trimmed here
SIGNALS_COUNTER = "signals"  # pb:summary field (docs/contracts.md), bumped inside the script


@dataclass(frozen=True)
class CommitResult:
    """``ok`` False when nothing was written: another writer moved the cursor first (``gen`` is the
    current generation) or a key has the wrong type (``error`` says which). On success ``gen`` is
    the new generation."""

    ok: bool
    gen: int
    error: str = ""


def _flatten(entries: Sequence[Mapping[str, str]]) -> list[str]:
    out = [str(len(entries))]
    for entry in entries:
        out.append(str(len(entry)))
        for k, v in entry.items():
            out += [k, v]
    return out


class CursorStore:
    """Cursor reads and atomic commits on one decoded Redis client."""

    def __init__(self, r: Redis) -> None:
        self.r = r
        self._publish = lua.register(r, "sig_publish")

    def load(self, account: str) -> Cursor | None:
        """The stored cursor of ``account`` (None before its first run).

        Raises:
            ValueError: the stored hash is corrupt (names the field and value).
        """
        return Cursor.from_fields(self.r.hgetall(keys.sig_cursor(account)))

    def commit(self, account: str, expected_gen: int, cursor: Cursor,
               signals: Sequence[Mapping[str, str]], dead: Sequence[Mapping[str, str]]) -> CommitResult:
        """XADD ``signals`` (in order) and ``dead`` entries and store ``cursor``, atomically, if the
        stored cursor still has generation ``expected_gen``. Field values must be strings."""
        args: list[str] = [str(expected_gen), str(DEAD_MAXLEN), SIGNALS_COUNTER, *_flatten(signals), *_flatten(dead)]
        for k, v in cursor.to_fields().items():
            args += [k, v]
        res = self._publish(keys=[keys.sig_cursor(account), keys.SIG_STREAM, keys.SIG_DEAD, keys.SUMMARY], args=args)
        code = int(res[0])
        if code < 0:
            return CommitResult(False, expected_gen, str(res[1]))
        return CommitResult(code == 1, int(res[1]))
