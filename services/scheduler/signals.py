"""Signals in: consumer group ``scheduler`` on ``pb:sig:stream`` (docs/contracts.md "Signals").

Delivery protocol (SPEC S2 invariant "acknowledged only after their effect is recorded"):

1. At start (and after any failure) the consumer re-reads its own pending entries (id ``0``) before
   new ones (``>``); every ``claim_idle_ms`` it XAUTOCLAIMs entries a dead consumer left idle.
2. ``begin``: ``HSETNX pb:sig:done <signal_id> claimed:<stream id>``. An existing value naming
   another stream id means the same signal was published twice: skip it. ``claimed:<this id>``
   means an earlier attempt crashed before finishing: apply again (effects are idempotent state
   transitions). ``<this id>`` means the effect was recorded: only ack.
3. ``finish``: ``HSET pb:sig:done <signal_id> <stream id>`` (the contract's final value), then XACK.
   A crash between the two redelivers the entry, which step 2 acks without a second effect.
A malformed entry (missing or invalid field) is journaled SIGNAL_MALFORMED, copied to
``pb:sig:dead`` with ``reason, field, value, raw`` and acked.
"""
from __future__ import annotations

import json
import logging
from typing import Literal

from redis import Redis
from redis.exceptions import ResponseError

from libs.common import keys
from libs.common.journal import Journal
from libs.common.signals import MalformedSignal, Signal, parse_signal  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]
CLAIMED = "claimed:"


class SignalConsumer:
    """Redis side of signal delivery for one consumer name (see the module docstring).

    Args:
        r: decoded Redis client.
        consumer: consumer name in group ``keys.SIG_GROUP`` (the scheduler's instance id).
        journal: where SIGNAL_MALFORMED, SIGNAL_DUPLICATE and SIGNAL_FAILED go.
        batch: entries per read.
        claim_idle_ms: XAUTOCLAIM threshold (wall ms).
    """

    def __init__(self, r: Redis, consumer: str, journal: Journal, batch: int = 100,
                 claim_idle_ms: int = 30_000) -> None:
        self.r, self.consumer, self.journal = r, consumer, journal
        self.batch, self.claim_idle_ms = batch, claim_idle_ms
        self.recovering = True  # re-read own pending entries first
        self._next_claim_wall = 0
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the group at the stream's start (MKSTREAM); an existing group is kept."""
        if self._group_ready:
            return
        try:
            self.r.xgroup_create(keys.SIG_STREAM, keys.SIG_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def fetch(self, wall_ms: int) -> list[Entry]:
        """The next entries to process: own pending first, then claimed idle ones, then new ones."""
        self.ensure_group()
        if self.recovering:
            got = self._read("0")
            if got:
                return got
            self.recovering = False
        if wall_ms >= self._next_claim_wall:
            self._next_claim_wall = wall_ms + self.claim_idle_ms // 2
            res = self.r.xautoclaim(keys.SIG_STREAM, keys.SIG_GROUP, self.consumer, self.claim_idle_ms,
                                    start_id="0-0", count=self.batch)
            claimed = [(i, f or {}) for i, f in res[1]]
            if claimed:
                log.info("claimed idle signals n=%d", len(claimed))
                return claimed
        return self._read(">")

    def _read(self, start: str) -> list[Entry]:
        res = self.r.xreadgroup(keys.SIG_GROUP, self.consumer, {keys.SIG_STREAM: start}, count=self.batch)
        if not res:
            return []
        return [(i, f or {}) for i, f in res[0][1]]

    def begin(self, stream_id: str, signal_id: str) -> Literal["apply", "done", "duplicate"]:
        """Claim ``signal_id`` for this entry; see the module docstring for the three answers."""
        if self.r.hsetnx(keys.SIG_DONE, signal_id, CLAIMED + stream_id):
            return "apply"
        value = self.r.hget(keys.SIG_DONE, signal_id) or ""
        if value == stream_id:
            return "done"
        if value == CLAIMED + stream_id:
            return "apply"
        return "duplicate"

    def finish(self, stream_id: str, signal_id: str) -> None:
        """Record the effect as done, then acknowledge the entry."""
        self.r.hset(keys.SIG_DONE, signal_id, stream_id)
        self.ack(stream_id)

    def ack(self, stream_id: str) -> None:
        """XACK one entry."""
        self.r.xack(keys.SIG_STREAM, keys.SIG_GROUP, stream_id)

    def dead(self, stream_id: str, fields: dict[str, str], reason: str, name: str, value: object) -> None:
        """Copy an entry to ``pb:sig:dead`` with the reason, journal it (error, with the entry's
        ``signal_id`` when it has one) and ack it."""
        raw = json.dumps(fields, sort_keys=True)
        signal_id = fields.get("signal_id", "")
        self.r.xadd(keys.SIG_DEAD, {"reason": reason, "field": name, "value": "" if value is None else str(value),
                                    "raw": raw, "stream_id": stream_id, "svc": "scheduler", "signal_id": signal_id},
                    maxlen=100_000, approximate=True)
        self.journal.record(reason, token_id=fields.get("token_id", ""), level="error", stream_id=stream_id,
                            field=name, value=value, signal_id=signal_id)
        self.ack(stream_id)
