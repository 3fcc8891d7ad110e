"""Parse a market-channel frame (or a REST ``/book`` body) once, into typed events with micros.

``parse_frame(data, max_bytes)`` never raises on bad input. A frame over ``max_bytes`` is rejected
before any parsing (``FRAME_TOO_LARGE``); otherwise the whole frame is decoded in one msgspec call
(the fast path). If that fails and the frame is a JSON array (the subscription dump), each element is
decoded on its own so that one bad book does not cost the others. Each bad object becomes one
:class:`~services.md_gateway.schemas.Reject` with a reason code, the field, the value and the first
300 characters of its text. One bad entry rejects its whole ``price_change`` object: the entries of
one object are one exchange event (the YES and NO sides of one order), applied together or not at all.
Any other exception while decoding or converting (msgspec raises ``RecursionError`` on a frame nested
about 1,000 levels deep) rejects that frame, or that object, as ``PARSE_INTERNAL_ERROR`` with the
exception's type as the value: one frame never costs the rest of its batch.
"""
from __future__ import annotations

import re

import msgspec

from services.md_gateway import schemas as s
from services.md_gateway.units import MICRO, BadValue, ms, price_micros, to_micros

_MISSING = re.compile(r"Object missing required field `([^`]*)`(?: - at `\$([^`]*)`)?")
_BAD_TAG = re.compile(r"Invalid value '(.*)' - at `\$([^`]*)event_type`")
_AT = re.compile(r" - at `\$([^`]*)`")


def _text(data: bytes) -> str:
    return data[: s.TEXT_SHOWN].decode("utf-8", "replace")


def _side(value: str, field: str) -> bool:
    """``BUY`` -> True (bid side), ``SELL`` -> False. Raises BadValue otherwise."""
    up = value.upper()
    if up == "BUY":
        return True
    if up == "SELL":
        return False
    raise BadValue(field, value, "side must be BUY or SELL")


def _levels(levels: list[s.WLevel], name: str) -> s.Levels:
    out = []
    for lv in levels:
        size = to_micros(lv.size, f"{name}[].size")
        if size:
            out.append((price_micros(lv.price, f"{name}[].price"), size))
    return out


def _expect(e: s.WEntry) -> tuple[int | None, int | None] | None:
    if e.best_bid is None or e.best_ask is None:
        return None
    bid = price_micros(e.best_bid, "price_changes[].best_bid")
    ask = price_micros(e.best_ask, "price_changes[].best_ask")
    return (bid or None, None if ask in (0, MICRO) else ask)


def _book(w: s.WBook) -> s.BookSnap:
    tick = price_micros(w.tick_size, "tick_size") if w.tick_size else None
    if w.last_trade_price:
        price_micros(w.last_trade_price, "last_trade_price")
    return s.BookSnap(w.asset_id, w.market, _levels(w.bids, "bids"), _levels(w.asks, "asks"),
                      ms(w.timestamp), tick, w.last_trade_price or "")


def _price_change(w: s.WPriceChange) -> list[s.LevelChange]:
    ts = ms(w.timestamp)
    if w.price_changes is not None:
        return [s.LevelChange(e.asset_id, w.market, _side(e.side, "price_changes[].side"),
                              price_micros(e.price, "price_changes[].price"),
                              to_micros(e.size, "price_changes[].size"), ts, _expect(e))
                for e in w.price_changes]
    if w.asset_id is None:
        raise _Missing("asset_id" if w.changes is not None or w.price is not None else "price_changes")
    if w.changes is not None:
        return [s.LevelChange(w.asset_id, w.market, _side(c.side, "changes[].side"),
                              price_micros(c.price, "changes[].price"), to_micros(c.size, "changes[].size"), ts)
                for c in w.changes]
    for name in ("price", "size", "side"):
        if getattr(w, name) is None:
            raise _Missing(name)
    return [s.LevelChange(w.asset_id, w.market, _side(w.side or "", "side"), price_micros(w.price),
                          to_micros(w.size, "size"), ts)]


def _tick(w: s.WTickSize) -> s.TickSizeChange:
    tick = price_micros(w.new_tick_size, "new_tick_size")
    if tick == 0:
        raise BadValue("new_tick_size", w.new_tick_size, "tick size must be above 0")
    return s.TickSizeChange(w.asset_id, w.market, tick, ms(w.timestamp))


def _bba(w: s.WBestBidAsk) -> s.BestBidAsk:
    bid, ask = price_micros(w.best_bid, "best_bid"), price_micros(w.best_ask, "best_ask")
    return s.BestBidAsk(w.asset_id, bid or None, None if ask in (0, MICRO) else ask, ms(w.timestamp))


class _Missing(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _convert(w: object, out: s.Parsed) -> None:
    """Append the typed events of one wire object to ``out`` (raises BadValue/_Missing)."""
    if isinstance(w, s.WPriceChange):
        out.events.extend(_price_change(w))
    elif isinstance(w, s.WBook):
        out.events.append(_book(w))
    elif isinstance(w, s.WBestBidAsk):
        out.events.append(_bba(w))
    elif isinstance(w, s.WLastTrade):
        price_micros(w.price)
        out.events.append(s.LastTrade(w.asset_id, w.market, w.price, ms(w.timestamp)))
    elif isinstance(w, s.WTickSize):
        out.events.append(_tick(w))
    elif isinstance(w, s.WResolved):
        out.events.append(s.Resolved(w.market, tuple(w.assets_ids), ms(w.timestamp), w.winning_asset_id))
    else:
        out.ignored += 1


def _internal(exc: Exception, data: bytes) -> s.Reject:
    """``PARSE_INTERNAL_ERROR`` for an unexpected exception; ``value`` is its type name."""
    name = type(exc).__name__
    return s.Reject(s.INTERNAL, "$", name, f"{name}: {exc}"[:300], _text(data))


def _convert_safely(w: object, out: s.Parsed, text: bytes | None) -> None:
    mark = len(out.events)
    try:
        _convert(w, out)
    except BadValue as exc:
        del out.events[mark:]
        raw = text if text is not None else msgspec.json.encode(w)
        out.rejects.append(s.Reject(s.BAD_VALUE, exc.field, str(exc.value)[:80], exc.why, _text(raw)))
    except _Missing as exc:
        del out.events[mark:]
        raw = text if text is not None else msgspec.json.encode(w)
        out.rejects.append(s.Reject(s.MISSING_FIELD, exc.field, "", "required field is missing", _text(raw)))
    except Exception as exc:  # noqa: BLE001 - anything else costs this object only
        del out.events[mark:]
        out.rejects.append(_internal(exc, text if text is not None else msgspec.json.encode(w)))


def _validation_reject(exc: msgspec.ValidationError, data: bytes) -> s.Reject:
    """Map msgspec's message to a reason code with the field (``$.a[0].b`` -> ``a[0].b``) and value."""
    msg = str(exc)
    m = _BAD_TAG.search(msg)
    if m:
        return s.Reject(s.UNKNOWN_EVENT, "event_type", m.group(1)[:80], msg, _text(data))
    m = _MISSING.search(msg)
    if m:
        where = (m.group(2) or "").lstrip(".")
        field = f"{where}.{m.group(1)}" if where else m.group(1)
        return s.Reject(s.MISSING_FIELD, field, "", msg, _text(data))
    m = _AT.search(msg)
    return s.Reject(s.BAD_VALUE, (m.group(1).lstrip(".") if m else "$"), "", msg, _text(data))


def _salvage(data: bytes, out: s.Parsed) -> None:
    """Decode a JSON array element by element, keeping the good ones."""
    try:
        raws = s.RAW_LIST.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        out.rejects.append(s.Reject(s.BAD_JSON, "$", "", str(exc), _text(data)))
        return
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError: the array cannot be split
        out.rejects.append(_internal(exc, data))
        return
    for raw in raws:
        item = bytes(raw)
        try:
            w = s.ONE.decode(item)
        except msgspec.ValidationError as exc:
            out.rejects.append(_validation_reject(exc, item))
            continue
        except Exception as exc:  # noqa: BLE001 - this element only
            out.rejects.append(_internal(exc, item))
            continue
        _convert_safely(w, out, item)


def parse_frame(data: bytes, max_bytes: int) -> s.Parsed:
    """Typed events and rejects of one text frame (a JSON object or array). Never raises: an
    unexpected exception rejects the frame (``PARSE_INTERNAL_ERROR``, none of its events kept).

    Args:
        data: the frame's bytes as received.
        max_bytes: frames longer than this are rejected unparsed (``FRAME_TOO_LARGE``).
    """
    out = s.Parsed([], [])
    if len(data) > max_bytes:
        out.rejects.append(s.Reject(s.TOO_LARGE, "frame", str(len(data)),
                                    f"{len(data)} bytes > max_frame_bytes {max_bytes}", _text(data)))
        return out
    try:
        _parse(data, out)
    except Exception as exc:  # noqa: BLE001 - the last resort of the "never raises" promise
        out.events.clear()
        out.rejects.append(_internal(exc, data))
    return out


def _parse(data: bytes, out: s.Parsed) -> None:
    """Decode ``data`` into ``out`` (events and rejects)."""
    try:
        wire = s.FRAME.decode(data)
    except msgspec.ValidationError as exc:  # (a subclass of DecodeError: test it first)
        if data.lstrip()[:1] == b"[":
            _salvage(data, out)
        else:
            out.rejects.append(_validation_reject(exc, data))
        return
    except msgspec.DecodeError as exc:
        out.rejects.append(s.Reject(s.BAD_JSON, "$", "", str(exc), _text(data)))
        return
    except Exception as exc:  # noqa: BLE001 - RecursionError on deep nesting (an array's split would raise it too)
        out.rejects.append(_internal(exc, data))
        return
    if isinstance(wire, list):
        for w in wire:
            _convert_safely(w, out, None)
    else:
        _convert_safely(wire, out, data)


class RestBookError(ValueError):
    """A REST ``/book`` body that cannot be used; ``reason`` is a code, the message names field and value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_rest_book(data: bytes, token_id: str) -> s.BookSnap:
    """A REST ``GET /book?token_id=`` body as a :class:`BookSnap` (with ``min_order_size``).

    Raises:
        RestBookError: not JSON, a missing/bad field, or the body is for another token.
    """
    try:
        w = s.REST.decode(data)
        snap = s.BookSnap(w.asset_id, w.market, _levels(w.bids, "bids"), _levels(w.asks, "asks"),
                          ms(w.timestamp), price_micros(w.tick_size, "tick_size"), w.last_trade_price or "",
                          w.min_order_size)
        to_micros(w.min_order_size, "min_order_size")
    except msgspec.ValidationError as exc:
        rej = _validation_reject(exc, data)
        raise RestBookError(rej.reason, f"{rej.detail}: {rej.text}") from None
    except msgspec.DecodeError as exc:
        raise RestBookError(s.BAD_JSON, f"{exc}: {_text(data)}") from None
    except BadValue as exc:
        raise RestBookError(s.BAD_VALUE, str(exc)) from None
    if snap.token_id != token_id:
        raise RestBookError(s.BAD_VALUE, f"field 'asset_id' has bad value {snap.token_id!r}: asked for {token_id!r}")
    return snap
