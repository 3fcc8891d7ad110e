"""The paper venue's L2 order, cancel and account routes, with per-signer rate limits.

Paths and shapes: py_clob_client_v2 ``endpoints.py`` and polymarket-client
``polymarket/_internal/actions/orders/{post,cancel}.py`` and ``actions/account.py``. Order routes
(``POST /order``, ``POST /orders``) take tokens from the signer's order bucket, cancel routes from
its cancel bucket (ratelimit.py); their answers carry the ``Poly-RateLimit-*`` headers, and an
empty bucket answers 429 ``{"error", "retry_after_seconds"}`` with ``Retry-After``.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, request

from libs.common import metrics
from services.venue_sim import auth
from services.venue_sim.engine import Engine
from services.venue_sim.orders import OrderReject, open_order_wire
from services.venue_sim.ratelimit import TOO_MANY, RateLimits, TokenBucket
from services.venue_sim.rest_common import (INITIAL_CURSOR, MAX_BATCH, error, json_response, page, parse_json,
                                            private_route)

ASSET_TYPES = ("COLLATERAL", "CONDITIONAL", "CONDITIONAL-V2")  # polymarket models/clob/account.py AssetType


def rate_limits(engine: Engine, clock: Any) -> RateLimits:
    """The venue's buckets from ``engine.exchange`` (config.PaperExchangeSettings), on wall time."""
    ex = engine.exchange
    return RateLimits(ex.order_rate_capacity, ex.order_rate_per_s, ex.cancel_rate_capacity, ex.cancel_rate_per_s,
                      clock.wall_ms)


def limited(bucket: TokenBucket, creds: auth.ApiCreds, tokens: int, answer: Callable[[], Response]) -> Response:
    """Take ``tokens`` from ``creds.address``'s ``bucket``; 429 with ``Retry-After`` when empty,
    else ``answer()`` (an OrderReject becomes its JSON error); rate-limit headers on both."""
    decision = bucket.take(creds.address.lower(), tokens)
    if not decision.allowed:
        metrics.VENUE_RATE_LIMITED.inc()
        response = json_response({"error": TOO_MANY, "retry_after_seconds": decision.retry_after_s}, 429)
    else:
        try:
            response = answer()
        except OrderReject as rej:
            response = error(rej.message, rej.status)
    response.headers.update(decision.headers())
    return response


def _batch(engine: Engine, creds: auth.ApiCreds, bodies: list[Any]) -> Response:
    results = []
    for body in bodies:
        try:
            results.append(engine.place(creds, body))
        except OrderReject as rej:
            results.append({"success": False, "errorMsg": rej.message, "orderID": "", "status": "",
                            "makingAmount": "0", "takingAmount": "0"})
    return json_response(results)


def order_routes(bp: Blueprint, engine: Engine, limits: RateLimits) -> None:
    """L2: ``POST /order``, ``POST /orders`` (<= 15, per-order results, all-or-nothing rate limit),
    ``DELETE /order`` (``{"orderID"}``), ``DELETE /orders`` (ids), ``DELETE /cancel-all``,
    ``DELETE /cancel-market-orders`` (``{"market", "asset_id"}``); cancels answer
    ``{"canceled", "not_canceled"}``."""
    private = private_route(engine)

    @bp.post("/order")
    @private
    def post_order(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True))
        return limited(limits.orders, creds, 1, lambda: json_response(engine.place(creds, body)))

    @bp.post("/orders")
    @private
    def post_orders(creds: auth.ApiCreds) -> Response:
        bodies = parse_json(request.get_data(as_text=True))
        if not isinstance(bodies, list) or not bodies or len(bodies) > MAX_BATCH:
            return error(f"Invalid order payload: expected a list of 1 to {MAX_BATCH} orders", 400)
        return limited(limits.orders, creds, len(bodies), lambda: _batch(engine, creds, bodies))

    @bp.delete("/order")
    @private
    def cancel_order(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True))
        if not isinstance(body, dict) or not isinstance(body.get("orderID"), str):
            return error(f"Invalid order payload: field 'orderID' has bad value {body!r:.80}", 400)
        return limited(limits.cancels, creds, 1, lambda: json_response(engine.cancel(creds.address, [body["orderID"]])))

    @bp.delete("/orders")
    @private
    def cancel_orders(creds: auth.ApiCreds) -> Response:
        ids = parse_json(request.get_data(as_text=True))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(f"Invalid order payload: expected a list of order ids, got {ids!r:.80}", 400)
        return limited(limits.cancels, creds, max(1, len(ids)),
                       lambda: json_response(engine.cancel(creds.address, ids)))

    @bp.delete("/cancel-all")
    @private
    def cancel_all(creds: auth.ApiCreds) -> Response:
        return limited(limits.cancels, creds, 1,
                       lambda: json_response(engine.cancel_where(creds.address, reason="CANCEL_ALL")))

    @bp.delete("/cancel-market-orders")
    @private
    def cancel_market(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True)) or {}
        if not isinstance(body, dict):
            return error(f"Invalid order payload: expected an object, got {body!r:.80}", 400)
        market, asset = str(body.get("market") or ""), str(body.get("asset_id") or "")
        return limited(limits.cancels, creds, 1, lambda: json_response(
            engine.cancel_where(creds.address, market, asset, reason="CANCEL_MARKET")))


def _signature_type() -> int:
    """``signature_type`` query parameter (polymarket actions/account.py sends it); bad/absent = 0."""
    text = request.args.get("signature_type", "0")
    return int(text) if text.lstrip("-").isdigit() else 0


def data_routes(bp: Blueprint, engine: Engine) -> None:
    """L2: ``/data/orders`` and ``/data/trades`` (paged, ``next_cursor`` until "LTE="; the orders and
    trades of the API key's address, any wallet), ``/data/order/<id>``, ``/balance-allowance`` and
    ``/balance-allowance/update`` (GET, same answer: no cache to refresh; the wallet is the one of
    ``signature_type``), ``POST /v1/heartbeats``."""
    private = private_route(engine)

    @bp.get("/data/orders")
    @private
    def open_orders(creds: auth.ApiCreds) -> Response:
        a = request.args
        items = [open_order_wire(o) for o in engine.orders_of(creds.address, live_only=True)
                 if (not a.get("market") or o.market == a["market"])
                 and (not a.get("asset_id") or o.token_id == a["asset_id"]) and (not a.get("id") or o.id == a["id"])]
        return json_response(page(items, a.get("next_cursor", INITIAL_CURSOR)))

    @bp.get("/data/order/<order_id>")
    @private
    def one_order(creds: auth.ApiCreds, order_id: str) -> Response:
        found = [o for o in engine.orders_of(creds.address) if o.id == order_id]
        # UNCONFIRMED: the real answer for an unknown id is not documented; the venue says 404
        return json_response(open_order_wire(found[0])) if found else error("Order not found", 404)

    @bp.get("/data/trades")
    @private
    def trades(creds: auth.ApiCreds) -> Response:
        filters = {k: request.args.get(k, "") for k in ("id", "market", "asset_id", "maker_address", "before", "after")}
        for k in ("before", "after"):
            if filters[k] and not filters[k].isdigit():
                return error(f"invalid {k} {filters[k]!r:.40}: Unix seconds expected", 400)
        items = engine.trades_of(creds.address, filters)
        return json_response(page(items, request.args.get("next_cursor", INITIAL_CURSOR)))

    @bp.get("/balance-allowance")
    @bp.get("/balance-allowance/update")
    @private
    def balance(creds: auth.ApiCreds) -> Response:
        asset_type = request.args.get("asset_type", "COLLATERAL").upper()
        token_id = request.args.get("token_id", "")
        if asset_type not in ASSET_TYPES or (asset_type != "COLLATERAL" and not token_id):
            return error(f"invalid asset_type {asset_type!r:.40} / token_id {token_id!r:.80}", 400)
        token = token_id if asset_type != "COLLATERAL" else ""
        return json_response(engine.balance(creds.address, token, _signature_type()))

    @bp.post("/v1/heartbeats")
    @private
    def heartbeats(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True)) or {}
        hb_id = body.get("heartbeat_id", "") if isinstance(body, dict) else ""
        return json_response(engine.heartbeat(creds.address, str(hb_id or "")))
