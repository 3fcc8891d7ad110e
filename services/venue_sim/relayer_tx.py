"""The paper venue's gasless relayer transactions (registered at ``/relayer``, blueprint
``venue_relayer_tx``; ``GET /relayer/deployed`` is relayer.py's): redemption for DEPOSIT_WALLET,
POLY_PROXY and GNOSIS_SAFE accounts, and deposit-wallet deployment.

Routes (polymarket-client 0.14.0, polymarket/_internal/actions/relayer/{nonce,submit,poll,gasless}.py):
- ``GET /v1/account/transactions/params?address=<signer>&type=WALLET|SAFE`` and
  ``GET /relay-payload?address=<signer>&type=PROXY`` -> ``{"address", "nonce": "<digits>"}``
  (``address`` is the relay for PROXY); nonces count accepted transactions per (signer, type).
- ``POST /submit`` with the envelope ``build_*_payload`` makes -> ``{"transactionID",
  "transactionHash", "state"}``; ``GET /v1/account/transactions/<id>`` -> ``{"transaction_id",
  "transaction_hash", "state", ...}``. A redemption is applied at submit, so the state is
  ``STATE_CONFIRMED`` at once (``poll_until_terminal_sync`` succeeds on its first poll).
Every request needs relayer auth headers (``RELAYER_API_KEY`` + ``RELAYER_API_KEY_ADDRESS``, or
``POLY_BUILDER_API_KEY``; relayer/auth.py); the paper relayer checks presence only (it issues no keys).

Verification of ``/submit`` by ``type`` (signature recovered with eth_account; must be ``from``):
- ``WALLET``: EIP-712 ``Batch{wallet, nonce, deadline, calls}`` of domain DepositWallet v1 / chain 137 /
  verifyingContract = wallet, rebuilt with the SDK's ``build_deposit_wallet_typed_data``
  (signing/deposit_wallet.py); ``to`` = deposit wallet factory; deadline not past. A session-key
  (wrapped, > 65 bytes) signature is refused.
- ``PROXY``: personal-sign of ``build_proxy_transaction_hash`` (signing/proxy.py); ``to`` = proxy
  factory, ``relayHub`` = PRODUCTION's; the data is ``proxy(...)``.
- ``SAFE``: personal-sign of the EIP-712 SafeTx digest with v packed +4 (signing/safe.py); one direct
  call, or multiSend by DELEGATECALL.
- ``WALLET-CREATE``: marks ``from``'s beacon deposit wallet deployed (wallets.py ``mark_deployed``).
The wallet (``depositWallet`` / ``proxyWallet``) must belong to ``from``: the venue's owner mapping
(``owner_of``, default engine.wallets) or the SDK's CREATE2 derivation (wallet.py
``try_classify_wallet_type``). Then each inner call must be a redemption (redeem_calls.py) of a
resolved market; all are checked before any is applied. Refusals answer ``{"error"}`` naming the
field: 400 (bad payload, signature, nonce: "batch nonce X does not match on-chain nonce Y", the
SDK's retry wording), 401 (no auth headers), 404 (unknown transaction id).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any, Callable

import orjson
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak
from flask import Blueprint, Response, request
from polymarket._internal.actions.relayer.calls import TransactionCall
from polymarket._internal.actions.relayer.signing.deposit_wallet import build_deposit_wallet_typed_data
from polymarket._internal.actions.relayer.signing.proxy import build_proxy_transaction_hash
from polymarket._internal.actions.relayer.signing.safe import build_safe_typed_data
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import derive_beacon_deposit_wallet_address, try_classify_wallet_type

from services.venue_sim import redeem_calls as rc
from services.venue_sim.redeem import RedeemRefused, resolutions_for

log = logging.getLogger(__name__)

RELAY_ADDRESS = "0x0000000000000000000000000000000000005e1a"  # the paper relay (PROXY relay-payload)
KINDS = {"WALLET": "DEPOSIT_WALLET", "PROXY": "POLY_PROXY", "SAFE": "GNOSIS_SAFE"}
OwnerOf = Callable[[str], "str | None"]


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict):
        raise RedeemRefused(name, body, f"expected an object holding {name}", "BAD_BODY")
    value = body.get(name)
    if value is None or value == "":
        raise RedeemRefused(name, value, f"missing field {name}", "MISSING_FIELD")
    return value


def _recover(signable: Any, signature: str, field_name: str = "signature") -> str:
    try:
        return str(Account.recover_message(signable, signature=rc.hex_bytes(signature, field_name)))
    except RedeemRefused:
        raise
    except Exception:  # noqa: BLE001 - bad length / v / r / s
        raise RedeemRefused(field_name, signature, "signature does not recover", "BAD_SIGNATURE") from None


def _tx_call(raw: Any) -> rc.Call:
    if not isinstance(raw, dict):
        raise RedeemRefused("depositWalletParams.calls", raw, "each call must be an object", "BAD_CALL")
    try:
        value = int(str(raw.get("value", "0")))
    except ValueError:
        raise RedeemRefused("calls.value", raw.get("value"), "value must be an integer string", "BAD_VALUE") from None
    return rc.Call(str(_field(raw, "target")).lower(), value, rc.hex_bytes(raw.get("data") or "0x", "calls.data"))


class Relayer:
    """Nonces and transactions of the paper relayer (thread-safe); see the module doc."""

    def __init__(self, engine: Any, clock: Any, owner_of: OwnerOf, contracts: rc.Contracts) -> None:
        self.engine, self.clock, self.owner_of, self.c = engine, clock, owner_of, contracts
        self._lock = threading.Lock()
        self.nonces: dict[tuple[str, str], int] = {}
        self.txs: dict[str, dict[str, Any]] = {}

    def nonce(self, address: str, kind: str) -> str:
        """Next nonce of (``address``, ``kind``) as a digit string."""
        with self._lock:
            return str(self.nonces.get((address.lower(), kind), 0))

    def owns(self, signer: str, wallet: str, kind: str) -> bool:
        """Whether ``wallet`` is ``signer``'s wallet of ``kind`` (owner mapping or SDK derivation)."""
        owner = self.owner_of(wallet)
        if owner is not None:
            return owner.lower() == signer.lower()
        try:
            return try_classify_wallet_type(signer=signer, wallet=wallet,
                                            config=PRODUCTION_CONFIG.wallet_derivation) == KINDS[kind]
        except Exception:  # noqa: BLE001 - the SDK raises UserInputError on bad addresses
            return False

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Verify and apply one ``/submit`` envelope; returns the submit answer. Raises RedeemRefused."""
        kind = str(_field(body, "type"))
        if kind == "WALLET-CREATE":
            return self._create_wallet(body)
        verify = {"WALLET": self._deposit, "PROXY": self._proxy, "SAFE": self._safe}.get(kind)
        if verify is None:
            raise RedeemRefused("type", kind, "the paper relayer accepts WALLET, PROXY, SAFE and WALLET-CREATE",
                                "BAD_TYPE")
        signer, wallet, calls = verify(body)
        if signer.lower() != str(_field(body, "from")).lower():
            raise RedeemRefused("signature", body.get("signature"), f"signature recovers {signer}, not from "
                                f"{body.get('from')}", "BAD_SIGNATURE")
        if not self.owns(signer, wallet, kind):
            raise RedeemRefused("wallet", wallet, f"wallet is not the {KINDS[kind]} of {signer}", "NOT_OWNER")
        return self._apply(body, kind, signer, wallet, calls)

    def _apply(self, body: dict[str, Any], kind: str, signer: str, wallet: str, calls: list[rc.Call]) -> dict[str, Any]:
        with self._lock:
            expected, given = self.nonces.get((signer.lower(), kind), 0), str(body.get("nonce"))
            if given != str(expected):
                raise RedeemRefused("nonce", given, f"batch nonce {given} does not match on-chain nonce {expected}",
                                    "BAD_NONCE")
            conditions = [self._redeemable(call) for call in calls]
            payout = sum((self.engine.redeem(wallet, cid).payout for cid in conditions), Decimal(0))
            self.nonces[(signer.lower(), kind)] = expected + 1
            return self._record(body, kind, signer, wallet, f"redeem {len(conditions)} payout={payout}")

    def _redeemable(self, call: rc.Call) -> str:
        if not call.data:
            raise RedeemRefused("data", "0x", "empty call data", "CALL_NOT_ALLOWED")
        cid = rc.redeem_condition(call, self.engine.conditions.get, self.c)
        if resolutions_for(self.engine).winner(cid) is None:
            raise RedeemRefused("conditionId", cid, "result for condition not received yet", "NOT_RESOLVED")
        return cid

    def _record(self, body: dict[str, Any], kind: str, signer: str, wallet: str, note: str) -> dict[str, Any]:
        tx_hash = "0x" + keccak(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hex()
        tx_id = str(uuid.UUID(hex=tx_hash[2:34], version=4))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall_ms() // 1000))
        self.txs[tx_id] = {"transaction_id": tx_id, "transaction_hash": tx_hash, "state": "STATE_CONFIRMED",
                           "type": kind, "from": signer, "to": body.get("to"), "proxyAddress": wallet,
                           "nonce": str(body.get("nonce", "")), "metadata": str(body.get("metadata", "")),
                           "createdAt": now, "updatedAt": now}
        log.info("event RELAYER_TX_CONFIRMED id=%s type=%s wallet=%s %s", tx_id, kind, wallet, note)
        return {"transactionID": tx_id, "transactionHash": tx_hash, "state": "STATE_CONFIRMED"}

    def _deposit(self, body: dict[str, Any]) -> tuple[str, str, list[rc.Call]]:
        if str(_field(body, "to")).lower() != self.c.deposit_wallet_factory:
            raise RedeemRefused("to", body.get("to"), "WALLET transactions go to the deposit wallet factory", "BAD_TO")
        params = _field(body, "depositWalletParams")
        wallet, raw_calls = str(_field(params, "depositWallet")), _field(params, "calls")
        deadline = str(_field(params, "deadline"))
        if not deadline.isdigit() or int(deadline) <= self.clock.wall_ms() // 1000:
            raise RedeemRefused("depositWalletParams.deadline", deadline, "deadline is not a future Unix time",
                                "EXPIRED")
        calls = [_tx_call(c) for c in (raw_calls if isinstance(raw_calls, list) else [raw_calls])]
        signature = str(_field(body, "signature"))
        if len(rc.hex_bytes(signature, "signature")) != 65:
            raise RedeemRefused("signature", signature[:20], "only owner (65-byte) signatures are accepted; "
                                "session-key signatures are not supported by the paper relayer", "SESSION_KEY")
        typed = build_deposit_wallet_typed_data(
            wallet=wallet, calls=[TransactionCall(c.to, "0x" + c.data.hex(), c.value) for c in calls],  # type: ignore[arg-type]
            nonce=str(_field(body, "nonce")), deadline=deadline, chain_id=self.c.chain_id)
        return _recover(encode_typed_data(full_message=typed), signature), wallet, calls

    def _proxy(self, body: dict[str, Any]) -> tuple[str, str, list[rc.Call]]:
        params, to = _field(body, "signatureParams"), str(_field(body, "to"))
        if to.lower() != self.c.proxy_factory:
            raise RedeemRefused("to", to, "PROXY transactions go to the proxy factory", "BAD_TO")
        if str(_field(params, "relayHub")).lower() != self.c.relay_hub:
            raise RedeemRefused("signatureParams.relayHub", params.get("relayHub"), "unknown relay hub", "BAD_HUB")
        data = str(_field(body, "data"))
        digest = build_proxy_transaction_hash(
            from_address=_field(body, "from"), to=to, data=data, relayer_fee=str(params.get("relayerFee", "0")),
            gas_price=str(params.get("gasPrice", "0")), gas_limit=str(_field(params, "gasLimit")),
            nonce=str(_field(body, "nonce")), relay_hub=params["relayHub"], relay=str(_field(params, "relay")))
        signer = _recover(encode_defunct(hexstr=digest), str(_field(body, "signature")))
        return signer, str(_field(body, "proxyWallet")), rc.proxy_calls(rc.hex_bytes(data, "data"))

    def _safe(self, body: dict[str, Any]) -> tuple[str, str, list[rc.Call]]:
        params, to, safe = _field(body, "signatureParams"), str(_field(body, "to")), str(_field(body, "proxyWallet"))
        operation, value, data = int(str(params.get("operation", "0"))), int(str(body.get("value", "0"))), \
            str(_field(body, "data"))
        typed = build_safe_typed_data(safe_address=safe, to=to, data=data, value=value,  # type: ignore[arg-type]
                                      operation=operation, nonce=str(_field(body, "nonce")), chain_id=self.c.chain_id)
        signable = encode_typed_data(full_message=typed)
        digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
        packed = rc.hex_bytes(str(_field(body, "signature")), "signature")
        unpacked = packed[:64] + bytes([packed[64] - 4 if len(packed) == 65 and packed[64] in (31, 32) else 0])
        signer = _recover(encode_defunct(primitive=digest), "0x" + unpacked.hex())
        if operation == rc.DELEGATECALL:
            if to.lower() != self.c.safe_multisend:
                raise RedeemRefused("to", to, "a Safe DELEGATECALL must go to MultiSend", "BAD_TO")
            return signer, safe, rc.multisend_calls(rc.hex_bytes(data, "data"))
        return signer, safe, [rc.Call(to.lower(), value, rc.hex_bytes(data, "data"))]

    def _create_wallet(self, body: dict[str, Any]) -> dict[str, Any]:
        signer = str(_field(body, "from"))
        if str(_field(body, "to")).lower() != self.c.deposit_wallet_factory:
            raise RedeemRefused("to", body.get("to"), "WALLET-CREATE goes to the deposit wallet factory", "BAD_TO")
        wallet = derive_beacon_deposit_wallet_address(signer, PRODUCTION_CONFIG.wallet_derivation)
        book = getattr(self.engine, "wallets", None)
        if book is not None:
            book.add_owner(signer)
            book.mark_deployed(wallet)
        with self._lock:
            return self._record(body, "WALLET-CREATE", signer, wallet, "deployed")

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        """The stored transaction ``tx_id`` or None."""
        with self._lock:
            return self.txs.get(tx_id)


def default_owner_of(engine: Any) -> OwnerOf:
    """Owner lookup through the engine's wallet registry (wallets.py ``WalletBook.wallet``), if any."""
    def owner_of(wallet: str) -> str | None:
        book = getattr(engine, "wallets", None)
        found = book.wallet(wallet) if book is not None else None
        return found.owner if found is not None and found.owner.lower() != wallet.lower() else None
    return owner_of


def blueprint(engine: Any, clock: Any, owner_of: OwnerOf | None = None,
              contracts: rc.Contracts | None = None) -> Blueprint:
    """The relayer transaction routes (module doc); register with ``url_prefix="/relayer"``."""
    bp = Blueprint("venue_relayer_tx", __name__)
    relayer = Relayer(engine, clock, owner_of or default_owner_of(engine), contracts or rc.production_contracts())

    @bp.before_request
    def need_auth() -> Response | None:
        h = request.headers
        if (h.get("RELAYER_API_KEY") and h.get("RELAYER_API_KEY_ADDRESS")) or h.get("POLY_BUILDER_API_KEY"):
            return None
        return _json({"error": "invalid authorization: RELAYER_API_KEY and RELAYER_API_KEY_ADDRESS "
                               "(or POLY_BUILDER_API_KEY) headers are required"}, 401)

    @bp.get("/v1/account/transactions/params")
    @bp.get("/relay-payload")
    def params() -> Response:
        address, kind = request.args.get("address", ""), request.args.get("type", "")
        if not address.startswith("0x") or len(address) != 42 or kind not in KINDS:
            return _json({"error": f"invalid address {address!r:.60} or type {kind!r:.20} (WALLET, PROXY, SAFE)"}, 400)
        shown = RELAY_ADDRESS if request.path.endswith("/relay-payload") else address
        return _json({"address": shown, "nonce": relayer.nonce(address, kind)})

    @bp.post("/submit")
    def submit() -> Response:
        try:
            body = orjson.loads(request.get_data() or b"null")
            if not isinstance(body, dict):
                raise RedeemRefused("body", type(body).__name__, "body must be a JSON object", "BAD_BODY")
            return _json(relayer.submit(body))
        except orjson.JSONDecodeError:
            return _json({"error": "invalid body: not JSON"}, 400)
        except RedeemRefused as exc:
            log.info("event RELAYER_SUBMIT_REFUSED field=%s reason=%s", exc.field, exc.reason)
            return _json({"error": exc.message}, 400)

    @bp.get("/v1/account/transactions/<tx_id>")
    def transaction(tx_id: str) -> Response:
        found = relayer.transaction(tx_id)
        return _json(found) if found else _json({"error": f"transaction not found: {tx_id[:80]}"}, 404)

    bp.relayer = relayer  # type: ignore[attr-defined]  # for tests
    return bp
