"""Token lifecycle decisions (SPEC S3.3; the lifecycle protocol in docs and both briefs). Pure.

Each function maps (token view, input, now_ms market, wall_ms, rules) to one :class:`Decision`.
States: candidate -> pending -> active -> exiting -> exit_only -> closed, plus cooldown (refillable),
failed, and resolved (terminal: the market resolved; never refilled; a held position is settled and
redeemed by a worker, on an ``exit_only`` settle lease when no worker holds the token). The
scheduler writes lifecycle state only while no worker holds the lease, except the two flags a running worker must see: ``exiting`` (LEADER_SELL, INACTIVE_CLEANUP) and the signal
refresh fields (``leader_price``, ``signal_ts_ms``, ``last_signal_id``).

Every journal record a signal causes carries its ``signal_id`` (``Decision.signal_id``): the verdict on
the signal itself, and the later decisions on the token it made a candidate up to its activation or
refusal (Gamma's answer, queueing, activation, refusal, resolution), which carry the token's
``last_signal_id``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from services.scheduler.gamma import GammaError, MarketMeta
from services.scheduler.model import (
    ACTIVE_STATES, FINISHED_STATES, NEVER_REFILL, RESOLVED, SIGNAL_OF_TOKEN, BadField, Decision, Effect, Note, Rules,
    TokenView, Transition,
)
from services.scheduler.signals import Signal

GAMMA_BACKOFF_CAP_WALL_MS = 60_000


def signal_fields(sig: Signal) -> dict[str, str]:
    """The fields a signal refreshes on its token (leader, price, time, id)."""
    return {"leader_account": sig.account, "leader_price": str(sig.price), "signal_ts_ms": str(sig.ts_ms),
            "last_signal_id": sig.signal_id}


def _candidate(view: TokenView, sig: Signal, reason: str) -> Decision:
    fields = {**signal_fields(sig), "condition_id": sig.condition_id, "title": sig.title, "slug": sig.slug,
              "outcome": sig.outcome, "meta_attempts": "0", "meta_next_wall_ms": "0"}
    t = Transition("candidate", reason, (view.state,), fields, info={"signal_id": sig.signal_id})
    return Decision(sig.token_id, t, (Effect("track"),))


def refill_at_ms(view: TokenView, rules: Rules) -> int:
    """Market ms from which a cooldown/closed token may be refilled by a BUY.

    Raises:
        BadField: ``cooldown_until_ms`` or ``updated_ms`` is not an integer.
    """
    until = view.num("cooldown_until_ms") if view.state == "cooldown" else 0
    return until or view.num("updated_ms") + rules.reentry_cooldown_ms


def of_signal(decide: Callable[[TokenView, Signal, int, int, Rules], Decision], view: TokenView, sig: Signal,
              now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    """``decide`` for one signal, its records tagged with ``sig.signal_id``; a token field that cannot
    be read refuses the signal (TOKEN_FIELD_INVALID, error), so no signal is left without an effect."""
    try:
        d = decide(view, sig, now_ms, wall_ms, rules)
    except BadField as exc:
        fields = {"hash": "tok", "field": exc.field, "value": exc.value}
        note = Note("TOKEN_FIELD_INVALID", level="error", fields=fields)
        d = Decision(sig.token_id, notes=(note,))
    return replace(d, signal_id=sig.signal_id)


def on_buy(view: TokenView, sig: Signal, now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    """A leader BUY: new token -> candidate; live token -> refresh; finished -> maybe re-entry."""
    return of_signal(_buy, view, sig, now_ms, wall_ms, rules)


def on_sell(view: TokenView, sig: Signal, now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    """A leader SELL: holding -> exiting (worker running) or exit_only lease; else IGNORED_NO_POSITION."""
    return of_signal(_sell, view, sig, now_ms, wall_ms, rules)


def _buy(view: TokenView, sig: Signal, now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    st, tid = view.state, sig.token_id
    if st == "":
        return _candidate(view, sig, "BUY_SIGNAL")
    if st in ("candidate", "pending", "active"):
        note = Note("SIGNAL_REFRESH", fields={"state": st, "leader_price": str(sig.price), "signal_id": sig.signal_id})
        return Decision(tid, effects=(Effect("hset", fields=signal_fields(sig)),), notes=(note,))
    if st in ("exiting", "exit_only"):
        return Decision(tid, notes=(Note("BUY_WHILE_EXITING", fields={"state": st, "signal_id": sig.signal_id}),))
    if st == RESOLVED:
        fields = {"state": st, "payout": view.tok.get("payout", ""), "signal_id": sig.signal_id}
        return Decision(tid, notes=(Note("REENTRY_REFUSED_RESOLVED", fields=fields),))
    if st == "failed" or (st == "closed" and view.reason in NEVER_REFILL):
        return Decision(tid, notes=(Note("REENTRY_REFUSED", fields={"state": st, "why": view.reason}),))
    if st not in FINISHED_STATES:
        return Decision(tid, notes=(Note("UNKNOWN_STATE", level="error", fields={"state": st}),))
    if view.lease.live(wall_ms):
        return Decision(tid, notes=(Note("REENTRY_BUSY", fields={"state": st, "worker": view.lease.worker}),))
    until = refill_at_ms(view, rules)
    if now_ms < until:
        return Decision(tid, notes=(Note("REENTRY_COOLDOWN", fields={"state": st, "until_ms": until}),))
    return _candidate(view, sig, "REENTRY")


def _sell(view: TokenView, sig: Signal, now_ms: int, wall_ms: int, rules: Rules) -> Decision:
    st, tid = view.state, sig.token_id
    ignored = Note("IGNORED_NO_POSITION", fields={"state": st or "unknown", "signal_id": sig.signal_id,
                                                  "leader": sig.account})
    if st in ("candidate", "pending"):
        t = Transition("closed", "LEADER_SOLD_BEFORE_ENTRY", (st,), info={"signal_id": sig.signal_id})
        return Decision(tid, t, (Effect("dequeue"),), (ignored,))
    position = view.position() if st in ACTIVE_STATES else None
    if position is None or position <= 0:
        return Decision(tid, notes=(ignored,))
    info = {"position": str(position), "signal_id": sig.signal_id}
    if st == "exit_only" or (st == "exiting" and view.lease.live(wall_ms)):
        return Decision(tid, notes=(Note("SELL_ALREADY_EXITING", fields={"state": st, **info}),))
    if view.lease.live(wall_ms):
        return Decision(tid, Transition("exiting", "LEADER_SELL", ("active",), info=info))
    return exit_only(tid, st, "LEADER_SELL", wall_ms, info)


def exit_only(token_id: str, state: str, reason: str, wall_ms: int, info: dict[str, object]) -> Decision:
    """No worker holds a token we hold shares of: state exit_only and an ``exit_only`` lease offer."""
    t = Transition("exit_only", reason, (state,), info=info)
    return Decision(token_id, t, (Effect("offer", "exit_only"), Effect("index_offer", score=wall_ms)))


def on_metadata(token_id: str, meta: MarketMeta | None, signal_ts_ms: int, now_ms: int, rules: Rules) -> Decision:
    """Gamma answered for a candidate: refuse (closed NO_MARKET / MARKET_CLOSED / ENDING_SOON) or queue;
    journaled with the signal the candidate follows."""
    return replace(_metadata(token_id, meta, signal_ts_ms, now_ms, rules), signal_id=SIGNAL_OF_TOKEN)


def _metadata(token_id: str, meta: MarketMeta | None, signal_ts_ms: int, now_ms: int, rules: Rules) -> Decision:
    if meta is None:
        return Decision(token_id, Transition("closed", "NO_MARKET", ("candidate",)))
    fields = meta.fields()
    if meta.closed and meta.payout is not None:
        t = Transition(RESOLVED, "MARKET_RESOLVED", ("candidate",), {**fields, "payout": str(meta.payout)},
                       info={"payout": str(meta.payout), "source": "gamma"})
        return Decision(token_id, t)
    if meta.closed or not meta.active or not meta.accepting_orders:
        info = {"closed": meta.closed, "active": meta.active, "accepting_orders": meta.accepting_orders}
        return Decision(token_id, Transition("closed", "MARKET_CLOSED", ("candidate",), fields, info=info))
    ends_in = meta.end_ms - now_ms
    if ends_in < rules.sell_only_window_ms:
        info = {"end_ms": meta.end_ms, "ends_in_ms": ends_in, "window_ms": rules.sell_only_window_ms}
        return Decision(token_id, Transition("closed", "ENDING_SOON", ("candidate",), fields, info=info))
    t = Transition("pending", "QUEUED", ("candidate",), {**fields, "meta_attempts": "0"},
                   info={"end_ms": meta.end_ms, "signal_ts_ms": signal_ts_ms})
    return Decision(token_id, t, (Effect("enqueue", score=signal_ts_ms),))


def on_metadata_error(token_id: str, err: GammaError, attempts_before: int, now_ms: int, wall_ms: int,
                      rules: Rules) -> Decision:
    """Gamma failed for a candidate: bad data -> failed; transient -> retry with backoff, then cooldown;
    journaled with the signal the candidate follows."""
    d = _metadata_error(token_id, err, attempts_before, now_ms, wall_ms, rules)
    return replace(d, signal_id=SIGNAL_OF_TOKEN)


def _metadata_error(token_id: str, err: GammaError, attempts_before: int, now_ms: int, wall_ms: int,
                    rules: Rules) -> Decision:
    detail = str(err)[:300]
    if not err.retryable:
        info = {"field": getattr(err, "field", ""), "value": getattr(err, "value", ""), "detail": detail}
        return Decision(token_id, Transition("failed", "BAD_MARKET_METADATA", ("candidate",), level="error", info=info))
    attempts = attempts_before + 1
    if attempts >= rules.gamma_max_attempts:
        fields = {"meta_attempts": str(attempts), "cooldown_until_ms": str(now_ms + rules.reentry_cooldown_ms)}
        t = Transition("cooldown", "METADATA_UNAVAILABLE", ("candidate",), fields, level="error",
                       info={"attempts": attempts, "detail": detail})
        return Decision(token_id, t)
    delay = min(GAMMA_BACKOFF_CAP_WALL_MS, rules.gamma_backoff_wall_ms * 2 ** (attempts - 1))
    fields = {"meta_attempts": str(attempts), "meta_next_wall_ms": str(wall_ms + delay)}
    note = Note("GAMMA_UNAVAILABLE", level="error",
                fields={"attempt": attempts, "retry_in_ms": delay, "detail": detail})
    return Decision(token_id, effects=(Effect("hset", fields=fields),), notes=(note,))


def activation(view: TokenView, now_ms: int, wall_ms: int) -> Decision:
    """pending -> active: subscribe market data, offer a ``maker`` lease, count ``tokens_activated``."""
    t = Transition("active", "ACTIVATED", ("pending",), {"activated_ms": str(now_ms)},
                   info={"queued_signal_ts_ms": view.tok.get("signal_ts_ms", "")})
    effects = (Effect("offer", "maker"), Effect("dequeue"), Effect("subscribe"), Effect("index_offer", score=wall_ms),
               Effect("track"), Effect("bump", "tokens_activated"))
    return Decision(view.token_id, t, effects, signal_id=view.tok.get("last_signal_id", ""))


def refusal(view: TokenView, reason: str, info: dict[str, object]) -> Decision:
    """A queued token that may no longer be entered: closed (ENDING_SOON) or failed (BAD_TOKEN_FIELD,
    journaled as an error), out of the queue."""
    bad = reason == "BAD_TOKEN_FIELD"
    t = Transition("failed" if bad else "closed", reason, ("pending",), level="error" if bad else "info", info=info)
    return Decision(view.token_id, t, (Effect("dequeue"),), signal_id=view.tok.get("last_signal_id", ""))


def resolution(view: TokenView, payout: str, source: str, wall_ms: int) -> Decision | None:
    """The token's market resolved (``payout`` USD per share, "" unknown; ``source`` book|gamma): at once
    state ``resolved`` MARKET_RESOLVED, out of the queue; shares still held with no live lease get an
    ``exit_only`` settle lease offered (a worker settles and redeems). None while a worker holds the
    lease (that worker settles and writes ``resolved`` itself) or when already resolved/failed.

    Raises:
        BadField: ``position`` or ``redeem_pending`` is not a number.
    """
    st = view.state
    if st in (RESOLVED, "failed", "") or view.lease.live(wall_ms):
        return None
    holding = view.unsettled()
    info = {"payout": payout, "source": source, "position": view.tok.get("position", "0"), "prev_reason": view.reason}
    t = Transition(RESOLVED, "MARKET_RESOLVED", (st,), {"payout": payout}, info=info)
    effects = [Effect("dequeue")] if view.in_pending or st == "pending" else []
    if holding:
        effects += [Effect("offer", "exit_only"), Effect("index_offer", score=wall_ms)]
    signal_id = view.tok.get("last_signal_id", "") if st in ("candidate", "pending") else ""
    return Decision(view.token_id, t, tuple(effects), signal_id=signal_id)
