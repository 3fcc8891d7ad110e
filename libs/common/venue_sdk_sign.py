"""Order signing and wallet set-up for :mod:`libs.common.venue`, on polymarket-client's own pieces.

Signing needs no network: the tick size and neg-risk flag come from the caller (the book), so the
SDK's per-token market metadata look-ups (``/markets-by-token``, ``/clob-markets``) are skipped and
the order hash (the venue's order id) is computed here BEFORE the order is posted. The steps are
those of ``SecureClient._sign_order`` and ``_build_limit_order_draft`` (polymarket/clients/secure.py,
polymarket/_internal/actions/orders/limit.py, orders.py, typed_data.py); they are private SDK
helpers, so the SDK version is pinned (pyproject) and tests/unit/test_venue_client.py checks the
result against an independent EIP-712 encoding and the SDK's own signing. Speed: the EIP-712 digest
is hashed here from the struct hashes (no generic typed-data encoder; the exchange's domain
separator cached) and signed by eth_keys with its backend pinned once (coincurve when installed):
``python bench/signing.py`` measures it against the pure-Python backend.

Amounts: ``price`` USD per share on the tick grid in [tick, 1 - tick]; ``size`` shares; the signed
order's maker/taker amounts are integers with 6 decimals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account._utils.signing import sign_message_hash
from eth_account.signers.local import LocalAccount
from eth_keys.backends import get_backend
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from polymarket import PRODUCTION, Environment
from polymarket._internal.actions.orders.context import (
    resolve_order_exchange_address, resolve_rounding_config, validate_price_on_tick_grid,
)
from polymarket._internal.actions.orders.limit import _compute_limit_order_amounts
from polymarket._internal.actions.orders.orders import create_signed_order, create_unsigned_order
from polymarket._internal.actions.orders.typed_data import (
    _ORDER_TYPE_STRING, _app_domain_separator, _order_contents_hash, build_order_signature,
)
from polymarket._internal.actions.orders.types import OrderDraft, UnsignedOrder
from polymarket._internal.environment import EnvironmentConfig, get_environment_config
from polymarket._internal.wallet import (
    classify_account, derive_beacon_deposit_wallet_address, derive_proxy_wallet_address,
    derive_safe_wallet_address, wrap_deposit_wallet_signature,
)
from polymarket.errors import SigningError
from polymarket.models.clob.orders import SignedOrder as SdkSignedOrder
from polymarket.types import EvmAddress, HexString

from libs.common.sdk_env import paper_urls, sdk_environment

WalletType = Literal["EOA", "POLY_PROXY", "GNOSIS_SAFE", "DEPOSIT_WALLET"]
WALLET_TYPES: tuple[str, ...] = get_args(WalletType)
_POLY_1271 = 3  # signature type of a deposit wallet (orders/typed_data.py)
_DOMAINS: dict[tuple[int, str, str], bytes] = {}  # (chain id, exchange, protocol version) -> separator
_TYPED_DATA_SIGN_TYPEHASH = keccak((
    "TypedDataSign(Order contents,string name,string version,uint256 chainId,address verifyingContract,"
    "bytes32 salt)" + _ORDER_TYPE_STRING).encode())
_DEPOSIT_WALLET_NAME, _DEPOSIT_WALLET_VERSION = keccak(b"DepositWallet"), keccak(b"1")


def venue_environment(clob_url: str, live: bool) -> Environment:
    """The SDK Environment for ``clob_url``: live = PRODUCTION (its CLOB URL replaced when another is
    configured, e.g. a proxy); paper = the paper venue's URL conventions (``sdk_env.paper_urls``:
    relayer ``/relayer``, Gamma ``/gamma``, data-api ``/data-api``, JSON-RPC ``/rpc``)."""
    url = clob_url.rstrip("/")
    if live:
        cfg = get_environment_config(PRODUCTION)
        if url == cfg.clob_url:
            return PRODUCTION
        return sdk_environment(url, relayer_url=cfg.relayer_url, gamma_url=cfg.gamma_url, data_url=cfg.data_url,
                               rpc_url=cfg.rpc_url, ws_market_url=cfg.clob_market_ws_url,
                               ws_user_url=cfg.clob_user_ws_url, name="production")
    ws = "ws" + url.removeprefix("http")  # the adapter opens no WebSocket; only for completeness
    return sdk_environment(**paper_urls(url, ws))


def derive_wallet(signer: str, wallet_type: str, config: EnvironmentConfig) -> str:
    """The wallet address a signer trades for, by type (CREATE2 derivations of
    polymarket/_internal/wallet.py): EOA = the signer; POLY_PROXY / GNOSIS_SAFE = its proxy / safe;
    DEPOSIT_WALLET = its current (beacon) deposit wallet. A legacy (UUPS) deposit wallet or a
    session key acting for another wallet must be given explicitly (``PB_WALLET``).

    Raises:
        ValueError: unknown wallet type.
    """
    derivation = config.wallet_derivation
    derive = {"EOA": lambda s, d: s, "POLY_PROXY": derive_proxy_wallet_address,
              "GNOSIS_SAFE": derive_safe_wallet_address,
              "DEPOSIT_WALLET": derive_beacon_deposit_wallet_address}.get(wallet_type)
    if derive is None:
        raise ValueError(f"unknown wallet type {wallet_type!r}; one of {', '.join(WALLET_TYPES)}")
    return str(derive(signer, derivation))


@dataclass(frozen=True)
class OrderSigner:
    """Everything signing needs: the key's account and key object (secret; never in repr; the key
    object's ECC backend pinned), the wallet it acts for, that wallet's type, OWNER or SESSION_KEY,
    and the environment's contract addresses."""

    account: LocalAccount = field(repr=False)
    key: PrivateKey = field(repr=False)
    wallet: str
    wallet_type: str
    signer_type: str
    config: EnvironmentConfig

    def __repr__(self) -> str:
        return f"OrderSigner(signer={self.account.address}, wallet={self.wallet}, type={self.wallet_type})"


def make_signer(private_key: str, wallet_type: str, wallet: str | None, environment: Environment) -> OrderSigner:
    """Build the signer; ``wallet`` None = derived for the type (:func:`derive_wallet`).

    Raises:
        ValueError: bad key (the message never contains it), bad address, or an explicit wallet
            that is not of ``wallet_type`` for this key (polymarket/_internal/wallet.py
            ``classify_account``: a wallet not derivable from the key is a session-key deposit wallet).
    """
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError):
        raise ValueError("PB_PRIVATE_KEY is not a valid secp256k1 private key") from None
    # eth_keys resolves an unset backend on EVERY signature (env ECC_BACKEND_CLASS, else coincurve when
    # installed; eth_keys/datatypes.py LazyBackend): pin the one resolved now on our own key object
    key = PrivateKey(bytes(account.key), backend=get_backend())
    config = get_environment_config(environment)
    try:
        address = to_checksum_address(wallet or derive_wallet(account.address, wallet_type, config))
    except ValueError as exc:
        raise ValueError(f"PB_WALLET={wallet!r} is not an address: {exc}") from None
    kind = classify_account(signer=account.address, wallet=address, config=config.wallet_derivation)
    if kind.wallet_type != wallet_type:
        raise ValueError(f"wallet {address} is a {kind.wallet_type} wallet for signer {account.address}, "
                         f"not {wallet_type} (PB_WALLET_TYPE / PB_WALLET)")
    return OrderSigner(account, key, address, wallet_type, kind.signer_type, config)


def unsigned_limit(signer: OrderSigner, token_id: str, side: str, price: Decimal, size: Decimal,
                   tick_size: Decimal, neg_risk: bool) -> UnsignedOrder:
    """The unsigned GTC limit order (amounts rounded as the SDK rounds for the tick).

    Raises:
        polymarket.errors.UserInputError: price off the tick grid or outside [tick, 1 - tick].
        polymarket.errors.UnexpectedResponseError: a tick size the SDK does not support.
    """
    resolve_rounding_config(tick_size)
    validate_price_on_tick_grid(price, tick_size, "price")
    offered, requested = _compute_limit_order_amounts(price=price, size=size, side=side,  # type: ignore[arg-type]
                                                      tick_size=tick_size)
    draft = OrderDraft(
        chain_id=signer.config.chain_id, expiration=0, funder_address=EvmAddress(signer.wallet),
        exchange_address=resolve_order_exchange_address(signer.config, asset_id=token_id, neg_risk=neg_risk),
        offered_amount=offered, requested_amount=requested, order_type="GTC", side=side,  # type: ignore[arg-type]
        signer=EvmAddress(signer.account.address), asset_id=token_id)
    return create_unsigned_order(draft, wallet=EvmAddress(signer.wallet), wallet_type=signer.wallet_type)  # type: ignore[arg-type]


def _domain(order: UnsignedOrder) -> bytes:
    """The exchange's EIP-712 domain separator (cached: a handful of exchanges)."""
    key = (order.chain_id, order.exchange_address, order.protocol_version)
    domain = _DOMAINS.get(key)
    if domain is None:
        domain = _DOMAINS[key] = bytes.fromhex(_app_domain_separator(order, protocol_version=order.protocol_version)[2:])
    return domain


def order_digest(order: UnsignedOrder, contents: bytes | None = None) -> bytes:
    """The order's EIP-712 digest: keccak(0x1901 || exchange domain separator || Order struct hash),
    the exchange's ``hashOrder``; as ``0x`` + hex it is the CLOB's order id for every wallet type (a
    deposit-wallet signature wraps this same struct; typed_data.py ``build_order_signature``).
    ``contents``: the Order struct hash when already computed."""
    return keccak(b"\x19\x01" + _domain(order) + (contents or _order_contents_hash(order)))


def signing_digest(order: UnsignedOrder, contents: bytes) -> bytes:
    """What the key signs: the EIP-712 digest of ``build_order_typed_data(order)`` (typed_data.py),
    as eth_account's ``sign_typed_data`` hashes it. Types 0-2: the Order itself under the exchange
    domain (:func:`order_digest`). Type 3 (deposit wallet, ERC-7739): ``TypedDataSign{contents: Order,
    name "DepositWallet", version "1", chainId, verifyingContract: the wallet (the order's signer),
    salt 0}`` under the same domain; the unit tests check both against eth_account's encoding."""
    if order.signature_type != _POLY_1271:
        return order_digest(order, contents)
    struct = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
        [_TYPED_DATA_SIGN_TYPEHASH, contents, _DEPOSIT_WALLET_NAME, _DEPOSIT_WALLET_VERSION, order.chain_id,
         order.signer, bytes(32)]))
    return keccak(b"\x19\x01" + _domain(order) + struct)


def sign_limit(signer: OrderSigner, token_id: str, side: str, price: Decimal, size: Decimal,
               tick_size: Decimal, neg_risk: bool) -> tuple[str, SdkSignedOrder]:
    """Sign a GTC limit order: (order id, the SDK's SignedOrder with ``post_only`` False). The
    signature is the one ``SecureClient._sign_order`` makes (r || s || v with v 27/28, then the SDK's
    deposit-wallet trailer and session-key wrapping).

    Raises:
        polymarket.errors.UserInputError / UnexpectedResponseError: see :func:`unsigned_limit`.
        polymarket.errors.SigningError: the key could not sign.
    """
    unsigned = unsigned_limit(signer, token_id, side, price, size, tick_size, neg_risk)
    contents = _order_contents_hash(unsigned)
    try:
        _, _, _, raw = sign_message_hash(signer.key, signing_digest(unsigned, contents))
    except Exception as exc:  # noqa: BLE001 - as SecureClient._sign_order: any failure is a SigningError
        raise SigningError(f"Failed to sign order: {type(exc).__name__}") from None
    signature = HexString("0x" + raw.hex())
    final = wrap_deposit_wallet_signature(signer=signer.account.address, signer_type=signer.signer_type,  # type: ignore[arg-type]
                                          signature=build_order_signature(unsigned, signature))
    return "0x" + order_digest(unsigned, contents).hex(), create_signed_order(unsigned, final, post_only=False)
