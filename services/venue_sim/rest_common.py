"""Shared pieces of the paper venue's REST modules: JSON answers, Polymarket's error shape, body
parsing, cursor pages and the L2-authenticated route decorator (auth.py)."""
from __future__ import annotations

import base64
import logging
from typing import Any, Callable

import orjson
from flask import Response, request

from services.venue_sim import auth
from services.venue_sim.engine import Engine
from services.venue_sim.orders import OrderReject

log = logging.getLogger(__name__)

INITIAL_CURSOR, END_CURSOR = "MA==", "LTE="  # py_clob_client_v2 constants.py
PAGE_SIZE = 100  # orders/trades per /data page
MAX_BATCH = 15  # POST /orders limit (reference/polymarket-api.md "Other order endpoints")


def json_response(obj: Any, status: int = 200) -> Response:
    """``obj`` as a JSON response (orjson)."""
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def error(message: str, status: int) -> Response:
    """Polymarket's error shape ``{"error": message}`` with ``status``."""
    return json_response({"error": message}, status)


def parse_json(text: str) -> Any:
    """Body JSON, or raise OrderReject 400 "Invalid order payload" naming the bad text."""
    try:
        return orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        raise OrderReject(400, f"Invalid order payload: body is not JSON: {text[:80]!r}",
                          "INVALID_ORDER_PAYLOAD") from None


def page(items: list[Any], cursor: str) -> dict[str, Any]:
    """One page of ``items`` for cursor ``cursor`` (base64 of the offset; "MA==" = 0; the last page
    answers ``next_cursor`` "LTE=", which ends the client's loop)."""
    try:
        offset = int(base64.b64decode(cursor or INITIAL_CURSOR).decode())
    except (ValueError, UnicodeDecodeError):
        offset = 0
    chunk = items[max(offset, 0): max(offset, 0) + PAGE_SIZE]
    following = max(offset, 0) + PAGE_SIZE
    next_cursor = base64.b64encode(str(following).encode()).decode() if following < len(items) else END_CURSOR
    return {"data": chunk, "next_cursor": next_cursor, "limit": PAGE_SIZE, "count": len(chunk)}


def private_route(engine: Engine) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorator: check L2 auth, pass the ApiCreds first; OrderReject/AuthError become JSON errors."""
    def wrap(fn: Callable[..., Response]) -> Callable[..., Response]:
        def inner(*args: Any, **kwargs: Any) -> Response:
            body = request.get_data(as_text=True) or None
            try:
                creds = auth.verify_l2(request.headers, request.method, request.path, body, engine.keys)
                return fn(creds, *args, **kwargs)
            except auth.AuthError as exc:
                log.info("event AUTH_FAILED path=%s address=%s", request.path, request.headers.get("POLY_ADDRESS", ""))
                return error(exc.message, exc.status)
            except OrderReject as rej:
                return error(rej.message, rej.status)
        inner.__name__ = fn.__name__
        return inner
    return wrap
