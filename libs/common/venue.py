"""The one venue adapter, over polymarket-client (``import polymarket``): nothing else in polyband
imports ``polymarket`` or ``py_clob_client_v2`` at run time.

Every answer is a Decimal-typed dataclass of :mod:`libs.common.venue_types` (re-exported here: callers
import from this module) and every failure one :class:`VenueError` subclass
(:func:`libs.common.venue_sdk_parse.map_error`). Signing is local and offline
(:mod:`libs.common.venue_sdk_sign`); the SDK's ``SecureClient`` (polymarket/clients/secure.py) does
the authenticated HTTP. Amounts: prices in [0, 1] (USD per share), sizes in shares, balances in
shares or pUSD (6-decimal integers on the wire).
"""
from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Callable

import httpx
from polymarket import SecureClient
from polymarket.auth import RelayerApiKey
from polymarket._internal.actions import account as _account_actions
from polymarket._internal.wallet import signature_type_for
from polymarket.errors import (
    OrderHeartbeatMismatchError, PolymarketError, TimeoutError as SdkTimeoutError, TransactionFailedError,
)
from polymarket.rate_limit import RateLimitUpdate
from pydantic import SecretStr

from libs.common import venue_sdk_parse as parse
from libs.common.settings import VenueSettings
from libs.common.venue_sdk_sign import WALLET_TYPES, make_signer, sign_limit, venue_environment
from libs.common.venue_types import (  # noqa: F401 - re-exported: callers import them from here
    T, MICRO, PAPER_TEST_PRIVATE_KEY, VenueError, InsufficientBalance, PostOnlyCross, OrderRejected,
    BadResponse, OrderNotFound, AuthFailed, RateLimited, VenueUnavailable, classify, _message, dec,
    RestBook, SignedOrder, OrderAck, OrderState, TradeFill, RedeemResult, CancelResult, RateLimitState, Venue,
    normalize_status, parse_order, parse_book,
)

log = logging.getLogger(__name__)
_TRANSPORTS = ("clob", "secure_clob", "relayer", "data", "gamma")
_PAPER_RELAYER_KEY = "paper-relayer-key"  # not a secret: the paper venue's relayer accepts any key


class VenueClient:
    """Polymarket CLOB (or the paper venue) through polymarket-client's sync ``SecureClient``.

    Args:
        clob_url: CLOB REST base URL (``PB_CLOB_URL``); paper: the venue, with its relayer, Gamma,
            data-api and JSON-RPC under it (``libs.common.sdk_env.paper_urls``).
        private_key: signer key (SecretStr; never logged).
        wallet_type: EOA | POLY_PROXY | GNOSIS_SAFE | DEPOSIT_WALLET (``PB_WALLET_TYPE``).
        wallet: the wallet acting (``PB_WALLET``); None = derived from the key for the type.
        live: True = Polymarket production (contracts and URLs), False = the paper venue's URLs.
        http_timeout_s: timeout of every HTTP call of the client once created.
        relayer_api_key: Relayer API key (SecretStr) for relayed (gasless) transactions: redeeming,
            deploying a deposit wallet; ``relayer_address`` its address (None = the signer's). Paper
            without one: a placeholder key (the paper relayer checks only that one is sent).

    Raises:
        ValueError: bad key, wallet type or wallet (checked here, offline, before any call).

    The SDK client is created lazily on the first venue call (``SecureClient.create`` derives the
    API credentials and, for a non-EOA wallet, checks it is deployed - deploying a missing deposit
    wallet through the relayer) and again after an AuthFailed.
    """

    def __init__(self, clob_url: str, private_key: SecretStr, *, wallet_type: str = "EOA",
                 wallet: str | None = None, live: bool = False, http_timeout_s: float = 5.0,
                 relayer_api_key: SecretStr | None = None, relayer_address: str | None = None) -> None:
        if wallet_type not in WALLET_TYPES:
            raise ValueError(f"unknown wallet type {wallet_type!r}; one of {', '.join(WALLET_TYPES)}")
        self.clob_url, self.live, self._key = clob_url.rstrip("/"), live, private_key
        self._env = venue_environment(self.clob_url, live)
        self._signer = make_signer(private_key.get_secret_value(), wallet_type, wallet, self._env)
        self._timeout = httpx.Timeout(http_timeout_s)
        if relayer_api_key is None and not live:
            relayer_api_key = SecretStr(_PAPER_RELAYER_KEY)
        self._relayer = (relayer_api_key, relayer_address or self._signer.account.address)
        self._sdk: SecureClient | None = None
        self._rate: RateLimitState | None = None

    @classmethod
    def from_settings(cls, settings: VenueSettings, clob_url: str, http_timeout_s: float) -> "VenueClient":
        """The client of a service's settings (``VenueSettings`` fields; live = ``PB_MODE=live``).

        Raises:
            ValueError: bad key, wallet type or wallet.
        """
        assert settings.private_key is not None  # VenueSettings fills it (paper) or refuses (live)
        return cls(clob_url, settings.private_key, wallet_type=settings.wallet_type, wallet=settings.wallet,
                   live=settings.mode == "live", http_timeout_s=http_timeout_s,
                   relayer_api_key=settings.relayer_api_key, relayer_address=settings.relayer_api_key_address)

    def __repr__(self) -> str:
        return f"VenueClient(clob_url={self.clob_url!r}, wallet={self.wallet}, wallet_type={self.wallet_type})"

    @property
    def wallet(self) -> str:
        """Checksummed address of the wallet that holds the funds and makes the orders."""
        return self._signer.wallet

    @property
    def wallet_type(self) -> str:
        return self._signer.wallet_type

    @property
    def signer_address(self) -> str:
        return str(self._signer.account.address)

    # ---- plumbing ----
    def _client(self) -> SecureClient:
        if self._sdk is None:
            self._sdk = self._call_raw(lambda: SecureClient.create(
                private_key=self._key.get_secret_value(), wallet=self._signer.wallet, environment=self._env,
                api_key=self._relayer_key(), on_rate_limit_update=self._on_rate_limit))
            for name in _TRANSPORTS:  # the SDK offers no timeout option; its transports wrap httpx.Client
                getattr(self._sdk._ctx, name)._client.timeout = self._timeout
        return self._sdk

    def api_credentials(self) -> tuple[str, str, str]:
        """(API key, secret, passphrase) of the L2 credentials, derived on first use; for the user
        WebSocket channel's auth frame. Secrets: never log them.

        Raises:
            VenueError: the client could not be created (AuthFailed, VenueUnavailable, ...).
        """
        creds = self._call(lambda c: c.credentials)
        return creds.key, creds.secret, creds.passphrase

    def _relayer_key(self) -> RelayerApiKey | None:
        key, address = self._relayer
        return None if key is None else RelayerApiKey(key=key.get_secret_value(), address=address)

    def _on_rate_limit(self, update: RateLimitUpdate) -> None:
        self._rate = parse.rate_limit_state(update)
        if update.warning:
            log.warning("event VENUE_RATE_LIMIT_WARNING remaining=%s tier=%s", update.remaining, update.tier)

    def rate_limit_state(self) -> RateLimitState | None:
        """The per-signer rate-limit state the venue last reported (None before any report)."""
        return self._rate

    def _call_raw(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (PolymarketError, httpx.HTTPError) as exc:
            err = parse.map_error(exc)
            if isinstance(err, AuthFailed):
                self.close()
            raise err from exc

    def _call(self, fn: Callable[[SecureClient], T]) -> T:
        """Run ``fn(client)``, mapping SDK exceptions to VenueError (AuthFailed drops the client)."""
        return self._call_raw(lambda: fn(self._client()))

    def close(self) -> None:
        """Close the SDK client's connections (a later call creates a new client)."""
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()

    def connect(self) -> None:
        """Create the SDK client now (API credentials derived, a non-EOA wallet checked deployed), so
        that the first trading call does not pay for it; a worker holds no lease before this works.

        Raises:
            VenueError: AuthFailed, VenueUnavailable, ... (the client is created again next time).
        """
        self._call(lambda c: None)

    # ---- market data ----
    def get_book(self, token_id: str) -> RestBook:
        """Top of ``GET /book?token_id=``."""
        return parse.book_of(self._call(lambda c: c.get_order_book(token_id=token_id)))

    # ---- orders ----
    def sign_limit(self, token_id: str, side: str, price: Decimal, size: Decimal,
                   tick_size: Decimal, neg_risk: bool) -> SignedOrder:
        """Sign a GTC limit order locally (no HTTP); ``order_id`` is its EIP-712 hash, known before
        the POST. Ticks 0.1, 0.01, 0.005, 0.0025, 0.001, 0.0001 (orders/context.py).

        Raises:
            OrderRejected: price off the tick grid or outside [tick, 1 - tick], unsupported tick,
                a signing failure.
        """
        try:
            order_id, payload = sign_limit(self._signer, token_id, side, price, size, tick_size, neg_risk)
        except PolymarketError as exc:
            raise OrderRejected(0, str(exc)) from exc
        return SignedOrder(order_id, token_id, side, price, size, payload)

    def post_signed(self, order: SignedOrder, post_only: bool) -> OrderAck:
        """``POST /order`` as GTC (post-only when asked). Never retried here: a VenueUnavailable means
        the outcome is unknown and must be resolved with ``get_order(order.order_id)``.

        Raises:
            PostOnlyCross, InsufficientBalance, OrderRejected, RateLimited, VenueUnavailable, BadResponse.
        """
        payload = dataclasses.replace(order.payload, post_only=post_only)  # not part of the signed struct
        return parse.ack_of(self._call(lambda c: c.post_order(payload)), order.order_id)

    def post_limit(self, token_id: str, side: str, price: Decimal, size: Decimal, post_only: bool,
                   tick_size: Decimal, neg_risk: bool) -> OrderAck:
        """Sign and post in one call (callers needing the fencing checkpoint between them use
        ``sign_limit`` + ``post_signed``)."""
        return self.post_signed(self.sign_limit(token_id, side, price, size, tick_size, neg_risk), post_only)

    def cancel(self, order_id: str) -> CancelResult:
        """``DELETE /order`` for one id."""
        return parse.cancel_of(self._call(lambda c: c.cancel_order(order_id=order_id)))

    def cancel_token(self, token_id: str) -> CancelResult:
        """``DELETE /cancel-market-orders`` for the token (the takeover clean-up)."""
        return parse.cancel_of(self._call(lambda c: c.cancel_market_orders(asset_id=token_id)))

    def get_order(self, order_id: str) -> OrderState | None:
        """``GET /data/order/{id}``; None when the venue does not know the id (404, or an empty body)."""
        try:
            return parse.state_of(self._call_raw(lambda: self._client().get_order(order_id=order_id)))
        except OrderNotFound:
            return None
        except BadResponse as exc:
            if parse.empty_answer(exc.__cause__):
                return None
            raise

    def open_orders(self, token_id: str) -> list[OrderState]:
        """``GET /data/orders?asset_id=`` (every page)."""
        rows = self._call(lambda c: list(c.list_open_orders(asset_id=token_id).iter_items()))
        return [parse.state_of(r) for r in rows]

    def trades(self, token_id: str, after_ms: int = 0) -> list[TradeFill]:
        """Our fills on the token (``GET /data/trades?asset_id=&after=``, every page), matched at or
        after ``after_ms``; one per fill of OUR order (venue_sdk_parse.fills_of). A trade is listed
        again as its settlement status moves on: dedupe by (trade_id, order_id)."""
        after = str(after_ms // 1000) if after_ms > 0 else None
        rows = self._call(lambda c: list(c.list_account_trades(asset_id=token_id, after=after).iter_items()))
        ours = (self.wallet, self._client().credentials.key)
        return [f for t in rows for f in parse.fills_of(t, token_id, ours, after_ms)]

    # ---- balances ----
    def token_balance(self, token_id: str) -> Decimal:
        """Shares of ``token_id`` held (``GET /balance-allowance`` CONDITIONAL)."""
        res = self._call(lambda c: c.get_balance_allowance(asset_type="CONDITIONAL", asset_id=token_id))
        return parse.balance_of(res.balance)

    def collateral(self) -> Decimal:
        """pUSD held (``GET /balance-allowance`` COLLATERAL)."""
        return parse.balance_of(self._call(lambda c: c.get_balance_allowance(asset_type="COLLATERAL")).balance)

    def refresh_balance(self, token_id: str) -> None:
        """``GET /balance-allowance/update`` for the token: refreshes the CLOB's cached balance, the fix
        for "not enough balance" right after a fill. The SDK has no public method for it; this is
        the request of its own allowance recovery (polymarket/_internal/actions/orders/place.py)."""
        def update(c: SecureClient) -> None:
            path, params = _account_actions.build_update_balance_allowance_request(
                asset_type="CONDITIONAL", asset_id=token_id, signature_type=signature_type_for(c.wallet_type))
            c._ctx.secure_clob.get_bytes(path, params=params)
        self._call(update)

    def post_heartbeat(self, heartbeat_id: str = "") -> str:
        """``POST /v1/heartbeats``; returns the id to send next time. Once started, missing one for
        10 s cancels all the account's orders. A stale id is retried once with the id the venue
        expects (polymarket/errors.py ``OrderHeartbeatMismatchError``)."""
        try:
            return self._call_raw(lambda: self._client().send_order_heartbeat(heartbeat_id=heartbeat_id)).heartbeat_id
        except VenueError as exc:
            if not isinstance(exc.__cause__, OrderHeartbeatMismatchError):
                raise
            expected = exc.__cause__.heartbeat_id
        return self._call(lambda c: c.send_order_heartbeat(heartbeat_id=expected)).heartbeat_id

    def redeem(self, condition_id: str) -> RedeemResult:
        """Redeem a resolved market's positions: SDK ``redeem_positions(condition_id=)`` (relayer for
        proxy / safe / deposit wallets, a chain transaction for an EOA), then ``wait()``.

        Returns CONFIRMED with ``payout_usd`` = collateral after - before (None when the second read
        failed; redeeming again pays 0, as on chain); FAILED when the transaction failed on chain;
        PENDING when waiting timed out (payout None for both).

        Raises:
            VenueError: the redeem could not be submitted (market unknown or not closed, a V2
                market without balance, rejected, transport): nothing was sent.
        """
        before = self.collateral()
        handle = self._call(lambda c: c.redeem_positions(condition_id=condition_id))
        tx = str(handle.transaction_id or handle.transaction_hash or "")
        try:
            outcome = handle.wait()
        except TransactionFailedError as exc:
            log.warning("event REDEEM_FAILED condition_id=%s tx=%s detail=%s", condition_id, tx, exc)
            return RedeemResult(condition_id, "FAILED", tx, None)
        except SdkTimeoutError:
            return RedeemResult(condition_id, "PENDING", tx, None)
        except (PolymarketError, httpx.HTTPError) as exc:
            raise parse.map_error(exc) from exc
        tx = str(outcome.transaction_id or outcome.transaction_hash or tx)
        try:
            payout: Decimal | None = self.collateral() - before
        except VenueError as exc:  # the redeem is done; only its measure is missing
            log.warning("event REDEEM_PAYOUT_UNKNOWN condition_id=%s tx=%s detail=%s", condition_id, tx, exc)
            payout = None
        return RedeemResult(condition_id, "CONFIRMED", tx, payout)
