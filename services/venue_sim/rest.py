"""CLOB REST API of the paper venue (Flask): every endpoint py_clob_client_v2 calls for books,
market parameters, orders, cancels, balances, heartbeats and API keys (its ``client.py`` and
``endpoints.py`` are the list), plus data-api (``/data-api``), Gamma (``/gamma``) and the
``/_sim`` controls. Every answer is JSON; every rejection is ``{"error": "..."}`` with Polymarket's
status code; unknown paths answer 404 JSON.

Serve it with :func:`make_http_server`: werkzeug's stock request handler DROPS headers whose name
contains "_" (anti-spoofing), and every auth header of the CLOB (``POLY_API_KEY``, ...) has one.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any, Callable

import orjson
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from libs.common.tapes import MarketMeta
from services.venue_sim import auth, data_api, gamma
from services.venue_sim.audit import Audit
from services.venue_sim.engine import Engine
from services.venue_sim.faults import Faults, register_sim
from services.venue_sim.leaders import Leaders
from services.venue_sim.orders import OrderReject, fmt, open_order_wire, overlay_book

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


class PolyHeadersHandler(WSGIRequestHandler):
    """A werkzeug request handler that keeps headers with "_" in their name (``POLY_API_KEY``)."""

    def make_environ(self) -> dict[str, Any]:  # noqa: D102 - see class doc
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value.replace("\r\n", "")
        return environ


def make_http_server(host: str, port: int, app: Flask) -> BaseWSGIServer:
    """A threaded werkzeug server for ``app`` that keeps the CLOB's underscore headers; run it with
    ``serve_forever()`` in a thread and stop it with ``shutdown()``."""
    return make_server(host, port, app, threaded=True, request_handler=PolyHeadersHandler)


def _private(engine: Engine) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
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


def book_summary(engine: Engine, books: Any, meta: MarketMeta, token_id: str, now_ms: int) -> dict[str, Any]:
    """``GET /book`` object: overlay book (tape + our resting orders), bids ascending and asks
    descending (best LAST, polymarket-api.md fact 4), ``timestamp`` ms string and ``hash`` computed
    like py_clob_client_v2 ``utilities.generate_orderbook_summary_hash`` (sha1 of the compact JSON
    with ``hash`` ""), so the client's own hash check agrees."""
    bids, asks = overlay_book(books.tape_levels(token_id), engine.resting_levels(token_id))
    summary = {"market": meta.condition_id, "asset_id": token_id, "timestamp": str(now_ms), "hash": "",
               "bids": [{"price": fmt(p), "size": fmt(s)} for p, s in reversed(bids)],
               "asks": [{"price": fmt(p), "size": fmt(s)} for p, s in reversed(asks)],
               "min_order_size": fmt(meta.min_order_size), "tick_size": fmt(books.tick_size(token_id)),
               "neg_risk": meta.neg_risk, "last_trade_price": gamma.last_trade_price(engine, books, token_id)[0]}
    text = json.dumps(summary, separators=(",", ":"), ensure_ascii=False)
    summary["hash"] = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return summary


def _book_routes(bp: Blueprint, engine: Engine, books: Any, markets: dict[str, MarketMeta], clock: Any) -> None:
    """Public: ``/``, ``/ok``, ``/time`` (wall s), ``/version`` (2), ``/book``, ``POST /books``, ``/price``
    (BUY -> best bid, SELL -> best ask: the OpenAPI reading, polymarket-api.md), ``/midpoint``
    (``{"mid"}``), ``/spread``, ``/last-trade-price`` (``{"price", "side"}``); all on the overlay book."""
    def token_meta(token_id: str | None) -> MarketMeta:
        return gamma.token_meta(markets, books, token_id)

    def body_tokens() -> list[dict[str, Any]]:
        items = parse_json(request.get_data(as_text=True))
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise OrderReject(400, "Invalid payload", "INVALID_PAYLOAD")
        return items

    @bp.get("/")
    @bp.get("/ok")
    def ok() -> Response:
        return json_response("OK")

    @bp.get("/time")
    def server_time() -> Response:
        return json_response(clock.wall_ms() // 1000)

    @bp.get("/version")
    def version() -> Response:
        return json_response({"version": 2})

    @bp.get("/book")
    def book() -> Response:
        token_id = request.args.get("token_id")
        return json_response(book_summary(engine, books, token_meta(token_id), str(token_id), clock.now_ms()))

    @bp.post("/books")
    def many_books() -> Response:
        items = body_tokens()
        return json_response([book_summary(engine, books, token_meta(i.get("token_id")), str(i.get("token_id")),
                                           clock.now_ms()) for i in items])

    @bp.get("/price")
    def price() -> Response:
        token_id, side = request.args.get("token_id"), request.args.get("side", "")
        token_meta(token_id)
        if side not in ("BUY", "SELL"):
            raise OrderReject(400, "Invalid side", "INVALID_SIDE")
        bid, ask = gamma.overlay_top(engine, books, str(token_id))
        value = bid if side == "BUY" else ask  # the OpenAPI reading (polymarket-api.md /price note)
        return json_response({"price": fmt(value) if value is not None else ""})

    @bp.get("/midpoint")
    def midpoint() -> Response:
        token_id = request.args.get("token_id")
        token_meta(token_id)
        bid, ask = gamma.overlay_top(engine, books, str(token_id))
        return json_response({"mid": fmt((bid + ask) / 2) if bid is not None and ask is not None else ""})

    @bp.get("/spread")
    def spread() -> Response:
        token_id = request.args.get("token_id")
        token_meta(token_id)
        bid, ask = gamma.overlay_top(engine, books, str(token_id))
        return json_response({"spread": fmt(ask - bid) if bid is not None and ask is not None else ""})

    @bp.get("/last-trade-price")
    def last_trade() -> Response:
        token_id = request.args.get("token_id")
        token_meta(token_id)
        price_text, side = gamma.last_trade_price(engine, books, str(token_id))
        return json_response({"price": price_text, "side": side})


def _order_routes(bp: Blueprint, engine: Engine) -> None:
    """L2: ``POST /order``, ``POST /orders`` (<= 15, per-order results), ``DELETE /order``
    (``{"orderID"}``), ``DELETE /orders`` (ids), ``DELETE /cancel-all``, ``DELETE /cancel-market-orders``
    (``{"market", "asset_id"}``); cancels answer ``{"canceled", "not_canceled"}``."""
    private = _private(engine)

    @bp.post("/order")
    @private
    def post_order(creds: auth.ApiCreds) -> Response:
        return json_response(engine.place(creds, parse_json(request.get_data(as_text=True))))

    @bp.post("/orders")
    @private
    def post_orders(creds: auth.ApiCreds) -> Response:
        bodies = parse_json(request.get_data(as_text=True))
        if not isinstance(bodies, list) or not bodies or len(bodies) > MAX_BATCH:
            return error(f"Invalid order payload: expected a list of 1 to {MAX_BATCH} orders", 400)
        results = []
        for body in bodies:
            try:
                results.append(engine.place(creds, body))
            except OrderReject as rej:
                results.append({"success": False, "errorMsg": rej.message, "orderID": "", "status": "",
                                "makingAmount": "0", "takingAmount": "0"})
        return json_response(results)

    @bp.delete("/order")
    @private
    def cancel_order(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True))
        if not isinstance(body, dict) or not isinstance(body.get("orderID"), str):
            return error(f"Invalid order payload: field 'orderID' has bad value {body!r:.80}", 400)
        return json_response(engine.cancel(creds.address, [body["orderID"]]))

    @bp.delete("/orders")
    @private
    def cancel_orders(creds: auth.ApiCreds) -> Response:
        ids = parse_json(request.get_data(as_text=True))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(f"Invalid order payload: expected a list of order ids, got {ids!r:.80}", 400)
        return json_response(engine.cancel(creds.address, ids))

    @bp.delete("/cancel-all")
    @private
    def cancel_all(creds: auth.ApiCreds) -> Response:
        return json_response(engine.cancel_where(creds.address, reason="CANCEL_ALL"))

    @bp.delete("/cancel-market-orders")
    @private
    def cancel_market(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True)) or {}
        if not isinstance(body, dict):
            return error(f"Invalid order payload: expected an object, got {body!r:.80}", 400)
        return json_response(engine.cancel_where(creds.address, str(body.get("market") or ""),
                                                 str(body.get("asset_id") or ""), reason="CANCEL_MARKET"))


def _data_routes(bp: Blueprint, engine: Engine) -> None:
    """L2: ``/data/orders`` and ``/data/trades`` (paged, ``next_cursor`` until "LTE="),
    ``/data/order/<id>``, ``/balance-allowance`` and ``/balance-allowance/update`` (GET, same answer:
    there is no cache to refresh), ``POST /v1/heartbeats``."""
    private = _private(engine)

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
        filters = {k: request.args.get(k, "") for k in ("id", "market", "asset_id", "before", "after")}
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
        if asset_type not in ("COLLATERAL", "CONDITIONAL") or (asset_type == "CONDITIONAL" and not token_id):
            return error(f"invalid asset_type {asset_type!r:.40} / token_id {token_id!r:.80}", 400)
        return json_response(engine.balance(creds.address, token_id if asset_type == "CONDITIONAL" else ""))

    @bp.post("/v1/heartbeats")
    @private
    def heartbeats(creds: auth.ApiCreds) -> Response:
        body = parse_json(request.get_data(as_text=True)) or {}
        hb_id = body.get("heartbeat_id", "") if isinstance(body, dict) else ""
        return json_response(engine.heartbeat(creds.address, str(hb_id or "")))


def _key_routes(bp: Blueprint, engine: Engine) -> None:
    """L1: ``POST /auth/api-key``, ``GET /auth/derive-api-key`` (same deterministic creds); L2:
    ``GET /auth/api-keys``, ``GET /auth/ban-status/closed-only``, ``DELETE /auth/api-key``."""
    private = _private(engine)

    def l1() -> Response:
        try:
            address, nonce = auth.verify_l1(request.headers)
        except auth.AuthError as exc:
            log.info("event L1_AUTH_FAILED address=%s", request.headers.get("POLY_ADDRESS", ""))
            return error(exc.message, exc.status)
        return json_response(engine.register_key(address, nonce).wire())

    bp.add_url_rule("/auth/api-key", "create_api_key", l1, methods=["POST"])
    bp.add_url_rule("/auth/derive-api-key", "derive_api_key", l1, methods=["GET"])

    @bp.get("/auth/api-keys")
    @private
    def api_keys(creds: auth.ApiCreds) -> Response:
        return json_response({"apiKeys": engine.keys.keys_of(creds.address)})

    @bp.get("/auth/ban-status/closed-only")
    @private
    def closed_only(creds: auth.ApiCreds) -> Response:
        return json_response({"closed_only": False})

    @bp.delete("/auth/api-key")
    @private
    def delete_api_key(creds: auth.ApiCreds) -> Response:
        engine.keys.delete(creds.api_key)
        return json_response("OK")


def _install_errors(app: Flask) -> None:
    """HTTP errors and rejections as ``{"error"}`` JSON; anything else is logged and answers 500."""
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(OrderReject)
    def rejected(rej: OrderReject) -> Response:
        return error(rej.message, rej.status)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        log.exception("event VENUE_INTERNAL_ERROR path=%s err=%s", request.path, exc)
        return error("Internal server error", 500)


def create_app(engine: Engine, books: Any, markets: dict[str, MarketMeta], leaders: Leaders, clock: Any,
               faults: Faults, audit: Audit) -> Flask:
    """The venue's Flask app: CLOB REST at ``/``, data-api at ``/data-api``, Gamma at ``/gamma``,
    ``/_sim`` controls (faults.py). ``books`` is the BookView, ``markets`` MarketMeta by token id,
    ``clock`` gives ``now_ms`` (market) and ``wall_ms``."""
    app = Flask("venue_sim")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    clob = Blueprint("clob", __name__)
    _book_routes(clob, engine, books, markets, clock)
    gamma.register_market_info(clob, engine, books, markets, clock)
    _order_routes(clob, engine)
    _data_routes(clob, engine)
    _key_routes(clob, engine)
    register_sim(app, engine, leaders, faults, audit)
    app.register_blueprint(clob)
    app.register_blueprint(data_api.blueprint(engine, books, markets, leaders, clock), url_prefix="/data-api")
    app.register_blueprint(gamma.blueprint(engine, books, markets, clock), url_prefix="/gamma")
    _install_errors(app)
    return app
