"""What to alert on, decided purely: ``decide(state, inputs, now_ms, rules) -> (state, [Alert])``.

Sources (read by the shell, ``services.alerter.service``), all times wall ms:
- ``pb:events`` entries after the cursor: ``HALT_DAILY_LOSS`` (daily-loss limit), any transition to
  state ``failed`` (the scheduler and the workers journal a transition as its reason code with
  ``state=failed``), ``FEED_GATEWAY_DOWN`` / ``FEED_GATEWAY_RESTORED`` (market data, scheduler),
  ``USER_FEED_DISCONNECTED`` / ``USER_FEED_CONNECTED`` (user channel), ``SERVICE_STOPPED`` (an
  instance that stopped on purpose is not "down"). The alerter's own events are ignored.
- ``pb:halt``: one alert per halt with its reason (a daily-loss halt is the ``daily_loss`` alert,
  whichever of the key and the event is seen first), and ``halt_cleared`` when it is lifted.
- ``pb:svc``: an instance whose heartbeat is older than ``service_down_ms`` is down (one alert),
  ``service_recovered`` when it beats again; instances that journaled ``SERVICE_STOPPED`` after their
  last beat, and members silent for over a day (their ``pb:svc:<id>`` hash has expired), are ignored.
Every candidate then goes through the rate limiter (``services.alerter.limiter``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

from services.alerter.limiter import Alert, LimiterState, Limits, flush, offer

SERVICE = "alerter"
DAILY_LOSS_PREFIX = "DAILY_LOSS_LIMIT"  # how the workers word a daily-loss halt in pb:halt
FORGET_AFTER_MS = 24 * 3_600_000  # pb:svc:<instance> hashes expire after a day: such members are history


@dataclass(frozen=True)
class Event:
    """One ``pb:events`` entry: stream ``id``, ``reason``, ``svc``, ``token_id``, ``wall_ms`` and all ``fields``."""

    id: str
    reason: str
    svc: str
    token_id: str
    wall_ms: int
    fields: Mapping[str, str]

    @classmethod
    def parse(cls, entry_id: str, fields: Mapping[str, str]) -> "Event":
        """From a decoded XREAD entry (a missing or bad ``wall_ms`` reads 0)."""
        raw = fields.get("wall_ms", "")
        return cls(entry_id, fields.get("reason", ""), fields.get("svc", ""), fields.get("token_id", ""),
                   int(raw) if raw.isdigit() else 0, dict(fields))


@dataclass(frozen=True)
class Inputs:
    """One step's observations: new ``events`` (oldest first), ``halt`` (``pb:halt`` value or None),
    ``services`` (``pb:svc``: instance -> last heartbeat wall ms)."""

    events: Sequence[Event] = ()
    halt: str | None = None
    services: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    """``limits`` of the rate limiter and ``service_down_ms`` (heartbeat age that means down, wall ms)."""

    limits: Limits
    service_down_ms: int


@dataclass(frozen=True)
class State:
    """What the alerter remembers (persisted as JSON with the outbox).

    Attributes:
        cursor: id of the last ``pb:events`` entry handled.
        halt: the halt reason alerted ("" = not halted).
        down: service instances currently seen down.
        stopped: instance -> wall ms of its ``SERVICE_STOPPED``.
        limiter: the rate limiter's state.
    """

    cursor: str = "0-0"
    halt: str = ""
    down: frozenset[str] = frozenset()
    stopped: Mapping[str, int] = field(default_factory=dict)
    limiter: LimiterState = field(default_factory=LimiterState)


def decide(state: State, inputs: Inputs, now_ms: int, rules: Rules) -> tuple[State, list[Alert]]:
    """Candidates from events, the halt key and heartbeats, through the rate limiter.

    Returns the new state (cursor at the last event) and the alerts to send now, in order.
    """
    candidates: list[Alert] = []
    for ev in inputs.events:
        state, found = on_event(state, ev)
        candidates += found
        state = replace(state, cursor=ev.id)
    state, found = on_halt(state, inputs.halt, now_ms)
    candidates += found
    state, found = on_services(state, inputs.services, now_ms, rules.service_down_ms)
    candidates += found
    lim, out = flush(state.limiter, now_ms, rules.limits)
    for alert in candidates:
        lim, sent = offer(lim, alert, now_ms, rules.limits)
        out += sent
    return replace(state, limiter=lim), out


def halt_kind(reason: str) -> str:
    """``daily_loss`` for a halt the daily-loss limit set, else ``halt``."""
    return "daily_loss" if reason.startswith(DAILY_LOSS_PREFIX) else "halt"


def on_halt(state: State, halt: str | None, now_ms: int) -> tuple[State, list[Alert]]:
    """One alert per halt (a change of kind or of a manual reason is a new halt); one when lifted."""
    halt = halt or ""
    if halt == state.halt or (halt and state.halt and halt_kind(halt) == halt_kind(state.halt) == "daily_loss"):
        return state, []
    if not halt:
        return replace(state, halt=""), [Alert("halt_cleared", "halt", "info", f"trading resumed (halt lifted; was: "
                                               f"{state.halt})", now_ms, condition=True, recovery=True)]
    kind = halt_kind(halt)
    text = f"trading HALTED: {halt}" if kind == "halt" else f"trading HALTED by the daily loss limit: {halt}"
    return replace(state, halt=halt), [Alert(kind, "halt", "critical", text, now_ms, reason=halt.split(" ")[0],
                                             condition=True)]


def on_event(state: State, ev: Event) -> tuple[State, list[Alert]]:
    """The alerts (and state changes) one journal entry calls for."""
    if ev.reason == "SERVICE_STOPPED" and ev.fields.get("instance"):
        return replace(state, stopped={**state.stopped, ev.fields["instance"]: ev.wall_ms}), []
    if ev.svc == SERVICE:
        return state, []
    if ev.fields.get("state") == "failed":
        return state, [failed_alert(ev)]
    if ev.reason == "HALT_DAILY_LOSS":
        return _daily_loss(state, ev)
    make = EVENT_ALERTS.get(ev.reason)
    return state, ([make(ev)] if make else [])


def failed_alert(ev: Event) -> Alert:
    """A token that entered state ``failed`` (its reason code is the event's reason)."""
    return Alert("token_failed", f"failed:{ev.token_id}", "error", f"token {ev.token_id} FAILED: {ev.reason}"
                 f"{_detail(ev, 'why', 'detail', 'error')} (by {ev.svc})", ev.wall_ms, ev.token_id, ev.reason)


def _daily_loss(state: State, ev: Event) -> tuple[State, list[Alert]]:
    """``HALT_DAILY_LOSS``: the daily-loss alert, unless the halt key already gave it."""
    if halt_kind(state.halt) == "daily_loss":
        return state, []
    text = (f"trading HALTED by the daily loss limit: day P&L {ev.fields.get('day_pnl', '?')} pUSD, "
            f"limit {ev.fields.get('limit', '?')} pUSD")
    halt = f"{DAILY_LOSS_PREFIX} day_pnl={ev.fields.get('day_pnl', '?')} limit={ev.fields.get('limit', '?')}"
    return replace(state, halt=halt), [Alert("daily_loss", "halt", "critical", text, ev.wall_ms, ev.token_id,
                                             ev.reason, condition=True)]


def _detail(ev: Event, *names: str) -> str:
    """``: <first non-empty field of names>`` or ""."""
    value = next((ev.fields[n] for n in names if ev.fields.get(n)), "")
    return f": {value}" if value else ""


def _feed(kind: str, key: str, text: str, *names: str) -> Callable[[Event], Alert]:
    recovery = kind == "feed_recovered"
    return lambda ev: Alert(kind, key, "info" if recovery else "warning", text + _detail(ev, *names), ev.wall_ms,
                            reason=ev.reason, condition=True, recovery=recovery)


EVENT_ALERTS: dict[str, Callable[[Event], Alert]] = {
    "FEED_GATEWAY_DOWN": _feed("feed_down", "feed:market", "market data feed DOWN", "detail"),
    "FEED_GATEWAY_RESTORED": _feed("feed_recovered", "feed:market", "market data feed restored"),
    "USER_FEED_DISCONNECTED": _feed("feed_down", "feed:user", "user channel DOWN", "cause"),
    "USER_FEED_CONNECTED": _feed("feed_recovered", "feed:user", "user channel connected again"),
}


def on_services(state: State, beats: Mapping[str, int], now_ms: int, down_ms: int) -> tuple[State, list[Alert]]:
    """Down / recovered instances of ``pb:svc`` (instance -> last beat wall ms)."""
    out: list[Alert] = []
    down = set(state.down) & set(beats)
    for inst, beat in sorted(beats.items()):
        age = now_ms - beat
        ignored = state.stopped.get(inst, -1) >= beat or age > FORGET_AFTER_MS
        if age > down_ms and not ignored and inst not in down:
            down.add(inst)
            out.append(Alert("service_down", f"svc:{inst}", "warning", f"service {inst} DOWN: no heartbeat for "
                             f"{age // 1000} s", now_ms, reason="SERVICE_DOWN", condition=True))
        elif inst in down and (age <= down_ms or ignored):
            down.discard(inst)
            if not ignored:
                out.append(Alert("service_recovered", f"svc:{inst}", "info", f"service {inst} is back up", now_ms,
                                 reason="SERVICE_RECOVERED", condition=True, recovery=True))
    stopped = {i: ms for i, ms in state.stopped.items() if i in beats}
    return replace(state, down=frozenset(down), stopped=stopped), out


def render(alert: Alert) -> str:
    """The message line: ``polyband: <text>`` plus ``(+N more suppressed)`` when some were."""
    more = f" (+{alert.suppressed} more suppressed)" if alert.suppressed else ""
    return f"polyband: {alert.text}{more}"
