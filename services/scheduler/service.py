"""The scheduler's imperative shell: one ``step()`` of I/O around the pure lifecycle core.

A step: liveness heartbeat -> signals (each: claim, decide, apply, Gamma for a new candidate,
mark done, ack; with ``GammaPrefetch`` the fetch runs off the step and the candidate is resolved at a
later step, when its answer is in) -> one snapshot of every tracked token -> housekeeping, health and activation
decisions (pure) -> apply them -> retry Gamma for candidates whose retry is due. Market time
(``clock.now_ms``) drives trading rules; wall time (``clock.wall_ms``) drives leases and the feed.
"""
from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError

from libs.common import metrics, runtime
from libs.common.clock import Clock
from libs.common.journal import Journal
from libs.common.leases import Leases
from services.scheduler import health, housekeeping, lifecycle, planner
from services.scheduler.config import SchedulerSettings
from services.scheduler.retention import RetentionRules
from services.scheduler.retention_store import Retention
from services.scheduler.gamma import GammaError, GammaPending, MetadataSource
from services.scheduler.model import (
    ACTIVE_STATES, FINISHED_STATES, BadField, Decision, HealthRecord, Rules, TokenView,
)
from services.scheduler.signals import MalformedSignal, Signal, SignalConsumer, parse_signal
from services.scheduler.store import GATEWAY_FIELD, Snapshot, Store

log = logging.getLogger(__name__)

MAX_SIGNAL_FAILURES = 3  # an entry whose processing raises this often goes to pb:sig:dead (SIGNAL_FAILED)
LIVENESS_EVERY_MS = 1000
QUIET_REREAD_MS = 2000  # wall ms between two reads of a quiet finished token, as __main__ runs it


class Scheduler:
    """The scheduler service (SPEC S3.3).

    Args:
        r: decoded Redis client.
        clock: market time and wall time.
        journal: this instance's journal.
        settings: ``SchedulerSettings``.
        metadata: market metadata source (``GammaClient``).
        instance_id: instance name; also the consumer name in the ``scheduler`` group.
    """

    def __init__(self, r: Redis, clock: Clock, journal: Journal, settings: SchedulerSettings,
                 metadata: MetadataSource, instance_id: str) -> None:
        self.r, self.clock, self.journal, self.metadata = r, clock, journal, metadata
        self.instance_id = instance_id
        self.rules = Rules.from_settings(settings)
        self.store = Store(r, Leases(r), journal)
        self.store.lease_grace_ms = settings.lease_ttl_ms  # takeover rule: docs/contracts.md "Leases"
        self.consumer = SignalConsumer(r, instance_id, journal, settings.signal_batch, settings.claim_idle_ms)
        self.retention = Retention(r, journal, RetentionRules.from_settings(settings))  # issue 10
        self._failures: dict[str, int] = {}
        self._said: set[tuple[str, str]] = set()
        self._next_liveness = 0
        self.last_counts: dict[str, int] = {}
        self._quiet: dict[str, TokenView] = {}  # finished tokens with nothing to do (see ``_reuse``)
        self._full_read_at = 0  # wall ms of the next snapshot that reads every token
        # wall ms between two reads of a quiet token; 0 = every token at every step (the back-test,
        # which steps the scheduler only on events); ``python -m services.scheduler`` sets QUIET_REREAD_MS
        self.quiet_reread_ms = 0

    def step(self) -> None:
        """One iteration (see the module docstring). Raises what Redis raises; run_loop journals it.
        Its wall duration is observed in ``pb_scheduler_step_seconds``."""
        with metrics.SCHED_STEP.time():
            now, wall = self.clock.now_ms(), self.clock.wall_ms()
            self.process_signals(now, wall)
            snap = self.store.snapshot(self._reuse(wall))
            self.housekeep(snap, now, wall)
            self.retry_candidates(snap, now, wall)
            self._liveness(snap, wall)
            self.retention.maybe_run(now, wall)

    # ---- signals ----
    def process_signals(self, now_ms: int, wall_ms: int) -> int:
        """Handle one batch of signal entries; returns how many were read."""
        entries = self.consumer.fetch(wall_ms)
        for stream_id, fields in entries:
            self._entry(stream_id, fields, now_ms, wall_ms)
        return len(entries)

    def _entry(self, stream_id: str, fields: dict[str, str], now_ms: int, wall_ms: int) -> None:
        try:
            sig = parse_signal(stream_id, fields)
        except MalformedSignal as exc:
            self.consumer.dead(stream_id, fields, "SIGNAL_MALFORMED", exc.field, exc.value)
            return
        try:
            self._signal(sig, now_ms, wall_ms)
        except RedisError:
            self.consumer.recovering = True
            raise
        except Exception as exc:
            self.consumer.recovering = True
            n = self._failures[stream_id] = self._failures.get(stream_id, 0) + 1
            if n < MAX_SIGNAL_FAILURES:
                raise
            self._failures.pop(stream_id, None)
            self.consumer.dead(stream_id, fields, "SIGNAL_FAILED", "error", f"{type(exc).__name__}: {exc}"[:300])
        else:
            self._failures.pop(stream_id, None)

    def _signal(self, sig: Signal, now_ms: int, wall_ms: int) -> None:
        self._quiet.pop(sig.token_id, None)  # a signal may change the token: read it at the next step
        verdict = self.consumer.begin(sig.stream_id, sig.signal_id)
        if verdict == "duplicate":
            self.journal.record("SIGNAL_DUPLICATE", token_id=sig.token_id, signal_id=sig.signal_id,
                                stream_id=sig.stream_id)
            self.consumer.ack(sig.stream_id)
            return
        if verdict == "done":
            self.consumer.ack(sig.stream_id)
            return
        view = self.store.token(sig.token_id)
        decide = lifecycle.on_sell if sig.side == "SELL" else lifecycle.on_buy
        d = decide(view, sig, now_ms, wall_ms, self.rules)  # a bad token field: TOKEN_FIELD_INVALID
        applied = self.store.apply(d, now_ms, wall_ms)
        if applied and d.transition is not None and d.transition.state == "candidate":
            self.resolve(sig.token_id, sig.ts_ms, 0, now_ms, wall_ms)
        self.consumer.finish(sig.stream_id, sig.signal_id)

    def resolve(self, token_id: str, signal_ts_ms: int, attempts: int, now_ms: int, wall_ms: int) -> None:
        """Fetch a candidate's market metadata and queue or refuse it (errors journaled, retried)."""
        try:
            meta = self.metadata.market_for_token(token_id)
        except GammaPending:
            return  # fetched off the step (GammaPrefetch): retry_candidates applies it when it is in
        except GammaError as err:
            d = lifecycle.on_metadata_error(token_id, err, attempts, now_ms, wall_ms, self.rules)
        else:
            d = lifecycle.on_metadata(token_id, meta, signal_ts_ms, now_ms, self.rules)
        self.store.apply(d, now_ms, wall_ms)

    def retry_candidates(self, snap: Snapshot, now_ms: int, wall_ms: int) -> None:
        """Candidates left by a Gamma failure or a crash: fetch again when their retry is due."""
        for view in snap.views.values():
            if view.state != "candidate":
                continue
            try:
                due, attempts, ts = view.num("meta_next_wall_ms"), view.num("meta_attempts"), view.num("signal_ts_ms")
            except BadField as exc:
                self.store.report_bad(exc, "tok")
                continue
            if due <= wall_ms:
                self.resolve(view.token_id, ts, attempts, now_ms, wall_ms)

    # ---- per-step review ----
    def _reuse(self, wall_ms: int) -> dict[str, TokenView]:
        """Views to keep from the last snapshot instead of reading them: the quiet finished tokens
        (closed, cooldown or failed, no lease, not queued or offered, and no decision at their last
        review: e.g. positions awaiting their market's resolution), except every ``quiet_reread_ms``,
        when every token is read. A step's cost then follows the tokens that can change."""
        if wall_ms >= self._full_read_at:
            self._full_read_at = wall_ms + self.quiet_reread_ms
            self._quiet = {}
        return self._quiet

    def _note_quiet(self, view: TokenView, decided: bool, health_changed: bool) -> None:
        quiet = (not decided and not health_changed and view.state in FINISHED_STATES and not view.lease.exists
                 and not view.in_offers and not view.in_pending)
        if quiet:
            self._quiet[view.token_id] = view
        else:
            self._quiet.pop(view.token_id, None)

    def housekeep(self, snap: Snapshot, now_ms: int, wall_ms: int) -> None:
        """Housekeeping, health and activation for every token of the snapshot."""
        any_active = any(v.state == "active" for v in snap.views.values())
        gw_rec, gw_notes = health.assess_gateway(snap.gateway, snap.gateway_health, any_active, now_ms, wall_ms,
                                                 self.rules)
        updates: dict[str, HealthRecord] = {} if gw_rec == snap.gateway_health else {GATEWAY_FIELD: gw_rec}
        for n in gw_notes:
            self.journal.record(n.reason, level=n.level, **n.fields)  # type: ignore[arg-type]
        decisions: list[Decision] = []
        unsubscribed = health.unsubscribed_ids(snap.gateway)
        for view in snap.views.values():
            mine = self._review(view, gw_rec, unsubscribed, updates, now_ms, wall_ms)
            self._note_quiet(view, bool(mine), view.token_id in updates)
            decisions += mine
        plan = planner.plan_activations(snap.queue, snap.views, now_ms, self.rules)
        decisions += planner.decisions(plan, snap.views, now_ms, wall_ms)
        self.store.write_health(updates)
        for d in decisions:
            if self.store.apply(d, now_ms, wall_ms):
                _count_handovers(d)

    def _review(self, view: TokenView, gw: HealthRecord, unsubscribed: frozenset[str],
                updates: dict[str, HealthRecord], now_ms: int, wall_ms: int) -> list[Decision]:
        try:
            d = housekeeping.review(view, now_ms, wall_ms, self.rules)
            rec, notes, cleanup = health.assess_token(view, gw, now_ms, wall_ms, self.rules, unsubscribed)
        except BadField as exc:
            self.store.report_bad(exc, "tok")
            return []
        if rec != view.health and view.state not in ("closed", "cooldown", "failed", ""):
            updates[view.token_id] = rec
        out = [x for x in (d, Decision(view.token_id, notes=tuple(notes)) if notes else None) if x is not None]
        if cleanup is not None and (d is None or d.transition is None):
            out.append(cleanup)
        return [x for x in out if not self._repeat(x)]

    def _repeat(self, d: Decision) -> bool:
        """Note-only error decisions (e.g. UNKNOWN_STATE) are journaled once, not every step."""
        if d.transition is not None or d.effects or not all(n.level == "error" for n in d.notes):
            return False
        key = (d.token_id, ",".join(n.reason for n in d.notes))
        if key in self._said:
            return True
        self._said.add(key)
        return False

    # ---- liveness ----
    def _liveness(self, snap: Snapshot, wall_ms: int) -> None:
        counts: dict[str, int] = {}
        for v in snap.views.values():
            counts[v.state or "unknown"] = counts.get(v.state or "unknown", 0) + 1
        for state in set(counts) | set(self.last_counts):
            metrics.SCHED_TOKENS.labels(state).set(counts.get(state, 0))
        self.last_counts = counts
        held = sum(1 for v in snap.views.values() if v.lease.live(wall_ms))
        offered = sum(1 for v in snap.views.values() if v.in_offers and not v.lease.live(wall_ms))
        metrics.SCHED_LEASES.labels("held").set(held)
        metrics.SCHED_LEASES.labels("offered").set(offered)
        if wall_ms >= self._next_liveness:
            self._next_liveness = wall_ms + LIVENESS_EVERY_MS
            busy = sum(counts.get(s, 0) for s in ACTIVE_STATES)
            runtime.heartbeat(self.r, self.instance_id, "scheduler", self.clock,
                              {"busy": busy, "queued": len(snap.queue), "tracked": len(snap.views)})


HANDOVER_REASONS = ("LEASE_EXPIRED_REOFFERED", "LEASE_MISSING_REOFFERED")


def _count_handovers(d: Decision) -> None:
    """Count an applied decision that offers a token's lease again (``pb_scheduler_handovers_total``)."""
    for n in d.notes:
        if n.reason in HANDOVER_REASONS:
            metrics.SCHED_HANDOVERS.labels(n.reason).inc()
