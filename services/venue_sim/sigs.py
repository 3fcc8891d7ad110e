"""Order signature cryptography of the paper venue: EIP-712 digests and the venue's own ecrecover.

Every rule is read from polymarket-client 0.14.0 (the authority on what Polymarket's SDK signs):
- ``polymarket/_internal/actions/orders/typed_data.py``: struct ``Order(uint256 salt, address maker,
  address signer, uint256 tokenId, uint256 makerAmount, uint256 takerAmount, uint8 side,
  uint8 signatureType, uint256 timestamp, bytes32 metadata, bytes32 builder)`` in the domain
  ``{name: "Polymarket CTF Exchange", version: <protocol version>, chainId, verifyingContract}``.
  For signature type 3 (POLY_1271, deposit wallets) the signer signs the ERC-7739 nested struct
  ``TypedDataSign(Order contents, string name "DepositWallet", string version "1", uint256 chainId,
  address verifyingContract = the deposit wallet, bytes32 salt = 0)`` in the exchange's domain, and
  the posted signature is ``ecdsa(65) ‖ appDomainSeparator(32) ‖ contentsHash(32) ‖
  contentsType ‖ uint16 len(contentsType)`` (``build_order_signature``).
- ``polymarket/_internal/wallet.py`` ``wrap_deposit_wallet_session_signer_signature``: a session key's
  signature is ``abi.encode(bytes32 signerId, bytes32 0, bytes sig) ‖ 0x6492…6492`` (32 bytes).
- ``polymarket/_internal/actions/orders/context.py`` + ``polymarket/_internal/protocol.py``: an asset id
  in the protocol-v2 position namespace (bits 40..103 zero) is signed as protocol "3" for
  ``exchange_v3``; any other as protocol "2" for the standard or neg-risk exchange
  (``polymarket/environments.py`` PRODUCTION addresses).
The ECDSA recovery is the venue's own (coincurve over the digest), not the SDK's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from coincurve import PublicKey
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

CHAIN_ID = 137
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"  # environments.py standard_exchange
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"  # neg_risk_exchange
EXCHANGE_V3 = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"  # exchange_v3
POLY_1271 = 3
ORDER_TYPE = ("Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
              "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,"
              "bytes32 builder)")
_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_TYPED_DATA_SIGN_TYPE = ("TypedDataSign(Order contents,string name,string version,uint256 chainId,"
                         "address verifyingContract,bytes32 salt)" + ORDER_TYPE)
_SESSION_MAGIC = bytes.fromhex("64926492" * 8)
_V2_RESERVED_MASK = ((1 << 64) - 1) << 40  # protocol.py _V2_RESERVED_BITS_MASK


class SignatureError(ValueError):
    """A signature is malformed or its ECDSA part cannot be recovered (message says which)."""


@dataclass(frozen=True)
class Unwrapped:
    """A posted signature taken apart: ``ecdsa`` the 65-byte r‖s‖v, ``digest`` what it must sign,
    ``session_signer`` the checksum address a session-key wrapper names (None for an owner)."""

    ecdsa: bytes
    digest: bytes
    session_signer: str | None


def protocol_of(token_id: str, neg_risk: bool) -> tuple[str, str]:
    """(protocol version, verifying exchange) of an order on ``token_id`` (module doc)."""
    if (int(token_id) & _V2_RESERVED_MASK) == 0:
        return "3", EXCHANGE_V3
    return "2", NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2


def _b32(text: str) -> bytes:
    raw = bytes.fromhex(text[2:] if text[:2] in ("0x", "0X") else text)
    if len(raw) > 32:
        raise SignatureError(f"not a bytes32: {text[:20]!r}")
    return raw.rjust(32, b"\x00")


def order_struct_hash(order: Mapping[str, Any]) -> bytes:
    """hashStruct(Order) of a wire order (``side`` "BUY"/"SELL"); raises KeyError/ValueError/TypeError."""
    values = [keccak(text=ORDER_TYPE), int(order["salt"]), to_checksum_address(order["maker"]),
              to_checksum_address(order["signer"]), int(order["tokenId"]), int(order["makerAmount"]),
              int(order["takerAmount"]), 0 if order["side"] == "BUY" else 1, int(order["signatureType"]),
              int(order["timestamp"]), _b32(order["metadata"]), _b32(order["builder"])]
    types = ["bytes32", "uint256", "address", "address", "uint256", "uint256", "uint256", "uint8", "uint8",
             "uint256", "bytes32", "bytes32"]
    return keccak(abi_encode(types, values))


def domain_separator(version: str, exchange: str, chain_id: int = CHAIN_ID) -> bytes:
    """The exchange's EIP-712 domain separator for protocol ``version``."""
    return keccak(abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                             [keccak(text=_DOMAIN_TYPE), keccak(text="Polymarket CTF Exchange"),
                              keccak(text=version), chain_id, exchange]))


def order_digest(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> bytes:
    """The EIP-712 order hash (the order id, and what types 0/1/2 sign)."""
    version, exchange = protocol_of(str(order["tokenId"]), neg_risk)
    return keccak(b"\x19\x01" + domain_separator(version, exchange, chain_id) + order_struct_hash(order))


def deposit_wallet_digest(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> bytes:
    """What a type-3 order's ECDSA part signs: the TypedDataSign digest with the deposit wallet
    (the order's ``signer``) as the DepositWallet domain's verifying contract."""
    version, exchange = protocol_of(str(order["tokenId"]), neg_risk)
    inner = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
        [keccak(text=_TYPED_DATA_SIGN_TYPE), order_struct_hash(order), keccak(text="DepositWallet"),
         keccak(text="1"), chain_id, to_checksum_address(order["signer"]), b"\x00" * 32]))
    return keccak(b"\x19\x01" + domain_separator(version, exchange, chain_id) + inner)


def ecrecover(digest: bytes, signature: bytes) -> str:
    """Checksum address whose key made the 65-byte ``signature`` (r‖s‖v, v 27/28 or 0/1) over ``digest``.

    Raises:
        SignatureError: wrong length, bad v, or no point recovers.
    """
    if len(signature) != 65:
        raise SignatureError(f"ECDSA signature must be 65 bytes, got {len(signature)}")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if v not in (0, 1):
        raise SignatureError(f"bad recovery id v={signature[64]}")
    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises ValueError/Exception for bad points
        raise SignatureError(f"unrecoverable signature: {exc}") from None
    return to_checksum_address(keccak(key.format(compressed=False)[1:])[12:])


def _unwrap_session(raw: bytes) -> tuple[bytes, str | None]:
    if len(raw) < 32 + 96 or not raw.endswith(_SESSION_MAGIC):
        return raw, None
    try:
        signer_id, _zero, inner = abi_decode(["bytes32", "bytes32", "bytes"], raw[:-32])
    except Exception as exc:  # noqa: BLE001 - eth_abi raises several decoding errors
        raise SignatureError(f"bad session-key wrapper: {exc}") from None
    if bytes(signer_id)[:12] != b"\x00" * 12 or bytes(_zero) != b"\x00" * 32:
        raise SignatureError("session-key wrapper: signer id is not an address or the reserved word is not 0")
    return bytes(inner), to_checksum_address(bytes(signer_id)[12:])


def _check_trailer(raw: bytes, order: Mapping[str, Any], neg_risk: bool, chain_id: int) -> bytes:
    """The ECDSA part of a POLY_1271 signature after checking its ERC-7739 trailer."""
    type_len = len(ORDER_TYPE)
    if len(raw) != 65 + 64 + type_len + 2 or int.from_bytes(raw[-2:], "big") != type_len:
        raise SignatureError("POLY_1271 signature trailer has the wrong length")
    version, exchange = protocol_of(str(order["tokenId"]), neg_risk)
    if raw[65:97] != domain_separator(version, exchange, chain_id) or raw[97:129] != order_struct_hash(order):
        raise SignatureError("POLY_1271 signature trailer does not match the order")
    if raw[129:-2] != ORDER_TYPE.encode():
        raise SignatureError("POLY_1271 signature trailer names another contents type")
    return raw[:65]


def unwrap(order: Mapping[str, Any], neg_risk: bool, chain_id: int = CHAIN_ID) -> Unwrapped:
    """Take a wire order's ``signature`` apart by its ``signatureType`` (module doc).

    Raises:
        SignatureError: not hex, or a malformed POLY_1271 trailer / session wrapper.
        KeyError/ValueError/TypeError: an order field cannot be encoded.
    """
    text = str(order.get("signature", ""))
    try:
        raw = bytes.fromhex(text[2:] if text[:2] in ("0x", "0X") else text)
    except ValueError:
        raise SignatureError(f"signature is not hex: {text[:20]!r}") from None
    if int(order["signatureType"]) != POLY_1271:
        return Unwrapped(raw, order_digest(order, neg_risk, chain_id), None)
    raw, session = _unwrap_session(raw)
    return Unwrapped(_check_trailer(raw, order, neg_risk, chain_id),
                     deposit_wallet_digest(order, neg_risk, chain_id), session)
