"""Market metadata of the paper venue: the Gamma API (``/gamma/markets``) and the CLOB's market-info
endpoints (``/tick-size``, ``/neg-risk``, ``/fee-rate``, ``/clob-markets/{condition_id}``,
``/markets``, ``/markets/{condition_id}``, ``/markets-by-token/{token_id}``) for the tape's markets.

Shapes follow reference/polymarket-api.md 1.3 and 1.5 and the real Gamma object in
/work/shared/data/fixtures-nautilus/schema_examples/gamma_market.json: ``clobTokenIds``,
``outcomes`` and ``outcomePrices`` are STRINGS holding JSON; ``orderMinSize`` and
``orderPriceMinTickSize`` are numbers. A market is ``closed`` once its ``end_ms`` has passed at the
current replay time. The compact ``/clob-markets`` object (``c, t[{t, o}], mts, mos, nr, fd{r, e,
to}``) is what py_clob_client_v2 ``get_clob_market_info`` reads (it indexes ``t``, ``mts``).
Fees come from the market's ``fee_schedule`` (libs/common/fees.py; markets.json): the Gamma market
has ``feesEnabled`` and, when enabled, ``feeSchedule {rate, exponent, takerOnly, rebateRate}`` (JSON
numbers and a bool, as in fixtures-nautilus gamma_market_sports_market_money_line.json); the compact
``/clob-markets`` object has ``fd {r: rate, e: exponent, to: takerOnly}`` (what polymarket-client
``_parse_platform_fee_info`` reads, polymarket/_internal/actions/orders/market_data.py); ``/fee-rate``
answers ``{"base_fee": rate x 10000}`` (bps, an int). ``takerBaseFee``/``makerBaseFee`` (and the CLOB's
snake_case pair) carry the same bps, the maker's 0 on a ``takerOnly`` market: the venue's own mapping
(real fee markets show a legacy 1000 there, unrelated to the fee formula). No schedule = all 0.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from flask import Blueprint, Response, request

from libs.common.fees import FeeSchedule
from libs.common.tapes import MarketMeta
from services.venue_sim.orders import OrderReject, fmt, overlay_book
from services.venue_sim.redeem import payout_per_share, resolutions_for

log = logging.getLogger(__name__)

NEUTRAL_LAST_TRADE = "0.5"  # UNCONFIRMED default when neither the tape nor our fills gave a last trade


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def number(value: Decimal) -> int | float:
    """A Decimal as a JSON number for fields Polymarket sends as numbers (display only, no math)."""
    return int(value) if value == value.to_integral_value() else float(value)


def iso(ms: int) -> str:
    """Unix ms -> ``2026-02-17T20:10:00Z``."""
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_meta(markets: dict[str, MarketMeta], books: Any, token_id: str | None) -> MarketMeta:
    """The market of a known token.

    Raises:
        OrderReject: 400 "Invalid token id" (missing or not a decimal string), 404 "No orderbook
            exists for the requested token id" (docs.polymarket.com/resources/error-codes, GET book).
    """
    if not token_id or not str(token_id).isdigit():
        raise OrderReject(400, "Invalid token id", "INVALID_TOKEN_ID")
    if token_id not in markets or not books.known(token_id):
        raise OrderReject(404, "No orderbook exists for the requested token id", "NO_ORDERBOOK")
    return markets[token_id]


def last_trade_price(engine: Any, books: Any, token_id: str) -> tuple[str, str]:
    """(price, taker side) of the last trade: our last fill, else the tape's (when ``books`` has
    ``state(token_id).last_trade_price``, as services/venue_sim/books.py does), else "0.5" and ""."""
    ours = engine.last_trade(token_id)
    if ours is not None:
        return fmt(ours[0]), ours[1]
    state = books.state(token_id) if callable(getattr(books, "state", None)) else None
    text = str(getattr(state, "last_trade_price", "") or "")
    try:
        return (text if text and Decimal(text).is_finite() else NEUTRAL_LAST_TRADE), ""
    except InvalidOperation:
        log.warning("event BAD_TAPE_LAST_TRADE token_id=%s value=%r", token_id, text[:40])
        return NEUTRAL_LAST_TRADE, ""


def overlay_top(engine: Any, books: Any, token_id: str) -> tuple[Decimal | None, Decimal | None]:
    """Best bid and best ask of the venue's book (tape + our resting orders); None = empty side."""
    bids, asks = overlay_book(books.tape_levels(token_id), engine.resting_levels(token_id))
    return (bids[0][0] if bids else None), (asks[0][0] if asks else None)


def token_price(engine: Any, books: Any, token_id: str) -> Decimal:
    """Display price of a token: the overlay mid when both sides exist, else the last trade price."""
    bid, ask = overlay_top(engine, books, token_id)
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return Decimal(last_trade_price(engine, books, token_id)[0])


def winner_of(engine: Any, condition_id: str) -> str | None:
    """The resolved winner of ``condition_id`` (redeem.py registry): token id, "" = no winner, None =
    unresolved (also for an engine the registry cannot key, e.g. a test double without weakrefs)."""
    try:
        return resolutions_for(engine).winner(condition_id)
    except TypeError:
        return None


def fee_bps(schedule: FeeSchedule) -> tuple[int, int]:
    """(taker, maker) base fee in bps of a schedule (module doc)."""
    taker = int((schedule.rate * 10000).to_integral_value())
    return taker, 0 if schedule.taker_only else taker


def gamma_fees(schedule: FeeSchedule) -> dict[str, Any]:
    """Gamma's fee fields of a market: ``feesEnabled``, ``feeSchedule`` (only when enabled),
    ``takerBaseFee``, ``makerBaseFee`` (module doc)."""
    taker, maker = fee_bps(schedule)
    out: dict[str, Any] = {"feesEnabled": schedule.rate > 0, "makerBaseFee": maker, "takerBaseFee": taker}
    if schedule.rate > 0:
        out["feeSchedule"] = {"rate": number(schedule.rate), "exponent": schedule.exponent,
                              "takerOnly": schedule.taker_only, "rebateRate": number(schedule.rebate_rate)}
    return out


def gamma_market(meta: MarketMeta, engine: Any, books: Any, now_ms: int) -> dict[str, Any]:
    """One Gamma ``Market`` object (real field names and types) at market time ``now_ms``.

    ``version`` is "v1" (CTF market: polymarket-client ``normalize_market_position_context``,
    polymarket/_internal/actions/relayer/positions.py, then redeems through the collateral adapter
    chosen by ``negRisk``). A market is ``closed`` once ended or resolved; when resolved,
    ``umaResolutionStatus`` is "resolved" and ``outcomePrices`` are the payouts (redeem.py)."""
    first = meta.token_ids[0]
    bid, ask = overlay_top(engine, books, first)
    winner = winner_of(engine, meta.condition_id)
    closed = now_ms >= meta.end_ms or winner is not None
    prices = ([fmt(payout_per_share(meta, winner, t)) for t in meta.token_ids] if winner is not None
              else [fmt(token_price(engine, books, t)) for t in meta.token_ids])
    return {"id": str(int(meta.condition_id[2:18], 16)) if meta.condition_id.startswith("0x") else meta.condition_id,
            "version": "v1", "umaResolutionStatus": "resolved" if winner is not None else "",
            "question": meta.question, "conditionId": meta.condition_id, "slug": meta.slug,
            "questionID": meta.condition_id, "description": "", "icon": "", "image": "",
            "startDate": iso(meta.start_ms), "eventStartTime": iso(meta.start_ms), "endDate": iso(meta.end_ms),
            "endDateIso": iso(meta.end_ms)[:10], "startDateIso": iso(meta.start_ms)[:10],
            "active": True, "closed": closed, "archived": False, "acceptingOrders": not closed,
            "enableOrderBook": True, "clobTokenIds": json.dumps(list(meta.token_ids)),
            "outcomes": json.dumps(list(meta.outcomes)), "outcomePrices": json.dumps(prices),
            "orderMinSize": number(meta.min_order_size),
            "orderPriceMinTickSize": number(books.tick_size(first)), "negRisk": meta.neg_risk,
            "negRiskOther": False, "bestBid": number(bid) if bid is not None else None,
            "bestAsk": number(ask) if ask is not None else None,
            "spread": number(ask - bid) if bid is not None and ask is not None else None,
            "lastTradePrice": number(Decimal(last_trade_price(engine, books, first)[0])),
            "volume": "0", "liquidity": "0", **gamma_fees(meta.fee_schedule)}


def clob_market(meta: MarketMeta, engine: Any, books: Any, now_ms: int) -> dict[str, Any]:
    """The CLOB's snake_case market object (``GET /markets/{condition_id}``)."""
    closed = now_ms >= meta.end_ms
    tokens = [{"token_id": t, "outcome": o, "price": number(token_price(engine, books, t)), "winner": False}
              for t, o in zip(meta.token_ids, meta.outcomes)]
    return {"enable_order_book": True, "active": True, "closed": closed, "archived": False,
            "accepting_orders": not closed, "accepting_order_timestamp": iso(meta.start_ms),
            "minimum_order_size": number(meta.min_order_size),
            "minimum_tick_size": number(books.tick_size(meta.token_ids[0])), "condition_id": meta.condition_id,
            "question_id": meta.condition_id, "question": meta.question, "description": "",
            "market_slug": meta.slug, "end_date_iso": iso(meta.end_ms), "game_start_time": None,
            "seconds_delay": 0, "fpmm": "", "maker_base_fee": fee_bps(meta.fee_schedule)[1],
            "taker_base_fee": fee_bps(meta.fee_schedule)[0],
            "notifications_enabled": False, "neg_risk": meta.neg_risk, "neg_risk_market_id": "",
            "neg_risk_request_id": "", "icon": "", "image": "",
            "rewards": {"rates": None, "min_size": 0, "max_spread": 0}, "is_50_50_outcome": False,
            "tokens": tokens, "tags": []}


def clob_fee_info(schedule: FeeSchedule) -> dict[str, Any]:
    """The ``/clob-markets`` ``fd`` object: ``r`` rate, ``e`` exponent (0 and 0 without fees, as
    before), ``to`` takerOnly (module doc)."""
    if schedule.rate == 0:
        return {"r": 0, "e": 0, "to": True}
    return {"r": number(schedule.rate), "e": schedule.exponent, "to": schedule.taker_only}


def _multi(name: str) -> set[str]:
    """Values of a query parameter given repeated and/or comma-separated (``a,b`` or ``[]`` suffix)."""
    values = request.args.getlist(name) + request.args.getlist(name + "[]")
    return {v.strip() for raw in values for v in raw.split(",") if v.strip()}


def register_market_info(bp: Blueprint, engine: Any, books: Any, markets: dict[str, MarketMeta], clock: Any) -> None:
    """Add the CLOB market-info endpoints to ``bp``."""
    conditions = {m.condition_id: m for m in markets.values()}

    def condition(condition_id: str) -> MarketMeta:
        if condition_id not in conditions:
            raise OrderReject(404, "market not found", "MARKET_NOT_FOUND")  # UNCONFIRMED wording
        return conditions[condition_id]

    @bp.get("/tick-size")
    def tick_size() -> Response:
        token_id = request.args.get("token_id")
        token_meta(markets, books, token_id)
        return _json({"minimum_tick_size": number(books.tick_size(str(token_id)))})

    @bp.get("/neg-risk")
    def neg_risk() -> Response:
        return _json({"neg_risk": token_meta(markets, books, request.args.get("token_id")).neg_risk})

    @bp.get("/fee-rate")
    def fee_rate() -> Response:
        meta = token_meta(markets, books, request.args.get("token_id"))
        return _json({"base_fee": fee_bps(meta.fee_schedule)[0]})

    @bp.get("/clob-markets/<condition_id>")
    def clob_market_info(condition_id: str) -> Response:
        meta = condition(condition_id)
        return _json({"c": meta.condition_id, "t": [{"t": t, "o": o} for t, o in zip(meta.token_ids, meta.outcomes)],
                      "mts": number(books.tick_size(meta.token_ids[0])), "mos": number(meta.min_order_size),
                      "nr": meta.neg_risk, "fd": clob_fee_info(meta.fee_schedule)})

    @bp.get("/markets")
    def clob_markets() -> Response:
        data = [clob_market(m, engine, books, clock.now_ms()) for m in conditions.values()]
        return _json({"data": data, "next_cursor": "LTE=", "limit": len(data), "count": len(data)})

    @bp.get("/markets/<condition_id>")
    def one_market(condition_id: str) -> Response:
        return _json(clob_market(condition(condition_id), engine, books, clock.now_ms()))

    @bp.get("/markets-by-token/<token_id>")
    def market_by_token(token_id: str) -> Response:
        meta = token_meta(markets, books, token_id)
        return _json({"condition_id": meta.condition_id, "primary_token_id": meta.token_ids[0],
                      "secondary_token_id": meta.token_ids[-1]})


def blueprint(engine: Any, books: Any, markets: dict[str, MarketMeta], clock: Any) -> Blueprint:
    """Gamma ``GET /markets?clob_token_ids=&condition_ids=&slug=&closed=&limit=&offset=`` (JSON array).

    Filters take repeated or comma-separated values. Unlike Gamma's default ``closed=false``, closed
    markets are served unless ``closed`` is given, so a lookup by id always finds an ended market
    and sees ``closed: true`` (documented deviation).
    """
    bp = Blueprint("gamma", __name__)
    conditions = {m.condition_id: m for m in markets.values()}

    @bp.get("/markets")
    def gamma_markets() -> Response:
        tokens, cids, slugs = _multi("clob_token_ids"), _multi("condition_ids"), _multi("slug")
        closed = request.args.get("closed")
        now = clock.now_ms()
        rows = [gamma_market(m, engine, books, now) for m in conditions.values()
                if (not tokens or tokens & set(m.token_ids)) and (not cids or m.condition_id in cids)
                and (not slugs or m.slug in slugs)]
        if closed in ("true", "false"):
            rows = [r for r in rows if r["closed"] == (closed == "true")]
        try:
            offset, limit = int(request.args.get("offset", 0)), int(request.args.get("limit", 500))
        except ValueError:
            shown = f"{request.args.get('limit')!r:.40}/{request.args.get('offset')!r:.40}"
            return _json({"error": f"invalid limit/offset {shown}"}, 422)
        return _json(rows[max(offset, 0): max(offset, 0) + max(limit, 0)])

    @bp.get("/markets/keyset")
    def gamma_markets_keyset() -> Response:
        """polymarket-client ``list_markets`` (polymarket/_internal/actions/gamma.py ``list_markets_spec``):
        ``{"markets": [...], "next_cursor"}`` (absent on the last page); filters ``condition_ids``,
        ``clob_token_ids``, ``slug``, ``id``, ``closed``, ``version``; ``limit`` and ``after_cursor``."""
        try:
            limit, offset = int(request.args.get("limit", 20)), int(request.args.get("after_cursor") or 0)
        except ValueError:
            shown = f"{request.args.get('limit')!r:.40}/{request.args.get('after_cursor')!r:.40}"
            return _json({"error": f"invalid limit/after_cursor {shown}"}, 422)
        rows = _keyset_rows(conditions, engine, books, clock.now_ms())
        chunk = rows[max(offset, 0): max(offset, 0) + max(limit, 1)]
        more = max(offset, 0) + max(limit, 1) < len(rows)
        return _json({"markets": chunk, **({"next_cursor": str(offset + max(limit, 1))} if more else {})})

    return bp


def _keyset_rows(conditions: dict[str, MarketMeta], engine: Any, books: Any, now: int) -> list[dict[str, Any]]:
    """Gamma rows matching the request's keyset filters (repeated or comma-separated values)."""
    tokens, cids, slugs, ids = _multi("clob_token_ids"), _multi("condition_ids"), _multi("slug"), _multi("id")
    versions, closed = _multi("version"), request.args.get("closed")
    if versions and "v1" not in versions:
        return []
    rows = [gamma_market(m, engine, books, now) for m in conditions.values()
            if (not tokens or tokens & set(m.token_ids)) and (not cids or m.condition_id.lower() in
                                                               {c.lower() for c in cids})
            and (not slugs or m.slug in slugs)]
    rows = [r for r in rows if not ids or r["id"] in ids]
    if closed in ("true", "false"):
        rows = [r for r in rows if r["closed"] == (closed == "true")]
    return rows
