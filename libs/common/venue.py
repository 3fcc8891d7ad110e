"""The one adapter over ``py-clob-client-v2``: nothing else in polyband imports ``py_clob_client_v2``.

Every answer is a Decimal-typed dataclass (never a raw float) and every failure one
:class:`VenueError` subclass, so a later client (Polymarket's ``polymarket-client``) is a one-file
change. Wire facts cited below are from ``/work/shared/reference/polymarket-api.md`` ("api.md") and
the installed client's ``client.py``/``endpoints.py``.

Amounts: prices in [0, 1] (USD per share), sizes in shares, balances in shares or pUSD; the CLOB
sends balances as integers with 6 decimals (api.md "balance-allowance").
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Callable

import httpx
from py_clob_client_v2 import (
    ApiCreds, AssetType, BalanceAllowanceParams, ClobClient, OpenOrderParams, OrderArgs,
    OrderMarketCancelParams, OrderPayload, OrderType, PartialCreateOrderOptions,
)
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.exceptions import PolyApiException, PolyException
from py_clob_client_v2.http_helpers import helpers as _http
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2
from pydantic import SecretStr

from libs.common.venue_types import (  # noqa: F401 - re-exported: callers import them from here
    T, MICRO, PAPER_TEST_PRIVATE_KEY, VenueError, InsufficientBalance, PostOnlyCross, OrderRejected,
    BadResponse, OrderNotFound, AuthFailed, RateLimited, VenueUnavailable, classify, _message, dec,
    RestBook, SignedOrder, OrderAck, OrderState, CancelResult, Venue, normalize_status, parse_order,
    parse_book,
)

log = logging.getLogger(__name__)


def tick_str(tick: Decimal) -> str:
    """The client's TickSize literal ("0.1", "0.01", "0.001", "0.0001", ...) of a Decimal tick."""
    return format(tick.normalize(), "f")


class _Clob(ClobClient):
    """ClobClient that does not block up to 30 s after a match polling trades for settlement hashes
    (``_resolve_transactions_hashes``); fills are followed by polling orders instead."""

    def _resolve_transactions_hashes(self, response: Any) -> Any:
        return response


class VenueClient:
    """Polymarket CLOB (or the paper venue) through py-clob-client-v2, signing V2 orders.

    Args:
        clob_url: CLOB REST base URL (``PB_CLOB_URL``).
        private_key: signer key (SecretStr; never logged). Paper mode uses
            :data:`PAPER_TEST_PRIVATE_KEY`; live mode requires ``PB_PRIVATE_KEY``.
        chain_id: 137 (Polygon) selects the V2 exchange addresses of the client's ``config.py``.
        signature_type: 0 EOA (paper); live needs the deposit-wallet type (api.md "Live accounts").
        funder: address holding the funds (None = the signer's address).
        http_timeout_s: timeout of every HTTP call. The client keeps ONE module-level httpx client,
            so this sets that client's timeout for the whole process.

    API credentials are created or derived lazily (``create_or_derive_api_key`` + ``set_api_creds``)
    on the first authenticated call, and again after a 401.
    """

    def __init__(self, clob_url: str, private_key: SecretStr, chain_id: int = 137, signature_type: int = 0,
                 funder: str | None = None, http_timeout_s: float = 5.0) -> None:
        self.clob_url, self.chain_id = clob_url.rstrip("/"), chain_id
        self._key, self._sig_type, self._funder = private_key, signature_type, funder
        self._clob: _Clob | None = None
        self._creds: ApiCreds | None = None
        _http._http_client.timeout = httpx.Timeout(http_timeout_s)

    def __repr__(self) -> str:
        return f"VenueClient(clob_url={self.clob_url!r}, chain_id={self.chain_id})"

    # ---- plumbing ----
    def _base(self) -> _Clob:
        if self._clob is None:
            self._clob = _Clob(self.clob_url, chain_id=self.chain_id, key=self._key.get_secret_value(),
                               signature_type=self._sig_type, funder=self._funder)
        return self._clob

    def _authed(self) -> _Clob:
        clob = self._base()
        if self._creds is None:
            self._creds = self._call(clob.create_or_derive_api_key)
            clob.set_api_creds(self._creds)
        return clob

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one client call, mapping its exceptions to VenueError."""
        try:
            return fn(*args)
        except PolyApiException as exc:
            err = classify(exc.status_code, _message(exc.error_msg))
        except PolyException as exc:
            err = OrderRejected(0, str(exc.msg))
        except httpx.HTTPError as exc:
            err = VenueUnavailable(0, f"{type(exc).__name__}: {exc}")
        if isinstance(err, AuthFailed):
            self._creds = None
        raise err

    # ---- market data ----
    def get_book(self, token_id: str) -> RestBook:
        """Top of ``GET /book?token_id=`` (no auth)."""
        return parse_book(self._call(self._base().get_order_book, token_id))

    # ---- orders ----
    def sign_limit(self, token_id: str, side: str, price: Decimal, size: Decimal,
                   tick_size: Decimal, neg_risk: bool) -> SignedOrder:
        """Sign a V2 limit order; ``order_id`` is its EIP-712 hash (reliability-notes S3).

        ``PartialCreateOrderOptions(tick_size, neg_risk)`` skips ``GET /neg-risk``; the client still
        reads ``GET /tick-size`` once per token (cached) to check ours is not finer than the market's,
        and ``GET /version`` once. Decimals become floats only here, at the client's boundary.

        Raises:
            OrderRejected: price outside [tick, 1-tick] or unsupported tick (the client's checks).
        """
        clob = self._base()
        args = OrderArgs(token_id=token_id, price=float(price), size=float(size), side=side)
        opts = PartialCreateOrderOptions(tick_size=tick_str(tick_size), neg_risk=neg_risk)  # type: ignore[arg-type]
        signed = self._call(clob.create_order, args, opts)
        return SignedOrder(self._order_hash(signed, neg_risk), token_id, side, price, size, signed)

    def _order_hash(self, signed: Any, neg_risk: bool) -> str:
        cfg = get_contract_config(self.chain_id)
        exchange = cfg.neg_risk_exchange_v2 if neg_risk else cfg.exchange_v2
        builder = ExchangeOrderBuilderV2(exchange, self.chain_id, self._base().signer)
        return str(builder.build_order_hash(builder.build_order_typed_data(signed)))

    def post_signed(self, order: SignedOrder, post_only: bool) -> OrderAck:
        """``POST /order`` as GTC (post-only when asked). Never retried here: a VenueUnavailable means
        the outcome is unknown and must be resolved with ``get_order(order.order_id)``."""
        res = self._call(self._authed().post_order, order.payload, OrderType.GTC, post_only)
        if not isinstance(res, dict) or res.get("success") is False or not res.get("orderID", order.order_id):
            raise classify(400, _message(res))
        return OrderAck(str(res.get("orderID") or order.order_id), str(res.get("status", "live")).lower(),
                        dec(res.get("makingAmount") or 0, "makingAmount"),
                        dec(res.get("takingAmount") or 0, "takingAmount"))

    def post_limit(self, token_id: str, side: str, price: Decimal, size: Decimal, post_only: bool,
                   tick_size: Decimal, neg_risk: bool) -> OrderAck:
        """Sign and post a GTC limit order in one call (callers that need the fencing checkpoint
        between the two use ``sign_limit`` + ``post_signed``)."""
        return self.post_signed(self.sign_limit(token_id, side, price, size, tick_size, neg_risk), post_only)

    def cancel(self, order_id: str) -> CancelResult:
        """``DELETE /order`` for one id."""
        return _cancel_result(self._call(self._authed().cancel_order, OrderPayload(orderID=order_id)))

    def cancel_token(self, token_id: str) -> CancelResult:
        """``DELETE /cancel-market-orders`` with ``asset_id`` = token (the takeover clean-up)."""
        params = OrderMarketCancelParams(asset_id=token_id)
        return _cancel_result(self._call(self._authed().cancel_market_orders, params))

    def get_order(self, order_id: str) -> OrderState | None:
        """``GET /data/order/{id}``; None when the venue does not know the id (404 or empty)."""
        try:
            raw = self._call(self._authed().get_order, order_id)
        except OrderNotFound:
            return None
        return parse_order(raw) if isinstance(raw, dict) and raw.get("id") else None

    def open_orders(self, token_id: str) -> list[OrderState]:
        """``GET /data/orders?asset_id=`` (every page)."""
        rows = self._call(self._authed().get_open_orders, OpenOrderParams(asset_id=token_id))
        return [parse_order(r) for r in rows]

    # ---- balances ----
    def token_balance(self, token_id: str) -> Decimal:
        """Shares of ``token_id`` held (``GET /balance-allowance`` CONDITIONAL; 6-decimal integer)."""
        params = BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=token_id)
        return dec(self._call(self._authed().get_balance_allowance, params)["balance"], "balance") / MICRO

    def collateral(self) -> Decimal:
        """pUSD held (``GET /balance-allowance`` COLLATERAL; 6-decimal integer)."""
        params = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)
        return dec(self._call(self._authed().get_balance_allowance, params)["balance"], "balance") / MICRO

    def refresh_balance(self, token_id: str) -> None:
        """``GET /balance-allowance/update`` for the token: refreshes the CLOB's cached balance, the fix
        for "not enough balance" right after a fill (api.md error strings)."""
        params = BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=token_id)
        self._call(self._authed().update_balance_allowance, params)

    def post_heartbeat(self, heartbeat_id: str = "") -> str:
        """``POST /v1/heartbeats``; returns the heartbeat id to send next time. Once started, missing one
        for 10 s cancels all the account's orders (api.md "Other order endpoints")."""
        res = self._call(self._authed().post_heartbeat, heartbeat_id)
        return str(res.get("heartbeat_id", heartbeat_id)) if isinstance(res, dict) else heartbeat_id


def _cancel_result(res: Any) -> CancelResult:
    if not isinstance(res, dict):
        raise BadResponse(0, f"bad venue field cancel response={res!r:.200}")
    return CancelResult(tuple(str(i) for i in res.get("canceled") or ()),
                        {str(k): str(v) for k, v in (res.get("not_canceled") or {}).items()})
