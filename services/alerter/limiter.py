"""The alert rate limiter. Pure: functions of (state, alert, now) returning a new state.

Rules (times are wall milliseconds):
- per key: two non-recovery alerts of one key are at least ``min_interval_ms`` apart;
- global: at most ``max_per_hour`` alerts released in any 3600 s (a sliding window);
- a suppressed alert is counted; the next alert released carries the count (``Alert.suppressed``:
  "N more suppressed");
- conditions (down/up pairs sharing one key: a feed, a service, the halt) are never left wrong: a
  suppressed *down* whose key the operator was not told is deferred (the newest one per key) and
  released as soon as the limits allow, unless its recovery comes first (then both are dropped, the
  down counted as suppressed); a recovery is released only when the operator was told the key is
  down, is exempt from the per-key interval and waits (deferred) only for the hourly cap.

So, after a quiet spell long enough for the limits, ``told_down`` is exactly the set of condition
keys whose newest alert was a down.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes:
        kind: halt | daily_loss | halt_cleared | token_failed | feed_down | feed_recovered |
            service_down | service_recovered.
        key: rate-limit key (``halt``, ``failed:<token>``, ``feed:market``, ``feed:user``, ``svc:<instance>``).
        severity: critical | error | warning | info.
        text: one human line (without the suppressed note; see ``core.render``).
        ts_ms: wall ms of the occurrence.
        token_id, reason: the token and reason code concerned ("" when none).
        condition: part of a down/up pair on ``key``; recovery: the "up" of such a pair.
        suppressed: alerts suppressed since the previous alert released (set when released).
    """

    kind: str
    key: str
    severity: str
    text: str
    ts_ms: int
    token_id: str = ""
    reason: str = ""
    condition: bool = False
    recovery: bool = False
    suppressed: int = 0


@dataclass(frozen=True)
class Limits:
    """``min_interval_ms`` per key (wall ms, >= 0) and ``max_per_hour`` globally (>= 1)."""

    min_interval_ms: int
    max_per_hour: int


@dataclass(frozen=True)
class LimiterState:
    """What the limiter remembers (never mutated: every function returns a new one).

    Attributes:
        last_ms: key -> wall ms of the last non-recovery alert released for it.
        sent_ms: wall ms of the releases within the last hour, oldest first (at most ``max_per_hour``).
        suppressed: alerts suppressed since the last release.
        told_down: condition keys whose last released alert was a down.
        deferred: key -> the alert waiting for the limits (insertion order = release order).
    """

    last_ms: Mapping[str, int] = field(default_factory=dict)
    sent_ms: tuple[int, ...] = ()
    suppressed: int = 0
    told_down: frozenset[str] = frozenset()
    deferred: Mapping[str, Alert] = field(default_factory=dict)


def hour_room(st: LimiterState, now_ms: int, limits: Limits) -> bool:
    """True when fewer than ``max_per_hour`` alerts were released in (now - 1 h, now]."""
    return sum(1 for t in st.sent_ms if t > now_ms - HOUR_MS) < limits.max_per_hour


def allowed(st: LimiterState, alert: Alert, now_ms: int, limits: Limits) -> bool:
    """True when ``alert`` may be released at ``now_ms`` (hourly room, and the key's interval unless a recovery)."""
    if not hour_room(st, now_ms, limits):
        return False
    last = st.last_ms.get(alert.key)
    return alert.recovery or last is None or now_ms - last >= limits.min_interval_ms


def release(st: LimiterState, alert: Alert, now_ms: int) -> tuple[LimiterState, Alert]:
    """Record ``alert`` as released now; it carries the suppressed count, which restarts at 0."""
    out = replace(alert, suppressed=st.suppressed)
    last = st.last_ms if alert.recovery else {**st.last_ms, alert.key: now_ms}
    told = st.told_down
    if alert.condition:
        told = told - {alert.key} if alert.recovery else told | {alert.key}
    sent = tuple(t for t in st.sent_ms if t > now_ms - HOUR_MS) + (now_ms,)
    return replace(st, last_ms=last, sent_ms=sent, suppressed=0, told_down=told), out


def _without(deferred: Mapping[str, Alert], key: str) -> dict[str, Alert]:
    return {k: v for k, v in deferred.items() if k != key}


def offer(st: LimiterState, alert: Alert, now_ms: int, limits: Limits) -> tuple[LimiterState, list[Alert]]:
    """Offer one alert: returns the new state and the alerts released now (``alert`` or nothing)."""
    if alert.recovery:
        return _offer_recovery(st, alert, now_ms, limits)
    pending = st.deferred.get(alert.key)
    if pending is not None and pending.recovery:  # down again before its recovery went out: drop the recovery
        st = replace(st, deferred=_without(st.deferred, alert.key))
    if allowed(st, alert, now_ms, limits):
        superseded = 1 if alert.key in st.deferred else 0  # an older deferred down of this key
        st = replace(st, deferred=_without(st.deferred, alert.key), suppressed=st.suppressed + superseded)
        st, out = release(st, alert, now_ms)
        return st, [out]
    if alert.condition and alert.key not in st.told_down:
        dropped = 1 if alert.key in st.deferred else 0
        return replace(st, suppressed=st.suppressed + dropped, deferred={**_without(st.deferred, alert.key),
                                                                         alert.key: alert}), []
    return replace(st, suppressed=st.suppressed + 1), []


def _offer_recovery(st: LimiterState, alert: Alert, now_ms: int, limits: Limits) -> tuple[LimiterState, list[Alert]]:
    """A recovery: cancels a deferred down (counted suppressed); released only if the down was told."""
    pending = st.deferred.get(alert.key)
    if pending is not None:  # a deferred down never told is dropped (counted); a deferred recovery replaced
        st = replace(st, deferred=_without(st.deferred, alert.key),
                     suppressed=st.suppressed + (0 if pending.recovery else 1))
    if alert.key not in st.told_down:
        return st, []
    if allowed(st, alert, now_ms, limits):
        st, out = release(st, alert, now_ms)
        return st, [out]
    return replace(st, deferred={**st.deferred, alert.key: alert}), []


def flush(st: LimiterState, now_ms: int, limits: Limits) -> tuple[LimiterState, list[Alert]]:
    """Release the deferred alerts the limits now allow, oldest deferral first."""
    out: list[Alert] = []
    for key, alert in list(st.deferred.items()):
        if allowed(st, alert, now_ms, limits):
            st, sent = release(replace(st, deferred=_without(st.deferred, key)), alert, now_ms)
            out.append(sent)
    return st, out
