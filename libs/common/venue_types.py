"""Venue vocabulary shared by the adapter and its users: errors, Decimal-typed answers, parsing.

Pure (no I/O, no SDK import): :mod:`libs.common.venue` re-exports every name, so callers
import from there. Wire facts are from ``/work/shared/reference/polymarket-api.md`` ("api.md").
Amounts: prices in [0, 1] (USD per share), sizes in shares, balances in shares or pUSD; the CLOB
sends balances as integers with 6 decimals (api.md "balance-allowance").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
MICRO = Decimal(1_000_000)
# Hardhat/Anvil account #0 (address 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266): a published
# throwaway test key used to sign paper orders. It holds nothing on any real chain; never fund it.
PAPER_TEST_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class VenueError(Exception):
    """A venue call failed. ``status``: HTTP status (0 = local/transport); ``retryable``: may succeed later."""

    retryable = False

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"status={status} {message}")
        self.status, self.message = status, message


class InsufficientBalance(VenueError):
    """HTTP 400 ``not enough balance / allowance`` (api.md error strings; py-clob-client issues #287, #290)."""


class PostOnlyCross(VenueError):
    """HTTP 400 ``invalid post-only order: order crosses book`` (api.md "Order types and rules")."""


class OrderRejected(VenueError):
    """Any other 4xx rejection, or a local check of the client (price outside [tick, 1-tick], bad tick)."""


class BadResponse(VenueError):
    """The venue answered something unusable (a missing or malformed field, named with its value)."""


class OrderNotFound(VenueError):
    """HTTP 404, or an empty answer for one order id."""


class AuthFailed(VenueError):
    """HTTP 401 (``Unauthorized/Invalid api key``); the adapter re-derives API creds on the next call."""


class RateLimited(VenueError):
    """HTTP 429: back off and retry (api.md "Rate limits"; Cloudflare throttles). ``retry_after_s``:
    the venue's suggested wait in seconds (``Retry-After`` header or ``retry_after_seconds`` body
    field, polymarket/errors.py ``RateLimitError.retry_after``); None when it sent none."""

    retryable = True

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(status, message)
        self.retry_after_s = retry_after_s


class VenueUnavailable(VenueError):
    """HTTP 5xx, a timeout or a transport error: the outcome of a POST is UNKNOWN (reliability-notes S3)."""

    retryable = True


def classify(status: int | None, message: str) -> VenueError:
    """Map an HTTP status and error text to the VenueError subclass (pure; unit-tested)."""
    text = message.lower()
    if status is None or status == 0:
        return VenueUnavailable(0, message)
    if status == 429:
        return RateLimited(status, message)
    if status >= 500:
        return VenueUnavailable(status, message)
    if status == 404:
        return OrderNotFound(status, message)
    if status == 401:
        return AuthFailed(status, message)
    if "not enough balance" in text:
        return InsufficientBalance(status, message)
    if "post-only" in text and "cross" in text:
        return PostOnlyCross(status, message)
    return OrderRejected(status, message)


def _message(err: object) -> str:
    if isinstance(err, dict):
        return str(err.get("error") or err.get("errorMsg") or err)
    return str(err)


def dec(value: object, name: str) -> Decimal:
    """Decimal of a wire value (string or number, via ``str``).

    Raises:
        BadResponse: naming the field and the value when it is not a finite number.
    """
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadResponse(0, f"bad venue field {name}={value!r}: not a number") from None
    if not out.is_finite():
        raise BadResponse(0, f"bad venue field {name}={value!r}: not finite")
    return out


@dataclass(frozen=True)
class RestBook:
    """REST ``GET /book`` top of book. Sides are None when empty; sizes in shares; ``timestamp_ms`` is
    the book's last change (api.md fact 7)."""

    best_bid: Decimal | None
    best_ask: Decimal | None
    bid_size: Decimal
    ask_size: Decimal
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    last_trade_price: Decimal | None
    timestamp_ms: int


@dataclass(frozen=True)
class SignedOrder:
    """A signed V2 order not yet posted. ``order_id`` is its EIP-712 hash, known BEFORE the POST, so
    the intent can be recorded under it and an unknown outcome resolved by id (never re-signed)."""

    order_id: str
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    payload: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class OrderAck:
    """Accepted ``POST /order``: ``status`` is the wire's lower-case ``live|matched|delayed|unmatched``;
    ``making``/``taking`` the amounts already matched (shares or USD, 0 when empty)."""

    order_id: str
    status: str
    making: Decimal
    taking: Decimal
    trade_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderState:
    """One order as the venue sees it: ``status`` LIVE|MATCHED|CANCELED; sizes in shares."""

    id: str
    status: str
    side: str
    price: Decimal
    original_size: Decimal
    size_matched: Decimal
    token_id: str = ""


@dataclass(frozen=True)
class TradeFill:
    """One fill of one of OUR orders as the venue records it: a ``GET /data/trades`` row or a
    user-channel ``trade`` event, seen from our side. ``trade_id`` is the venue's trade id (the
    idempotency key of a fill: the same trade seen twice is one fill); ``order_id`` is our order's id
    (the ``maker_orders[].order_id`` that is ours when we were maker, ``taker_order_id`` otherwise);
    ``side`` is OUR order's side; ``price`` the price OUR order traded at (USD per share, in [0, 1]);
    ``size`` shares; ``status`` the settlement state MATCHED|MINED|CONFIRMED|RETRYING|FAILED
    (execution is asynchronous since CLOB V2: a match settles later); ``ts_ms`` match time (ms);
    ``role`` OUR order's role, MAKER|TAKER ("" = unknown); ``fee_rate_bps`` the trade's fee rate in
    basis points as the venue sent it (decimal string, "" = not sent; polymarket ``ClobTrade``)."""

    trade_id: str
    order_id: str
    token_id: str
    side: str
    price: Decimal
    size: Decimal
    status: str
    ts_ms: int
    role: str = ""
    fee_rate_bps: str = ""


@dataclass(frozen=True)
class RedeemResult:
    """Outcome of redeeming a resolved market's positions (paper: the venue pays the payout in pUSD
    and removes the shares; live: the SDK's ``redeem_positions`` through the relayer or the chain).
    ``state`` CONFIRMED|FAILED|PENDING; ``tx_id`` the relayer transaction id or chain tx hash;
    ``payout_usd`` pUSD received (collateral after minus before; None when not measurable)."""

    condition_id: str
    state: str
    tx_id: str
    payout_usd: Decimal | None


@dataclass(frozen=True)
class RateLimitState:
    """The per-signer rate-limit state last reported by the venue (``Poly-RateLimit-*`` headers on
    order and cancel answers; polymarket/rate_limit.py ``RateLimitUpdate``). ``remaining``: tokens
    left in the bucket (may be negative); ``reset_s``: Unix seconds when the wait ends; ``tier``;
    ``warning``: True when the limiter only warns (the request would be refused under enforcement);
    ``updated_ms``: wall ms when it was received. Fields the venue did not send are None."""

    remaining: Decimal | None
    reset_s: Decimal | None
    tier: str | None
    warning: bool
    updated_ms: int


@dataclass(frozen=True)
class CancelResult:
    """``{"canceled": [ids], "not_canceled": {id: reason}}`` (api.md "Other order endpoints")."""

    canceled: tuple[str, ...]
    not_canceled: dict[str, str]


class Venue(Protocol):
    """What a worker needs from an exchange; :class:`VenueClient` and the tests' FakeVenue implement it."""

    def connect(self) -> None: ...
    def get_book(self, token_id: str) -> RestBook: ...
    def sign_limit(self, token_id: str, side: str, price: Decimal, size: Decimal,
                   tick_size: Decimal, neg_risk: bool) -> SignedOrder: ...
    def post_signed(self, order: SignedOrder, post_only: bool) -> OrderAck: ...
    def cancel(self, order_id: str) -> CancelResult: ...
    def cancel_token(self, token_id: str) -> CancelResult: ...
    def get_order(self, order_id: str) -> OrderState | None: ...
    def open_orders(self, token_id: str) -> list[OrderState]: ...
    def token_balance(self, token_id: str) -> Decimal: ...
    def collateral(self) -> Decimal: ...
    def refresh_balance(self, token_id: str) -> None: ...
    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]: ...
    def redeem(self, condition_id: str) -> RedeemResult: ...


def normalize_status(raw: object) -> str:
    """LIVE|MATCHED|CANCELED from the wire's variants: upper-case user channel, lower-case POST /order
    (``live|matched|delayed|unmatched``), ``ORDER_STATUS_*`` prefixes, ``CANCELED_<why>`` for a killed
    FOK, ``CANCELLED`` (api.md 1.2 and checklist 7). Unknown strings raise BadResponse."""
    s = str(raw).upper().removeprefix("ORDER_STATUS_")
    if s.startswith("CANCEL") or s == "INVALID":
        return "CANCELED"
    if s.startswith("MATCHED"):
        return "MATCHED"
    if s in ("LIVE", "DELAYED", "UNMATCHED", "OPEN"):
        return "LIVE"
    raise BadResponse(0, f"bad venue field status={raw!r}: unknown order status")


def parse_order(raw: dict[str, Any]) -> OrderState:
    """OrderState from a ``/data/order`` or ``/data/orders`` row (api.md "OpenOrder fields")."""
    return OrderState(
        id=str(raw.get("id", "")), status=normalize_status(raw.get("status", "")),
        side=str(raw.get("side", "")).upper(), price=dec(raw.get("price"), "price"),
        original_size=dec(raw.get("original_size"), "original_size"),
        size_matched=dec(raw.get("size_matched") or "0", "size_matched"),
        token_id=str(raw.get("asset_id", "")))


def parse_book(raw: dict[str, Any]) -> RestBook:
    """RestBook from ``GET /book``. Bids arrive ascending and asks descending, so the best of each
    side is the LAST element (api.md fact 4; the REST doc text claims otherwise and real data wins);
    the max bid / min ask is taken, which equals the last element and stays right either way.

    Raises:
        BadResponse: a missing or malformed field, named with its value.
    """
    try:
        bids = [(dec(b["price"], "bids.price"), dec(b["size"], "bids.size")) for b in raw.get("bids") or []]
        asks = [(dec(a["price"], "asks.price"), dec(a["size"], "asks.size")) for a in raw.get("asks") or []]
    except (KeyError, TypeError) as exc:
        raise BadResponse(0, f"bad venue field bids/asks: level without {exc}") from None
    bid, ask = max(bids, default=None), min(asks, default=None)
    ltp = raw.get("last_trade_price")
    return RestBook(
        best_bid=bid[0] if bid else None, best_ask=ask[0] if ask else None,
        bid_size=bid[1] if bid else Decimal(0), ask_size=ask[1] if ask else Decimal(0),
        tick_size=dec(raw.get("tick_size"), "tick_size"),
        min_order_size=dec(raw.get("min_order_size"), "min_order_size"),
        neg_risk=bool(raw.get("neg_risk", False)),
        last_trade_price=dec(ltp, "last_trade_price") if ltp not in (None, "") else None,
        timestamp_ms=int(dec(raw.get("timestamp") or 0, "timestamp")))
