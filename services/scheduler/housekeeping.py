"""Per-step housekeeping of one token (SPEC S3.3). Pure: (view, now_ms, wall_ms, rules) -> Decision.

- Finished tokens (closed/cooldown/failed) whose lease nobody holds: out of ``pb:md:subs``, the
  offers and pending indexes, lease withdrawn, untracked. Exit-only tasks end here whether they
  sold or not, and a finished token is never offered again (the legacy re-ran them forever).
- Active/exiting/exit_only tokens: an expired or released lease goes back into ``pb:sched:offers``
  (index repair; ``acquire`` takes expired leases and the new holder runs the takeover rule); a
  missing lease is offered again; a lost subscription is restored; a market that ended while no
  worker held the token is closed MARKET_ENDED, unless its last holder vanished without releasing
  (an expired lease still naming a worker): then exit_only first, so a takeover cancels and settles.
- Index repairs: a pending token missing from the queue is enqueued; stale queue/offer entries go.
- Resolution: a token whose book says ``resolved=1`` moves at once to ``resolved`` (``lifecycle.
  resolution``); a ``resolved`` token still holding shares (``position`` or ``redeem_pending``) keeps
  an ``exit_only`` settle lease offered until a worker settled it, then is cleaned up like a finished
  one. A token closed MARKET_ENDED or DUST_REMAINDER still holding shares stays tracked and
  subscribed, so that its resolution is seen and settled.
- Afterwards: a cleaned-up token's records stay until retention (``services/scheduler/retention.py``)
  finds it finished, unheld, flat and older than ``PB_RETENTION_TOKENS_S`` and the journal.
"""
from __future__ import annotations

from services.scheduler import lifecycle
from services.scheduler.lifecycle import resolution
from services.scheduler.model import (
    ACTIVE_STATES, FINISHED_STATES, RESOLVED, Decision, Effect, Note, Rules, TokenView, Transition,
)


AWAIT_RESOLUTION = frozenset({"MARKET_ENDED", "DUST_REMAINDER"})  # closed holding shares: wait to settle


def _cleanup_effects(view: TokenView, wall_ms: int, keep: bool = False) -> list[Effect]:
    """``keep``: shares still await the resolution -- stay tracked and subscribed."""
    effects: list[Effect] = []
    if view.lease.exists:
        effects.append(Effect("withdraw"))  # first: a refusal (a worker appeared) stops the rest
    if view.in_subs and not keep:
        effects.append(Effect("unsubscribe"))
    if view.in_offers:
        effects.append(Effect("unindex_offer"))
    if view.in_pending:
        effects.append(Effect("dequeue"))
    if keep:
        return effects
    effects += [Effect("untrack"), Effect("clear_health")]
    return effects


def cleanup(view: TokenView, now_ms: int, wall_ms: int, rules: Rules) -> Decision | None:
    """Release every resource of a finished token once no live lease remains (None while one does)."""
    if view.lease.live(wall_ms):
        return None
    if view.state == "closed" and view.reason in AWAIT_RESOLUTION and view.unsettled():
        return _await_resolution(view, wall_ms)
    effects = _cleanup_effects(view, wall_ms)
    if view.state == "cooldown" and not view.tok.get("cooldown_until_ms"):
        until = view.num("updated_ms") + rules.reentry_cooldown_ms
        effects.insert(0, Effect("hset", fields={"cooldown_until_ms": str(until)}))
    note = Note("TOKEN_CLEANED", fields={"state": view.state, "why": view.reason,
                                         "lease": "expired" if view.lease.exists else "none"})
    return Decision(view.token_id, effects=tuple(effects), notes=(note,))


def _await_resolution(view: TokenView, wall_ms: int) -> Decision | None:
    """A finished token still holding shares: drop its lease and indexes but stay tracked and
    subscribed (AWAITING_RESOLUTION, journaled once: with the first of those effects)."""
    effects = _cleanup_effects(view, wall_ms, keep=True)
    if not view.tracked:
        effects.append(Effect("track"))
    if not view.in_subs:
        effects.append(Effect("subscribe"))
    if not effects:
        return None
    note = Note("AWAITING_RESOLUTION", fields={"state": view.state, "why": view.reason,
                                               "position": view.tok.get("position", "0")})
    return Decision(view.token_id, effects=tuple(effects), notes=(note,))


def settling(view: TokenView, now_ms: int, wall_ms: int, rules: Rules) -> Decision | None:
    """A ``resolved`` token: shares left -> keep an ``exit_only`` settle lease offered and indexed
    (SETTLE_OFFERED); settled -> cleaned up like a finished token. None while a worker holds it."""
    if view.lease.live(wall_ms):
        return None
    if not view.unsettled():
        return cleanup(view, now_ms, wall_ms, rules)
    effects: list[Effect] = []
    if not view.lease.exists or view.lease.mode != "exit_only":
        effects.append(Effect("offer", "exit_only"))
    if not view.in_offers:
        effects.append(Effect("index_offer", score=wall_ms))
    if not effects:
        return None
    note = Note("SETTLE_OFFERED", fields={"position": view.tok.get("position", "0"),
                                          "redeem_pending": view.tok.get("redeem_pending", "0")})
    return Decision(view.token_id, effects=tuple(effects), notes=(note,))


def _lease_repairs(view: TokenView, wall_ms: int) -> tuple[list[Effect], list[Note]]:
    effects: list[Effect] = []
    notes: list[Note] = []
    lease, exit_mode = view.lease, view.state == "exit_only"
    if not lease.exists:
        effects += [Effect("offer", "exit_only" if exit_mode else "maker"), Effect("index_offer", score=wall_ms)]
        notes.append(Note("LEASE_MISSING_REOFFERED", level="warn", fields={"state": view.state}))
        return effects, notes
    if exit_mode and lease.mode != "exit_only":
        effects.append(Effect("offer", "exit_only"))
        notes.append(Note("LEASE_MODE_REPAIRED", level="warn", fields={"was": lease.mode}))
    live = lease.live(wall_ms)
    if not live and not view.in_offers:
        effects.append(Effect("index_offer", score=wall_ms))
        if lease.worker:
            notes.append(Note("LEASE_EXPIRED_REOFFERED", level="warn",
                              fields={"worker": lease.worker, "expired_ms": lease.expires_ms}))
        else:
            notes.append(Note("OFFER_INDEX_REPAIRED", fields={"mode": lease.mode}))
    elif live and view.in_offers:
        effects.append(Effect("unindex_offer"))
    return effects, notes


def running(view: TokenView, now_ms: int, wall_ms: int, rules: Rules) -> Decision | None:
    """Keep an active/exiting/exit_only token served: lease offered, indexed, subscribed, tracked."""
    end_ms = view.num("end_ms")
    if end_ms and now_ms >= end_ms and not view.lease.live(wall_ms):
        info = {"end_ms": end_ms, "position": view.tok.get("position", "0")}
        if not view.lease.worker:
            return Decision(view.token_id, Transition("closed", "MARKET_ENDED", (view.state,), info=info))
        if view.state != "exit_only":  # its holder vanished without releasing: a takeover settles it first
            return lifecycle.exit_only(view.token_id, view.state, "MARKET_ENDED", wall_ms,
                                       {**info, "holder": view.lease.worker})
        # exit_only whose holder vanished: the lease repairs below offer it again
    effects, notes = _lease_repairs(view, wall_ms)
    if not view.in_subs:
        effects.append(Effect("subscribe"))
        notes.append(Note("SUBSCRIPTION_REPAIRED", level="warn"))
    if view.in_pending:
        effects.append(Effect("dequeue"))
    if not view.tracked:
        effects.append(Effect("track"))
    if not effects and not notes:
        return None
    return Decision(view.token_id, effects=tuple(effects), notes=tuple(notes))


def review(view: TokenView, now_ms: int, wall_ms: int, rules: Rules) -> Decision | None:
    """The housekeeping decision for one token of the snapshot, None when all is in order.

    Raises:
        BadField: a token hash field the decision needs is not usable.
    """
    st = view.state
    if view.book.resolved and st not in (RESOLVED, "failed", ""):
        d = resolution(view, view.book.payout, "book", wall_ms)
        if d is not None or st not in FINISHED_STATES:
            return d  # a worker holding the lease settles it itself
    if st == RESOLVED:
        return settling(view, now_ms, wall_ms, rules)
    if st in FINISHED_STATES:
        return cleanup(view, now_ms, wall_ms, rules)
    if st in ACTIVE_STATES:
        return running(view, now_ms, wall_ms, rules)
    if st in ("pending", "candidate"):
        effects = [] if view.tracked else [Effect("track")]
        if st == "pending" and not view.in_pending:
            effects.append(Effect("enqueue", score=view.num("signal_ts_ms")))
            return Decision(view.token_id, effects=tuple(effects), notes=(Note("QUEUE_REPAIRED"),))
        return Decision(view.token_id, effects=tuple(effects)) if effects else None
    if st == "":
        if view.lease.live(wall_ms):
            return None
        note = Note("TOKEN_UNKNOWN", level="warn", fields={"in_subs": view.in_subs, "in_offers": view.in_offers})
        return Decision(view.token_id, effects=tuple(_cleanup_effects(view, wall_ms)), notes=(note,))
    return Decision(view.token_id, notes=(Note("UNKNOWN_STATE", level="error", fields={"state": st}),))
