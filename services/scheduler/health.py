"""Market inactivity vs feed failures (SPEC S3.3 "Health"). Pure.

The legacy system warned about tokens "not updated for 30 minutes" and removed them at 60, without
telling a quiet market from a broken feed (reference/legacy/report-forensics-health-cleanup.md).
Here the two are apart:

- Feed failures are reported, once per episode, with their own codes and never counted as
  inactivity: FEED_GATEWAY_DOWN (``pb:md:gateway`` not ``connected`` or ``updated_ms`` stale, wall),
  FEED_NOT_SUBSCRIBED (token not in ``pb:md:subs``, or listed by the gateway in
  ``missing_subscription_ex``: wanted but not subscribed on an open link), FEED_NO_BOOK (no book hash, or ``status``
  ``resync``). When the feed comes back (FEED_RECOVERED / FEED_GATEWAY_RESTORED) the inactivity
  clock restarts from that moment.
- Market inactivity (market time): no frame (book ``exch_ts_ms``; in live mode also ``recv_ts_ms``)
  and no fill (``last_fill_ms``) since activation. HEALTH_INACTIVE_WARN once at ``inactive_warn``
  (HEALTH_RECOVERED if activity resumes), clean-up at ``inactive_cleanup``: with a worker -> state
  exiting INACTIVE_CLEANUP (it releases a flat token, sells a held one); without one -> flat and
  released: cooldown INACTIVE_CLEANUP_FLAT; holding, or its last holder vanished without releasing (an
  expired lease still naming a worker: its orders may be live and its fills unbooked): exit_only lease,
  so that a worker's takeover cancels and settles before the token ends (found by scripts/nemesis.py).
"""
from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet, Mapping

from services.scheduler import lifecycle
from services.scheduler.model import Decision, HealthRecord, Note, Rules, TokenView, Transition

GATEWAY_DOWN = "FEED_GATEWAY_DOWN"


def gateway_problem(gw: Mapping[str, str], wall_ms: int, stale_ms: int) -> str:
    """"" when the gateway hash says connected and was updated within ``stale_ms`` (wall), else why."""
    if not gw:
        return "no gateway hash"
    state = gw.get("state", "")
    if state != "connected":
        return f"state={state or 'unset'}"
    raw = gw.get("updated_ms") or "0"
    try:
        updated = int(raw)
    except ValueError:
        return f"updated_ms={raw!r} invalid"
    if wall_ms - updated > stale_ms:
        return f"updated_ms={updated} age_ms={wall_ms - updated}"
    return ""


def assess_gateway(gw: Mapping[str, str], prev: HealthRecord, any_active: bool, now_ms: int, wall_ms: int,
                   rules: Rules) -> tuple[HealthRecord, list[Note]]:
    """The gateway's health record (``feed`` = FEED_GATEWAY_DOWN while down; ``feed_ok_ms`` = market ms
    it came back) and its events, each once per episode; only reported while tokens are active."""
    problem = gateway_problem(gw, wall_ms, rules.gateway_stale_ms)
    notes: list[Note] = []
    if problem:
        rec = prev if prev.feed == GATEWAY_DOWN else HealthRecord(feed=GATEWAY_DOWN, feed_since_wall=wall_ms,
                                                                    feed_ok_ms=prev.feed_ok_ms)
        if any_active and not rec.feed_reported and wall_ms - rec.feed_since_wall >= rules.feed_grace_wall_ms:
            notes.append(Note(GATEWAY_DOWN, level="warn", fields={"detail": problem}))
            rec = replace(rec, feed_reported=True)
        return rec, notes
    if not prev.feed:
        return prev, notes
    if prev.feed_reported:
        notes.append(Note("FEED_GATEWAY_RESTORED", fields={"down_wall_ms": wall_ms - prev.feed_since_wall}))
    return HealthRecord(feed_ok_ms=now_ms), notes


def unsubscribed_ids(gw: Mapping[str, str]) -> frozenset[str]:
    """Tokens the gateway lists as wanted but not subscribed (``missing_subscription_ex``, up to 5)."""
    return frozenset(t for t in (gw.get("missing_subscription_ex") or "").split(",") if t)


def feed_issue(view: TokenView, unsubscribed: AbstractSet[str] = frozenset()) -> tuple[str, str]:
    """(code, detail) of a per-token feed problem, ("", "") when the token's feed is fine."""
    if not view.in_subs:
        return "FEED_NOT_SUBSCRIBED", "token not in pb:md:subs"
    if view.token_id in unsubscribed:
        return "FEED_NOT_SUBSCRIBED", "gateway reports it wanted but not subscribed"
    if not view.book.exists:
        return "FEED_NO_BOOK", "no book hash"
    if view.book.status != "ok":
        return "FEED_NO_BOOK", f"status={view.book.status}"
    return "", ""


def _feed(view: TokenView, rec: HealthRecord, unsubscribed: AbstractSet[str], now_ms: int, wall_ms: int,
          rules: Rules) -> tuple[HealthRecord, list[Note], bool]:
    """Track the token's feed problem; returns (record, notes, feed_ok)."""
    code, detail = feed_issue(view, unsubscribed)
    if code:
        if rec.feed != code:
            rec = replace(rec, feed=code, feed_since_wall=wall_ms, feed_reported=False)
        if not rec.feed_reported and wall_ms - rec.feed_since_wall >= rules.feed_grace_wall_ms:
            return replace(rec, feed_reported=True), [Note(code, level="warn", fields={"detail": detail})], False
        return rec, [], False
    if not rec.feed:
        return rec, [], True
    notes = [Note("FEED_RECOVERED", fields={"was": rec.feed})] if rec.feed_reported else []
    return replace(rec, feed="", feed_since_wall=0, feed_reported=False, feed_ok_ms=now_ms), notes, True


def _offer_watch(view: TokenView, rec: HealthRecord, wall_ms: int, rules: Rules) -> tuple[HealthRecord, list[Note]]:
    """OFFER_UNCLAIMED once when an offer waits for a worker longer than ``offer_unclaimed_wall_ms``."""
    waiting = view.lease.exists and not view.lease.live(wall_ms) and view.in_offers
    if not waiting:
        return (replace(rec, unclaimed=False), []) if rec.unclaimed else (rec, [])
    if rec.unclaimed or wall_ms - view.offer_wall_ms < rules.offer_unclaimed_wall_ms:
        return rec, []
    note = Note("OFFER_UNCLAIMED", level="warn",
                fields={"mode": view.lease.mode, "waiting_ms": wall_ms - view.offer_wall_ms})
    return replace(rec, unclaimed=True), [note]


def last_activity_ms(view: TokenView, rec: HealthRecord, gateway_ok_ms: int, rules: Rules) -> int:
    """Market ms of the last sign of life: frame, fill, activation, or the feed coming back.

    Raises:
        BadField: ``last_fill_ms``/``activated_ms``/``updated_ms`` is not an integer.
    """
    marks = [view.book.exch_ts_ms, view.num("last_fill_ms"), view.num("activated_ms") or view.num("updated_ms"),
             rec.feed_ok_ms, gateway_ok_ms]
    if rules.recv_is_market:
        marks.append(view.book.recv_ts_ms)
    return max(marks)


def _cleanup(view: TokenView, idle_ms: int, now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    info: dict[str, object] = {"idle_ms": idle_ms, "position": str(view.position())}
    if view.lease.live(wall_ms):
        return Decision(view.token_id, Transition("exiting", "INACTIVE_CLEANUP", ("active",), info=info))
    if view.position() > 0 or view.lease.worker:  # a holder that vanished may have orders live and fills unbooked:
        info["holder"] = view.lease.worker  # a worker must take the token over (cancel, settle) before it ends
        return lifecycle.exit_only(view.token_id, "active", "INACTIVE_CLEANUP", wall_ms, info)
    fields = {"cooldown_until_ms": str(now_ms + rules.reentry_cooldown_ms)}
    return Decision(view.token_id, Transition("cooldown", "INACTIVE_CLEANUP_FLAT", ("active",), fields, info=info))


def assess_token(view: TokenView, gateway: HealthRecord, now_ms: int, wall_ms: int, rules: Rules,
                 unsubscribed: AbstractSet[str] = frozenset()) -> tuple[HealthRecord, list[Note], Decision | None]:
    """Health of one token: (new record, events, clean-up decision or None).

    Only ``active`` tokens are judged for inactivity; nothing is judged while the gateway is down.
    ``unsubscribed``: tokens the gateway reports as not subscribed (:func:`unsubscribed_ids`).

    Raises:
        BadField: a token hash field the check needs is not usable.
    """
    rec, notes = _offer_watch(view, view.health, wall_ms, rules)
    if view.state != "active" or gateway.feed == GATEWAY_DOWN:
        return rec, notes, None
    rec, feed_notes, feed_ok = _feed(view, rec, unsubscribed, now_ms, wall_ms, rules)
    notes += feed_notes
    if not feed_ok:
        return rec, notes, None
    idle = now_ms - last_activity_ms(view, rec, gateway.feed_ok_ms, rules)
    if idle >= rules.inactive_cleanup_ms:
        return rec, notes, _cleanup(view, idle, now_ms, wall_ms, rules)
    if idle >= rules.inactive_warn_ms:
        if not rec.warn_ms:
            notes.append(Note("HEALTH_INACTIVE_WARN", level="warn", fields={"idle_ms": idle}))
            rec = replace(rec, warn_ms=now_ms)
    elif rec.warn_ms:
        notes.append(Note("HEALTH_RECOVERED", fields={"warned_ms": rec.warn_ms}))
        rec = replace(rec, warn_ms=0)
    return rec, notes, None
