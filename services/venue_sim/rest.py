"""CLOB REST API of the paper venue (Flask): every endpoint py_clob_client_v2 and polymarket-client's
``SecureClient`` call for books, market parameters, orders, cancels, balances, heartbeats and API
keys (py_clob_client_v2 ``client.py``/``endpoints.py``; polymarket ``_internal/actions/*``), plus
data-api (``/data-api``), Gamma (``/gamma``), the relayer's ``/relayer/deployed`` (relayer.py) and
the ``/_sim`` controls. Orders, cancels and private reads live in rest_orders.py, shared helpers in
rest_common.py. Every answer is JSON; every rejection is ``{"error": "..."}`` with Polymarket's
status code; unknown paths answer 404 JSON.

Serve it with :func:`make_http_server`: werkzeug's stock request handler DROPS headers whose name
contains "_" (anti-spoofing), and every auth header of the CLOB (``POLY_API_KEY``, ...) has one.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Callable

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from libs.common import metrics
from libs.common.tapes import MarketMeta
from services.venue_sim import auth, data_api, gamma, relayer
from services.venue_sim import chain, relayer_tx  # redemption: JSON-RPC /rpc, relayer transactions
from services.venue_sim.audit import Audit
from services.venue_sim.engine import Engine
from services.venue_sim.faults import Faults, register_sim
from services.venue_sim.leaders import Leaders
from services.venue_sim.orders import OrderReject, fmt, overlay_book
from services.venue_sim.rest_common import (END_CURSOR, INITIAL_CURSOR, PAGE_SIZE, error,  # noqa: F401 - re-exported
                                            json_response, page, parse_json, private_route)
from services.venue_sim.rest_orders import data_routes, order_routes, rate_limits

log = logging.getLogger(__name__)


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


def _key_routes(bp: Blueprint, engine: Engine) -> None:
    """L1: ``POST /auth/api-key``, ``GET /auth/derive-api-key`` (same deterministic creds); L2:
    ``GET /auth/api-keys``, ``GET /auth/ban-status/closed-only``, ``DELETE /auth/api-key``."""
    private = private_route(engine)

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
               faults: Faults, audit: Audit, resolver: Callable[[str, str], None] | None = None) -> Flask:
    """The venue's Flask app: CLOB REST at ``/``, data-api at ``/data-api``, Gamma at ``/gamma``,
    relayer ``/relayer/deployed``, ``/_sim`` controls (faults.py). Rate limits come from
    ``engine.exchange`` (config.PaperExchangeSettings). ``books`` is the BookView, ``markets``
    MarketMeta by token id, ``clock`` gives ``now_ms`` (market) and ``wall_ms``."""
    app = Flask("venue_sim")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _count() -> None:  # pb_venue_http_requests_total: REST load per route (bench/scale.py)
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.VENUE_HTTP.labels(request.method, rule).inc()

    clob = Blueprint("clob", __name__)
    _book_routes(clob, engine, books, markets, clock)
    gamma.register_market_info(clob, engine, books, markets, clock)
    order_routes(clob, engine, rate_limits(engine, clock))
    data_routes(clob, engine)
    _key_routes(clob, engine)
    register_sim(app, engine, leaders, faults, audit)
    app.register_blueprint(clob)
    app.register_blueprint(data_api.blueprint(engine, books, markets, leaders, clock), url_prefix="/data-api")
    app.register_blueprint(gamma.blueprint(engine, books, markets, clock), url_prefix="/gamma")
    app.register_blueprint(relayer.blueprint(engine), url_prefix="/relayer")
    app.register_blueprint(relayer_tx.blueprint(engine, clock), url_prefix="/relayer")
    app.register_blueprint(chain.blueprint(engine, clock, resolver=resolver))  # /rpc and /_sim/resolve
    _install_errors(app)
    return app
