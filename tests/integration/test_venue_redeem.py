"""Redemption on the paper venue driven by the REAL polymarket-client ``SecureClient.redeem_positions``
(unchanged) over HTTP: an EOA through the venue's JSON-RPC (``/rpc``) and a DEPOSIT_WALLET through
its relayer (``/relayer``); payouts, idempotence, refusals (unresolved market, tampered signature,
other calls), ERC-1155 balance reads and Gamma's keyset listing. Fake tape, no Redis."""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import httpx
import pytest
from eth_account import Account
from polymarket import SecureClient
from polymarket._internal.actions.relayer.calls import (TransactionCall, ctf_redeem_positions_call,
                                                        decode_erc1155_balance_of_batch_result,
                                                        erc20_approval_call, erc1155_balance_of_batch_call)
from polymarket._internal.actions.relayer.gasless import build_signed_deposit_wallet_payload_sync
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import (derive_beacon_deposit_wallet_address, derive_proxy_wallet_address,
                                         derive_safe_wallet_address)
from polymarket.auth import RelayerApiKey
from polymarket.errors import UserInputError

from libs.common.sdk_env import paper_urls, sdk_environment
from services.venue_sim.accounts import Holding
from services.venue_sim.faults import Faults
from services.venue_sim.leaders import Leaders
from services.venue_sim.replay import market_id
from services.venue_sim.rest import create_app, make_http_server
from tests.unit.test_venue_engine_fakes import CID, END_MS, KEY, NO, OTHER_KEY, START_MS, YES, make_engine, signed_body

D = Decimal
EOA = Account.from_key(KEY).address
OWNER = Account.from_key(OTHER_KEY).address
WALLET = derive_beacon_deposit_wallet_address(OWNER, PRODUCTION_CONFIG.wallet_derivation)
ADAPTER = PRODUCTION_CONFIG.collateral_adapter
PUSD = PRODUCTION_CONFIG.collateral_token


@pytest.fixture()
def venue(tmp_path: Path) -> Iterator[SimpleNamespace]:
    engine, books, clock, _ = make_engine(start_usdc="1000", audit_path=tmp_path / "audit.jsonl")
    app = create_app(engine, books, engine.markets, Leaders([], clock, START_MS, END_MS), clock, Faults(), engine.audit)
    server = make_http_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}"
    env = sdk_environment(**paper_urls(url, "ws://127.0.0.1:9"))
    yield SimpleNamespace(url=url, engine=engine, clock=clock, env=env, audit=tmp_path / "audit.jsonl",
                          http=httpx.Client(base_url=url, timeout=5))
    server.shutdown()
    thread.join(5)
    server.server_close()
    engine.audit.close()


def _eoa_client(v: SimpleNamespace) -> SecureClient:
    return SecureClient.create(private_key=KEY, wallet=EOA, environment=v.env)


def _wallet_client(v: SimpleNamespace) -> SecureClient:
    return SecureClient.create(private_key=OTHER_KEY, wallet=WALLET, environment=v.env,
                               api_key=RelayerApiKey(key="paper-relayer-key", address=OWNER))


def _buy(v: SimpleNamespace, token_id: str, size: float) -> None:
    """A crossing BUY at 0.52 signed by py_clob_client_v2 (fills from the tape's ask)."""
    creds = v.engine.register_key(EOA, 0)
    assert v.engine.place(creds, signed_body(creds, 0.52, size, "BUY", token_id))["status"] == "matched"


def _credit(v: SimpleNamespace, address: str, token_id: str, shares: str) -> None:
    """TEST-ONLY: put ``shares`` of ``token_id`` in ``address``'s ledger account directly."""
    with v.engine._lock:  # noqa: SLF001 - test set-up of a position
        v.engine.ledger.account(address).holdings.setdefault(token_id, Holding()).shares += D(shares)


def _resolve(v: SimpleNamespace, winner: str) -> None:
    resp = v.http.post("/_sim/resolve", json={"condition_id": CID, "winner": winner})
    assert resp.status_code == 200 and resp.json() == {"condition_id": CID, "winner": winner}


def _collateral(v: SimpleNamespace, address: str) -> Decimal:
    return v.engine.ledger.account(address).collateral


def _shares(v: SimpleNamespace, address: str) -> tuple[Decimal, Decimal]:
    acct = v.engine.ledger.account(address)
    return acct.shares(YES), acct.shares(NO)


def _rpc(v: SimpleNamespace, method: str, *params: Any) -> dict[str, Any]:
    return v.http.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()


def _audit(v: SimpleNamespace, kind: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, v.audit.read_text().splitlines()) if line["kind"] == kind]


def test_eoa_redeems_winner_through_rpc(venue: SimpleNamespace) -> None:
    _buy(venue, YES, 10)
    _buy(venue, NO, 5)
    client = _eoa_client(venue)
    _resolve(venue, YES)
    before = _collateral(venue, EOA)
    outcome = client.redeem_positions(condition_id=CID).wait()
    assert outcome.transaction_hash.startswith("0x") and outcome.transaction_id is None
    assert _collateral(venue, EOA) - before == D("10.000000")  # 10 YES x 1 + 5 NO x 0
    assert _shares(venue, EOA) == (0, 0)
    call = erc1155_balance_of_batch_call(token_address=PRODUCTION_CONFIG.conditional_tokens, owners=[EOA, EOA],
                                         token_ids=[YES, NO])
    assert decode_erc1155_balance_of_batch_result(client._ctx.rpc.eth_call(to=str(call.to), data=call.data)) == (0, 0)
    client.redeem_positions(market_id=market_id(CID)).wait()  # idempotent: a second redeem pays nothing
    assert _collateral(venue, EOA) - before == D("10.000000")
    assert [line["payout"] for line in _audit(venue, "redeem")] == ["10", "0"]
    assert _rpc(venue, "eth_getTransactionCount", EOA, "pending")["result"] == "0x2"


def test_deposit_wallet_redeems_through_relayer(venue: SimpleNamespace) -> None:
    client = _wallet_client(venue)
    assert client._ctx.wallet_type == "DEPOSIT_WALLET"
    _credit(venue, WALLET, YES, "7.5")
    _credit(venue, WALLET, NO, "3.25")
    _resolve(venue, NO)
    before = _collateral(venue, WALLET)
    outcome = client.redeem_positions(condition_id=CID).wait()
    assert outcome.transaction_id and outcome.transaction_hash.startswith("0x")
    assert _collateral(venue, WALLET) - before == D("3.250000")  # the loser (YES) pays 0
    assert _shares(venue, WALLET) == (0, 0)
    tx = venue.http.get(f"/relayer/v1/account/transactions/{outcome.transaction_id}",
                        headers={"RELAYER_API_KEY": "k", "RELAYER_API_KEY_ADDRESS": OWNER}).json()
    assert tx["state"] == "STATE_CONFIRMED" and tx["proxyAddress"].lower() == WALLET.lower()
    client.redeem_positions(condition_id=CID).wait()
    assert _collateral(venue, WALLET) - before == D("3.250000")


@pytest.mark.parametrize("kind", ["POLY_PROXY", "GNOSIS_SAFE"])
def test_proxy_and_safe_redeem_through_relayer(venue: SimpleNamespace, kind: str) -> None:
    derive = derive_proxy_wallet_address if kind == "POLY_PROXY" else derive_safe_wallet_address
    wallet = derive(EOA, PRODUCTION_CONFIG.wallet_derivation)
    client = SecureClient.create(private_key=KEY, wallet=wallet, environment=venue.env,
                                 api_key=RelayerApiKey(key="paper-relayer-key", address=EOA))
    assert client._ctx.wallet_type == kind
    _credit(venue, wallet, YES, "4")
    _resolve(venue, YES)
    before = _collateral(venue, wallet)
    client.redeem_positions(condition_id=CID).wait()
    assert _collateral(venue, wallet) - before == D("4.000000") and _shares(venue, wallet) == (0, 0)


def test_unresolved_market_is_refused(venue: SimpleNamespace) -> None:
    _buy(venue, YES, 10)
    client, wallet_client = _eoa_client(venue), _wallet_client(venue)
    before = _collateral(venue, EOA)
    with pytest.raises(UserInputError, match="No market found"):  # Gamma lists it closed only once resolved
        client.redeem_positions(condition_id=CID)
    call = ctf_redeem_positions_call(ctf=ADAPTER, collateral=PUSD, condition_id=CID)
    est = _rpc(venue, "eth_estimateGas", {"from": EOA, "to": str(call.to), "value": "0x0", "data": call.data})
    assert est["error"]["code"] == 3 and "not received yet" in est["error"]["message"]
    sent = _rpc(venue, "eth_sendRawTransaction", _signed_tx(KEY, call, nonce=0))
    assert "not received yet" in sent["error"]["message"]
    payload = build_signed_deposit_wallet_payload_sync(wallet_client._ctx, calls=[call], metadata="")
    resp = venue.http.post("/relayer/submit", json=payload, headers=_relayer_headers())
    assert resp.status_code == 400 and "not received yet" in resp.json()["error"]
    assert _collateral(venue, EOA) == before and _shares(venue, EOA) == (10, 0)
    assert {line["reason"] for line in _audit(venue, "redeem_rejected")} == {"NOT_RESOLVED"}


def test_tampered_signatures_are_refused(venue: SimpleNamespace) -> None:
    _buy(venue, YES, 10)
    wallet_client = _wallet_client(venue)
    _credit(venue, WALLET, YES, "2")
    _resolve(venue, YES)
    call = ctf_redeem_positions_call(ctf=ADAPTER, collateral=PUSD, condition_id=CID)
    raw = bytearray(bytes.fromhex(_signed_tx(KEY, call, nonce=0)[2:]))
    raw[-5] ^= 0x01  # inside s: the signature now recovers a stranger (or nothing)
    sent = _rpc(venue, "eth_sendRawTransaction", "0x" + raw.hex())
    assert sent["error"]["code"] == -32000 and "invalid" in sent["error"]["message"]
    payload = build_signed_deposit_wallet_payload_sync(wallet_client._ctx, calls=[call], metadata="")
    good_sig = str(payload["signature"])
    payload["signature"] = good_sig[:-4] + ("00" if good_sig[-4:-2] != "00" else "11") + good_sig[-2:]
    resp = venue.http.post("/relayer/submit", json=payload, headers=_relayer_headers())
    assert resp.status_code == 400 and "signature" in resp.json()["error"]
    assert _shares(venue, EOA) == (10, 0) and _shares(venue, WALLET) == (2, 0)
    payload["signature"] = good_sig
    assert venue.http.post("/relayer/submit", json=payload, headers=_relayer_headers()).status_code == 200
    assert _shares(venue, WALLET) == (0, 0)


def test_only_redemption_calls_are_accepted(venue: SimpleNamespace) -> None:
    _buy(venue, YES, 10)
    wallet_client = _wallet_client(venue)
    _resolve(venue, YES)
    approve = erc20_approval_call(token_address=PUSD, spender=EOA, amount=10**6)  # type: ignore[arg-type]
    sent = _rpc(venue, "eth_sendRawTransaction", _signed_tx(KEY, approve, nonce=0))
    assert sent["error"]["code"] == 3 and "only redeemPositions" in sent["error"]["message"]
    neg_risk_target = ctf_redeem_positions_call(ctf=PRODUCTION_CONFIG.neg_risk_collateral_adapter,  # type: ignore[arg-type]
                                                collateral=PUSD, condition_id=CID)
    assert "collateral adapter" in _rpc(venue, "eth_sendRawTransaction",
                                        _signed_tx(KEY, neg_risk_target, nonce=0))["error"]["message"]
    payload = build_signed_deposit_wallet_payload_sync(wallet_client._ctx, calls=[approve], metadata="")
    resp = venue.http.post("/relayer/submit", json=payload, headers=_relayer_headers())
    assert resp.status_code == 400 and "only redeemPositions" in resp.json()["error"]
    assert venue.http.post("/relayer/submit", json=payload).status_code == 401  # no relayer auth headers
    assert _rpc(venue, "eth_getStorageAt", EOA, "0x0", "latest")["error"]["code"] == -32601
    assert _shares(venue, EOA) == (10, 0)


def test_gamma_keyset_lists_the_market_closed_once_resolved(venue: SimpleNamespace) -> None:
    client = _eoa_client(venue)
    assert client.list_markets(condition_ids=[CID], closed=True, page_size=1).first_page().items == ()
    market = client.list_markets(condition_ids=[CID], page_size=1).first_page().items[0]
    assert market.version == "v1" and market.outcomes.yes.token_id == YES and market.state.neg_risk is False
    _resolve(venue, YES)
    closed = client.list_markets(condition_ids=[CID], closed=True, page_size=1).first_page().items[0]
    assert closed.state.closed is True and closed.outcomes.yes.price == D("1") and closed.outcomes.no.price == 0
    by_id = client.list_markets(ids=[int(closed.id)], closed=True, page_size=1).first_page().items
    assert [m.condition_id for m in by_id] == [CID]  # redeem_positions(market_id=...) looks it up this way


def _relayer_headers() -> dict[str, str]:
    return {"RELAYER_API_KEY": "paper-relayer-key", "RELAYER_API_KEY_ADDRESS": OWNER}


def _signed_tx(key: str, call: TransactionCall, nonce: int) -> str:
    """A legacy EIP-155 transaction signed exactly as broadcast_eoa_call_sync signs it."""
    tx = {"to": str(call.to), "value": call.value, "data": call.data, "gas": 300_000, "gasPrice": 30_000_000_000,
          "nonce": nonce, "chainId": 137}
    return "0x" + Account.from_key(key).sign_transaction(tx).raw_transaction.hex()


def test_new_deposit_wallet_is_deployed_through_the_relayer(venue: SimpleNamespace) -> None:
    key = "0x" + "11" * 32  # an owner the venue has never seen: its deposit wallet is not deployed yet
    owner = Account.from_key(key).address
    wallet = derive_beacon_deposit_wallet_address(owner, PRODUCTION_CONFIG.wallet_derivation)
    assert not venue.engine.wallets.is_deployed(wallet)
    client = SecureClient.create(private_key=key, environment=venue.env,
                                 api_key=RelayerApiKey(key="paper-relayer-key", address=owner))
    assert client.wallet == wallet and venue.engine.wallets.is_deployed(wallet)
    _credit(venue, wallet, NO, "1")
    _resolve(venue, NO)
    client.redeem_positions(condition_id=CID).wait()
    assert _shares(venue, wallet) == (0, 0) and _collateral(venue, wallet) == D("1001")
