"""libs.common.venue: the REAL py-clob-client-v2 signing path, wire body, error mapping and parsing.

Signing runs with no network at all (the client's tick/version lookups are stubbed); the posting
tests use a loopback stub CLOB (no external network)."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from pydantic import SecretStr

from libs.common import venue as venue_mod
from libs.common.venue import (
    PAPER_TEST_PRIVATE_KEY, BadResponse, InsufficientBalance, OrderRejected, PostOnlyCross, RateLimited, VenueClient,
    VenueUnavailable, classify, normalize_status, parse_book,
)

D = Decimal
ADDRESS = Account.from_key(PAPER_TEST_PRIVATE_KEY).address
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
TOKEN = "7087467268535103530871133345881326346657501309973952143921926744954887549159"


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> VenueClient:
    """A VenueClient whose client answers tick size and version without HTTP."""
    monkeypatch.setattr(venue_mod._Clob, "get_tick_size", lambda self, token_id: "0.01")
    monkeypatch.setattr(venue_mod._Clob, "get_version", lambda self: 2)
    return VenueClient("http://127.0.0.1:9", SecretStr(PAPER_TEST_PRIVATE_KEY))


def typed_data(o: Any) -> dict[str, Any]:
    """The V2 EIP-712 message of a signed order, built here independently of the client."""
    order_struct = [{"name": n, "type": t} for n, t in (
        ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
        ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"), ("signatureType", "uint8"),
        ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32"))]
    domain_struct = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
    return {"primaryType": "Order", "types": {"EIP712Domain": domain_struct, "Order": order_struct},
            "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137,
                       "verifyingContract": EXCHANGE_V2},
            "message": {"salt": int(o.salt), "maker": o.maker, "signer": o.signer, "tokenId": int(o.tokenId),
                        "makerAmount": int(o.makerAmount), "takerAmount": int(o.takerAmount),
                        "side": int(o.side), "signatureType": int(o.signatureType), "timestamp": int(o.timestamp),
                        "metadata": bytes(32), "builder": bytes(32)}}


@pytest.mark.parametrize(("side", "maker_amount", "taker_amount"), [
    ("BUY", "5500000", "10000000"),   # BUY: maker gives USD (10 x 0.55), takes shares
    ("SELL", "10000000", "5500000"),  # SELL: maker gives shares, takes USD
])
def test_real_client_signs_a_v2_order_for_a_throwaway_key(offline: VenueClient, side: str, maker_amount: str,
                                                          taker_amount: str) -> None:
    signed = offline.sign_limit(TOKEN, side, D("0.55"), D(10), D("0.01"), False)
    o = signed.payload
    assert o.maker == ADDRESS and o.signer == ADDRESS
    assert (o.makerAmount, o.takerAmount) == (maker_amount, taker_amount)
    assert int(o.side) == (0 if side == "BUY" else 1) and int(o.signatureType) == 0
    assert o.tokenId == TOKEN and not hasattr(o, "nonce") and not hasattr(o, "feeRateBps")
    msg = encode_typed_data(full_message=typed_data(o))
    assert Account.recover_message(msg, signature=o.signature) == ADDRESS
    digest = keccak(b"\x19" + msg.version + msg.header + msg.body)
    assert signed.order_id == "0x" + digest.hex()  # the id is the EIP-712 hash, known before the POST


def test_price_off_the_valid_range_is_a_local_rejection(offline: VenueClient) -> None:
    with pytest.raises(OrderRejected, match="invalid price"):
        offline.sign_limit(TOKEN, "BUY", D("0.995"), D(10), D("0.01"), False)


@pytest.mark.parametrize(("status", "text", "cls"), [
    (400, "not enough balance / allowance", InsufficientBalance),
    (400, "invalid post-only order: order crosses book", PostOnlyCross),
    (400, "invalid signature", OrderRejected),
    (429, "Too Many Requests", RateLimited),
    (503, "Trading is currently cancel-only", VenueUnavailable),
    (None, "Request exception!", VenueUnavailable),
])
def test_errors_map_to_one_family(status: int | None, text: str, cls: type) -> None:
    err = classify(status, text)
    assert type(err) is cls and err.retryable == (cls in (RateLimited, VenueUnavailable))


def test_book_best_is_last_on_the_wire_bids_ascending_asks_descending() -> None:
    raw = {"bids": [{"price": "0.40", "size": "5"}, {"price": "0.48", "size": "7"}],
           "asks": [{"price": "0.60", "size": "1"}, {"price": "0.52", "size": "3"}],
           "tick_size": "0.01", "min_order_size": "5", "neg_risk": False, "last_trade_price": "0.500",
           "timestamp": "1790267379253"}
    b = parse_book(raw)
    assert (b.best_bid, b.bid_size, b.best_ask, b.ask_size) == (D("0.48"), D(7), D("0.52"), D(3))
    assert b.last_trade_price == D("0.5") and b.timestamp_ms == 1790267379253
    empty = parse_book({**raw, "bids": [], "asks": []})
    assert empty.best_bid is None and empty.best_ask is None


def test_bad_book_field_names_field_and_value() -> None:
    with pytest.raises(BadResponse, match=r"bids.price='abc'"):
        parse_book({"bids": [{"price": "abc", "size": "1"}], "asks": [], "tick_size": "0.01", "min_order_size": "5"})
    with pytest.raises(BadResponse, match=r"tick_size=None"):
        parse_book({"bids": [], "asks": [], "min_order_size": "5"})


def test_status_variants_normalize() -> None:
    assert [normalize_status(s) for s in ("live", "LIVE", "delayed", "matched", "MATCHED", "CANCELED",
                                          "CANCELLED", "CANCELED_order couldn't be fully filled",
                                          "ORDER_STATUS_LIVE")] == \
        ["LIVE", "LIVE", "LIVE", "MATCHED", "MATCHED", "CANCELED", "CANCELED", "CANCELED", "LIVE"]
    with pytest.raises(BadResponse, match="status='WEIRD'"):
        normalize_status("WEIRD")


# ---------------------------------------------------------------- loopback stub CLOB
class Stub:
    """Routes (method, path) -> (status, body, delay_s); records requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, object, float]] = {
            ("GET", "/tick-size"): (200, {"minimum_tick_size": 0.01}, 0),
            ("GET", "/version"): (200, {"version": 2}, 0),
            ("POST", "/auth/api-key"): (200, {"apiKey": "k", "secret": "c2VjcmV0", "passphrase": "p"}, 0),
        }
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.broken = 0


@pytest.fixture()
def stub() -> Iterator[tuple[Stub, str]]:
    s = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            path = self.path.split("?")[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            s.requests.append((self.command, path, dict(self.headers), body))
            status, payload, delay = s.routes.get((self.command, path), (404, {"error": "not found"}, 0))
            time.sleep(delay)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                s.broken += 1  # the client timed out first (the timeout test)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield s, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_post_sends_a_post_only_gtc_v2_body_with_l2_headers(stub: tuple[Stub, str]) -> None:
    s, url = stub
    s.routes[("POST", "/order")] = (200, {"success": True, "errorMsg": "", "orderID": "0xabc", "status": "live",
                                          "makingAmount": "", "takingAmount": ""}, 0)
    v = VenueClient(url, SecretStr(PAPER_TEST_PRIVATE_KEY))
    ack = v.post_limit(TOKEN, "SELL", D("0.55"), D(10), True, D("0.01"), False)
    assert (ack.order_id, ack.status, ack.making) == ("0xabc", "live", D(0))
    (_, _, headers, body), = [x for x in s.requests if x[1] == "/order"]
    sent = json.loads(body)
    assert sent["orderType"] == "GTC" and sent["postOnly"] is True and sent["owner"] == "k"
    assert sent["order"]["side"] == "SELL" and sent["order"]["signatureType"] == 0
    assert (sent["order"]["makerAmount"], sent["order"]["takerAmount"]) == ("10000000", "5500000")
    assert headers["POLY_API_KEY"] == "k" and headers["POLY_ADDRESS"] == ADDRESS
    assert not any(p == "/neg-risk" for _, p, _, _ in s.requests)  # neg_risk passed in the options


@pytest.mark.parametrize(("status", "body", "cls"), [
    (400, {"error": "not enough balance / allowance"}, InsufficientBalance),
    (429, {"error": "rate limited"}, RateLimited),
    (503, {"error": "Trading is currently cancel-only"}, VenueUnavailable),
])
def test_post_errors_are_typed(stub: tuple[Stub, str], status: int, body: object, cls: type) -> None:
    s, url = stub
    s.routes[("POST", "/order")] = (status, body, 0)
    v = VenueClient(url, SecretStr(PAPER_TEST_PRIVATE_KEY))
    with pytest.raises(cls):
        v.post_limit(TOKEN, "BUY", D("0.5"), D(10), True, D("0.01"), False)


def test_timeout_is_venue_unavailable(stub: tuple[Stub, str]) -> None:
    s, url = stub
    s.routes[("GET", "/book")] = (200, {}, 0.6)
    v = VenueClient(url, SecretStr(PAPER_TEST_PRIVATE_KEY), http_timeout_s=0.2)
    try:
        with pytest.raises(VenueUnavailable):
            v.get_book(TOKEN)
    finally:
        VenueClient(url, SecretStr(PAPER_TEST_PRIVATE_KEY))  # restores the default 5 s timeout


def test_balances_are_six_decimal_integers_and_unknown_order_is_none(stub: tuple[Stub, str]) -> None:
    s, url = stub
    s.routes[("GET", "/balance-allowance")] = (200, {"balance": "12345678", "allowance": "0"}, 0)
    v = VenueClient(url, SecretStr(PAPER_TEST_PRIVATE_KEY))
    assert v.token_balance(TOKEN) == D("12.345678") and v.collateral() == D("12.345678")
    assert v.get_order("0xdead") is None
    s.routes[("GET", "/data/order/0xbeef")] = (200, {"id": "0xbeef", "status": "MATCHED", "side": "BUY",
                                                     "price": "0.5", "original_size": "10", "size_matched": "10",
                                                     "asset_id": TOKEN}, 0)
    st = v.get_order("0xbeef")
    assert st is not None and st.status == "MATCHED" and st.size_matched == D(10)
    assert sum(1 for _, p, _, _ in s.requests if p == "/auth/api-key") == 1  # creds derived once, lazily
