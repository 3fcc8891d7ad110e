"""Data-API of the paper venue under ``/data-api`` (reference/polymarket-api.md 1.4).

- ``GET /trades?user=&limit=&offset=&takerOnly=&side=&market=``: the leader rows visible at the
  current replay time (leaders.py), NEWEST FIRST as the real API, as a JSON array of data-api
  ``/trades`` rows. ``limit`` defaults to 100 (max 10000), ``offset`` to 0 (max 10000); beyond
  -> 400. ``user`` matches ``proxyWallet`` case-insensitively; ``side`` BUY|SELL; ``market`` is a
  comma-separated list of condition ids. ``takerOnly`` (Polymarket default true) is accepted but
  has no effect: leader files carry no maker/taker flag, so the venue serves every row either way.
- ``GET /positions?user=&sizeThreshold=&limit=&offset=``: the venue's own accounts (our
  positions) in the real ``/positions`` shape, priced at the overlay mid of the venue's book.
Error wording of this API is UNCONFIRMED (venue's own ``{"error": ...}`` texts, status 400).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from flask import Blueprint, Response, request

from libs.common.tapes import MarketMeta
from services.venue_sim.accounts import Holding
from services.venue_sim.gamma import iso, number, token_price

MAX_LIMIT = 10_000
MAX_OFFSET = 10_000
MAX_POSITIONS_LIMIT = 500


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _int_param(name: str, default: int, maximum: int) -> int:
    """Query parameter ``name`` as an int in [0, maximum]; raises ValueError naming it and its value."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise ValueError(f"invalid {name} {raw!r:.40}: an integer from 0 to {maximum} is expected")
    return int(raw)


def filter_trades(rows: list[dict[str, Any]], user: str, side: str, markets: set[str]) -> list[dict[str, Any]]:
    """Rows of ``user`` (any case; "" = everyone), ``side`` ("" = both) and ``markets`` (empty = all)."""
    user = user.lower()
    return [r for r in rows
            if (not user or str(r.get("proxyWallet", "")).lower() == user)
            and (not side or r.get("side") == side)
            and (not markets or r.get("conditionId") in markets)]


def position_row(address: str, token_id: str, h: Holding, meta: MarketMeta, price: Decimal) -> dict[str, Any]:
    """One ``/positions`` row (real field names; amounts as JSON numbers, display only)."""
    index = meta.token_ids.index(token_id)
    other = (index + 1) % len(meta.token_ids)
    initial = h.cost
    current = h.shares * price
    pnl = current - initial
    return {"proxyWallet": address, "asset": token_id, "conditionId": meta.condition_id,
            "size": number(h.shares), "avgPrice": number(h.avg_price), "initialValue": number(initial),
            "currentValue": number(current), "cashPnl": number(pnl),
            "percentPnl": number(pnl / initial * 100) if initial else 0, "totalBought": number(h.bought),
            "realizedPnl": number(h.realized), "percentRealizedPnl": 0, "curPrice": number(price),
            "redeemable": False, "mergeable": False, "title": meta.question, "slug": meta.slug, "icon": "",
            "eventSlug": meta.slug, "outcome": meta.outcomes[index], "outcomeIndex": index,
            "oppositeOutcome": meta.outcomes[other], "oppositeAsset": meta.token_ids[other],
            "endDate": iso(meta.end_ms)[:10], "negativeRisk": meta.neg_risk}


def blueprint(engine: Any, books: Any, markets: dict[str, MarketMeta], leaders: Any, clock: Any) -> Blueprint:
    """The ``/data-api`` blueprint (``engine`` for our positions, ``leaders`` for leader rows)."""
    bp = Blueprint("data_api", __name__)

    @bp.get("/trades")
    def trades() -> Response:
        try:
            limit = _int_param("limit", 100, MAX_LIMIT)
            offset = _int_param("offset", 0, MAX_OFFSET)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        side = request.args.get("side", "").upper()
        if side not in ("", "BUY", "SELL"):
            return _json({"error": f"invalid side {side!r:.40}: BUY or SELL expected"}, 400)
        wanted = {m.strip() for m in request.args.get("market", "").split(",") if m.strip()}
        rows = filter_trades(leaders.visible(clock.now_ms()), request.args.get("user", ""), side, wanted)
        return _json(rows[offset: offset + limit])

    @bp.get("/positions")
    def positions() -> Response:
        user = request.args.get("user", "")
        try:
            limit = _int_param("limit", 100, MAX_POSITIONS_LIMIT)
            offset = _int_param("offset", 0, MAX_OFFSET)
            threshold = Decimal(request.args.get("sizeThreshold", "1"))
        except (ValueError, InvalidOperation) as exc:
            return _json({"error": str(exc) or f"invalid sizeThreshold {request.args.get('sizeThreshold')!r:.40}"}, 400)
        if not threshold.is_finite():
            return _json({"error": f"invalid sizeThreshold {request.args.get('sizeThreshold')!r:.40}"}, 400)
        if not user:
            return _json({"error": "user is required"}, 400)
        rows = [position_row(user, t, h, markets[t], token_price(engine, books, t))
                for t, h in engine.holdings(user) if t in markets and h.shares >= threshold and h.shares > 0]
        return _json(rows[offset: offset + limit])

    return bp
