"""Renames of keys whose names changed between releases, run by signal_ingest and the scheduler at
start, so that a rolling upgrade keeps its signals (issue 10: the signal keys moved under the
``{sig}`` hash tag for Redis Cluster).

``pb:sig:stream`` -> ``pb:{sig}:stream`` (with its consumer group and pending list: RENAME moves the
whole stream), ``pb:sig:dead`` -> ``pb:{sig}:dead`` and every ``pb:sig:cursor:<account>`` ->
``pb:{sig}:cursor:<account>``. RENAMENX never overwrites: when both names exist (a new release
already wrote the new one) the old key is left as it is and the conflict is reported. A cluster never
held the old names (they could not work there), so nothing is done on one.
"""
from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from libs.common import keys
from libs.common.redis_client import is_cluster


@dataclass(frozen=True)
class Migration:
    """What ``migrate`` did: ``renamed`` and ``conflicts`` as (old, new) key pairs."""

    renamed: tuple[tuple[str, str], ...] = ()
    conflicts: tuple[tuple[str, str], ...] = ()


def planned(r: Redis) -> list[tuple[str, str]]:
    """(old, new) pairs of legacy keys present in ``r``."""
    pairs = [(keys.LEGACY_SIG_STREAM, keys.SIG_STREAM), (keys.LEGACY_SIG_DEAD, keys.SIG_DEAD)]
    pairs += [(old, keys.sig_cursor(old.rsplit(":", 1)[1]))
              for old in r.scan_iter(match=keys.LEGACY_SIG_CURSOR_PATTERN, count=1000)]
    return [(old, new) for old, new in pairs if r.exists(old)]


def migrate(r: Redis) -> Migration:
    """Rename every legacy key of ``r`` to its current name (module doc); idempotent.

    Raises:
        redis.exceptions.RedisError: Redis failed (nothing half-done: each rename is atomic).
    """
    if is_cluster(r):
        return Migration()
    renamed, conflicts = [], []
    for old, new in planned(r):
        (renamed if r.renamenx(old, new) else conflicts).append((old, new))
    return Migration(tuple(renamed), tuple(conflicts))


def journal_migration(journal, m: Migration) -> None:  # type: ignore[no-untyped-def]
    """KEY_MIGRATED (info) per rename, KEY_MIGRATION_CONFLICT (error: data left under the old name) per conflict."""
    for old, new in m.renamed:
        journal.record("KEY_MIGRATED", old=old, new=new)
    for old, new in m.conflicts:
        journal.record("KEY_MIGRATION_CONFLICT", level="error", old=old, new=new,
                       detail="both names exist: the old key was left as it is; merge by hand")
