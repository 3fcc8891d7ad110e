"""The relayer's ``GET /deployed`` for the paper venue (served under ``/relayer``).

polymarket-client asks it in ``SecureClient.create`` (``polymarket/clients/secure.py``
``_resolve_requested_wallet_sync``: is the signer's legacy UUPS deposit wallet deployed? else use
the beacon deposit wallet; ``_ensure_wallet_ready``: is the chosen non-EOA wallet deployed?) via
``polymarket/_internal/actions/relayer/deployed.py``: ``GET /deployed?address=&type=`` answering
``{"deployed": bool}`` (``polymarket/models/clob/relayer.py`` RelayerDeployedResponse). The answer
comes from ``engine.wallets`` (wallets.WalletBook): every configured owner's proxy, Safe and beacon
deposit wallet is deployed, the legacy UUPS one is not, and ``WalletBook.mark_deployed`` adds more
(the relayer's transaction routes live in a separate blueprint at the same prefix).
"""
from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, request

_TYPES = ("SAFE", "PROXY", "SAFE-CREATE", "WALLET", "WALLET-CREATE")  # RelayerTransactionType


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _is_address(text: str) -> bool:
    return len(text) == 42 and text[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in text[2:])


def blueprint(engine: Any) -> Blueprint:
    """Blueprint "relayer_deployed": ``GET /deployed?address=0x…&type=WALLET|PROXY|SAFE|…``.

    Answers ``{"deployed": bool}``; 400 ``{"error"}`` for a malformed address or type (wording
    UNCONFIRMED: the SDK does not carry the relayer's error texts).
    """
    bp = Blueprint("relayer_deployed", __name__)

    @bp.get("/deployed")
    def deployed() -> Response:
        address, kind = request.args.get("address", ""), request.args.get("type", "")
        if not _is_address(address):
            return _json({"error": f"invalid address {address!r:.60}"}, 400)
        if kind and kind not in _TYPES:
            return _json({"error": f"invalid type {kind!r:.40}"}, 400)
        return _json({"deployed": engine.wallets.is_deployed(address)})

    return bp
