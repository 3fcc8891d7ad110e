"""libs.common.venue over polymarket-client: local signing (order id before the POST, the SDK's own
signature for all four wallet types, new tick sizes, the coincurve backend), error mapping, status
normalization, parsing of SDK models, and the adapter's plumbing around a stand-in SDK client (no
network: the in-process paper venue is in tests/integration/test_venue_adapter.py)."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.backends import CoinCurveECCBackend
from eth_utils import keccak
from polymarket._internal.actions.orders.typed_data import build_order_signature, build_order_typed_data
from polymarket._internal.wallet import wrap_deposit_wallet_signature
from polymarket.errors import (
    InsufficientAllowanceError, OrderHeartbeatMismatchError, RateLimitError, RequestRejectedError, SigningError,
    TimeoutError as SdkTimeoutError, TransportError, UnexpectedResponseError, UserInputError,
)
from polymarket.models.clob.account import ClobTrade, OpenOrder
from polymarket.models.clob.order_book import OrderBook
from polymarket.models.clob.order_response import AcceptedOrder, RejectedOrder
from polymarket.models.clob.order_heartbeats import OrderHeartbeat
from polymarket.rate_limit import RateLimitUpdate
from pydantic import SecretStr

from libs.common import venue_sdk_parse as parse
from libs.common.settings import BadSetting, load_settings
from libs.common.venue import (
    PAPER_TEST_PRIVATE_KEY, AuthFailed, BadResponse, InsufficientBalance, OrderNotFound, OrderRejected,
    PostOnlyCross, RateLimited, VenueClient, VenueError, VenueUnavailable, normalize_status,
)
from libs.common.venue_sdk_sign import unsigned_limit, venue_environment
from services.maker_worker.config import WorkerSettings
from services.venue_sim import auth as venue_auth

D = Decimal
ADDRESS = Account.from_key(PAPER_TEST_PRIVATE_KEY).address
EXCHANGE = {False: "0xE111180000d2663C0091e4f400237545B87B996B", True: "0xe2222d279d744050d28e00520010520000310F59"}
TOKEN = "7087467268535103530871133345881326346657501309973952143921926744954887549159"
WALLETS = ("EOA", "POLY_PROXY", "GNOSIS_SAFE", "DEPOSIT_WALLET")


def client(wallet_type: str = "EOA", **kw: Any) -> VenueClient:
    return VenueClient("http://127.0.0.1:9", SecretStr(PAPER_TEST_PRIVATE_KEY), wallet_type=wallet_type, **kw)


def wire(o: Any) -> dict[str, Any]:
    """The wire order (POST /order ``order``) of an SDK SignedOrder."""
    return {"salt": o.salt, "maker": o.maker, "signer": o.signer, "tokenId": o.token_id, "side": o.side,
            "makerAmount": o.maker_amount, "takerAmount": o.taker_amount, "signatureType": o.signature_type,
            "timestamp": o.timestamp, "metadata": o.metadata, "builder": o.builder, "signature": o.signature}


def independent_hash(o: Any, neg_risk: bool) -> str:
    """The V2 Order EIP-712 hash built here with eth_account, independently of the SDK."""
    fields = [("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
              ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"),
              ("signatureType", "uint8"), ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32")]
    domain = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
              {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
    msg = encode_typed_data(full_message={
        "primaryType": "Order", "types": {"EIP712Domain": domain, "Order": [{"name": n, "type": t} for n, t in fields]},
        "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137,
                   "verifyingContract": EXCHANGE[neg_risk]},
        "message": {"salt": o.salt, "maker": o.maker, "signer": o.signer, "tokenId": int(o.token_id),
                    "makerAmount": o.maker_amount, "takerAmount": o.taker_amount, "side": 0 if o.side == "BUY" else 1,
                    "signatureType": o.signature_type, "timestamp": o.timestamp, "metadata": bytes(32),
                    "builder": bytes(32)}})
    return "0x" + keccak(b"\x19" + msg.version + msg.header + msg.body).hex()


# ---------------------------------------------------------------- signing
@pytest.mark.parametrize("wallet_type", WALLETS)
@pytest.mark.parametrize("neg_risk", [False, True])
def test_order_id_is_the_eip712_hash_and_the_signature_is_the_sdks(wallet_type: str, neg_risk: bool) -> None:
    v = client(wallet_type)
    signed = v.sign_limit(TOKEN, "BUY", D("0.55"), D(10), D("0.01"), neg_risk)
    o = signed.payload
    assert signed.order_id == independent_hash(o, neg_risk) == venue_auth.order_id(wire(o), neg_risk)
    assert (o.maker, o.signature_type, o.post_only) == (v.wallet, WALLETS.index(wallet_type), False)
    assert o.signer == (v.wallet if wallet_type == "DEPOSIT_WALLET" else ADDRESS)  # 1271: the wallet signs
    # the SDK's own path (SecureClient._sign_order) on the same unsigned order gives the same bytes
    u = dataclasses.replace(unsigned_limit(v._signer, TOKEN, "BUY", D("0.55"), D(10), D("0.01"), neg_risk),
                            salt=o.salt, timestamp=o.timestamp)
    sdk_sig = v._signer.account.sign_typed_data(full_message=build_order_typed_data(u)).signature.hex()
    sdk = wrap_deposit_wallet_signature(signer=ADDRESS, signer_type="OWNER",
                                        signature=build_order_signature(u, "0x" + sdk_sig.removeprefix("0x")))
    assert o.signature == sdk
    if wallet_type != "DEPOSIT_WALLET":
        assert venue_auth.order_signer(wire(o), neg_risk) == ADDRESS


@pytest.mark.parametrize(("side", "price", "size", "tick", "maker", "taker"), [
    ("BUY", "0.55", "10", "0.01", 5_500_000, 10_000_000),    # BUY: gives USD, takes shares
    ("SELL", "0.55", "10", "0.01", 10_000_000, 5_500_000),   # SELL: gives shares, takes USD
    ("BUY", "0.555", "10", "0.005", 5_550_000, 10_000_000),
    ("SELL", "0.5575", "7.5", "0.0025", 7_500_000, 4_181_250),
])
def test_amounts_on_every_tick_size(side: str, price: str, size: str, tick: str, maker: int, taker: int) -> None:
    o = client().sign_limit(TOKEN, side, D(price), D(size), D(tick), False).payload
    assert (o.maker_amount, o.taker_amount, o.side) == (maker, taker, side)


@pytest.mark.parametrize(("price", "tick", "match"), [
    ("0.995", "0.01", "between"), ("0.555", "0.01", "decimal places"), ("0.5", "0.02", "Unsupported tick"),
])
def test_bad_price_or_tick_is_a_local_rejection(price: str, tick: str, match: str) -> None:
    with pytest.raises(OrderRejected, match=match):
        client().sign_limit(TOKEN, "BUY", D(price), D(10), D(tick), False)


def test_signing_uses_coincurve_and_the_key_never_shows() -> None:
    v = client()
    assert isinstance(v._signer.key.backend, CoinCurveECCBackend)
    text = repr(v) + repr(v._signer) + str(v._signer)
    assert PAPER_TEST_PRIVATE_KEY[2:] not in text.lower() and ADDRESS in text


def test_wallet_of_another_type_is_refused_and_derivation_matches_the_sdk() -> None:
    proxy = client("POLY_PROXY").wallet
    assert proxy != ADDRESS and client("POLY_PROXY", wallet=proxy.lower()).wallet == proxy  # checksummed
    with pytest.raises(ValueError, match="POLY_PROXY wallet .* not GNOSIS_SAFE"):
        client("GNOSIS_SAFE", wallet=proxy)
    session = "0x" + "12" * 20  # not derivable from the key: a session key acting for a deposit wallet
    assert client("DEPOSIT_WALLET", wallet=session)._signer.signer_type == "SESSION_KEY"
    with pytest.raises(ValueError, match="not a valid"):
        VenueClient("http://x", SecretStr("0x1234"))
    with pytest.raises(ValueError, match="not an address"):
        client("EOA", wallet="0x12")


def test_settings_default_wallet_type_by_mode_and_live_needs_a_key() -> None:
    paper = load_settings(WorkerSettings)
    assert (paper.wallet_type, paper.wallet) == ("EOA", None) and paper.private_key is not None
    live = load_settings(WorkerSettings, mode="live", live_confirm=True, private_key="0x" + "1" * 64)
    assert live.wallet_type == "DEPOSIT_WALLET"
    with pytest.raises(BadSetting, match="PB_PRIVATE_KEY"):
        load_settings(WorkerSettings, mode="live", live_confirm=True)


def test_environment_live_is_production_and_paper_uses_the_venues_paths() -> None:
    from polymarket import PRODUCTION
    from polymarket._internal.environment import get_environment_config
    assert venue_environment("https://clob.polymarket.com/", live=True) is PRODUCTION
    proxied = get_environment_config(venue_environment("https://clob-proxy.example", live=True))
    assert (proxied.clob_url, proxied.relayer_url) == ("https://clob-proxy.example", "https://relayer-v2.polymarket.com")
    paper = get_environment_config(venue_environment("http://127.0.0.1:8080", live=False))
    assert (paper.relayer_url, paper.gamma_url, paper.data_url, paper.rpc_url, paper.chain_id) == (
        "http://127.0.0.1:8080/relayer", "http://127.0.0.1:8080/gamma", "http://127.0.0.1:8080/data-api",
        "http://127.0.0.1:8080/rpc", 137)
    settings = load_settings(WorkerSettings, wallet_type="POLY_PROXY")
    v = VenueClient.from_settings(settings, "http://127.0.0.1:9", 1.0)
    assert (v.wallet_type, v.live, v.wallet) == ("POLY_PROXY", False, client("POLY_PROXY").wallet)


# ---------------------------------------------------------------- error mapping and statuses
@pytest.mark.parametrize(("exc", "cls"), [
    (RequestRejectedError("not enough balance / allowance", status=400), InsufficientBalance),
    (RequestRejectedError("the allowance is not enough", status=400), InsufficientBalance),
    (RequestRejectedError("invalid post-only order: order crosses book", status=400), PostOnlyCross),
    (RequestRejectedError("invalid signature", status=400), OrderRejected),
    (RequestRejectedError("Unauthorized/Invalid api key", status=401), AuthFailed),
    (RequestRejectedError("Order not found", status=404), OrderNotFound),
    (RequestRejectedError("engine restarting", status=425, restriction="restarting"), VenueUnavailable),
    (RequestRejectedError("Trading is currently cancel-only", status=503, restriction="cancel_only"),
     VenueUnavailable),
    (TransportError("connection reset"), VenueUnavailable), (SdkTimeoutError("poll timed out"), VenueUnavailable),
    (UserInputError("price must be"), OrderRejected), (SigningError("no"), OrderRejected),
    (InsufficientAllowanceError("allowance"), InsufficientBalance),
    (UnexpectedResponseError("OpenOrder response did not match"), BadResponse),
])
def test_sdk_errors_map_to_one_family(exc: Exception, cls: type) -> None:
    err = parse.map_error(exc)
    assert type(err) is cls and err.retryable == (cls in (RateLimited, VenueUnavailable))


def test_rate_limit_carries_retry_after() -> None:
    err = parse.map_error(RateLimitError("rate limited", retry_after=1.5))
    assert isinstance(err, RateLimited) and err.retry_after_s == 1.5 and err.status == 429
    err = parse.map_error(RequestRejectedError("Too Many Requests", status=429, retry_after=2.0))
    assert isinstance(err, RateLimited) and err.retry_after_s == 2.0


def test_new_statuses_normalize() -> None:
    raw = ["CANCELED_MARKET_RESOLVED", "CANCELED_NOT_ENOUGH_BALANCE", "CANCELED_ORDER_TIMED_OUT", "INVALID",
           "DELAYED", "UNMATCHED", "delayed", "LIVE", "matched", "ORDER_STATUS_MATCHED"]
    assert [normalize_status(s) for s in raw] == ["CANCELED"] * 4 + ["LIVE"] * 4 + ["MATCHED"] * 2
    with pytest.raises(BadResponse, match="status='WEIRD'"):
        normalize_status("WEIRD")


# ---------------------------------------------------------------- SDK models -> ours
def trade_row(**kw: Any) -> dict[str, Any]:
    maker = {"order_id": "0xours", "asset_id": TOKEN, "maker_address": ADDRESS.lower(), "owner": "k",
             "side": "BUY", "price": "0.48", "matched_amount": "4", "outcome": "Up"}
    row = {"id": "t1", "market": "0x" + "dd" * 32, "asset_id": TOKEN, "owner": "k", "maker_address": ADDRESS,
           "taker_order_id": "0xtaker", "side": "SELL", "trader_side": "MAKER", "price": "0.48", "size": "9",
           "outcome": "Up", "status": "TRADE_STATUS_CONFIRMED", "fee_rate_bps": "0", "bucket_index": 0,
           "transaction_hash": "", "match_time": "1771358710", "last_update": "1771358712",
           "maker_orders": [maker, {**maker, "order_id": "0xtheirs", "maker_address": "0x" + "9" * 40, "owner": "o"},
                            {**maker, "order_id": "0xnoside", "asset_id": "123"}]}
    return {**row, **kw}


def test_maker_fills_are_our_maker_orders_only() -> None:
    fills = parse.fills_of(ClobTrade.model_validate(trade_row()), TOKEN, [ADDRESS, "k"])
    assert [(f.trade_id, f.order_id, f.side, f.price, f.size, f.status, f.ts_ms) for f in fills] == \
        [("t1", "0xours", "BUY", D("0.48"), D(4), "CONFIRMED", 1_771_358_710_000)]
    assert parse.fills_of(ClobTrade.model_validate(trade_row()), TOKEN, [ADDRESS], after_ms=1_771_358_710_001) == []


def test_taker_fill_is_the_taker_order() -> None:
    t = ClobTrade.model_validate(trade_row(trader_side="TAKER", side="BUY", price="0.52", size="10",
                                           status="MATCHED_NOT_BROADCASTED", match_time="1771358710123"))
    f, = parse.fills_of(t, TOKEN, [ADDRESS])
    assert (f.order_id, f.side, f.price, f.size, f.status, f.ts_ms) == \
        ("0xtaker", "BUY", D("0.52"), D(10), "MATCHED", 1_771_358_710_123)
    assert parse.fills_of(t, "123", [ADDRESS]) == []


def test_book_order_ack_and_empty_answer() -> None:
    book = parse.book_of(OrderBook.model_validate({
        "market": "0x" + "dd" * 32, "asset_id": TOKEN, "timestamp": "1790267379253", "hash": "h",
        "bids": [{"price": "0.40", "size": "5"}, {"price": "0.48", "size": "7"}],
        "asks": [{"price": "0.60", "size": "1"}, {"price": "0.52", "size": "3"}],
        "min_order_size": "5", "tick_size": "0.005", "neg_risk": False, "last_trade_price": "0.5"}))
    assert (book.best_bid, book.bid_size, book.best_ask, book.ask_size, book.tick_size, book.timestamp_ms) == \
        (D("0.48"), D(7), D("0.52"), D(3), D("0.005"), 1790267379253)
    state = parse.state_of(OpenOrder.model_validate({
        "id": "0xo", "market": "0x" + "dd" * 32, "asset_id": TOKEN, "owner": "k", "maker_address": ADDRESS,
        "side": "SELL", "price": "0.55", "original_size": "10", "size_matched": "2", "outcome": "Up",
        "order_type": "GTC", "status": "CANCELED_MARKET_RESOLVED", "created_at": 1771358710}))
    assert (state.status, state.size_matched, state.token_id) == ("CANCELED", D(2), TOKEN)
    with pytest.raises(UnexpectedResponseError) as empty:
        OpenOrder.parse_response(None)  # an empty answer to GET /data/order/{id}: get_order says None
    with pytest.raises(UnexpectedResponseError) as broken:
        OpenOrder.parse_response({"id": "0xo", "status": "LIVE"})
    assert parse.empty_answer(empty.value) and not parse.empty_answer(broken.value)


def test_post_answers() -> None:
    ok = AcceptedOrder(order_id="0xAB", status="matched", making_amount=D("4.8"), taking_amount=D(10),
                       trade_ids=("t1",), transactions_hashes=())
    ack = parse.ack_of(ok, "0xab")
    assert (ack.status, ack.making, ack.taking, ack.trade_ids) == ("matched", D("4.8"), D(10), ("t1",))
    with pytest.raises(BadResponse, match="orderID"):
        parse.ack_of(ok, "0xcd")
    for code, cls in (("post_only_would_cross", PostOnlyCross), ("not_enough_balance", InsufficientBalance),
                      ("unmatched", OrderRejected)):
        with pytest.raises(cls, match=code):
            parse.ack_of(RejectedOrder(code=code, message="no"), "0xab")  # type: ignore[arg-type]


# ---------------------------------------------------------------- plumbing around a stand-in SDK client
class StandIn:
    """Answers like SecureClient; ``fail`` maps a method name to the exception it raises once."""

    def __init__(self, **fail: Exception) -> None:
        self.fail, self.posted, self.beats, self.closed = fail, [], [], False

    def _maybe(self, name: str) -> None:
        if name in self.fail:
            raise self.fail.pop(name)

    def post_order(self, order: Any) -> AcceptedOrder:
        self._maybe("post_order")
        self.posted.append(order)
        return AcceptedOrder(order_id="0x" + "0" * 64, status="live", making_amount=D(0), taking_amount=D(0),
                             trade_ids=(), transactions_hashes=())

    def send_order_heartbeat(self, *, heartbeat_id: str) -> OrderHeartbeat:
        self._maybe("send_order_heartbeat")
        self.beats.append(heartbeat_id)
        return OrderHeartbeat(heartbeat_id="next")

    def close(self) -> None:
        self.closed = True


def test_post_only_is_set_at_post_time_and_auth_failure_drops_the_client() -> None:
    v = client()
    signed = v.sign_limit(TOKEN, "BUY", D("0.5"), D(10), D("0.01"), False)
    signed = dataclasses.replace(signed, order_id="0x" + "0" * 64)
    v._sdk = sdk = StandIn(post_order=RequestRejectedError("Unauthorized/Invalid api key", status=401))  # type: ignore[assignment]
    with pytest.raises(AuthFailed):
        v.post_signed(signed, post_only=True)
    assert sdk.closed and v._sdk is None  # recreated (creds derived again) on the next call
    v._sdk = sdk = StandIn()  # type: ignore[assignment]
    assert v.post_signed(signed, post_only=True).status == "live"
    assert sdk.posted[0].post_only is True and sdk.posted[0].signature == signed.payload.signature


def test_heartbeat_retries_once_with_the_expected_id_and_rate_limits_are_recorded() -> None:
    v = client()
    v._sdk = sdk = StandIn(send_order_heartbeat=OrderHeartbeatMismatchError("expected-id"))  # type: ignore[assignment]
    assert v.post_heartbeat("stale") == "next" and sdk.beats == ["expected-id"]
    v._sdk = StandIn(send_order_heartbeat=TransportError("reset"))  # type: ignore[assignment]
    with pytest.raises(VenueUnavailable):
        v.post_heartbeat("next")
    assert v.rate_limit_state() is None
    v._on_rate_limit(RateLimitUpdate(remaining=3.0, reset=1771358711.0, tier="t1", warning=True))
    state = v.rate_limit_state()
    assert state is not None and (state.remaining, state.reset_s, state.tier, state.warning) == \
        (D("3.0"), D("1771358711.0"), "t1", True)
    assert type(parse.map_error(ValueError("x"))) is VenueError  # anything unforeseen: the base class
