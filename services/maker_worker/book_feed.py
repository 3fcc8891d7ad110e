"""Push delivery of book changes to a worker: blocking reads of the held tokens' md streams.

md_gateway appends every top-of-book change to ``pb:md:stream:{token}`` in the same Lua call that
bumps the book's seq (docs/contracts.md "Market data"). Between its full steps a worker blocks on
those streams (``XREAD BLOCK``) and re-quotes a token as soon as its book changed, instead of
finding out at the next poll (the legacy polled a file every 0.2 s on top of a 1 s flush).

The stream only says *that* a token changed; the worker then reads the book hash, which holds the
latest state (later entries may already be behind it). Stream ids are tracked per token, so
nothing that arrives between two reads is missed, and trimming (MAXLEN ~) never matters.

On a Redis Cluster one XREAD may only name streams of one slot (each token's stream has its own
hash tag): ``poll`` reads every slot without blocking in one pipeline (redis-py sends each node its
share at once), and ``wait`` keeps one ``XREAD BLOCK`` outstanding per slot and wakes on the first
reply (``book_feed_cluster.SlotReads``). One Redis keeps the single ``XREAD BLOCK`` over every stream.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from redis import Redis

from libs.common import keys
from libs.common.redis_client import is_cluster
from services.maker_worker.book_feed_cluster import SlotReads


class BookFeed:
    """Stream positions of the tokens a worker holds.

    Args:
        r: decoded Redis client (or ``RedisCluster``). Its socket timeout must exceed the longest
            block (the worker blocks for at most one step interval).
        monotonic: clock for the cluster wait's deadline (seconds).
    """

    def __init__(self, r: Redis, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.r = r
        self.monotonic = monotonic
        self.last_ids: dict[str, str] = {}  # stream key -> id of the newest entry seen
        self.cluster = is_cluster(r)
        self.slots: dict[str, int] = {}  # stream key -> cluster slot (cluster only)
        self.reads = SlotReads(r, monotonic) if self.cluster else None

    def track(self, token_id: str) -> None:
        """Start watching ``token_id`` from its stream's newest entry ("0-0" when it has none yet)."""
        key = keys.md_stream(token_id)
        newest = self.r.xrevrange(key, count=1)
        self.last_ids[key] = newest[0][0] if newest else "0-0"
        if self.cluster:
            self.slots[key] = int(self.r.keyslot(key))  # type: ignore[attr-defined]

    def untrack(self, token_id: str) -> None:
        """Stop watching ``token_id``."""
        self.last_ids.pop(keys.md_stream(token_id), None)
        self.slots.pop(keys.md_stream(token_id), None)

    def poll(self) -> set[str]:
        """The watched tokens that changed since the last read, without blocking (the back-test,
        which steps services in virtual time, calls this instead of ``wait``)."""
        return self._read(None)

    def wait(self, block_ms: int) -> set[str]:
        """Block up to ``block_ms`` (>= 1) for a change on any watched stream; returns the tokens
        that changed (empty on timeout or when nothing is watched: then it returns at once).

        Raises:
            redis.exceptions.RedisError: Redis unreachable.
        """
        return self._read(max(1, block_ms))

    def close(self) -> None:
        """Cancel the cluster's outstanding reads (their connections are closed); nothing on one Redis."""
        if self.reads is not None:
            self.reads.close()

    def _read(self, block_ms: int | None) -> set[str]:
        if not self.last_ids:
            self.close()
            return set()
        if not self.cluster:
            return self._seen(self.r.xread(dict(self.last_ids), block=block_ms))
        groups = self._groups()
        if block_ms is None:
            pipe = self.r.pipeline(transaction=False)
            for g in groups.values():
                pipe.xread(g)
            replies = pipe.execute()
        else:
            assert self.reads is not None
            replies = self.reads.wait(groups, block_ms)
        changed: set[str] = set()
        for got in replies:
            changed |= self._seen(got)
        return changed

    def _seen(self, got: Any) -> set[str]:
        """The tokens an XREAD reply shows changed; positions only move forward (on a cluster a
        read issued before a ``poll`` may return entries the poll already saw)."""
        changed: set[str] = set()
        for stream, entries in (got.items() if isinstance(got, dict) else got or ()):
            if stream in self.last_ids and entries:
                if _id(entries[-1][0]) > _id(self.last_ids[stream]):
                    self.last_ids[stream] = entries[-1][0]
                changed.add(keys.token_of_md_stream(stream))
        return changed

    def _groups(self) -> dict[int, dict[str, str]]:
        by_slot: dict[int, dict[str, str]] = {}
        for key, last in self.last_ids.items():
            by_slot.setdefault(self.slots[key], {})[key] = last
        return by_slot


def _id(stream_id: str) -> tuple[int, int]:
    """A stream id ``"<ms>-<seq>"`` as a comparable pair."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
