"""Pure parsing of the user channel and of the REST backfill into stream entries (no I/O).

Wire (reference/polymarket-api.md 1.2; the SDK's ``polymarket/models/clob/user_events.py``; real
samples in ``fixtures-nautilus/schema_examples/ws_user_*.json``): a frame is one JSON object or a
JSON array of them, each with ``event_type`` ``order`` or ``trade``.

- ``order``: ``id, asset_id, side, price, original_size, size_matched ("" = 0), status`` (LIVE,
  MATCHED, CANCELED, CANCELED_<why>, INVALID, ...; see ``venue_types.normalize_status``), ``type``
  (PLACEMENT | UPDATE | CANCELLATION), ``timestamp`` (ms string).
- ``trade``: ``id`` (trade id), ``taker_order_id``, ``asset_id``, ``side`` (the taker's), ``price``,
  ``size``, ``status`` (MATCHED | MINED | CONFIRMED | RETRYING | FAILED), ``match_time`` (Unix s,
  ms, or ISO-8601 in older samples), ``trader_side`` (TAKER | MAKER) and ``maker_orders``: legs
  ``{order_id, owner, maker_address, matched_amount, price, asset_id, side}``. When we were maker,
  our fill is OUR leg (matched_amount at the leg's price, on the leg's asset_id, which for a
  complementary match differs from the top-level asset_id); when taker, it is the top-level trade.

An entry is ``(token_id, fields)``: plain-string fields of ``pb:user:{token}`` (docs/contracts.md
"User channel"): ``kind`` order|trade, ``order_id, status, size_matched, original_size, price, side,
event`` (orders); ``trade_id, trade_status, size, price, side`` (trades; side and price of OUR
order's fill), ``role`` (OUR order's role: MAKER when the fill is one of our ``maker_orders`` legs,
TAKER when it is the top-level taker order; "" when a REST row did not say) and ``fee_rate_bps`` (the
trade's fee rate in bps as sent, e.g. "700": our leg's when it has one, else the trade's; "" when
absent; polymarket ``UserTradePayload``/``UserTradeMakerOrder.fee_rate_bps``, optional Decimals);
``ts_ms`` (order: event time; trade: match time, ms) and ``source`` ws|rest.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from libs.common.venue_types import BadResponse, OrderState, TradeFill, normalize_status

Entry = tuple[str, dict[str, str]]
TRADE_STATUSES = ("MATCHED", "MINED", "CONFIRMED", "RETRYING", "FAILED")


class BadEvent(ValueError):
    """One event of a frame cannot be used; the message names the field and its value."""


def _str(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise BadEvent(f"field {name!r} has bad value {str(value)[:80]!r}")
    return str(value)


def _num(item: dict[str, Any], name: str, empty_ok: bool = False) -> str:
    """A decimal string >= 0 (``""``/None -> "0" when ``empty_ok``), normalised (``"25.0000"`` -> ``"25"``)."""
    raw = item.get(name)
    if empty_ok and raw in (None, ""):
        return "0"
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise BadEvent(f"field {name!r} has bad value {str(raw)[:80]!r}") from None
    if not value.is_finite() or value < 0 or isinstance(raw, bool):
        raise BadEvent(f"field {name!r} has bad value {str(raw)[:80]!r}")
    return plain(value)


def plain(value: Decimal) -> str:
    """Decimal as a plain string without exponent or trailing zeros (``Decimal("1E+1")`` -> ``"10"``)."""
    return format(value.normalize(), "f") if value else "0"


def _side(raw: object, name: str) -> str:
    side = str(raw or "").upper()
    if side not in ("BUY", "SELL"):
        raise BadEvent(f"field {name!r} has bad value {str(raw)[:80]!r}")
    return side


def time_ms(raw: object) -> int:
    """Milliseconds from Unix seconds or ms (number or digit string) or ISO-8601; 0 when absent.

    Raises:
        BadEvent: a present value that is none of these.
    """
    if raw in (None, ""):
        return 0
    text = str(raw)
    try:
        value = int(Decimal(text))
    except (InvalidOperation, ValueError):
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            raise BadEvent(f"field 'match_time' has bad value {text[:80]!r}") from None
    return value if value >= 100_000_000_000 else value * 1000


def order_entry(item: dict[str, Any], source: str = "ws") -> Entry:
    """The entry of one ``order`` event. Raises BadEvent."""
    try:
        status = normalize_status(_str(item, "status"))
    except BadResponse as exc:
        raise BadEvent(exc.message) from None
    fields = {"kind": "order", "order_id": _str(item, "id"), "status": status,
              "size_matched": _num(item, "size_matched", empty_ok=True),
              "original_size": _num(item, "original_size"), "price": _num(item, "price"),
              "side": _side(item.get("side"), "side"), "event": str(item.get("type") or ""),
              "ts_ms": str(time_ms(item.get("timestamp"))), "source": source}
    return _str(item, "asset_id"), fields


def _our_legs(item: dict[str, Any], api_key: str, address: str) -> list[dict[str, Any]]:
    legs = item.get("maker_orders") or []
    if not isinstance(legs, list) or not all(isinstance(leg, dict) for leg in legs):
        raise BadEvent(f"field 'maker_orders' has bad value {str(legs)[:80]!r}")
    return [leg for leg in legs if (api_key and leg.get("owner") == api_key)
            or (address and str(leg.get("maker_address", "")).lower() == address.lower())]


def trade_entries(item: dict[str, Any], api_key: str, address: str = "", source: str = "ws") -> list[Entry]:
    """Entries of one ``trade`` event: one per fill of OUR orders in it (module doc). Raises BadEvent."""
    status = str(item.get("status") or "").upper().removeprefix("TRADE_STATUS_")
    if status not in TRADE_STATUSES:
        raise BadEvent(f"field 'status' has bad value {str(item.get('status'))[:80]!r}")
    base = {"kind": "trade", "trade_id": _str(item, "id"), "trade_status": status, "source": source,
            "ts_ms": str(time_ms(item.get("match_time") or item.get("matchtime")) or time_ms(item.get("timestamp")))}
    top_side, asset = _side(item.get("side"), "side"), _str(item, "asset_id")
    role = str(item.get("trader_side") or "").upper()
    legs = _our_legs(item, api_key, address) if role != "TAKER" else []
    if role == "MAKER" and not legs:
        raise BadEvent("trade with trader_side MAKER has no maker_orders leg of ours")
    bps = _bps(item, "fee_rate_bps")
    if not legs:
        return [(asset, {**base, "order_id": _str(item, "taker_order_id"), "side": top_side,
                         "price": _num(item, "price"), "size": _num(item, "size"), "role": "TAKER",
                         "fee_rate_bps": bps})]
    other = "SELL" if top_side == "BUY" else "BUY"
    return [(str(leg.get("asset_id") or asset),
             {**base, "order_id": _str(leg, "order_id"), "side": _side(leg.get("side") or other, "maker_orders.side"),
              "price": _num(leg, "price"), "size": _num(leg, "matched_amount"), "role": "MAKER",
              "fee_rate_bps": _bps(leg, "maker_orders.fee_rate_bps", "fee_rate_bps") or bps}) for leg in legs]


def _bps(item: dict[str, Any], name: str, key: str = "") -> str:
    """``fee_rate_bps`` of a trade or leg as a plain decimal string, "" when absent or empty (the SDK
    maps "" to None). Raises BadEvent for a present value that is not a number >= 0."""
    raw = item.get(key or name)
    if raw in (None, ""):
        return ""
    return _num({name: raw}, name)


def parse_frame(data: bytes | str, api_key: str, address: str = "") -> tuple[list[Entry], list[str]]:
    """All entries of one text frame, and one error text per event that could not be used (a bad
    event never hides the good ones of the same frame)."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return [], [f"not JSON: {exc}"]
    items = raw if isinstance(raw, list) else [raw]
    entries: list[Entry] = []
    errors: list[str] = []
    for item in items:
        try:
            entries += parse_event(item, api_key, address)
        except BadEvent as exc:
            errors.append(str(exc))
    return entries, errors


def parse_event(item: Any, api_key: str, address: str = "") -> list[Entry]:
    """Entries of one decoded event object. Raises BadEvent (unknown event_type included)."""
    if not isinstance(item, dict):
        raise BadEvent(f"event is not a JSON object: {str(item)[:80]!r}")
    kind = item.get("event_type")
    if kind == "order":
        return [order_entry(item)]
    if kind == "trade":
        return trade_entries(item, api_key, address)
    raise BadEvent(f"field 'event_type' has bad value {str(kind)[:80]!r}")


def fill_entry(f: TradeFill, token_id: str = "", source: str = "rest") -> Entry:
    """The entry of one REST trade row (``Venue.trades``), shaped exactly like a live trade entry
    (``token_id`` when the row names none)."""
    return f.token_id or token_id, {"kind": "trade", "trade_id": f.trade_id, "trade_status": f.status.upper(),
                        "order_id": f.order_id, "side": f.side, "price": plain(f.price), "size": plain(f.size),
                        "ts_ms": str(f.ts_ms), "source": source, "role": f.role, "fee_rate_bps": f.fee_rate_bps}


def state_entry(o: OrderState, token_id: str, now_ms: int, source: str = "rest") -> Entry:
    """The entry of one REST order state (``Venue.get_order``), shaped like a live order event."""
    return o.token_id or token_id, {
        "kind": "order", "order_id": o.id, "status": o.status, "size_matched": plain(o.size_matched),
        "original_size": plain(o.original_size), "price": plain(o.price), "side": o.side, "event": "RECONCILE",
        "ts_ms": str(now_ms), "source": source}
