"""Data-API of the paper venue under ``/data-api`` (reference/polymarket-api.md 1.4).

- ``GET /trades?user=&limit=&offset=&takerOnly=&side=&market=``: the leader rows visible at the
  current replay time (leaders.py), NEWEST FIRST as the real API, as a JSON array of data-api
  ``/trades`` rows. ``limit`` defaults to 100 (max 10000), ``offset`` to 0 (max 10000); beyond
  -> 400. ``user`` matches ``proxyWallet`` case-insensitively; ``side`` BUY|SELL; ``market`` is a
  comma-separated list of condition ids. ``takerOnly`` (Polymarket default true) is accepted but
  has no effect: leader files carry no maker/taker flag, so the venue serves every row either way.
- ``GET /v2/trades?user=&limit=&cursor=&taker_only=&side=&condition_id=&start=&end=&filter_type=
  &filter_amount=`` (the parameters of polymarket-client 0.14.0 ``list_trades``): the same leader
  rows, newest first, as ``{"data": [row, ...], "pagination": {"has_more": bool, "next_cursor":
  str | null}}`` with snake_case rows (``proxy_wallet, side, token_id, condition_id, size, price,
  timestamp, transaction_hash, title, slug, icon, event_slug, outcome, outcome_index, name,
  pseudonym, bio, profile_image, profile_image_optimized``; ``v2_row``). ``limit`` 1..1000
  (default 100). ``next_cursor`` is opaque: it marks a place counted from the OLDEST visible row,
  so pages do not shift while newer rows become visible (keyset paging, like the real API).
  ``start``/``end``: Unix seconds, inclusive. ``filter_type`` CASH (``size*price``) | TOKENS
  (``size``) keeps rows of at least ``filter_amount``. ``taker_only`` (default true) must be
  ``true``/``false`` but leader files carry no maker/taker flag, so every row counts as the
  leader's fill either way. ``event_id`` is refused (400): leader rows carry no event id.
- ``GET /positions?user=&sizeThreshold=&limit=&offset=``: the venue's own accounts (our
  positions) in the real ``/positions`` shape, priced at the overlay mid of the venue's book.
Error wording of this API is UNCONFIRMED (venue's own ``{"error": ...}`` texts, status 400).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
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
V2_MAX_LIMIT = 1000  # polymarket-client's max_page_size for /v2/trades
_CURSOR_PREFIX = "pbv2:"
_V2_NAMES = {"asset": "token_id"}  # every other camelCase key becomes snake_case


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


def v2_row(row: Any) -> Any:
    """A v1 leader row with v2 (snake_case) keys: ``asset`` -> ``token_id``, ``proxyWallet`` ->
    ``proxy_wallet`` etc.; values untouched (a malformed row stays malformed)."""
    if not isinstance(row, dict):
        return row
    return {_V2_NAMES.get(k, re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", k).lower()): v for k, v in row.items()}


def encode_cursor(remaining: int) -> str:
    """Opaque cursor: the count of visible rows (unfiltered) from the next one to the oldest."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{remaining}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    """Inverse of ``encode_cursor``; raises ValueError naming the cursor."""
    try:
        plain = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        plain = ""
    if not plain.startswith(_CURSOR_PREFIX) or not plain[len(_CURSOR_PREFIX):].isdigit():
        raise ValueError(f"invalid cursor {text!r:.60}")
    return int(plain[len(_CURSOR_PREFIX):])


@dataclass(frozen=True)
class V2Query:
    """Filters of ``/v2/trades``: user ("" = all), side ("" = both), condition ids (empty = all),
    start/end Unix s (None = open), filter_type ("" | CASH | TOKENS) and filter_amount."""

    user: str = ""
    side: str = ""
    markets: frozenset[str] = frozenset()
    start: int | None = None
    end: int | None = None
    filter_type: str = ""
    filter_amount: Decimal = Decimal(0)

    def match(self, row: dict[str, Any]) -> bool:
        """True when the v1 ``row`` passes every filter (rows without a usable value pass time and
        amount filters, so the ingest still sees and dead-letters them)."""
        if not filter_trades([row], self.user, self.side, set(self.markets)):
            return False
        ts = row.get("timestamp")
        before = self.start is not None and isinstance(ts, int) and ts < self.start
        after = self.end is not None and isinstance(ts, int) and ts > self.end
        if before or after:
            return False
        amount = _amount(row, self.filter_type) if self.filter_type else None
        return amount is None or amount >= self.filter_amount


def _amount(row: dict[str, Any], kind: str) -> Decimal | None:
    try:
        size = Decimal(str(row.get("size")))
        return size * Decimal(str(row.get("price"))) if kind == "CASH" else size
    except InvalidOperation:
        return None


def v2_page(rows: list[Any], q: V2Query, limit: int, remaining: int | None) -> tuple[list[Any], int | None]:
    """One page of ``rows`` (visible, newest first): up to ``limit`` matches starting ``remaining``
    rows before the oldest (None = from the newest), and the next cursor position (None = last page)."""
    i = 0 if remaining is None else max(0, len(rows) - remaining)
    page: list[Any] = []
    for j in range(i, len(rows)):
        if isinstance(rows[j], dict) and q.match(rows[j]):
            if len(page) == limit:
                return page, len(rows) - j
            page.append(rows[j])
    return page, None


def _v2_query() -> V2Query:
    """``V2Query`` from the request's arguments; raises ValueError naming a bad parameter and value."""
    a = request.args
    side = a.get("side", "").upper()
    if side not in ("", "BUY", "SELL"):
        raise ValueError(f"invalid side {side!r:.40}: BUY or SELL expected")
    if a.get("taker_only", "true").lower() not in ("true", "false"):
        raise ValueError(f"invalid taker_only {a.get('taker_only')!r:.40}: true or false expected")
    if a.get("event_id"):
        raise ValueError("event_id is not supported by the paper venue: leader rows carry no event id")
    kind = a.get("filter_type", "").upper()
    if kind not in ("", "CASH", "TOKENS") or bool(kind) != bool(a.get("filter_amount")):
        raise ValueError(f"invalid filter_type {kind!r:.40} / filter_amount {a.get('filter_amount')!r:.40}: "
                         "CASH or TOKENS together with an amount expected")
    try:
        amount = Decimal(a.get("filter_amount") or "0")
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"invalid filter_amount {a.get('filter_amount')!r:.40}")
    markets = frozenset(m.strip() for m in a.get("condition_id", "").split(",") if m.strip())
    return V2Query(a.get("user", ""), side, markets, _opt_int("start"), _opt_int("end"), kind, amount)


def _opt_int(name: str) -> int | None:
    """Optional non-negative integer parameter (None when absent)."""
    raw = request.args.get(name)
    return None if raw in (None, "") else _int_param(name, 0, 10**12)


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

    @bp.get("/v2/trades")
    def trades_v2() -> Response:
        try:
            limit = _int_param("limit", 100, V2_MAX_LIMIT)
            cursor = request.args.get("cursor")
            remaining = decode_cursor(cursor) if cursor else None
            q = _v2_query()
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if limit < 1:
            return _json({"error": f"invalid limit 0: an integer from 1 to {V2_MAX_LIMIT} is expected"}, 400)
        page, nxt = v2_page(leaders.visible(clock.now_ms()), q, limit, remaining)
        return _json({"data": [v2_row(r) for r in page],
                      "pagination": {"has_more": nxt is not None,
                                     "next_cursor": None if nxt is None else encode_cursor(nxt)}})

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
