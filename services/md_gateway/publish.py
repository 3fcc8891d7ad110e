"""Writes the core's publishes to Redis: one ``book_publish.lua`` call per change, pipelined, in order.

One batch is one pipeline: ``SCRIPT LOAD`` (a no-op when cached; it guarantees that the EVALSHAs
behind it on the same connection never meet NOSCRIPT, even right after a Redis restart), then one
``EVALSHA`` per publish in the order the core produced them, then the ``verified_ts_ms`` stamps and
tick-size audits. Commands are packed with hiredis and written on one held connection (about twice
redis-py's ``Pipeline`` rate). ``send`` writes a batch and returns at once; ``collect`` reads its
replies. The service collects at once when no more frames are waiting, and otherwise parses the next
frames while Redis runs the scripts (the replies are read before the next batch is sent).
Each acknowledged publish of a WebSocket frame is observed in ``pb_gateway_publish_latency_seconds``
(socket receipt -> Redis reply read, seconds).

If Redis cannot be reached the publishes stay queued (``pending``) and are sent, still in order, on
the next try; a retried batch that Redis had partly applied before the link broke only repeats
entries with new, higher seqs. Past ``max_pending`` the queue is dropped and ``overflowed`` is set:
the caller must republish every book (``Core.republish_all``).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable

from hiredis import pack_command as _pack  # redis[hiredis] is a dependency
from redis import Redis
from redis.connection import Connection
from redis.exceptions import ResponseError

from libs.common import keys, lua, metrics
from services.md_gateway.state import Publish


class Publisher:
    """Queue and flush publishes for one gateway.

    Args:
        r: Redis client (decoded).
        maxlen: approximate MAXLEN of each ``pb:md:stream:{token}``.
        max_pending: publishes kept while Redis is unreachable before the queue is dropped.
    """

    def __init__(self, r: Redis, maxlen: int, max_pending: int = 200_000) -> None:
        self.r, self.maxlen, self.max_pending = r, str(maxlen), max_pending
        self.src = lua.source("book_publish")
        self.sha = hashlib.sha1(self.src.encode()).hexdigest()
        self.pending: list[Publish] = []
        self.stamps: list[tuple[str, int]] = []
        self.ticks: list[tuple[str, str]] = []
        self.overflowed = False
        self.published = 0
        self.failed: list[tuple[Publish, str]] = []  # publishes Redis refused (script errors)
        self.on_flushed: Callable[[list[Publish], int], None] | None = None  # bench hook: (batch, ack ns)
        self.inflight: _Batch | None = None  # sent, replies not read yet
        self._conn: Connection | None = None  # held across send/collect (replies are read on it)

    def add(self, publishes: list[Publish], stamps: list[tuple[str, int]], ticks: list[tuple[str, str]]) -> None:
        """Queue outputs of the core (in order)."""
        self.pending.extend(publishes)
        self.stamps.extend(stamps)
        self.ticks.extend(ticks)
        if len(self.pending) > self.max_pending:
            self.pending.clear()
            self.overflowed = True

    def _commands(self, batch: "_Batch") -> list[tuple[str, ...]]:
        sha, maxlen = self.sha, self.maxlen
        cmds: list[tuple[str, ...]] = [("SCRIPT", "LOAD", self.src)]
        for p in batch.publishes:
            t = p.token_id
            cmds.append(("EVALSHA", sha, "2", keys.md_book(t), keys.md_stream(t), maxlen if p.stream else "0",
                         p.event, *p.fields))
        cmds.extend(("HSET", keys.md_book(t), "verified_ts_ms", str(v)) for t, v in batch.stamps)
        cmds.extend(("HSET", keys.MD_TICK, t, v) for t, v in batch.ticks)
        return cmds

    def flush(self) -> int:
        """Send everything queued and wait for Redis's replies; returns the publishes acknowledged.

        Raises:
            redis.exceptions.RedisError: Redis unreachable; everything stays queued for the next try.
        """
        self.send()
        return self.collect()

    def send(self) -> int:
        """Write everything queued as one pipeline without waiting for the replies (``collect`` reads
        them), so that Redis runs the scripts while the gateway parses the next frames. The replies of
        the batch still in flight are read first. Returns the publishes sent.

        Raises:
            redis.exceptions.RedisError: Redis unreachable; nothing is lost (see ``collect``).
        """
        self.collect()
        if not (self.pending or self.stamps or self.ticks):
            return 0
        batch = _Batch(self.pending, self.stamps, self.ticks)
        cmds = self._commands(batch)
        conn = self._connection()
        try:
            conn.send_packed_command([b"".join([_pack(c) for c in cmds])], check_health=False)
        except BaseException:
            self._drop_connection()
            raise
        batch.replies = len(cmds)
        self.pending, self.stamps, self.ticks, self.inflight = [], [], [], batch
        return len(batch.publishes)

    def collect(self) -> int:
        """Read the replies of the batch in flight; returns its publishes (0 if none was in flight).

        Raises:
            redis.exceptions.RedisError: the link broke; the unacknowledged batch goes back to the head
                of the queue and is sent again (entries Redis had already applied repeat with new seqs).
        """
        batch, self.inflight = self.inflight, None
        if batch is None:
            return 0
        try:
            replies = self._read(batch.replies)
        except BaseException:
            self._drop_connection()
            self.pending = batch.publishes + self.pending
            self.stamps, self.ticks = batch.stamps + self.stamps, batch.ticks + self.ticks
            raise
        ack_ns = time.perf_counter_ns()
        observe = metrics.GATEWAY_LATENCY.observe
        for p, reply in zip(batch.publishes, replies[1:]):
            if isinstance(reply, Exception):
                self.failed.append((p, str(reply)))
            elif p.recv_ns:
                observe((ack_ns - p.recv_ns) / 1e9)  # frame receipt -> acknowledged, seconds
        self.published += len(batch.publishes)
        if self.on_flushed is not None:
            self.on_flushed(batch.publishes, ack_ns)
        return len(batch.publishes)

    def _read(self, n: int) -> list[object]:
        """``n`` replies from the connection; error replies are returned, not raised."""
        conn = self._connection()
        replies: list[object] = []
        for _ in range(n):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    def _connection(self) -> "Connection":
        if self._conn is None:
            self._conn = self.r.connection_pool.get_connection()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            self.r.connection_pool.release(conn)

    def close(self) -> None:
        """Give the connection back to the pool (after a final ``flush``)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self.r.connection_pool.release(conn)


@dataclass
class _Batch:
    """One pipeline: its publishes, stamps and tick audits, and how many replies it awaits."""

    publishes: list[Publish]
    stamps: list[tuple[str, int]]
    ticks: list[tuple[str, str]]
    replies: int = 0
