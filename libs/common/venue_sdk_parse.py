"""Pure translation between polymarket-client's answers/exceptions and polyband's venue vocabulary.

No I/O: every function maps one SDK value (a pydantic model of polymarket/models/clob/*.py or an
exception of polymarket/errors.py) to a :mod:`libs.common.venue_types` value, so it is unit-tested
with hand-built SDK models. Amounts: prices USD per share in [0, 1], sizes shares, balances
integers with 6 decimals on the wire (``BalanceAllowance.balance``) and Decimal here.
"""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Iterable

import httpx
from polymarket.errors import (
    CancelledSigningError, InsufficientAllowanceError, RateLimitError, RequestRejectedError,
    SigningError, TimeoutError as SdkTimeoutError, TransportError, UnexpectedResponseError, UserInputError,
)
from polymarket.models.clob.account import ClobTrade, OpenOrder
from polymarket.models.clob.cancel import CancelOrdersResponse
from polymarket.models.clob.order_book import OrderBook
from polymarket.models.clob.order_response import AcceptedOrder, OrderResponse
from polymarket.rate_limit import RateLimitUpdate
from pydantic import ValidationError

from libs.common.venue_types import (
    MICRO, BadResponse, CancelResult, InsufficientBalance, OrderAck, OrderRejected,
    OrderState, PostOnlyCross, RateLimited, RateLimitState, RestBook, TradeFill, VenueError, VenueUnavailable,
    classify, normalize_status,
)

# RejectedOrder.code (polymarket/models/clob/order_response.py) -> our error class
_REJECT_CODES: dict[str, type[VenueError]] = {
    "not_enough_balance": InsufficientBalance, "post_only_would_cross": PostOnlyCross,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# TradeStatus (polymarket/models/clob/account.py) -> TradeFill.status
_TRADE_STATUS = {"MATCHED_NOT_BROADCASTED": "MATCHED"}


def map_error(exc: BaseException) -> VenueError:
    """The VenueError for an SDK exception (polymarket/errors.py; transport: clients/_transport.py).

    429 / RateLimitError -> RateLimited (with ``retry_after_s``); 401 -> AuthFailed; 404 ->
    OrderNotFound; 5xx, 425 (engine restarting), TransportError, TimeoutError -> VenueUnavailable
    (outcome unknown); a 400 naming balance or allowance, InsufficientAllowanceError ->
    InsufficientBalance; post-only cross -> PostOnlyCross; UserInputError, SigningError and other
    4xx -> OrderRejected; UnexpectedResponseError -> BadResponse; anything else -> VenueError.
    """
    if isinstance(exc, RateLimitError):
        return RateLimited(429, str(exc), exc.retry_after)
    if isinstance(exc, RequestRejectedError):
        return _rejected(exc)
    if isinstance(exc, (TransportError, SdkTimeoutError, httpx.HTTPError)):
        return VenueUnavailable(0, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, InsufficientAllowanceError):
        return InsufficientBalance(0, str(exc))
    if isinstance(exc, (UserInputError, SigningError, CancelledSigningError)):
        return OrderRejected(0, str(exc))
    if isinstance(exc, UnexpectedResponseError):
        return BadResponse(0, str(exc))
    return VenueError(0, f"{type(exc).__name__}: {exc}")


def _rejected(exc: RequestRejectedError) -> VenueError:
    text = f"{exc} (code={exc.code})" if exc.code else str(exc)
    if exc.status == 429:
        return RateLimited(429, text, exc.retry_after)
    if exc.status == 425:
        return VenueUnavailable(425, text)
    low = str(exc).lower()
    if exc.status < 500 and ("allowance" in low or exc.code == "not_enough_balance"):
        return InsufficientBalance(exc.status, text)
    return classify(exc.status, text)


def rate_limit_state(update: RateLimitUpdate, now_ms: int | None = None) -> RateLimitState:
    """RateLimitState of an SDK rate-limit update (polymarket/rate_limit.py); floats become Decimal
    through ``str``."""
    def d(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(str(v))
    return RateLimitState(d(update.remaining), d(update.reset), update.tier, update.warning,
                          int(time.time() * 1000) if now_ms is None else now_ms)


def book_of(book: OrderBook) -> RestBook:
    """RestBook of the SDK's OrderBook: the best bid is the max bid, the best ask the min ask (the
    wire lists bids ascending and asks descending; order_book.py)."""
    bid = max(((lv.price, lv.size) for lv in book.bids), default=None)
    ask = min(((lv.price, lv.size) for lv in book.asks), default=None)
    ts_ms = epoch_ms(book.timestamp) if book.timestamp is not None else 0
    return RestBook(best_bid=bid[0] if bid else None, best_ask=ask[0] if ask else None,
                    bid_size=bid[1] if bid else Decimal(0), ask_size=ask[1] if ask else Decimal(0),
                    tick_size=book.tick_size, min_order_size=book.min_order_size, neg_risk=book.neg_risk,
                    last_trade_price=book.last_trade_price, timestamp_ms=ts_ms)


def state_of(order: OpenOrder) -> OrderState:
    """OrderState of an SDK OpenOrder (``GET /data/order(s)``); status normalized to
    LIVE|MATCHED|CANCELED (raises BadResponse on an unknown status)."""
    return OrderState(id=order.id, status=normalize_status(order.status), side=str(order.side).upper(),
                      price=order.price, original_size=order.original_size, size_matched=order.size_matched,
                      token_id=str(order.asset_id))


def ack_of(res: OrderResponse, order_id: str) -> OrderAck:
    """OrderAck of a POST /order answer: ``status`` live|matched|delayed, ``making``/``taking`` the
    amounts matched at placement, ``trade_ids`` the trades created then.

    Raises:
        PostOnlyCross / InsufficientBalance / OrderRejected: a RejectedOrder (success false in the
            body), by its code (order_response.py ``_infer_error_code``).
        BadResponse: accepted under another id than the one signed.
    """
    if not isinstance(res, AcceptedOrder):
        cls = _REJECT_CODES.get(res.code, OrderRejected)
        raise cls(400, f"{res.message} (code={res.code})")
    if res.order_id.lower() != order_id.lower():
        raise BadResponse(0, f"bad venue field orderID={res.order_id!r}: signed {order_id}")
    return OrderAck(order_id=order_id, status=str(res.status).lower(), making=res.making_amount,
                    taking=res.taking_amount, trade_ids=tuple(res.trade_ids))


def cancel_of(res: CancelOrdersResponse) -> CancelResult:
    """CancelResult of ``{"canceled": [ids], "not_canceled": {id: reason}}``."""
    return CancelResult(tuple(str(i) for i in res.canceled), {str(k): str(v) for k, v in res.not_canceled.items()})


def epoch_ms(when: datetime) -> int:
    """Unix ms of an SDK datetime, exactly (integer timedelta division, no float; the SDK reads the
    wire's epoch seconds or ms into aware UTC datetimes, models/clob/_validators.py)."""
    return (when - _EPOCH) // timedelta(milliseconds=1)


def balance_of(base_units: int) -> Decimal:
    """Shares or pUSD of a 6-decimal base-unit integer."""
    return Decimal(base_units) / MICRO


def fills_of(trade: ClobTrade, token_id: str, ours: Iterable[str], after_ms: int = 0) -> list[TradeFill]:
    """Our fills on ``token_id`` in one account trade (``GET /data/trades`` row).

    ``ours``: our wallet address(es) and API key (compared case-insensitively with each maker
    order's ``maker_address`` and ``owner``). Taker side (``trader_side`` TAKER): one fill of the
    taker order at the trade's price and size. Maker side: one fill per maker order of ours on the
    token, at that order's price and matched amount. ``status`` MATCHED|MINED|CONFIRMED|RETRYING|
    FAILED (MATCHED_NOT_BROADCASTED counts as MATCHED); ``ts_ms`` the match time; fills matched
    before ``after_ms`` are left out.
    """
    ts_ms = epoch_ms(trade.matched_at)
    if ts_ms < after_ms:
        return []
    status = _TRADE_STATUS.get(trade.status, trade.status)
    bps = _bps(trade.fee_rate_bps)
    if trade.trader_side == "TAKER":
        if str(trade.asset_id) != token_id:
            return []
        return [TradeFill(trade.id, trade.taker_order_id, token_id, str(trade.side).upper(), trade.price,
                          trade.size, status, ts_ms, "TAKER", bps)]
    mine = {o.lower() for o in ours}
    return [TradeFill(trade.id, m.order_id, token_id, str(m.side).upper(), m.price, m.matched_amount, status, ts_ms,
                      "MAKER", _bps(m.fee_rate_bps) if m.fee_rate_bps is not None else bps)
            for m in trade.maker_orders
            if str(m.asset_id) == token_id and (m.maker_address.lower() in mine or m.owner.lower() in mine)]


def _bps(value: Decimal | None) -> str:
    """A ``fee_rate_bps`` as a plain decimal string ("" when absent): Decimal("700") -> "700"."""
    if value is None:
        return ""
    return format(value.normalize(), "f") if value else "0"


def empty_answer(cause: BaseException | None) -> bool:
    """True when an UnexpectedResponseError came from an empty answer (``null``, ``{}``, ``""``)."""
    if isinstance(cause, UnexpectedResponseError):
        cause = cause.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return not cause.doc.strip()
    if isinstance(cause, ValidationError):
        return all(e.get("input") in (None, "", {}, []) for e in cause.errors())
    return False

