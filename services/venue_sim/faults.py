"""Fault injection and the core ``/_sim`` controls of the paper venue (docs/contracts.md "Paper venue").

``POST /_sim/fault {"path": "/order", "method": "POST", "status": 429, "count": n, "body": {...}}``
makes the next ``n`` requests matching ``path`` (exact request path, or "*" for any) and ``method``
("" or "*" for any) answer ``status`` with ``body`` (default ``{"error": <status phrase>}``), before
auth or any other processing: a 429 or 5xx seen by the real client. ``/_sim/*`` paths are never
faulted. ``GET /_sim/state`` shows accounts, open orders, counts, leaders and pending faults;
``GET /_sim/orders`` lists every order including final ones.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request

from services.venue_sim.orders import open_order_wire

log = logging.getLogger(__name__)


@dataclass
class Fault:
    """``count`` more answers of ``status``/``body`` for requests matching ``path`` and ``method``."""

    path: str
    method: str
    status: int
    count: int
    body: Any

    def matches(self, path: str, method: str) -> bool:
        """Whether a request ``method path`` is hit by this fault."""
        return self.path in ("*", path) and self.method in ("", "*", method.upper())


def parse_fault(body: Any) -> Fault:
    """A Fault from a ``POST /_sim/fault`` body.

    Raises:
        ValueError: naming the bad field and its value, e.g. ``field 'status' has bad value 99``.
    """
    if not isinstance(body, dict):
        raise ValueError(f"body must be a JSON object, got {body!r:.80}")
    path, method = body.get("path"), body.get("method", "")
    status, count = body.get("status"), body.get("count", 1)
    if not isinstance(path, str) or not (path == "*" or path.startswith("/")):
        raise ValueError(f"field 'path' has bad value {path!r:.80}")
    if not isinstance(method, str):
        raise ValueError(f"field 'method' has bad value {method!r:.80}")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f"field 'status' has bad value {status!r:.80}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"field 'count' has bad value {count!r:.80}")
    default = {"error": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "fault"}
    return Fault(path, method.upper(), status, count, body.get("body", default))


class Faults:
    """Thread-safe list of pending faults; the oldest matching fault answers first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.served = 0

    def add(self, fault: Fault) -> None:
        """Queue ``fault``."""
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str, method: str) -> Fault | None:
        """Consume one answer of the first fault matching the request, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    self.served += 1
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """Faults not yet used up."""
        with self._lock:
            return [asdict(f) for f in self._faults]


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def register_sim(app: Flask, engine: Any, leaders: Any, faults: Faults, audit: Any) -> None:
    """Install the fault hook on ``app`` and the ``/_sim/fault``, ``/_sim/state``, ``/_sim/orders``
    routes (venue-ws adds ``/_sim/ws/*`` in controls.py)."""
    @app.before_request
    def inject() -> Response | None:
        if request.path.startswith("/_sim/"):
            return None
        fault = faults.take(request.path, request.method)
        if fault is None:
            return None
        log.info("event FAULT_INJECTED path=%s method=%s status=%d", request.path, request.method, fault.status)
        return _json(fault.body, fault.status)

    bp = Blueprint("sim_core", __name__)

    @bp.post("/_sim/fault")
    def add_fault() -> Response:
        try:
            fault = parse_fault(orjson.loads(request.get_data() or b"null"))
        except (ValueError, orjson.JSONDecodeError) as exc:
            log.warning("event BAD_FAULT_REQUEST err=%s", exc)
            return _json({"error": str(exc)}, 400)
        faults.add(fault)
        return _json({"ok": True, "fault": asdict(fault)})

    @bp.get("/_sim/state")
    def state() -> Response:
        return _json({"now_ms": engine.clock.now_ms(), "wall_ms": engine.clock.wall_ms(),
                      "accounts": engine.accounts_view(),
                      "open_orders": [open_order_wire(o) for o in engine.orders_of(live_only=True)],
                      "counts": {**engine.counts(), "audit": dict(audit.counts), "faults_served": faults.served},
                      "leaders": leaders.describe(), "faults": faults.pending()})

    @bp.get("/_sim/orders")
    def all_orders() -> Response:
        return _json([{**open_order_wire(o), "cancel_reason": o.cancel_reason, "post_only": o.post_only}
                      for o in engine.orders_of()])

    app.register_blueprint(bp)
