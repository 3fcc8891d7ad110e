"""The paper venue's Polygon JSON-RPC at ``POST /rpc``: just enough chain for polymarket-client's EOA
redemption and ERC-1155 balance reads, answered from the venue's ledger. Also the test control
``POST /_sim/resolve``.

What the SDK sends (polymarket/_internal/eoa/broadcast.py ``broadcast_eoa_call_sync`` and rpc.py
``SyncJsonRpcClient``; one JSON-RPC 2.0 object per POST, or a list for ``eth_call`` batches):
``eth_chainId`` (must be 137), ``eth_getTransactionCount [address, "pending"]``, ``eth_gasPrice``,
``eth_estimateGas [{from, to, value, data}]``, ``eth_sendRawTransaction [raw]`` (a LEGACY EIP-155
transaction signed by ``LocalAccount.sign_transaction``: nonce, gasPrice, gas, to, value, data,
chainId), then ``eth_getTransactionReceipt [hash]`` until ``status`` is ``"0x1"`` (success) or
``"0x0"`` (revert). ``eth_getBlockByNumber ["latest", false]`` gives the deposit-wallet deadline base
(gasless.py ``_deposit_wallet_deadline_sync``); ``eth_call`` reads ERC-1155 ``balanceOf`` /
``balanceOfBatch`` (relayer/calls.py), here also ERC-20 ``balanceOf`` of pUSD.

Verification of ``eth_sendRawTransaction``: legacy only, ``v`` must encode chain id 137, the sender
is recovered from the signature (eth_account ``Account.recover_transaction``) and must hold a venue
account (so a tampered signature, which recovers to a stranger, is refused), the nonce must be the
sender's next one, and the call must be a redemption accepted by redeem_calls.py. A redemption is
applied at once (engine ``redeem``) and the receipt is ``status "0x1"``; refusals are JSON-RPC
errors: ``-32000`` for transaction-level ones, ``3`` "execution reverted: ..." for call-level ones
(what the SDK's ``is_json_rpc_contract_revert`` recognises), ``-32601`` unknown method, ``-32602``
bad params, ``-32600`` bad request.
"""
from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any, Callable

import orjson
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction  # noqa: PLC2701 - eth_account's own decoder
from eth_utils import keccak
from flask import Blueprint, Response, request

from services.venue_sim import redeem_calls as rc
from services.venue_sim.redeem import RedeemRefused, resolutions_for

log = logging.getLogger(__name__)

GAS_PRICE_WEI = 30_000_000_000
GAS_LIMIT = 300_000
BALANCE_OF = rc.selector("balanceOf(address,uint256)")
BALANCE_OF_BATCH = rc.selector("balanceOfBatch(address[],uint256[])")
ERC20_BALANCE_OF = rc.selector("balanceOf(address)")
MICRO = 1_000_000


class RpcError(Exception):
    """A JSON-RPC error object ``{"code", "message"}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _param(params: list[Any], i: int, name: str) -> Any:
    if not isinstance(params, list) or len(params) <= i:
        raise RpcError(-32602, f"invalid params: missing {name} (params[{i}])")
    return params[i]


def _hex_int(text: object, field_name: str) -> int:
    """``0x``-hex quantity -> int. Raises RedeemRefused naming ``field_name``."""
    try:
        return int(str(text), 16) if str(text).startswith("0x") else int(str(text))
    except ValueError:
        raise RedeemRefused(field_name, text, "expected a hex quantity", "BAD_HEX") from None


def _reverted(exc: RedeemRefused) -> RpcError:
    return RpcError(3, f"execution reverted: {exc.message}")


class Chain:
    """Nonces, blocks and receipts of the paper chain over ``engine``'s ledger (thread-safe).

    ``clock.wall_ms()`` dates blocks; ``contracts`` are PRODUCTION's (redeem_calls.py)."""

    def __init__(self, engine: Any, clock: Any, contracts: rc.Contracts) -> None:
        self.engine, self.clock, self.contracts = engine, clock, contracts
        self._lock = threading.Lock()
        self.nonces: dict[str, int] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        self.block = 1
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda p: hex(contracts.chain_id), "net_version": lambda p: str(contracts.chain_id),
            "eth_blockNumber": lambda p: hex(self.block), "eth_getBlockByNumber": self._latest_block,
            "eth_gasPrice": lambda p: hex(GAS_PRICE_WEI), "eth_getTransactionCount": self._tx_count,
            "eth_estimateGas": self._estimate_gas, "eth_call": self._eth_call,
            "eth_sendRawTransaction": self._send_raw, "eth_getTransactionReceipt": self._receipt}

    def market_of(self, condition_id: str) -> Any:
        """MarketMeta of ``condition_id`` (any case) or None."""
        return self.engine.conditions.get(condition_id) or self.engine.conditions.get(condition_id.lower())

    def handle(self, envelope: Any) -> dict[str, Any]:
        """Answer one JSON-RPC request object (never raises)."""
        rid = envelope.get("id") if isinstance(envelope, dict) else None
        try:
            if not isinstance(envelope, dict) or not isinstance(envelope.get("method"), str):
                raise RpcError(-32600, "invalid request: expected an object with a string 'method'")
            method = self.methods.get(envelope["method"])
            if method is None:
                raise RpcError(-32601, f"method not found: {envelope['method'][:60]!r} is not served by the paper chain")
            return {"jsonrpc": "2.0", "id": rid, "result": method(envelope.get("params") or [])}
        except RpcError as exc:
            log.info("event RPC_ERROR method=%s code=%d message=%s", str(envelope.get("method") if isinstance(
                envelope, dict) else "")[:60], exc.code, exc.message)
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": exc.code, "message": exc.message}}

    def _latest_block(self, params: list[Any]) -> dict[str, Any]:
        number = self.block
        return {"number": hex(number), "timestamp": hex(self.clock.wall_ms() // 1000),
                "hash": "0x" + keccak(text=f"block:{number}").hex(), "transactions": []}

    def _tx_count(self, params: list[Any]) -> str:
        address = _param(params, 0, "address")
        if not isinstance(address, str):
            raise RpcError(-32602, f"invalid params: address {address!r:.60}")
        with self._lock:
            return hex(self.nonces.get(address.lower(), 0))

    def _receipt(self, params: list[Any]) -> dict[str, Any] | None:
        tx_hash = _param(params, 0, "transaction hash")
        with self._lock:
            return self.receipts.get(str(tx_hash).lower())

    def _estimate_gas(self, params: list[Any]) -> str:
        tx = _param(params, 0, "transaction")
        if not isinstance(tx, dict) or not isinstance(tx.get("to"), str):
            raise RpcError(-32602, f"invalid params: transaction {tx!r:.80} needs 'to'")
        try:
            value = _hex_int(tx.get("value") or "0x0", "value")
            call = rc.Call(tx["to"].lower(), value, rc.hex_bytes(tx.get("data") or "0x", "data"))
            for inner in (rc.proxy_calls(call.data) if call.to == self.contracts.proxy_factory else [call]):
                self._check_redeemable(inner)
        except RedeemRefused as exc:
            raise _reverted(exc) from None
        return hex(GAS_LIMIT)

    def _check_redeemable(self, call: rc.Call) -> str:
        """The condition a redeem ``call`` redeems, refusing an unresolved market as the CTF does."""
        condition_id = rc.redeem_condition(call, self.market_of, self.contracts)
        if resolutions_for(self.engine).winner(condition_id) is None:
            raise RedeemRefused("conditionId", condition_id, "result for condition not received yet", "NOT_RESOLVED")
        return condition_id

    def _send_raw(self, params: list[Any]) -> str:
        raw_hex = _param(params, 0, "raw transaction")
        try:
            raw = rc.hex_bytes(raw_hex, "raw transaction")
        except RedeemRefused as exc:
            raise RpcError(-32602, f"invalid params: {exc.message}") from None
        tx, sender = self._decode_signed(raw)
        call = rc.Call(("0x" + bytes(tx.to).hex()) if tx.to else "", tx.value, bytes(tx.data))
        with self._lock:
            expected = self.nonces.get(sender.lower(), 0)
            if tx.nonce != expected:
                raise RpcError(-32000, f"nonce {'too low' if tx.nonce < expected else 'too high'}: "
                                       f"tx nonce {tx.nonce}, next nonce of {sender} is {expected}")
            try:
                condition_id = rc.redeem_condition(call, self.market_of, self.contracts)
                outcome = self.engine.redeem(sender, condition_id)
            except RedeemRefused as exc:
                raise _reverted(exc) from None
            return self._mine(raw, sender, call, outcome)

    def _decode_signed(self, raw: bytes) -> tuple[Any, str]:
        """(legacy transaction, recovered sender); refuses typed txs, other chains, bad signatures and
        senders without a venue account."""
        if not raw or raw[0] < 0xC0:
            raise RpcError(-32000, "invalid transaction: only legacy EIP-155 transactions are accepted "
                                   "(what polymarket-client broadcast_eoa_call_sync signs)")
        try:
            tx = Transaction.from_bytes(raw)
            sender = Account.recover_transaction(raw)
        except Exception as exc:  # noqa: BLE001 - rlp / signature errors of several kinds
            raise RpcError(-32000, f"invalid transaction: cannot decode or recover signature ({type(exc).__name__})") from None
        if tx.v not in (35 + 2 * self.contracts.chain_id, 36 + 2 * self.contracts.chain_id):
            raise RpcError(-32000, f"invalid chain id: v={tx.v} does not encode chain {self.contracts.chain_id}")
        if sender.lower() not in self.engine.ledger.accounts:
            raise RpcError(-32000, f"invalid sender: {sender} (recovered from the signature) has no account "
                                   "on this venue")
        return tx, sender

    def _mine(self, raw: bytes, sender: str, call: rc.Call, outcome: Any) -> str:
        tx_hash = "0x" + keccak(raw).hex()
        self.nonces[sender.lower()] = self.nonces.get(sender.lower(), 0) + 1
        self.block += 1
        self.receipts[tx_hash] = {"transactionHash": tx_hash, "status": "0x1", "blockNumber": hex(self.block),
                                  "blockHash": "0x" + keccak(text=f"block:{self.block}").hex(),
                                  "from": sender.lower(), "to": call.to, "gasUsed": hex(GAS_LIMIT // 2),
                                  "cumulativeGasUsed": hex(GAS_LIMIT // 2), "logs": [], "type": "0x0",
                                  "effectiveGasPrice": hex(GAS_PRICE_WEI), "transactionIndex": "0x0"}
        log.info("event RPC_TX_MINED hash=%s from=%s payout=%s", tx_hash, sender, outcome.payout)
        return tx_hash

    def _eth_call(self, params: list[Any]) -> str:
        call = _param(params, 0, "call")
        if not isinstance(call, dict) or not isinstance(call.get("to"), str):
            raise RpcError(-32602, f"invalid params: call {call!r:.80} needs 'to'")
        try:
            data = rc.hex_bytes(call.get("data") or call.get("input") or "0x", "data")
            return "0x" + self._read_call(call["to"].lower(), data).hex()
        except RedeemRefused as exc:
            raise _reverted(exc) from None

    def _read_call(self, to: str, data: bytes) -> bytes:
        token_contracts = (self.contracts.conditional_tokens, self.contracts.neg_risk_adapter,
                           self.contracts.position_manager)
        try:
            if to in token_contracts and data[:4] == BALANCE_OF:
                owner, token_id = abi_decode(["address", "uint256"], data[4:])
                return abi_encode(["uint256"], [self._shares(owner, str(token_id))])
            if to in token_contracts and data[:4] == BALANCE_OF_BATCH:
                owners, ids = abi_decode(["address[]", "uint256[]"], data[4:])
                return abi_encode(["uint256[]"], [[self._shares(o, str(t)) for o, t in zip(owners, ids)]])
            if to == self.contracts.collateral_token and data[:4] == ERC20_BALANCE_OF:
                (owner,) = abi_decode(["address"], data[4:])
                return abi_encode(["uint256"], [self._collateral(owner)])
        except Exception as exc:  # noqa: BLE001 - eth_abi decoding errors
            raise RedeemRefused("data", "0x" + data.hex()[:80], f"arguments do not decode ({type(exc).__name__})",
                                "BAD_CALLDATA") from None
        raise RedeemRefused("data", "0x" + data[:4].hex(), f"eth_call to {to} is not served by the paper chain "
                            "(only ERC-1155 balanceOf/balanceOfBatch and pUSD balanceOf)", "CALL_NOT_ALLOWED")

    def _shares(self, owner: str, token_id: str) -> int:
        held = dict(self.engine.holdings(owner))
        return int(held[token_id].shares * MICRO) if token_id in held else 0

    def _collateral(self, owner: str) -> int:
        for view in self.engine.accounts_view():
            if view["address"].lower() == owner.lower():
                return int(Decimal(view["collateral"]) * MICRO)
        return 0


def blueprint(engine: Any, clock: Any, contracts: rc.Contracts | None = None,
              resolver: Callable[[str, str], None] | None = None) -> Blueprint:
    """``POST /rpc`` (JSON-RPC 2.0, single or batch) and ``POST /_sim/resolve`` (control: body
    ``{"condition_id", "winner": token id or ""}`` resolves the market now, before its end time;
    400 ``{"error"}`` naming the bad field). ``resolver(condition_id, winner)``: the running venue's
    replay (``Replay.request_resolution``: journal, engine and ``market_resolved`` on the market
    channel, answered 202); None (an app without a replay) records the winner and ends the market in
    the engine at once (200). No url_prefix."""
    bp = Blueprint("venue_chain", __name__)
    chain = Chain(engine, clock, contracts or rc.production_contracts())

    @bp.post("/rpc")
    def rpc() -> Response:
        try:
            body = orjson.loads(request.get_data() or b"null")
        except orjson.JSONDecodeError:
            return _json({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error: body is not JSON"}})
        if isinstance(body, list):
            return _json([chain.handle(item) for item in body])
        return _json(chain.handle(body))

    @bp.post("/_sim/resolve")
    def resolve() -> Response:
        try:
            body = orjson.loads(request.get_data() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _json({"error": "body must be a JSON object {condition_id, winner}"}, 400)
        cid, winner = str(body.get("condition_id", "")), str(body.get("winner", ""))
        meta = chain.market_of(cid)
        if meta is None:
            return _json({"error": f"unknown condition_id {cid!r:.80}"}, 400)
        if winner and winner not in meta.token_ids:
            return _json({"error": f"winner {winner!r:.90} is not a token of condition {cid}"}, 400)
        if resolver is not None:
            resolver(meta.condition_id, winner)
            return _json({"condition_id": meta.condition_id, "winner": winner, "queued": True}, 202)
        resolutions_for(engine).record(meta.condition_id, winner)
        engine.on_market_end(meta.condition_id)
        return _json({"condition_id": meta.condition_id, "winner": resolutions_for(engine).winner(meta.condition_id)})

    bp.chain = chain  # type: ignore[attr-defined]  # for tests and the relayer
    return bp
