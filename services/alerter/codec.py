"""JSON of the alerter's state and outbox (``pb:alert:state`` fields ``state`` and ``outbox``). Pure.

Decoding raises ``ValueError`` naming what is wrong; the shell journals ``ALERT_STATE_CORRUPT`` and
starts over from the cursor alone.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import orjson

from services.alerter.core import State
from services.alerter.limiter import Alert, LimiterState

ALERT_FIELDS = {f.name for f in fields(Alert)}


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """Every field of ``alert`` (JSON-safe)."""
    return asdict(alert)


def alert_from_dict(raw: Any) -> Alert:
    """Inverse of ``alert_to_dict``. Raises ValueError on a missing or unknown field."""
    if not isinstance(raw, dict) or not {"kind", "key", "severity", "text", "ts_ms"} <= set(raw) \
            or not set(raw) <= ALERT_FIELDS:
        raise ValueError(f"not an alert: {str(raw)[:200]!r}")
    return Alert(**raw)


def dump_state(state: State) -> str:
    """``state`` as JSON (the cursor is stored apart, in the hash field ``cursor``)."""
    lim = state.limiter
    doc = {"halt": state.halt, "down": sorted(state.down), "stopped": dict(state.stopped),
           "limiter": {"last_ms": dict(lim.last_ms), "sent_ms": list(lim.sent_ms), "suppressed": lim.suppressed,
                       "told_down": sorted(lim.told_down),
                       "deferred": [alert_to_dict(a) for a in lim.deferred.values()]}}
    return orjson.dumps(doc).decode()


def load_state(text: str, cursor: str) -> State:
    """Inverse of ``dump_state``. Raises ValueError when ``text`` is not such a JSON."""
    try:
        doc = orjson.loads(text)
        lim = doc["limiter"]
        deferred = [alert_from_dict(a) for a in lim["deferred"]]
        limiter = LimiterState({str(k): int(v) for k, v in lim["last_ms"].items()},
                               tuple(int(t) for t in lim["sent_ms"]), int(lim["suppressed"]),
                               frozenset(map(str, lim["told_down"])), {a.key: a for a in deferred})
        return State(cursor, str(doc["halt"]), frozenset(map(str, doc["down"])),
                     {str(k): int(v) for k, v in doc["stopped"].items()}, limiter)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"alerter state unreadable: {type(exc).__name__}: {exc}") from None


def dump_outbox(outbox: list[Alert]) -> str:
    """The alerts waiting to be delivered, as a JSON list."""
    return orjson.dumps([alert_to_dict(a) for a in outbox]).decode()


def load_outbox(text: str) -> list[Alert]:
    """Inverse of ``dump_outbox``. Raises ValueError when ``text`` is not such a JSON list."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"alerter outbox unreadable: {exc}") from None
    if not isinstance(raw, list):
        raise ValueError(f"alerter outbox is not a list: {text[:200]!r}")
    return [alert_from_dict(a) for a in raw]
