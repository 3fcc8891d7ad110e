"""When each service steps in a back-test. Live, every service loops at its own interval whether or
not there is anything to do; most of those steps change nothing. A back-test of hours or a week
cannot afford them, so it skips the ones that provably (or almost) change nothing:

* signal_ingest polls on its own grid (``t0 + k x poll_interval``) but only at grid points where a
  leader row has become visible since the last poll (the venue knows every row's time): the same
  polls that would have found something, at the same moments; the empty ones are skipped.
* the scheduler steps every ``step_interval_s`` while it tracks or queues any token, at once after
  a poll that published signals, and every ``IDLE_MS`` otherwise (its time rules: inactivity,
  clean-up, cooldown, are minutes long).
* a worker steps every ``step_interval_s`` while it holds a lease, at once after a scheduler step
  that left tokens on offer or after user_feed published events of our orders (fills reach the
  strategy in the same tick), and every ``IDLE_MS`` otherwise (heartbeat). Between its steps it
  re-quotes on every book change (the harness), as its ``idle`` does live. A worker that gave a
  lease back makes the scheduler step at once (the next token may start).
"""
from __future__ import annotations

import bisect

from redis import Redis

from libs.common import keys

IDLE_MS = 30_000


class Pacer:
    """Next step time of each service (virtual ms); see module doc.

    Args:
        r: the run's Redis (scheduler workload and offers are read from it).
        t0: the run's start (virtual ms). leader_ms: ascending ms at which leader rows become visible.
        ingest_ms, scheduler_ms, worker_ms: the services' step intervals (ms). workers: worker ids.
    """

    def __init__(self, r: Redis, t0: int, leader_ms: list[int], ingest_ms: int, scheduler_ms: int,
                 worker_ms: int, workers: list[str]) -> None:
        self.r, self.t0, self.leader_ms = r, t0, leader_ms
        self.ingest_ms, self.scheduler_ms, self.worker_ms = max(1, ingest_ms), max(1, scheduler_ms), max(1, worker_ms)
        self.next: dict[str, int] = {"signal_ingest": t0, "scheduler": t0, **{w: t0 for w in workers}}
        self.workers = workers

    def due(self, name: str, t_ms: int) -> bool:
        """Whether ``name`` steps at ``t_ms``."""
        return self.next[name] <= t_ms

    def next_due_ms(self) -> int:
        """The earliest next step of any service."""
        return min(self.next.values())

    def after_ingest(self, t_ms: int, published: bool) -> None:
        """Next poll: the first grid point after ``t_ms`` at or after the next leader row's time; a
        poll that published makes the scheduler step now."""
        nxt = self.leader_ms[bisect.bisect_right(self.leader_ms, t_ms):][:1]
        if nxt:
            grid = self.t0 + -(-(max(nxt[0], t_ms + 1) - self.t0) // self.ingest_ms) * self.ingest_ms
            self.next["signal_ingest"] = grid
        else:
            self.next["signal_ingest"] = t_ms + IDLE_MS
        if published:
            self.next["scheduler"] = t_ms

    def after_scheduler(self, t_ms: int) -> None:
        """Next scheduler step; tokens on offer make every idle worker step now."""
        pipe = self.r.pipeline(transaction=False)
        pipe.scard(keys.SCHED_TRACKED)
        pipe.zcard(keys.SCHED_PENDING)
        pipe.zcard(keys.SCHED_OFFERS)
        tracked, pending, offers = pipe.execute()
        busy = bool(tracked or pending or offers)
        self.next["scheduler"] = t_ms + (self.scheduler_ms if busy else IDLE_MS)
        if offers:
            for w in self.workers:
                self.next[w] = min(self.next[w], t_ms)

    def after_worker(self, worker: str, t_ms: int, holding: bool, released: bool) -> None:
        """Next step of ``worker``: its interval while it holds a lease, else ``IDLE_MS``; a released
        lease makes the scheduler step now."""
        self.next[worker] = t_ms + (self.worker_ms if holding else IDLE_MS)
        if released:
            self.next["scheduler"] = t_ms

    def user_events(self, t_ms: int, holders: list[str]) -> None:
        """Our orders' events were just published: the workers ``holders`` step now."""
        for w in holders:
            self.next[w] = t_ms
