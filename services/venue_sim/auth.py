"""Authentication of the paper venue: L1 (EIP-712 ClobAuth), L2 (HMAC) and V2 order signatures.

Every rule mirrors what py_clob_client_v2 1.2.1 sends (its source is the authority):
- L1 (``signing/eip712.py``): domain ``{name: "ClobAuthDomain", version: "1", chainId}``, struct
  ``ClobAuth(address address, string timestamp, uint256 nonce, string message)`` with the fixed
  message "This message attests that I control the given wallet"; the client signs the EIP-712
  digest, headers ``POLY_ADDRESS, POLY_SIGNATURE, POLY_TIMESTAMP, POLY_NONCE``.
- L2 (``signing/hmac.py``): ``urlsafe_b64(HMAC_SHA256(urlsafe_b64decode(secret),
  ts + METHOD + path + body))`` where the path has no query string and the body is the exact
  serialized JSON with ``'`` replaced by ``"``; headers ``POLY_ADDRESS, POLY_SIGNATURE,
  POLY_TIMESTAMP, POLY_API_KEY, POLY_PASSPHRASE``.
- V2 orders (``order_utils/exchange_order_builder_v2.py``): EIP-712 domain ``{name: "Polymarket
  CTF Exchange", version: "2", chainId, verifyingContract}`` (the V2 exchange, or the neg-risk V2
  exchange for neg-risk markets, ``config.py``), struct ``Order(uint256 salt, address maker,
  address signer, uint256 tokenId, uint256 makerAmount, uint256 takerAmount, uint8 side,
  uint8 signatureType, uint256 timestamp, bytes32 metadata, bytes32 builder)``. The order id is
  that EIP-712 digest (0x + 64 hex).
Timestamps in headers are not checked for freshness (the paper venue runs on replayed time).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak, to_checksum_address

CHAIN_ID = 137
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"  # py_clob_client_v2 config.py (137)
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
UNAUTHORIZED = "Unauthorized/Invalid api key"  # docs.polymarket.com/resources/error-codes (401)
INVALID_L1 = "Invalid L1 Request headers"  # same page (401)

_DOMAIN_FIELDS = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                  {"name": "chainId", "type": "uint256"}]
_CLOB_AUTH_FIELDS = [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"},
                     {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]
_ORDER_FIELDS = [{"name": n, "type": t} for n, t in (
    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"),
    ("signatureType", "uint8"), ("timestamp", "uint256"), ("metadata", "bytes32"),
    ("builder", "bytes32"))]


class AuthError(Exception):
    """A request failed authentication: ``status`` (401) and the ``{"error": message}`` text."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class ApiCreds:
    """API credentials of one maker ``address`` (checksum form) made with ``nonce``."""

    api_key: str
    secret: str
    passphrase: str
    address: str
    nonce: int

    def wire(self) -> dict[str, str]:
        """``{"apiKey", "secret", "passphrase"}``, the shape the client reads."""
        return {"apiKey": self.api_key, "secret": self.secret, "passphrase": self.passphrase}


def derive_creds(seed: int, address: str, nonce: int) -> ApiCreds:
    """Deterministic credentials for (seed, address, nonce): the same inputs always give the same
    key, so ``derive-api-key`` returns what ``api-key`` created, across venue restarts too."""
    root = hashlib.sha256(f"polyband-venue:{seed}:{address.lower()}:{nonce}".encode()).digest()
    secret = base64.urlsafe_b64encode(hashlib.sha256(b"secret" + root).digest()).decode()
    return ApiCreds(api_key=str(uuid.UUID(bytes=root[:16], version=4)), secret=secret,
                    passphrase=hashlib.sha256(b"passphrase" + root).hexdigest(),
                    address=to_checksum_address(address) if _is_address(address) else address,
                    nonce=nonce)


def _is_address(text: str) -> bool:
    return len(text) == 42 and text.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in text[2:])


def _digest(message: SignableMessage) -> bytes:
    return keccak(b"\x19" + message.version + message.header + message.body)


def _recover(message: SignableMessage, signature: str) -> str:
    """Signer address of ``signature`` over ``message``; raises ValueError when unrecoverable."""
    try:
        return str(Account.recover_message(message, signature=signature))
    except Exception as exc:  # noqa: BLE001 - eth_account raises several types for bad signatures
        raise ValueError(f"unrecoverable signature {signature[:20]!r}...: {exc}") from None


def clob_auth_message(address: str, timestamp: str, nonce: int, chain_id: int = CHAIN_ID) -> SignableMessage:
    """The EIP-712 ClobAuth message an L1 header signs."""
    return encode_typed_data(full_message={
        "primaryType": "ClobAuth", "types": {"EIP712Domain": _DOMAIN_FIELDS, "ClobAuth": _CLOB_AUTH_FIELDS},
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce, "message": CLOB_AUTH_MESSAGE}})


def verify_l1(headers: Mapping[str, str], chain_id: int = CHAIN_ID) -> tuple[str, int]:
    """Check L1 headers; returns (checksum address, nonce).

    Raises:
        AuthError: 401 "Invalid L1 Request headers" when a header is missing or malformed or the
            signature was not made by ``POLY_ADDRESS``.
    """
    address, signature = headers.get("POLY_ADDRESS", ""), headers.get("POLY_SIGNATURE", "")
    timestamp, nonce_text = headers.get("POLY_TIMESTAMP", ""), headers.get("POLY_NONCE", "0") or "0"
    if not _is_address(address) or not signature or not timestamp or not nonce_text.isdigit():
        raise AuthError(INVALID_L1)
    try:
        signer = _recover(clob_auth_message(address, timestamp, int(nonce_text), chain_id), signature)
    except ValueError:
        raise AuthError(INVALID_L1) from None
    if signer.lower() != address.lower():
        raise AuthError(INVALID_L1)
    return to_checksum_address(address), int(nonce_text)


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str | None,
                   quotes: bool = True) -> str:
    """The L2 signature exactly as ``py_clob_client_v2.signing.hmac.build_hmac_signature`` makes it
    (``quotes``: body ``'`` replaced by ``"``), or as polymarket-client ``_internal/hmac.py`` does
    (``quotes=False``: body as sent, secret re-padded)."""
    message = f"{timestamp}{method}{path}"
    if body:
        message += body.replace("'", '"') if quotes else body
    padded = secret + "=" * (-len(secret) % 4)
    digest = hmac.new(base64.urlsafe_b64decode(padded), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("utf-8")


class KeyStore:
    """Thread-safe registry of API credentials: api_key -> ApiCreds, made deterministic by ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._by_key: dict[str, ApiCreds] = {}

    def register(self, address: str, nonce: int) -> ApiCreds:
        """Create (or re-create, idempotently) the credentials of (address, nonce)."""
        creds = derive_creds(self.seed, address, nonce)
        with self._lock:
            self._by_key[creds.api_key] = creds
        return creds

    def get(self, api_key: str) -> ApiCreds | None:
        """The credentials of ``api_key`` or None."""
        with self._lock:
            return self._by_key.get(api_key)

    def delete(self, api_key: str) -> bool:
        """Forget ``api_key``; True when it existed."""
        with self._lock:
            return self._by_key.pop(api_key, None) is not None

    def keys_of(self, address: str) -> list[str]:
        """API keys registered for ``address`` (any case)."""
        with self._lock:
            return sorted(k for k, c in self._by_key.items() if c.address.lower() == address.lower())

    def check_user(self, api_key: str, secret: str, passphrase: str) -> ApiCreds | None:
        """Credentials when all three match (user-channel ``auth`` object), else None."""
        creds = self.get(api_key)
        if creds and hmac.compare_digest(creds.secret, secret) and hmac.compare_digest(creds.passphrase, passphrase):
            return creds
        return None


def verify_l2(headers: Mapping[str, str], method: str, path: str, body: str | None, keys: KeyStore) -> ApiCreds:
    """Check L2 headers of a request to ``path`` (no query) with raw ``body`` text.

    Raises:
        AuthError: 401 "Unauthorized/Invalid api key" when the key is unknown, belongs to another
            address, the passphrase differs or the HMAC does not match.
    """
    creds = keys.get(headers.get("POLY_API_KEY", ""))
    if creds is None or headers.get("POLY_ADDRESS", "").lower() != creds.address.lower():
        raise AuthError(UNAUTHORIZED)
    if not hmac.compare_digest(headers.get("POLY_PASSPHRASE", ""), creds.passphrase):
        raise AuthError(UNAUTHORIZED)
    given = headers.get("POLY_SIGNATURE", "")
    try:  # py_clob_client_v2 signs the body with ' -> "; polymarket-client (_internal/hmac.py) signs it as sent
        expected = {hmac_signature(creds.secret, headers.get("POLY_TIMESTAMP", ""), method, path, body, quotes)
                    for quotes in (True, False)}
    except (ValueError, TypeError):
        raise AuthError(UNAUTHORIZED) from None
    if not any(hmac.compare_digest(given, e) for e in expected):
        raise AuthError(UNAUTHORIZED)
    return creds


def _bytes32(text: str) -> bytes:
    raw = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    if len(raw) > 32:
        raise ValueError(f"not a bytes32: {text[:20]!r}")
    return raw.rjust(32, b"\x00")


def order_message(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> SignableMessage:
    """EIP-712 message of a wire V2 order (``side`` "BUY" -> 0, "SELL" -> 1).

    Raises:
        ValueError/KeyError/TypeError: a field cannot be encoded.
    """
    message = {"salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
               "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
               "takerAmount": int(order["takerAmount"]), "side": 0 if order["side"] == "BUY" else 1,
               "signatureType": int(order["signatureType"]), "timestamp": int(order["timestamp"]),
               "metadata": _bytes32(order["metadata"]), "builder": _bytes32(order["builder"])}
    domain = {"name": "Polymarket CTF Exchange", "version": "2", "chainId": chain_id,
              "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2}
    types = {"EIP712Domain": _DOMAIN_FIELDS + [{"name": "verifyingContract", "type": "address"}],
             "Order": _ORDER_FIELDS}
    return encode_typed_data(full_message={"primaryType": "Order", "types": types, "domain": domain,
                                           "message": message})


def order_id(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> str:
    """The order hash (0x + 64 hex) used as order id (``ExchangeOrderBuilderV2.build_order_hash``).

    Raises:
        ValueError/KeyError/TypeError: a field cannot be encoded.
    """
    return "0x" + _digest(order_message(order, neg_risk, chain_id)).hex()


def order_signer(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> str:
    """Address that signed a wire V2 order.

    Raises:
        ValueError: the order cannot be encoded or its signature cannot be recovered.
    """
    try:
        message = order_message(order, neg_risk, chain_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"order cannot be encoded: {exc}") from None
    return _recover(message, str(order.get("signature", "")))
