"""Venue wallets and order signatures against orders built and signed by polymarket-client's own code
(create_unsigned_order, build_order_typed_data, build_order_signature, the session wrapper), for
every wallet type and both order protocol versions (no network)."""
from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from polymarket._internal.actions.orders.orders import create_unsigned_order
from polymarket._internal.actions.orders.typed_data import build_order_signature, build_order_typed_data
from polymarket._internal.actions.orders.types import OrderDraft
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import classify_account, wrap_deposit_wallet_session_signer_signature

from services.venue_sim import sigs
from services.venue_sim.wallets import DEFAULT_OWNERS, WalletBook, WalletError, derive_wallets
from tests.unit.test_venue_engine_fakes import KEY, OTHER_KEY, YES

V2_POSITION = str((1 << 248) | (0xABC << 8) | 1)  # module 1 in the top byte, reserved bits 40..103 zero
SESSION_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"


def _wallet(owner: str, kind: int) -> str:
    return next(w.address for w in derive_wallets(owner) if w.kind == kind and not w.legacy)


def sdk_order(key: str, wallet: str, token_id: str = YES, neg_risk: bool = False,
              session: bool = False) -> dict[str, Any]:
    """A wire order exactly as SecureClient signs it (secure.py create_limit_order's steps)."""
    signer = Account.from_key(key)
    account = classify_account(signer=signer.address, wallet=wallet, config=PRODUCTION_CONFIG.wallet_derivation)
    exchange = (sigs.EXCHANGE_V3 if sigs.protocol_of(token_id, neg_risk)[0] == "3"
                else sigs.NEG_RISK_EXCHANGE_V2 if neg_risk else sigs.EXCHANGE_V2)
    draft = OrderDraft(chain_id=137, exchange_address=exchange, expiration=0, funder_address=wallet,
                       offered_amount=4_500_000, order_type="GTC", side="BUY", signer=signer.address,
                       requested_amount=10_000_000, asset_id=token_id)
    unsigned = create_unsigned_order(draft, wallet=wallet, wallet_type=account.wallet_type)
    raw = signer.sign_typed_data(full_message=build_order_typed_data(unsigned)).signature.hex()
    signature = build_order_signature(unsigned, raw if raw.startswith("0x") else "0x" + raw)
    if session:
        signature = wrap_deposit_wallet_session_signer_signature(signer.address, signature)
    return {"salt": unsigned.salt, "maker": unsigned.maker, "signer": unsigned.signer, "tokenId": token_id,
            "makerAmount": str(unsigned.maker_amount), "takerAmount": str(unsigned.taker_amount), "side": "BUY",
            "signatureType": unsigned.signature_type, "timestamp": str(unsigned.timestamp),
            "metadata": unsigned.metadata, "builder": unsigned.builder, "signature": signature,
            "_protocol": unsigned.protocol_version}


@pytest.mark.parametrize("token_id,neg_risk,protocol", [(YES, False, "2"), (YES, True, "2"), (V2_POSITION, False, "3")])
@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_every_wallet_type_and_protocol_signed_by_the_sdk_is_accepted(kind: int, token_id: str, neg_risk: bool,
                                                                     protocol: str) -> None:
    book = WalletBook()
    owner = DEFAULT_OWNERS[0]
    order = sdk_order(KEY, _wallet(owner, kind), token_id, neg_risk)
    assert order["_protocol"] == protocol and order["signatureType"] == kind
    assert book.verify_order(order, neg_risk, owner) == _wallet(owner, kind)
    with pytest.raises(WalletError):  # the same order checked against the other exchange's domain
        book.verify_order(order, not neg_risk, owner) if protocol == "2" else book.verify_order(
            {**order, "tokenId": YES}, neg_risk, owner)
    with pytest.raises(WalletError):  # posted by another owner's API key
        book.verify_order(order, neg_risk, DEFAULT_OWNERS[1])


def test_order_hash_is_the_eip712_digest_eth_account_computes() -> None:
    order = sdk_order(KEY, DEFAULT_OWNERS[0])
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak
    from polymarket._internal.actions.orders.typed_data import _build_standard_typed_data  # noqa: PLC2701
    from polymarket._internal.actions.orders.types import UnsignedOrder
    unsigned = UnsignedOrder(chain_id=137, builder=order["builder"], exchange_address=sigs.EXCHANGE_V2, expiration=0,
                             maker=order["maker"], maker_amount=4_500_000, metadata=order["metadata"], order_type="GTC",
                             salt=order["salt"], side="BUY", signature_type=0, signer=order["signer"],
                             taker_amount=10_000_000, timestamp=int(order["timestamp"]), token_id=YES)
    message = encode_typed_data(full_message=_build_standard_typed_data(unsigned, protocol_version="2"))
    assert sigs.order_digest(order, False) == keccak(b"\x19" + message.version + message.header + message.body)


def test_deposit_wallet_trailer_and_session_wrapper_are_checked() -> None:
    book = WalletBook()
    wallet = _wallet(DEFAULT_OWNERS[0], 3)
    order = sdk_order(KEY, wallet)
    raw = order["signature"]
    for bad in (raw[:-4] + "0030",  # declared contents-type length
                raw[:132] + ("00" if raw[132:134] != "00" else "11") + raw[134:],  # app domain separator
                raw[:-10] + "0000000000"):  # contents type text
        with pytest.raises(WalletError):
            book.verify_order({**order, "signature": bad}, False, DEFAULT_OWNERS[0])
    session_addr = Account.from_key(SESSION_KEY).address
    wrapped = sdk_order(SESSION_KEY, wallet, session=True)
    with pytest.raises(WalletError):
        book.verify_order(wrapped, False, session_addr)  # not authorized yet
    book.authorize_session_key(wallet, session_addr)
    assert book.verify_order(wrapped, False, session_addr) == wallet
    assert book.wallet_for(session_addr, 3) == wallet
    with pytest.raises(WalletError):  # an owner signature must not carry a session wrapper for someone else
        book.verify_order(wrapped, False, DEFAULT_OWNERS[0])


def test_maker_must_be_the_signers_own_wallet_of_that_type() -> None:
    book = WalletBook()
    owner, other = DEFAULT_OWNERS
    stolen = sdk_order(KEY, _wallet(owner, 1))
    stolen_maker = {**stolen, "maker": _wallet(other, 1)}  # re-pointing the maker breaks the signature
    with pytest.raises(WalletError):
        book.verify_order(stolen_maker, False, owner)
    assert book.verify_order(sdk_order(OTHER_KEY, _wallet(other, 2)), False, other) == _wallet(other, 2)


def test_ecrecover_matches_eth_account_and_refuses_garbage() -> None:
    digest = bytes(range(32))
    signed = Account.from_key(KEY).unsafe_sign_hash(digest)
    assert sigs.ecrecover(digest, bytes(signed.signature)) == DEFAULT_OWNERS[0]
    for bad in (b"\x00" * 65, bytes(signed.signature)[:64], bytes(signed.signature)[:64] + b"\x05"):
        with pytest.raises(sigs.SignatureError):
            sigs.ecrecover(digest, bad)


def test_wallet_book_deployment_and_balance_wallet() -> None:
    book = WalletBook()
    owner = DEFAULT_OWNERS[1]
    wallets = {w.kind: w for w in derive_wallets(owner) if not w.legacy}
    legacy = next(w for w in derive_wallets(owner) if w.legacy)
    assert all(book.is_deployed(wallets[k].address) for k in (1, 2, 3)) and not book.is_deployed(legacy.address)
    assert not book.is_deployed(owner)  # an EOA is not a relayer wallet
    book.mark_deployed(legacy.address)
    assert book.is_deployed(legacy.address)
    assert [book.wallet_for(owner, k) for k in (0, 1, 2, 3, -1)] == [
        owner, wallets[1].address, wallets[2].address, wallets[3].address, owner]


def test_unlisted_owner_signs_but_its_wallets_are_not_deployed() -> None:
    book = WalletBook(owners=[DEFAULT_OWNERS[1]])
    owner = DEFAULT_OWNERS[0]
    proxy = _wallet(owner, 1)
    assert not book.is_deployed(proxy)
    assert book.verify_order(sdk_order(KEY, proxy), False, owner) == proxy  # derived from its API key
    assert not book.is_deployed(proxy)
