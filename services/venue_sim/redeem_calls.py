"""Decoding of the contract calls a redemption sends (pure), for the venue's JSON-RPC (chain.py) and
relayer (relayer_tx.py).

The authority is polymarket-client 0.14.0:
- ``SecureClient.redeem_positions(condition_id=...)`` (polymarket/clients/secure.py) builds, for a
  v1 (CTF) market, ONE call ``ctf_redeem_positions_call`` (polymarket/_internal/actions/relayer/
  calls.py): ``to`` = the collateral adapter (``neg_risk_collateral_adapter`` when the market is
  neg-risk; polymarket/_internal/actions/relayer/positions.py ``normalize_market_position_context``),
  ``data`` = ``redeemPositions(address collateral, bytes32 parent, bytes32 conditionId,
  uint256[] indexSets)`` with collateral = pUSD (``collateral_token``), parent = 0, indexSets [1, 2].
- For a v2 market it sends ``redeem(bytes31,uint256,uint256)`` to ``protocol_v2_router``; the venue's
  markets are all v1 (its Gamma says ``version: "v1"``), so such a call is refused by name.
- A proxy wallet wraps the calls in ``proxy((uint8,address,uint256,bytes)[])`` (``encode_proxy_call``);
  a Safe sends one call directly, or ``multiSend(bytes)`` by DELEGATECALL for several
  (``encode_safe_multisend_call``: per call 1 byte operation, 20 bytes to, 32 value, 32 length, data).
Contract addresses are PRODUCTION's (libs/common/sdk_env.py keeps them for the paper environment).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from polymarket._internal.environment import PRODUCTION_CONFIG

from libs.common.tapes import MarketMeta
from services.venue_sim.redeem import RedeemRefused


def selector(signature: str) -> bytes:
    """The 4-byte function selector of ``signature`` (keccak256 prefix)."""
    return keccak(text=signature)[:4]


REDEEM_POSITIONS = selector("redeemPositions(address,bytes32,bytes32,uint256[])")
ROUTER_REDEEM = selector("redeem(bytes31,uint256,uint256)")
PROXY = selector("proxy((uint8,address,uint256,bytes)[])")
MULTISEND = selector("multiSend(bytes)")
ZERO32 = b"\x00" * 32
CALL, DELEGATECALL = 0, 1


@dataclass(frozen=True)
class Contracts:
    """Lower-case contract addresses of the environment (PRODUCTION's) and its chain id."""

    chain_id: int
    collateral_token: str
    conditional_tokens: str
    neg_risk_adapter: str
    collateral_adapter: str
    neg_risk_collateral_adapter: str
    protocol_v2_router: str
    position_manager: str
    proxy_factory: str
    safe_multisend: str
    deposit_wallet_factory: str
    relay_hub: str


def production_contracts() -> Contracts:
    """Contracts of polymarket ``PRODUCTION`` (polymarket/environments.py)."""
    c, w = PRODUCTION_CONFIG, PRODUCTION_CONFIG.wallet_derivation
    return Contracts(c.chain_id, c.collateral_token.lower(), c.conditional_tokens.lower(),
                     c.neg_risk_adapter.lower(), c.collateral_adapter.lower(),
                     c.neg_risk_collateral_adapter.lower(), c.protocol_v2_router.lower(),
                     c.position_manager.lower(), w.proxy_factory.lower(), c.safe_multisend.lower(),
                     w.deposit_wallet_factory.lower(), c.relay_hub.lower())


@dataclass(frozen=True)
class Call:
    """One contract call: ``to`` lower-case address, ``value`` wei, ``data`` bytes."""

    to: str
    value: int
    data: bytes


MarketOf = Callable[[str], MarketMeta | None]


def hex_bytes(text: object, field_name: str) -> bytes:
    """``0x``-hex text -> bytes.

    Raises:
        RedeemRefused: not a ``0x`` hex string (field ``field_name``).
    """
    if not isinstance(text, str) or not text.startswith(("0x", "0X")):
        raise RedeemRefused(field_name, text, "expected 0x-prefixed hex", "BAD_HEX")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise RedeemRefused(field_name, text, "expected 0x-prefixed hex", "BAD_HEX") from None


def redeem_condition(call: Call, market_of: MarketOf, contracts: Contracts) -> str:
    """The condition id (``0x`` + 64 lower hex) a redeem ``call`` redeems, after checking it is exactly
    what ``ctf_redeem_positions_call`` sends for that market (module doc).

    Raises:
        RedeemRefused: naming ``value``, ``data``, ``to``, ``collateral``, ``parentCollectionId``,
            ``indexSets`` or ``conditionId`` when the call is not such a redemption.
    """
    if call.value != 0:
        raise RedeemRefused("value", call.value, "redemption calls carry no value", "BAD_VALUE")
    head = call.data[:4]
    if head == ROUTER_REDEEM:
        raise RedeemRefused("to", call.to, "protocol v2 router redemption: this venue has only v1 (CTF) markets",
                            "V2_NOT_SUPPORTED")
    if head != REDEEM_POSITIONS:
        raise RedeemRefused("data", "0x" + call.data[:4].hex(),
                            "only redeemPositions(address,bytes32,bytes32,uint256[]) calls are accepted",
                            "CALL_NOT_ALLOWED")
    try:
        collateral, parent, condition, index_sets = abi_decode(
            ["address", "bytes32", "bytes32", "uint256[]"], call.data[4:])
    except Exception:  # noqa: BLE001 - eth_abi raises several decoding errors
        raise RedeemRefused("data", "0x" + call.data.hex()[:80], "redeemPositions arguments do not decode",
                            "BAD_CALLDATA") from None
    condition_id = "0x" + condition.hex()
    meta = market_of(condition_id)
    if meta is None:
        raise RedeemRefused("conditionId", condition_id, "condition is not a market of this venue",
                            "UNKNOWN_CONDITION")
    _check_redeem_args(call, meta, collateral, parent, list(index_sets), contracts)
    return meta.condition_id


def _check_redeem_args(call: Call, meta: MarketMeta, collateral: str, parent: bytes, index_sets: list[int],
                       contracts: Contracts) -> None:
    adapter = contracts.neg_risk_collateral_adapter if meta.neg_risk else contracts.collateral_adapter
    if call.to != adapter:
        raise RedeemRefused("to", call.to, f"redeemPositions for this market goes to the collateral adapter "
                            f"{to_checksum_address(adapter)}", "WRONG_TARGET")
    if collateral.lower() != contracts.collateral_token:
        raise RedeemRefused("collateral", collateral, "collateral must be pUSD "
                            f"{to_checksum_address(contracts.collateral_token)}", "WRONG_COLLATERAL")
    if parent != ZERO32:
        raise RedeemRefused("parentCollectionId", "0x" + parent.hex(), "parent collection must be 0",
                            "BAD_PARENT")
    if index_sets != [1, 2]:
        raise RedeemRefused("indexSets", index_sets, "index sets must be [1, 2] (both outcomes)",
                            "BAD_INDEX_SETS")


def proxy_calls(data: bytes) -> list[Call]:
    """The inner calls of ``proxy((uint8,address,uint256,bytes)[])`` (``encode_proxy_call``).

    Raises:
        RedeemRefused: not a proxy call, or an inner call with type code != 1 (CALL) (field ``data``).
    """
    if data[:4] != PROXY:
        raise RedeemRefused("data", "0x" + data[:4].hex(), "proxy wallet data must be proxy((uint8,address,"
                            "uint256,bytes)[])", "CALL_NOT_ALLOWED")
    try:
        (items,) = abi_decode(["(uint8,address,uint256,bytes)[]"], data[4:])
    except Exception:  # noqa: BLE001
        raise RedeemRefused("data", "0x" + data.hex()[:80], "proxy calls do not decode", "BAD_CALLDATA") from None
    if any(code != 1 for code, _, _, _ in items):
        raise RedeemRefused("data", [c for c, _, _, _ in items], "proxy calls must have type code 1 (CALL)",
                            "BAD_CALL_TYPE")
    return [Call(to.lower(), value, bytes(inner)) for _, to, value, inner in items]


def multisend_calls(data: bytes) -> list[Call]:
    """The inner calls of ``multiSend(bytes)`` (``encode_safe_multisend_call`` packing).

    Raises:
        RedeemRefused: not multiSend, truncated packing or an inner DELEGATECALL (field ``data``).
    """
    if data[:4] != MULTISEND:
        raise RedeemRefused("data", "0x" + data[:4].hex(), "Safe DELEGATECALL must be multiSend(bytes)",
                            "CALL_NOT_ALLOWED")
    try:
        (packed,) = abi_decode(["bytes"], data[4:])
    except Exception:  # noqa: BLE001
        raise RedeemRefused("data", "0x" + data.hex()[:80], "multiSend bytes do not decode", "BAD_CALLDATA") from None
    calls, i = [], 0
    while i < len(packed):
        if i + 85 > len(packed) or packed[i] != CALL:
            raise RedeemRefused("data", i, "multiSend entry truncated or not a CALL", "BAD_CALLDATA")
        to, value, length = packed[i + 1:i + 21], int.from_bytes(packed[i + 21:i + 53], "big"), \
            int.from_bytes(packed[i + 53:i + 85], "big")
        calls.append(Call("0x" + to.hex(), value, bytes(packed[i + 85:i + 85 + length])))
        i += 85 + length
    return calls
