"""The book feed's blocking wait on a Redis Cluster: one outstanding ``XREAD BLOCK`` per slot.

One XREAD may only name streams of one slot, and each token's stream has its own hash tag, so a
worker holding K tokens needs K reads. Blocking in turn on one slot does not work: Redis ends a
short BLOCK only at its next cron tick (every 100 ms at the default ``hz 10``), so a change on any
other slot would wait that long. Instead each slot gets its own connection (from its node's pool)
with an ``XREAD BLOCK`` left outstanding, and the waiter ``select()``s on all of them: the first
reply ends the wait, the others stay outstanding for the next wait (their ids are still the
feed's), so a change on any slot wakes the worker at once, for one idle connection per slot.

A slot whose set of streams changed (track/untrack) has its read cancelled (the connection is
closed, never returned to a pool with a reply pending) and issued again. A MOVED/ASK reply (the
slot moved) refreshes the slot map and reports every stream of the slot as changed (the worker
re-reads those books: harmless). A connection error cancels every read and is raised.
"""
from __future__ import annotations

import select
import time
from dataclasses import dataclass
from typing import Any, Callable

from redis.exceptions import AskError, MovedError, RedisError

BLOCK_MS = 30_000  # server-side BLOCK of an outstanding read; a read that ends empty is issued again
SELECT_SLICE_S = 0.1  # bound on one select(): TLS may buffer a reply select() cannot see


@dataclass
class _Read:
    """One outstanding XREAD of one slot."""

    keys: frozenset[str]
    conn: Any  # redis.connection.Connection
    pool: Any  # its node's ConnectionPool


class SlotReads:
    """Outstanding per-slot reads of one ``RedisCluster`` client (module doc). Not thread-safe."""

    def __init__(self, r: Any, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.r, self.monotonic = r, monotonic
        self.out: dict[int, _Read] = {}

    def wait(self, groups: dict[int, dict[str, str]], block_ms: int) -> list[Any]:
        """Ensure one read per slot of ``groups`` (slot -> {stream: last id}) and wait up to
        ``block_ms`` for replies; returns the XREAD replies that came (possibly empty lists).

        Raises:
            redis.exceptions.ConnectionError / TimeoutError: a node unreachable (every read cancelled).
        """
        try:
            self._issue(groups)
            return self._collect(groups, self.monotonic() + block_ms / 1000)
        except (RedisError, OSError):
            self.close()
            raise

    def _issue(self, groups: dict[int, dict[str, str]]) -> None:
        for slot in [s for s in self.out if s not in groups or self.out[s].keys != frozenset(groups[s])]:
            self.cancel(slot)
        for slot, g in groups.items():
            if slot in self.out:
                continue
            pool = self.r.get_node_from_key(next(iter(g))).redis_connection.connection_pool
            conn = pool.get_connection()
            self.out[slot] = _Read(frozenset(g), conn, pool)
            conn.send_command("XREAD", "BLOCK", BLOCK_MS, "STREAMS", *g.keys(), *g.values())

    def _collect(self, groups: dict[int, dict[str, str]], deadline: float) -> list[Any]:
        while True:
            ready = [s for s, rd in self.out.items() if rd.conn.can_read(0)]
            if ready:
                return [self._reply(s, groups[s]) for s in ready]
            left = deadline - self.monotonic()
            if left <= 0:
                return []
            select.select([rd.conn._sock for rd in self.out.values()], [], [], min(left, SELECT_SLICE_S))

    def _reply(self, slot: int, group: dict[str, str]) -> Any:
        rd = self.out.pop(slot)
        try:
            reply = rd.conn.read_response()
        except (MovedError, AskError):
            rd.pool.release(rd.conn)
            self.r.nodes_manager.initialize()  # the slot moved: read the slot map again
            return [[k, [[last, []]]] for k, last in group.items()]  # "changed": the books are re-read
        except BaseException:
            rd.conn.disconnect()
            rd.pool.release(rd.conn)
            raise
        rd.pool.release(rd.conn)
        return reply or []

    def cancel(self, slot: int) -> None:
        """Drop the slot's outstanding read (its connection is closed, so no reply is left pending)."""
        rd = self.out.pop(slot, None)
        if rd is not None:
            rd.conn.disconnect()
            rd.pool.release(rd.conn)

    def close(self) -> None:
        """Cancel every outstanding read."""
        for slot in list(self.out):
            self.cancel(slot)
