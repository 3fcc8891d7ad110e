"""md_gateway's imperative shell: one ``step()`` of I/O around the pure core (SPEC S2.2).

Threads: one reader per WebSocket (``ws.Link``) and a few REST workers (``rest.RestBooks``) only move
bytes; they put ``(kind, ...)`` tuples on one ``inbound`` queue. Everything else happens in
``step()`` on the main thread, in queue order:

1. drain the queue: wait for the first item, then take what is already there, up to
   ``max_batch_frames`` items (what the sockets have delivered);
2. parse each frame once (``parse.parse_frame``), apply it to the books (``core.Core``);
3. flush every resulting publish in one Redis round trip (``publish.Publisher``), in order;
4. timers (wall clock): read ``pb:md:subs`` every ``subs_poll_s`` and re-shard; PING/PONG, half-open
   detection and reconnects; REST snapshots due; the quiet-token verify round every
   ``verify_interval_s``; ``pb:md:gateway`` and the heartbeat every ``status_interval_s``.

Steps 1-4 repeat for each batch within one ``step()`` slice of up to ``POLL_S``.

A rejected frame is counted (``reject:<CODE>`` in ``pb:md:gateway``), journaled with its code, field,
value and truncated text (at most ``journal_rejects_per_s`` a second; the rest counted as
``JOURNAL_SUPPRESSED``) and skipped: it never touches the connection.
"""
from __future__ import annotations

import queue
import random
import time
from typing import Callable

from redis import Redis
from redis.exceptions import RedisError

from libs.common import keys, metrics
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.redis_client import is_cluster
from libs.common.runtime import heartbeat
from services.md_gateway import schemas
from services.md_gateway.config import GatewaySettings
from services.md_gateway.conns import Shards
from services.md_gateway.core import Core
from services.md_gateway.parse import RestBookError, parse_frame, parse_rest_book
from services.md_gateway.publish import Publisher
from services.md_gateway.publish_cluster import ClusterPublisher
from services.md_gateway.rest import RestBooks
from services.md_gateway.status import PARSE_CODES, RateGate, export_metrics, gateway_fields
from services.md_gateway.ws import Link, backoff_ms

SERVICE = "md_gateway"
POLL_S = 0.05  # length of one step() slice (wall s)
# run_loop's pause between steps (slices): it also sets run_loop's failure backoff (0.5 ms doubling,
# at most 0.128 s). A frame arriving during it waits that long, once per slice at most.
STEP_PAUSE_S = 0.0005
# Python hands the GIL between threads every 5 ms by default; the socket threads must not wait that
# long for the main thread, so the gateway process switches every 0.5 ms.
SWITCH_INTERVAL_S = 0.0005


class GatewayService:
    """The market-data gateway of one process.

    Args:
        settings: :class:`GatewaySettings`.
        r: Redis client (decoded).
        clock: ``wall_ms`` drives every timer and ``recv_ts_ms``.
        journal: event journal.
        instance: heartbeat instance name.
        rng: reconnect jitter source.
        link_factory: WebSocket link constructor (tests may substitute).
        rest: REST fetcher (default: ``RestBooks`` on ``settings.clob_url``).
    """

    def __init__(self, settings: GatewaySettings, r: Redis, clock: Clock, journal: Journal, instance: str,
                 rng: random.Random | None = None, link_factory: Callable[..., Link] = Link,
                 rest: RestBooks | None = None) -> None:
        self.s, self.r, self.clock, self.journal, self.instance = settings, r, clock, journal, instance
        self.inbound: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()  # C-level, lock-free put/get
        self.core = Core(int(settings.snapshot_grace_s * 1000), int(settings.rest_retry_s * 1000),
                         settings.resync_buffer_max)
        self.shards = Shards(settings, self.inbound, clock, self.core, self.note, rng or random.Random(),
                             link_factory)
        self.rest = rest or RestBooks(settings.clob_url, self.inbound, clock, settings.rest_threads,
                                      settings.rest_timeout_s)
        self.publisher = (ClusterPublisher if is_cluster(r) else Publisher)(r, settings.stream_maxlen)
        self.gate = RateGate(settings.journal_rejects_per_s)
        self.mirror = metrics.Mirror()  # self.counts -> Prometheus counters, at each status write
        self.wanted: set[str] = set()
        self.counts: dict[str, int] = {"msgs": 0, "parse_errors": 0, "rejects": 0, "pongs": 0, "stale_frames": 0,
                                       "ignored_events": 0, "publish_failures": 0}
        self.last_msg_ms = 0
        self.publish_retry_ms = 0
        self.stopped = False
        self.next = {"subs": 0, "verify": clock.wall_ms() + int(settings.verify_interval_s * 1000),
                     "status": 0}
        self.last_verify_ms = clock.wall_ms()
        self.rate = (clock.wall_ms(), 0)  # (wall ms, msgs) at the last status write

    def start(self) -> None:
        """Start the REST workers (links start as ``pb:md:subs`` asks for them)."""
        self.rest.start()

    def stop(self) -> None:
        """Close every link, stop the REST workers, flush what is queued, report ``state=down``."""
        self.stopped = True
        self.shards.close_all()
        self.rest.stop()
        now = self.clock.wall_ms()
        self._publish(now, force=True)
        self._status(now)
        self.publisher.close()

    def note(self, reason: str, level: str = "info", token_id: str = "", **fields: object) -> None:
        """Journal one event (the journal logs, counts and never raises)."""
        self.journal.record(reason, token_id=token_id, level=level, **fields)  # type: ignore[arg-type]

    # ------------------------------------------------------------ the step
    def step(self) -> None:
        """One slice of up to ``POLL_S`` (wall): each batch is applied and published as it arrives, and
        the timers run after each; returns early when nothing arrives for the rest of the slice.

        Looping inside the slice keeps ``run_loop``'s pause between steps off the latency path.
        ``time.monotonic`` only bounds the slice; every decision uses the injected clock.
        """
        end = time.monotonic() + POLL_S
        while True:
            batch = self._drain(end - time.monotonic())
            for item in batch:
                self._handle(item)
            now = self.clock.wall_ms()
            self._publish(now)
            self._journal_core()
            self._timers(now)
            if not batch or time.monotonic() >= end:
                return

    def pump(self) -> int:
        """Apply and publish everything queued now, then run the timers, never waiting: the step of
        the back-test, which puts frames on ``inbound`` and moves a virtual clock. Returns items handled."""
        handled = 0
        while True:
            batch = self._take_queued()
            for item in batch:
                self._handle(item)
            handled += len(batch)
            now = self.clock.wall_ms()
            self._publish(now, force=True)
            self._journal_core()
            self._timers(now)
            if self.inbound.empty():
                return handled

    def _take_queued(self) -> list[tuple]:
        items: list[tuple] = []
        while len(items) < self.s.max_batch_frames:
            try:
                items.append(self.inbound.get_nowait())
            except queue.Empty:
                break
        return items

    def _drain(self, wait_s: float) -> list[tuple]:
        """Wait up to ``wait_s`` for the first item, then take what is already queued (at most
        ``max_batch_frames`` items: what the sockets delivered since the last batch)."""
        try:
            items = [self.inbound.get(timeout=max(wait_s, 0.0001))]
        except queue.Empty:
            return []
        get = self.inbound.get_nowait
        for _ in range(self.s.max_batch_frames - 1):
            try:
                items.append(get())
            except queue.Empty:
                break
        return items

    def _handle(self, item: tuple) -> None:
        kind, cid, gen, data, wall, ns = item
        if kind == "frame":
            self._frame(cid, gen, data, wall, ns)
        elif kind == "rest":
            self._rest(cid, gen, data, wall)
        elif kind == "open":
            self.shards.on_open(cid, gen, wall)
        elif kind == "closed":
            self.shards.on_closed(cid, gen, data, wall)

    def _frame(self, cid: int, gen: int, data: bytes, wall: int, ns: int) -> None:
        c = self.shards.conns.get(cid)
        if c is None or c.gen != gen:
            self.counts["stale_frames"] += 1
            return
        c.last_rx_ms = wall
        if data == b"PONG":
            self.counts["pongs"] += 1
            self.shards.on_pong(c, wall)
            return
        self.counts["msgs"] += 1
        self.last_msg_ms = wall
        parsed = parse_frame(data, self.s.max_frame_bytes)
        if parsed.rejects:
            self._rejects(parsed.rejects, cid, wall)
        self.counts["ignored_events"] += parsed.ignored
        if parsed.events:
            self.core.apply_frame(parsed.events, wall, ns, c.subscribed)

    def _rejects(self, rejects: list[schemas.Reject], cid: int, now_ms: int) -> None:
        for rej in rejects:
            self.counts["rejects"] += 1
            self.counts["parse_errors"] += rej.reason in PARSE_CODES
            key = f"reject:{rej.reason}"
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.gate.allow(now_ms):
                self.note(rej.reason, level="error", conn=cid, field=rej.field, value=rej.value,
                          detail=rej.detail[:200], text=rej.text)

    def _rest(self, token: str, status: int, body: bytes, wall: int) -> None:
        if status != 200:
            code = f"HTTP_{status}" if status else "TRANSPORT"
            self.core.rest_failed(token, wall, code, body[:300].decode("utf-8", "replace"))
            return
        try:
            snap = parse_rest_book(body, token)
        except RestBookError as exc:
            self.core.rest_failed(token, wall, exc.reason, str(exc))
            return
        self.core.apply_rest(snap, wall)

    # ------------------------------------------------------------ publishing
    def _publish(self, now: int, force: bool = False) -> None:
        core, pub = self.core, self.publisher
        pub.add(core.take(), core.stamps, core.ticks)
        core.stamps, core.ticks = [], []
        if pub.overflowed:
            pub.overflowed = False
            self.note("PUBLISH_BACKLOG_DROPPED", level="error", tokens=len(core.tokens))
            pub.add(core.republish_all(now), [], [])
        if now < self.publish_retry_ms and not force:
            return
        try:
            pub.send()
            if force or self.inbound.empty():
                pub.collect()  # else: the replies are read after the next frames were parsed
            self.counts["publish_failures"] = 0
        except RedisError as exc:
            n = self.counts["publish_failures"] = self.counts["publish_failures"] + 1
            self.publish_retry_ms = now + backoff_ms(n, 50, 2000, 0.5)
            self.note("PUBLISH_FAILED", level="error", pending=len(pub.pending), error=f"{type(exc).__name__}: {exc}")
        for p, err in pub.failed:
            self.counts["publish_refused"] = self.counts.get("publish_refused", 0) + 1
            if self.gate.allow(now):
                self.note("PUBLISH_REFUSED", level="error", token_id=p.token_id, event=p.event, error=err[:200])
        pub.failed.clear()

    def _journal_core(self) -> None:
        notes, self.core.notes = self.core.notes, []
        now = self.clock.wall_ms()
        for reason, level, token, fields in notes:
            if reason == schemas.CROSSED:
                self.counts["rejects"] += 1
                key = f"reject:{reason}"
                self.counts[key] = self.counts.get(key, 0) + 1
            if level == "info" or self.gate.allow(now):
                self.note(reason, level=level, token_id=token, **fields)

    # ------------------------------------------------------------ timers
    def _timers(self, now: int) -> None:
        nxt = self.next
        if now >= nxt["subs"]:
            nxt["subs"] = now + int(self.s.subs_poll_s * 1000)
            self._poll_subs(now)
        self.shards.tick(now)
        for token, why in self.core.due_rest(now):
            self.rest.request(token, urgent=why == "snapshot")
        if now >= nxt["verify"]:
            nxt["verify"] = now + int(self.s.verify_interval_s * 1000)
            tokens = self.core.verify_round(self.last_verify_ms)
            self.last_verify_ms = now
            for token in tokens:
                self.rest.request(token)
            self.note("VERIFY_ROUND", quiet=len(tokens), tokens=len(self.core.tokens))
        if now >= nxt["status"]:
            nxt["status"] = now + int(self.s.status_interval_s * 1000)
            self._status(now)

    def _poll_subs(self, now: int) -> None:
        try:
            wanted = set(self.r.smembers(keys.MD_SUBS))
        except RedisError as exc:
            self.note("SUBS_READ_FAILED", level="error", error=f"{type(exc).__name__}: {exc}")
            return
        if wanted == self.wanted:
            return
        added, removed = sorted(wanted - self.wanted), sorted(self.wanted - wanted)
        self.note("SUBS_CHANGED", added=len(added), removed=len(removed), wanted=len(wanted),
                  added_ex=",".join(a[:12] for a in added[:3]), removed_ex=",".join(a[:12] for a in removed[:3]))
        for t in removed:
            self.core.remove(t, now)
        for t in added:
            self.core.add(t, now)
        self.wanted = wanted
        self.shards.replan(wanted, now)

    def _status(self, now: int) -> None:
        then, msgs_then = self.rate
        rate = (self.counts["msgs"] - msgs_then) * 1000 / max(1, now - then)
        self.rate = (now, self.counts["msgs"])
        if self.gate.suppressed:
            self.note("JOURNAL_SUPPRESSED", level="warn", count=self.gate.suppressed)
            self.gate.suppressed = 0
        fields = gateway_fields(self, now, rate)
        export_metrics(self, self.mirror, now)
        try:
            self.r.hset(keys.MD_GATEWAY, mapping=fields)
        except RedisError as exc:
            self.note("GATEWAY_STATUS_FAILED", level="error", error=f"{type(exc).__name__}: {exc}")
        heartbeat(self.r, self.instance, SERVICE, self.clock, {"state": fields["state"], "wanted": fields["wanted"]})
