"""Push delivery of book changes to a worker: blocking reads of the held tokens' md streams.

md_gateway appends every top-of-book change to ``pb:md:stream:{token}`` in the same Lua call that
bumps the book's seq (docs/contracts.md "Market data"). Between its full steps a worker blocks on
those streams (``XREAD BLOCK``) and re-quotes a token as soon as its book changed, instead of
finding out at the next poll (the legacy polled a file every 0.2 s on top of a 1 s flush).

The stream only says *that* a token changed; the worker then reads the book hash, which holds the
latest state (later entries may already be behind it). Stream ids are tracked per token, so
nothing that arrives between two reads is missed, and trimming (MAXLEN ~) never matters.
"""
from __future__ import annotations

from redis import Redis

from libs.common import keys


class BookFeed:
    """Stream positions of the tokens a worker holds.

    Args:
        r: decoded Redis client. Its socket timeout must exceed the longest block (the worker blocks
            for at most one step interval).
    """

    def __init__(self, r: Redis) -> None:
        self.r = r
        self.last_ids: dict[str, str] = {}  # stream key -> id of the newest entry seen

    def track(self, token_id: str) -> None:
        """Start watching ``token_id`` from its stream's newest entry ("0-0" when it has none yet)."""
        key = keys.md_stream(token_id)
        newest = self.r.xrevrange(key, count=1)
        self.last_ids[key] = newest[0][0] if newest else "0-0"

    def untrack(self, token_id: str) -> None:
        """Stop watching ``token_id``."""
        self.last_ids.pop(keys.md_stream(token_id), None)

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

    def _read(self, block_ms: int | None) -> set[str]:
        if not self.last_ids:
            return set()
        got = self.r.xread(dict(self.last_ids), block=block_ms)
        changed: set[str] = set()
        for stream, entries in got or ():
            if stream in self.last_ids and entries:
                self.last_ids[stream] = entries[-1][0]
                changed.add(keys.token_of_md_stream(stream))
        return changed
