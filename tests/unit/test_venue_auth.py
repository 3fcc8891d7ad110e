"""Venue auth: L1 ClobAuth signatures, L2 HMAC and V2 order signatures, against headers and orders
made by the REAL py_clob_client_v2 (no network)."""
from __future__ import annotations

import json

import pytest
from py_clob_client_v2.clob_types import ApiCreds as ClientCreds
from py_clob_client_v2.clob_types import RequestArgs
from py_clob_client_v2.headers.headers import create_level_1_headers, create_level_2_headers
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderV2
from py_clob_client_v2.signer import Signer

from services.venue_sim import auth
from services.venue_sim.orders import ERR_VERSION, OrderReject, parse_post_body
from tests.unit.test_venue_engine_fakes import KEY, OTHER_KEY, make_engine, signed_body

SIGNER = Signer(KEY, 137)


def _l2(creds: auth.ApiCreds, method: str, path: str, body: object = None) -> tuple[dict[str, str], str | None]:
    serialized = json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body is not None else None
    args = RequestArgs(method=method, request_path=path, body=body, serialized_body=serialized)
    headers = create_level_2_headers(SIGNER, ClientCreds(creds.api_key, creds.secret, creds.passphrase), args)
    return headers, serialized


def test_l1_signature_of_the_client_is_accepted() -> None:
    headers = create_level_1_headers(SIGNER, nonce=5)
    assert auth.verify_l1(headers) == (SIGNER.address(), 5)


@pytest.mark.parametrize("tamper", [
    {"POLY_NONCE": "6"},  # signed for nonce 5
    {"POLY_TIMESTAMP": "1"},  # the timestamp is part of the signed struct
    {"POLY_ADDRESS": Signer(OTHER_KEY, 137).address()},  # claims another wallet
    {"POLY_SIGNATURE": "0x1234"},  # not a signature
])
def test_l1_tampered_headers_are_refused(tamper: dict[str, str]) -> None:
    headers = {**create_level_1_headers(SIGNER, nonce=5), **tamper}
    with pytest.raises(auth.AuthError) as exc:
        auth.verify_l1(headers)
    assert (exc.value.status, exc.value.message) == (401, "Invalid L1 Request headers")


def test_l1_signed_by_another_key_for_this_address_is_refused() -> None:
    other = create_level_1_headers(Signer(OTHER_KEY, 137), nonce=0)
    with pytest.raises(auth.AuthError):
        auth.verify_l1({**other, "POLY_ADDRESS": SIGNER.address()})


def test_derived_creds_are_deterministic_per_seed_address_and_nonce() -> None:
    a = auth.derive_creds(7, SIGNER.address(), 0)
    assert a == auth.derive_creds(7, SIGNER.address().lower(), 0)
    assert a.api_key != auth.derive_creds(7, SIGNER.address(), 1).api_key
    assert a.api_key != auth.derive_creds(8, SIGNER.address(), 0).api_key
    assert set(a.wire()) == {"apiKey", "secret", "passphrase"}


def test_l2_hmac_of_the_client_is_accepted_and_tampering_refused() -> None:
    keys = auth.KeyStore(7)
    creds = keys.register(SIGNER.address(), 0)
    body = {"orderID": "0xabc", "note": "it's"}  # a quote: the client signs it as a double quote
    headers, serialized = _l2(creds, "DELETE", "/order", body)
    assert auth.verify_l2(headers, "DELETE", "/order", serialized, keys) == creds
    bad = [({**headers, "POLY_PASSPHRASE": "x"}, "DELETE", "/order", serialized),
           ({**headers, "POLY_API_KEY": "nope"}, "DELETE", "/order", serialized),
           ({**headers, "POLY_ADDRESS": Signer(OTHER_KEY, 137).address()}, "DELETE", "/order", serialized),
           (headers, "DELETE", "/order", serialized.replace("0xabc", "0xabd")),  # body changed
           (headers, "DELETE", "/orders", serialized),  # path changed
           (headers, "POST", "/order", serialized)]  # method changed
    for h, method, path, text in bad:
        with pytest.raises(auth.AuthError) as exc:
            auth.verify_l2(h, method, path, text, keys)
        assert (exc.value.status, exc.value.message) == (401, "Unauthorized/Invalid api key")


def test_l2_get_without_body() -> None:
    keys = auth.KeyStore(7)
    creds = keys.register(SIGNER.address(), 0)
    headers, _ = _l2(creds, "GET", "/data/orders")
    assert auth.verify_l2(headers, "GET", "/data/orders", None, keys) == creds
    assert keys.check_user(creds.api_key, creds.secret, creds.passphrase) == creds
    assert keys.check_user(creds.api_key, creds.secret, "wrong") is None


@pytest.mark.parametrize("neg_risk", [False, True])
def test_v2_order_signature_and_id_match_the_client(neg_risk: bool) -> None:
    creds = auth.derive_creds(7, SIGNER.address(), 0)
    body = signed_body(creds, 0.55, 10, side="SELL", neg_risk=neg_risk)
    order = body["order"]
    assert auth.order_signer(order, neg_risk) == SIGNER.address()
    assert auth.order_signer(order, not neg_risk) != SIGNER.address()  # other exchange, other domain
    builder = ExchangeOrderBuilderV2(auth.NEG_RISK_EXCHANGE_V2 if neg_risk else auth.EXCHANGE_V2, 137, SIGNER)
    fields = {k: v for k, v in order.items() if k != "signature"}
    fields["side"] = 0 if fields["side"] == "BUY" else 1
    expected = builder.build_order_hash(builder.build_order_typed_data(OrderV2(**fields)))
    assert auth.order_id(order, neg_risk) == expected


def test_engine_accepts_signed_order_and_refuses_a_tampered_one() -> None:
    engine, books, clock, events = make_engine()
    creds = engine.register_key(SIGNER.address(), 0)
    good = signed_body(creds, 0.45, 10, post_only=True)
    assert engine.place(creds, good)["status"] == "live"
    tampered = signed_body(creds, 0.45, 10, post_only=True)
    tampered["order"]["makerAmount"] = str(int(tampered["order"]["makerAmount"]) - 1_000_000)  # pay less
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, tampered)
    assert (exc.value.status, exc.value.message, exc.value.reason) == (400, "invalid signature", "INVALID_SIGNATURE")
    other = signed_body(creds, 0.45, 10, post_only=True, key=OTHER_KEY)  # maker is another wallet
    with pytest.raises(OrderReject, match="the order owner has to be the owner of the API KEY"):
        engine.place(creds, other)
    wrong_owner = {**signed_body(creds, 0.45, 10, post_only=True), "owner": "someone-else"}
    with pytest.raises(OrderReject, match="owner of the API KEY"):
        engine.place(creds, wrong_owner)


def test_v1_shaped_order_is_refused_with_the_version_error() -> None:
    engine, books, clock, events = make_engine()
    creds = engine.register_key(SIGNER.address(), 0)
    v1 = signed_body(creds, 0.45, 10, version=1)
    assert {"nonce", "feeRateBps", "taker"} <= set(v1["order"]) and "timestamp" not in v1["order"]
    with pytest.raises(OrderReject) as exc:
        engine.place(creds, v1)
    assert (exc.value.status, exc.value.message) == (400, ERR_VERSION)
    assert ERR_VERSION == "invalid order version, please use the latest clob-client"


@pytest.mark.parametrize("field,value", [("makerAmount", "abc"), ("side", "HOLD"), ("tokenId", ""),
                                         ("signature", 12)])
def test_malformed_order_names_field_and_value(field: str, value: object) -> None:
    creds = auth.derive_creds(7, SIGNER.address(), 0)
    body = signed_body(creds, 0.45, 10)
    body["order"][field] = value
    with pytest.raises(OrderReject) as exc:
        parse_post_body(body)
    assert exc.value.status == 400 and f"field {field!r} has bad value {value!r}" in exc.value.message
    assert exc.value.message.startswith("Invalid order payload")


def test_a_signature_type_the_signature_was_not_made_for_is_refused() -> None:
    engine, books, clock, events = make_engine()
    creds = engine.register_key(SIGNER.address(), 0)
    for kind in (2, 7):  # a Safe order whose maker is the EOA itself; an unknown wallet type
        body = signed_body(creds, 0.45, 10)
        body["order"]["signatureType"] = kind
        with pytest.raises(OrderReject) as exc:
            engine.place(creds, body)
        assert (exc.value.status, exc.value.message, exc.value.reason) == (400, "invalid signature", "INVALID_SIGNATURE")
    assert engine.orders == {}
