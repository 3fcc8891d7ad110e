"""Redis side of signal_ingest: read an account's cursor; publish and advance it atomically.

``commit`` is two steps, each one Lua script on one cluster slot (Redis Cluster, ``keys.SIG_TAG``):

1. ``sig_publish.lua`` on the ``{sig}`` keys: the XADDs to ``pb:{sig}:stream`` and ``pb:{sig}:dead``,
   the cursor replacement and ``INCRBY pb:{sig}:published <signals>``, atomically (SPEC S2.1). A
   crash leaves all or nothing: a signal or dead letter is never lost (the cursor moves only with
   the publish) nor published twice (a retry after the cursor moved is refused by its ``gen``).
2. ``sig_count.lua`` on ``pb:summary``: ``signals = max(signals, published total)``.

Why the ``signals`` counter stays exact: the total is counted in step 1, atomically with the
entries, so it equals the signals ever published; step 2 only copies it, and a copy is idempotent
(repeating it, or running a stale one from another instance, never adds twice nor lowers it). A
crash between the steps leaves the summary behind until the next copy: the next commit's, or the
one ``CursorStore`` makes when it starts (``sync_count``). On one Redis the same two steps run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

from redis import Redis

from libs.common import keys, lua
from services.signal_ingest.cursor import Cursor

log = logging.getLogger(__name__)

DEAD_MAXLEN = 100_000  # dead letters kept (approximate); signals are never trimmed here
SIGNALS_COUNTER = "signals"  # pb:summary field (docs/contracts.md), copied from pb:{sig}:published


@dataclass(frozen=True)
class CommitResult:
    """``ok`` False when nothing was written: another writer moved the cursor first (``gen`` is the
    current generation) or a key has the wrong type (``error`` says which). On success ``gen`` is
    the new generation and ``published`` the total of signals ever published (``pb:{sig}:published``)."""

    ok: bool
    gen: int
    error: str = ""
    published: int = 0


def _flatten(entries: Sequence[Mapping[str, str]]) -> list[str]:
    out = [str(len(entries))]
    for entry in entries:
        out.append(str(len(entry)))
        for k, v in entry.items():
            out += [k, v]
    return out


class CursorStore:
    """Cursor reads and exactly-once commits on one decoded client (``Redis`` or ``RedisCluster``).
    Creating it brings ``pb:summary`` ``signals`` up to date (repairs a crash between the steps)."""

    def __init__(self, r: Redis) -> None:
        self.r = r
        self._publish = lua.register(r, "sig_publish")
        self._count = lua.register(r, "sig_count")
        try:
            self.sync_count()
        except ValueError as exc:  # every publish is refused (PUBLISH_REFUSED, journaled) until repaired
            log.error("event SIG_COUNT_UNREADABLE %s", exc)

    def load(self, account: str) -> Cursor | None:
        """The stored cursor of ``account`` (None before its first run).

        Raises:
            ValueError: the stored hash is corrupt (names the field and value).
        """
        return Cursor.from_fields(self.r.hgetall(keys.sig_cursor(account)))

    def commit(self, account: str, expected_gen: int, cursor: Cursor,
               signals: Sequence[Mapping[str, str]], dead: Sequence[Mapping[str, str]]) -> CommitResult:
        """``publish`` then, when it wrote signals, ``sync_count`` (module doc: exactly-once)."""
        res = self.publish(account, expected_gen, cursor, signals, dead)
        if res.ok and signals:
            self.sync_count(res.published)
        return res

    def publish(self, account: str, expected_gen: int, cursor: Cursor,
                signals: Sequence[Mapping[str, str]], dead: Sequence[Mapping[str, str]]) -> CommitResult:
        """Step 1: XADD ``signals`` (in order) and ``dead`` entries, store ``cursor`` and count the
        signals, atomically, if the stored cursor still has generation ``expected_gen``. Field values
        must be strings."""
        args: list[str] = [str(expected_gen), str(DEAD_MAXLEN), *_flatten(signals), *_flatten(dead)]
        for k, v in cursor.to_fields().items():
            args += [k, v]
        res = self._publish(keys=[keys.sig_cursor(account), keys.SIG_STREAM, keys.SIG_DEAD, keys.SIG_PUBLISHED],
                            args=args)
        code = int(res[0])
        if code < 0:
            return CommitResult(False, expected_gen, str(res[1]))
        if code == 0:
            return CommitResult(False, int(res[1]))
        return CommitResult(True, int(res[1]), published=int(res[2]))

    def sync_count(self, published: int | None = None) -> int:
        """Step 2: ``pb:summary`` ``signals`` = max(itself, ``published``) (read from
        ``pb:{sig}:published`` when None); idempotent. Returns the counter's value after the call.

        Raises:
            ValueError: ``pb:{sig}:published`` holds no integer (named with its value).
            redis.exceptions.ResponseError: ``pb:summary`` is not a hash or the field not an integer.
        """
        if published is None:
            raw = self.r.get(keys.SIG_PUBLISHED) or "0"
            if not raw.isdigit():
                raise ValueError(f"{keys.SIG_PUBLISHED}={raw[:40]!r}: not a count of signals")
            published = int(raw)
        return int(self._count(keys=[keys.SUMMARY], args=[SIGNALS_COUNTER, str(published)]))
