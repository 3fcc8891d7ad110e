"""``Publisher`` for a Redis Cluster (``redis+cluster://``; chosen by ``service.py`` when the client is
a ``RedisCluster``).

The single-Redis ``Publisher`` writes a batch packed by hand on one held connection; a cluster has
one connection per node and routes each command by its key's slot. Here a batch is one
non-transactional cluster pipeline (redis-py sends each node its share at once): ``SCRIPT LOAD`` on
every primary first (a no-op when cached, so no ``EVALSHA`` meets NOSCRIPT after a node restart),
then the same commands as ``Publisher._commands``, in order. Each token's book and stream share its
hash tag, so every ``book_publish.lua`` call touches one slot, and a token's publishes keep their
order (one node, one connection, in pipeline order). ``send`` waits for the replies (``collect``
then only accounts for them); a batch that fails to reach Redis stays queued, as in ``Publisher``.
"""
from __future__ import annotations

from services.md_gateway.publish import Publisher, _Batch


class ClusterPublisher(Publisher):
    """Same interface and guarantees as :class:`Publisher` (module doc); ``r`` is a ``RedisCluster``."""

    _replies: list[object] | None = None

    def send(self) -> int:
        """Run everything queued as one cluster pipeline; returns the publishes sent.

        Raises:
            redis.exceptions.RedisError: the cluster unreachable; everything stays queued.
        """
        self.collect()
        if not (self.pending or self.stamps or self.ticks):
            return 0
        batch = _Batch(self.pending, self.stamps, self.ticks)
        cmds = self._commands(batch)
        self.r.script_load(self.src)  # every primary
        pipe = self.r.pipeline(transaction=False)
        for c in cmds[1:]:
            pipe.execute_command(*c)
        replies = pipe.execute(raise_on_error=False)
        batch.replies = len(cmds)
        self._replies = ["OK", *replies]
        self.pending, self.stamps, self.ticks, self.inflight = [], [], [], batch
        return len(batch.publishes)

    def _read(self, n: int) -> list[object]:
        replies, self._replies = self._replies or [], None
        return replies

    def _drop_connection(self) -> None:
        self._replies = None

    def close(self) -> None:
        """Nothing held (the cluster client owns its connections)."""
