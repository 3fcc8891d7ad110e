"""Which pending tokens become active (SPEC S3.3: at most ``max_active_tokens``, FIFO by signal time). Pure.

Works on one snapshot of every tracked token (read in one pipelined round trip), so planning costs
no Redis round trip per token however long the queue is; only the tokens actually activated cost
writes (bounded by the free capacity).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from services.scheduler import lifecycle
from services.scheduler.model import ACTIVE_STATES, BadField, Decision, Rules, TokenView


@dataclass(frozen=True)
class ActivationPlan:
    """``activate``: tokens to activate, oldest signal first; ``refuse``: (token, reason, info) of queued
    tokens that may no longer be entered; ``busy``/``free``: capacity used and left before this plan."""

    activate: tuple[str, ...]
    refuse: tuple[tuple[str, str, dict[str, object]], ...]
    busy: int
    free: int


def busy_count(views: Iterable[TokenView]) -> int:
    """Tokens that hold capacity: state active, exiting or exit_only."""
    return sum(1 for v in views if v.state in ACTIVE_STATES)


def _refusal(view: TokenView, now_ms: int, rules: Rules) -> tuple[str, dict[str, object]] | None:
    try:
        end_ms = view.num("end_ms")
    except BadField as exc:
        return "BAD_TOKEN_FIELD", {"field": exc.field, "value": exc.value}
    if end_ms and end_ms - now_ms < rules.sell_only_window_ms:
        return "ENDING_SOON", {"end_ms": end_ms, "ends_in_ms": end_ms - now_ms}
    return None


def plan_activations(queue: Sequence[tuple[str, float]], views: Mapping[str, TokenView], now_ms: int,
                     rules: Rules) -> ActivationPlan:
    """Walk the queue (token, signal ts_ms) oldest first (ties by token id) and fill the free capacity.

    Entries whose token is not ``pending`` are skipped (housekeeping repairs the index); queued
    tokens whose market now ends within the sell-only window are refused even when no capacity is free.
    """
    busy = busy_count(views.values())
    free = max(0, rules.max_active - busy)
    activate: list[str] = []
    refuse: list[tuple[str, str, dict[str, object]]] = []
    for token_id, _score in sorted(queue, key=lambda e: (e[1], e[0])):
        view = views.get(token_id)
        if view is None or view.state != "pending":
            continue
        why = _refusal(view, now_ms, rules)
        if why is not None:
            refuse.append((token_id, why[0], why[1]))
        elif len(activate) < free:
            activate.append(token_id)
    return ActivationPlan(tuple(activate), tuple(refuse), busy, free)


def decisions(plan: ActivationPlan, views: Mapping[str, TokenView], now_ms: int, wall_ms: int) -> list[Decision]:
    """The plan as lifecycle decisions: refusals first (they free nothing), then activations."""
    out = [lifecycle.refusal(views[t], reason, info) for t, reason, info in plan.refuse]
    out += [lifecycle.activation(views[t], now_ms, wall_ms) for t in plan.activate]
    return out
