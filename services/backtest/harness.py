"""The back-test driver: the same service objects ``polyband up`` runs as processes (md_gateway,
user_feed, scheduler, signal_ingest, maker_workers) and the paper venue, in one thread, stepped in
lockstep by the tape's clock in virtual time.

One *tick* at virtual time t, always in this order (so a run is a pure function of its inputs):
1. the venue applies every tape frame and market end due by t (its engine matches our resting
   orders against each), then sweeps (trade settlement, expiry);
2. the wires deliver what the venue's hubs queued; md_gateway applies and publishes (Lua, seq);
   user_feed publishes our order and trade events;
3. the services whose step is due step once, in this order: signal_ingest, the scheduler, the
   workers in id order (:class:`services.backtest.pacing.Pacer` says when: a service steps at its
   own ``step_interval_s`` while it has work, rarely while it has none, and at once when another
   service just gave it some);
4. each worker re-quotes the held tokens whose book changed (what its ``idle`` does between steps);
5. the wires deliver again, so the effects of the orders just sent are in Redis before t moves on.
The next tick is the earliest of the next tape event and the next due step; nothing sleeps.
Wall time and market time are the same virtual number (``VirtualClock``), so leases, timeouts and
signal ages keep their meaning whatever the machine's speed.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Callable

import httpx
from redis import Redis

from libs.common.journal import Journal
from libs.common.settings import load_settings
from libs.common.venue import VenueClient
from services.backtest.pacing import Pacer
from services.backtest.venue_side import SimVenue
from services.backtest.wire import SimRestBooks, Wires
from services.maker_worker.config import WorkerSettings
from services.maker_worker.service import Worker
from services.md_gateway.config import GatewaySettings
from services.md_gateway.service import GatewayService
from services.scheduler.config import SchedulerSettings
from services.scheduler.gamma import GammaClient
from services.scheduler.service import Scheduler
from services.signal_ingest.config import IngestSettings
from services.signal_ingest.data_api import DataApi
from services.signal_ingest.service import SignalIngest
from services.user_feed.config import UserFeedSettings
from services.user_feed.service import UserFeed

log = logging.getLogger(__name__)
TAIL_MS = 10 * 60_000  # virtual time run after the last tape event: exits, settlement, redeems finish


@dataclass
class TickStats:
    """What the driver did: ticks, venue events applied, frames delivered, steps per service."""

    ticks: int = 0
    venue_events: int = 0
    frames: int = 0
    steps: dict[str, int] = field(default_factory=dict)


class Harness:
    """Builds every service on ``r`` around ``venue`` and runs them (module doc).

    Args:
        venue: the in-process venue (its clock is the run's clock).
        r: the run's private Redis (decoded).
        workers: maker_worker instances.
        tail_ms: virtual ms run past the tape's last event.
    The services' settings come from ``PB_*`` in the environment, as for the processes of ``up``.
    Must be used inside ``wire.in_process_http(venue.app)``.
    """

    def __init__(self, venue: SimVenue, r: Redis, workers: int = 2, tail_ms: int = TAIL_MS) -> None:
        self.venue, self.r, self.clock = venue, r, venue.clock
        self.wires = Wires(venue.market, venue.user)
        self.stats = TickStats()
        self._user_seen = 0  # user_feed's published count at the last tick
        self.end_ms = venue.end_ms + tail_ms
        self.gateway = self._gateway()
        self.user_feed = self._user_feed()
        self.ingest, ingest_period = self._ingest()
        self.scheduler, sched_period = self._scheduler()
        self.workers, worker_period = self._workers(workers)
        self.pacer = Pacer(r, self.clock.now_ms(), venue.leaders.times_ms(), ingest_period, sched_period,
                           worker_period, [w.id for w in self.workers])

    # ---- wiring (what each service's __main__ does, on the virtual clock) ----
    def _journal(self, service: str) -> Journal:
        return Journal(self.r, service, self.clock)

    def _gateway(self) -> GatewayService:
        s = load_settings(GatewaySettings)
        svc = GatewayService(s, self.r, self.clock, self._journal("md_gateway"), "md_gateway-1",
                             link_factory=self.wires.market_link_factory(),
                             rng=random.Random(1), rest=SimRestBooks(httpx.Client(base_url=s.clob_url), self.clock))
        svc.rest.inbound = svc.inbound  # type: ignore[attr-defined] - the answers join the frames' queue
        svc.start()
        return svc

    def _user_feed(self) -> UserFeed:
        s = load_settings(UserFeedSettings)
        venue = VenueClient.from_settings(s, s.clob_url, s.http_timeout_s)
        return UserFeed(s, self.r, self.clock, self._journal("user_feed"), "user_feed-1", venue,
                        rng=random.Random(2), link_factory=self.wires.user_link_factory())

    def _ingest(self) -> tuple[SignalIngest, int]:
        s = load_settings(IngestSettings)
        api = DataApi(s.data_api_url, s.http_timeout_s)
        return (SignalIngest(self.r, s, self.clock, self._journal("signal_ingest"), api, "signal_ingest-1",
                             random.Random(3)),
                int(s.poll_interval_s * 1000))

    def _scheduler(self) -> tuple[Scheduler, int]:
        s = load_settings(SchedulerSettings)
        gamma = GammaClient(s.gamma_url, s.gamma_timeout_s)
        svc = Scheduler(self.r, self.clock, self._journal("scheduler"), s, gamma, "scheduler-1")
        return svc, int(s.step_interval_s * 1000)

    def _workers(self, n: int) -> tuple[list[Worker], int]:
        out, period = [], 0
        for i in range(1, n + 1):
            wid = f"maker_worker-{i}"
            s = load_settings(WorkerSettings, worker_id=wid, instance_id=wid)
            venue = VenueClient.from_settings(s, s.clob_url, s.http_timeout_s)
            out.append(Worker(self.r, venue, s, self.clock, self._journal("maker_worker"), wid))
            period = int(s.step_interval_s * 1000)
        return out, period

    # ---- the loop ----
    def settle_wires(self) -> int:
        """Deliver queued frames and let md_gateway and user_feed handle them; returns gateway items."""
        self.stats.frames += self.wires.deliver()
        handled = self.gateway.pump()
        feed = self.user_feed
        while not feed.inbound.empty():
            feed.handle(feed.inbound.get_nowait())
        feed.timers(self.clock.wall_ms())
        return handled

    def tick(self, t_ms: int) -> None:
        """One tick at virtual ``t_ms`` (module doc, steps 1-5)."""
        self.clock.set(t_ms)
        self.stats.ticks += 1
        self.stats.venue_events += self.venue.advance_to(t_ms)
        books_moved = self.settle_wires() > 0
        pace = self.pacer
        if self.user_feed.counts["published"] != self._user_seen:
            self._user_seen = self.user_feed.counts["published"]
            pace.user_events(t_ms, [w.id for w in self.workers if w.held])
        if pace.due("signal_ingest", t_ms):
            published = self.ingest.stats["published"]
            self._step("signal_ingest", self.ingest.step)
            pace.after_ingest(t_ms, self.ingest.stats["published"] > published)
        if pace.due("scheduler", t_ms):
            self._step("scheduler", self.scheduler.step)
            pace.after_scheduler(t_ms)
        for w in self.workers:
            if pace.due(w.id, t_ms):
                before = set(w.held)
                self._step(w.id, w.step)
                pace.after_worker(w.id, t_ms, bool(w.held), bool(before - set(w.held)))
            elif books_moved and w.held:
                changed = sorted(t for t in w.feed.poll() if t in w.held)
                if changed:
                    w.on_books(changed)
        self.settle_wires()

    def _step(self, name: str, step: Callable[[], None]) -> None:
        step()
        self.stats.steps[name] = self.stats.steps.get(name, 0) + 1

    def next_tick_ms(self) -> int:
        """The earliest of the next tape event and the next due step (always after now)."""
        due = [self.pacer.next_due_ms()]
        nxt = self.venue.next_due_ms()
        if nxt is not None:
            due.append(nxt)
        return max(min(due), self.clock.now_ms() + 1)

    def run(self, on_tick: Callable[[int], None] | None = None) -> TickStats:
        """Tick until ``end_ms``; ``on_tick(t_ms)`` after each tick (progress). Then stop the workers
        as SIGTERM does (each cancels its own orders) and flush the wires."""
        t = self.clock.now_ms()
        while t <= self.end_ms:
            self.tick(t)
            if on_tick is not None:
                on_tick(t)
            t = self.next_tick_ms()
        for w in self.workers:
            w.shutdown()
        self.settle_wires()
        self.gateway.stop()
        return self.stats

