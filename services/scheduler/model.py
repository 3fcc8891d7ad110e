"""Plain data of the scheduler's pure core: rules, read-only views of Redis, and decided actions.

Views are built from one snapshot of Redis (``store.read_snapshot``); the pure functions in
``lifecycle``, ``health`` and ``planner`` turn them into :class:`Decision` objects, which the
shell (``store.apply``) executes. Times: ``*_ms`` market ms unless named ``wall``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

ACTIVE_STATES = ("active", "exiting", "exit_only")  # count against max_active_tokens
FINISHED_STATES = ("closed", "cooldown", "failed")  # cleaned up once no live lease remains
RESOLVED = "resolved"  # terminal: the market resolved; settled and redeemed, never refilled
# Closed for these reasons: never refilled by a later BUY (SPEC S3.3 "resolved or ended markets").
NEVER_REFILL = frozenset({"MARKET_ENDED", "MARKET_RESOLVED", "NO_MARKET", "MARKET_CLOSED"})
# Decision.signal_id meaning "the signal the token follows": its ``last_signal_id``, read when applied
SIGNAL_OF_TOKEN = "@last_signal_id"


class BadField(ValueError):
    """A token hash field holds a value that cannot be used; names the token, field and value."""

    def __init__(self, token_id: str, name: str, value: object) -> None:
        super().__init__(f"token={token_id} field={name} value={value!r}")
        self.token_id, self.field, self.value = token_id, name, value


@dataclass(frozen=True)
class Rules:
    """Scheduler rules in milliseconds (see ``SchedulerSettings`` for meanings)."""

    max_active: int = 10
    sell_only_window_ms: int = 3_600_000
    inactive_warn_ms: int = 1_800_000
    inactive_cleanup_ms: int = 3_600_000
    reentry_cooldown_ms: int = 600_000
    gateway_stale_ms: int = 5_000
    feed_grace_wall_ms: int = 10_000
    offer_unclaimed_wall_ms: int = 30_000
    gamma_max_attempts: int = 5
    gamma_backoff_wall_ms: int = 1_000
    recv_is_market: bool = False  # live mode: wall time is market time, so recv_ts_ms counts as activity

    @classmethod
    def from_settings(cls, s: Any) -> "Rules":
        """Rules from a ``SchedulerSettings``."""
        return cls(max_active=s.max_active_tokens, sell_only_window_ms=int(s.sell_only_window_s * 1000),
                   inactive_warn_ms=int(s.inactive_warn_s * 1000),
                   inactive_cleanup_ms=int(s.inactive_cleanup_s * 1000),
                   reentry_cooldown_ms=int(s.reentry_cooldown_s * 1000), gateway_stale_ms=s.gateway_stale_ms,
                   feed_grace_wall_ms=int(s.feed_grace_s * 1000), offer_unclaimed_wall_ms=3 * s.lease_ttl_ms,
                   gamma_max_attempts=s.gamma_max_attempts, recv_is_market=s.mode == "live")


def _int(token_id: str, name: str, raw: Mapping[str, str]) -> int:
    value = raw.get(name) or "0"
    try:
        return int(value)
    except ValueError:
        raise BadField(token_id, name, value) from None


@dataclass(frozen=True)
class LeaseView:
    """``pb:lease:{token}`` as read: ``exists`` False when there is no lease hash (wall ms)."""

    exists: bool = False
    worker: str = ""
    expires_ms: int = 0
    mode: str = ""

    @classmethod
    def parse(cls, token_id: str, raw: Mapping[str, str]) -> "LeaseView":
        """From the hash fields (empty mapping = no lease)."""
        if not raw:
            return cls()
        return cls(True, raw.get("worker", ""), _int(token_id, "expires_ms", raw), raw.get("mode", ""))

    def live(self, wall_ms: int) -> bool:
        """A worker holds it and it has not expired (the rule of ``lease_withdraw.lua``)."""
        return self.exists and self.worker != "" and self.expires_ms >= wall_ms


@dataclass(frozen=True)
class BookView:
    """The parts of ``pb:md:book:{token}`` the health check needs."""

    exists: bool = False
    status: str = ""
    exch_ts_ms: int = 0  # market ms of the last frame
    recv_ts_ms: int = 0  # wall ms of the last frame
    resolved: bool = False  # md_gateway saw market_resolved
    payout: str = ""  # USD per share at resolution ("1" / "0"; "" = no known winner)

    @classmethod
    def parse(cls, token_id: str, raw: Mapping[str, str]) -> "BookView":
        """From the hash fields (empty mapping = no book)."""
        if not raw:
            return cls()
        return cls(True, raw.get("status", "ok") or "ok", _int(token_id, "exch_ts_ms", raw),
                   _int(token_id, "recv_ts_ms", raw), raw.get("resolved") == "1", raw.get("payout", ""))


@dataclass(frozen=True)
class HealthRecord:
    """Scheduler-private marks of one token, JSON in ``pb:sched:health`` (so each event fires once).

    Attributes:
        warn_ms: market ms of the HEALTH_INACTIVE_WARN still standing (0 = none).
        feed: feed problem being seen (FEED_NOT_SUBSCRIBED | FEED_NO_BOOK | FEED_GATEWAY_DOWN | "").
        feed_since_wall: wall ms the problem was first seen.
        feed_reported: the problem was journaled.
        feed_ok_ms: market ms the feed last came back (inactivity is measured from here at most).
        unclaimed: OFFER_UNCLAIMED was journaled for the current offer.
    """

    warn_ms: int = 0
    feed: str = ""
    feed_since_wall: int = 0
    feed_reported: bool = False
    feed_ok_ms: int = 0
    unclaimed: bool = False

    @classmethod
    def loads(cls, text: str | None) -> "HealthRecord":
        """From its JSON (None or "" gives a fresh record).

        Raises:
            ValueError: not a JSON object of this record's fields.
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"health record {text[:80]!r}: {exc}") from None

    def dumps(self) -> str:
        """Compact JSON."""
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class TokenView:
    """Everything read about one token in a snapshot."""

    token_id: str
    tok: Mapping[str, str] = field(default_factory=dict)
    lease: LeaseView = LeaseView()
    book: BookView = BookView()
    health: HealthRecord = HealthRecord()
    in_subs: bool = False
    in_offers: bool = False
    offer_wall_ms: int = 0
    in_pending: bool = False
    tracked: bool = True

    @property
    def state(self) -> str:
        """Lifecycle state ("" when the token hash does not exist)."""
        return self.tok.get("state", "")

    @property
    def reason(self) -> str:
        """Reason of the last transition."""
        return self.tok.get("reason", "")

    def num(self, name: str) -> int:
        """Integer field (ms), 0 when absent. Raises BadField."""
        return _int(self.token_id, name, self.tok)

    def position(self, name: str = "position") -> Decimal:
        """Shares held (``position``; or another share field such as ``redeem_pending``), 0 when
        absent. Raises BadField."""
        raw = self.tok.get(name) or "0"
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise BadField(self.token_id, name, raw) from None
        if not value.is_finite():
            raise BadField(self.token_id, name, raw)
        return value

    def unsettled(self) -> bool:
        """Shares to settle or redeem: ``position`` or ``redeem_pending`` above 0. Raises BadField."""
        return self.position() > 0 or self.position("redeem_pending") > 0


@dataclass(frozen=True)
class Transition:
    """Write ``state``/``reason``/``updated_ms`` (+ ``fields``) only if the state is one of ``expect``
    ("" = no token hash); journaled with ``reason``, ``level`` and ``info``."""

    state: str
    reason: str
    expect: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=dict)
    level: str = "info"
    info: Mapping[str, object] = field(default_factory=dict)  # journal-only fields


@dataclass(frozen=True)
class Effect:
    """One Redis side effect. ``kind``: subscribe, unsubscribe, enqueue (score), dequeue, offer (value =
    mode), index_offer, unindex_offer, withdraw, track, untrack, hset (fields into the token hash),
    clear_health, bump (value = counter)."""

    kind: str
    value: str = ""
    score: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """A journal event without a state change."""

    reason: str
    level: str = "info"
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What to do for one token: an optional guarded transition, then effects, then notes.

    When the transition's guard fails (the state changed since the snapshot), effects and notes are
    skipped and TRANSITION_CONFLICT is journaled instead. ``signal_id``: the signal this decision is
    the effect of ("" = none; ``SIGNAL_OF_TOKEN`` = the token's ``last_signal_id``); every journal
    record of the decision carries it.
    """

    token_id: str
    transition: Transition | None = None
    effects: tuple[Effect, ...] = ()
    notes: tuple[Note, ...] = ()
    signal_id: str = ""

    def empty(self) -> bool:
        """Nothing to do."""
        return self.transition is None and not self.effects and not self.notes
